"""Run llama.cpp's native libraries in a separate worker process.

Loading libllama into the pytest process is fragile: libllama needs *its* libggml-base.so.0,
and if another test module already loaded a different library with that soname (the
libggml-python build used by tests/ggml_oracle.py), the dynamic linker reuses it and
libllama fails to load (undefined symbols).  So every call into native llama.cpp code --
``llama_model_quantize``, ``ggml_quantize_chunk``, the compiled llama-quantize code -- goes
through `call`, which runs the function of the same name in `tests.recipe_oracle_native`
in one long-lived ``spawn`` worker.  A crash there (a GGML_ASSERT abort) costs the test
that caused it, not the session: the next call starts a new worker.
"""

from __future__ import annotations

import atexit
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

_pool: ProcessPoolExecutor | None = None


def _get() -> ProcessPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _pool


def _dispatch(fn: str, args: tuple, kwargs: dict) -> Any:
    from tests import recipe_oracle_native

    return getattr(recipe_oracle_native, fn)(*args, **kwargs)


def call(fn: str, *args: Any, **kwargs: Any) -> Any:
    """``tests.recipe_oracle_native.<fn>(*args, **kwargs)``, run in the worker process."""
    global _pool
    try:
        return _get().submit(_dispatch, fn, args, kwargs).result()
    except BrokenProcessPool:
        _pool = None
        raise RuntimeError(f"the llama.cpp worker process died while running {fn}") from None


@atexit.register
def _shutdown() -> None:
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
