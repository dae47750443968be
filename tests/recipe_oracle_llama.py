"""llama.cpp's own ``llama_model_quantize`` (libllama from llama-cpp-python 0.3.36) as the
oracle for the recipe tests: run it (in the worker process, see recipe_oracle_worker.py),
then read what it wrote with gguf.GGUFReader and what it logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import gguf

from tests import recipe_oracle_worker as worker


@lru_cache(maxsize=None)
def constants() -> dict[str, int]:
    """LLAMA_FTYPE_* / LLAMA_KV_OVERRIDE_TYPE_* from llama-cpp-python's bindings."""
    return worker.call("constants")


def ftype_of(recipe_name: str) -> int:
    """The llama_ftype for a recipe, from the llama-cpp-python bindings (not from ours)."""
    if recipe_name in ("F32", "COPY"):
        return constants()["LLAMA_FTYPE_ALL_F32"]
    return constants()[f"LLAMA_FTYPE_MOSTLY_{recipe_name}"]


@dataclass
class Result:
    ok: bool
    log: str
    tensors: list[tuple[str, gguf.GGMLQuantizationType, tuple[int, ...]]]
    kv: list[tuple[str, list[gguf.GGUFValueType], Any]]
    path: Path

    @property
    def names(self) -> list[str]:
        return [t[0] for t in self.tensors]

    @property
    def types(self) -> dict[str, gguf.GGMLQuantizationType]:
        return {n: t for n, t, _ in self.tensors}

    def fallbacks(self) -> set[str]:
        """Tensors llama.cpp logged as 'falling back' (tensor_type_fallback)."""
        out = set()
        for m in re.finditer(r"warning: (.+?) - ncols .*?falling back to", self.log):
            out.add(m.group(1).rstrip())
        return out

    def converted(self) -> dict[str, bool]:
        """Per tensor: did the main loop convert it ('converting to') or copy it."""
        out = {}
        pieces = re.split(r"\[\s*\d+/\s*\d+\]\s+", self.log)[1:]
        for piece in pieces:
            m = re.match(r"(.+?)\s+- \[[^\]]*\], type =\s*\S+, ", piece)
            if m:
                out[m.group(1)] = "converting to" in piece
        return out

    def imatrix_missing(self) -> set[str]:
        return set(re.findall(r"did not find weights for (\S+)", self.log))

    def error(self) -> str:
        m = re.search(r"failed to quantize: (.*)", self.log)
        return m.group(1) if m else ""


def field_contents(f) -> Any:
    """ReaderField.contents(), but strings that are not valid UTF-8 come back as bytes."""
    try:
        return f.contents()
    except UnicodeDecodeError:
        if f.types == [gguf.GGUFValueType.STRING]:
            return bytes(f.parts[-1])
        raise


def _read(path: Path) -> tuple[list, list]:
    r = gguf.GGUFReader(str(path))
    tensors = [(t.name, gguf.GGMLQuantizationType(t.tensor_type), tuple(int(x) for x in t.shape)) for t in r.tensors]
    kv = []
    for f in r.fields.values():
        if f.name.startswith("GGUF."):
            continue
        kv.append((f.name, list(f.types), field_contents(f)))
    return tensors, kv


def quantize(inp: Path, out: Path, ftype: int, **params: Any) -> Result:
    """llama_model_quantize(inp, out, params) -- see recipe_oracle_native.quantize for the
    parameters; reads the output if it succeeded."""
    rc, log = worker.call("quantize", str(inp), str(out), ftype, **params)
    if rc != 0:
        return Result(False, log, [], [], out)
    tensors, kv = _read(out)
    return Result(True, log, tensors, kv, out)
