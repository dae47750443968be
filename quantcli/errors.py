"""Errors a user can act on, each with its documented exit code.

| code | meaning |
|------|---------|
| 0    | success |
| 1    | unexpected internal error (a bug: please report it) |
| 2    | bad command line (unknown option, missing argument) |
| 3    | bad input: missing/corrupt files, NaN/Inf weights, bad imatrix |
| 4    | unsupported: architecture, tokenizer, recipe or type we cannot produce |
| 5    | output problem: file exists (use --force), disk full, cannot write |
| 6    | `quant batch`: at least one model failed (see the JSON summary) |
| 130  | interrupted (Ctrl-C); 143 terminated (SIGTERM) |
"""

from __future__ import annotations


class QuantError(Exception):
    """Base of the errors reported to the user without a traceback."""

    exit_code = 1


class InputError(QuantError):
    exit_code = 3


class UnsupportedError(QuantError):
    exit_code = 4


class OutputError(QuantError):
    exit_code = 5
