"""ggml itself, through ctypes: the byte-exact oracle for the engine.

`libggml-python==0.20.2.post1` ships a prebuilt libggml-base.so whose quantizers produce the
same bytes as ggml 0.25.3 (the ggml vendored by llama-cpp-python 0.3.36).  ctypes releases
the GIL during a call, so a thread pool over row chunks gives ggml the same number of
threads as our engine in the benchmark.
"""

from __future__ import annotations

import ctypes
import glob
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from gguf import GGMLQuantizationType


def _find_lib() -> str:
    import libggml  # noqa: F401  (the package that carries the shared library)

    base = os.path.dirname(libggml.__file__)
    for pattern in ("lib*/libggml-base.so", "**/libggml-base.so*"):
        hits = sorted(glob.glob(os.path.join(base, pattern), recursive=True))
        if hits:
            return hits[0]
    raise FileNotFoundError(f"libggml-base.so not found under {base}")


_lib = ctypes.CDLL(_find_lib())
_lib.ggml_quantize_chunk.restype = ctypes.c_size_t
_lib.ggml_quantize_chunk.argtypes = [
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_int64,
    ctypes.c_void_p,
]
_lib.ggml_row_size.restype = ctypes.c_size_t
_lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
_lib.ggml_get_type_traits.restype = ctypes.c_void_p
_lib.ggml_get_type_traits.argtypes = [ctypes.c_int]


def row_size(qtype: GGMLQuantizationType, n_per_row: int) -> int:
    return int(_lib.ggml_row_size(int(qtype), n_per_row))


def quantize_chunk(
    x: np.ndarray, qtype: GGMLQuantizationType, importance: np.ndarray | None = None
) -> np.ndarray:
    """ggml_quantize_chunk over all rows of x; returns uint8 (rows, row_bytes)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, n = x.shape
    rs = row_size(qtype, n)
    out = np.zeros((rows, rs), np.uint8)
    qw = None if importance is None else np.ascontiguousarray(importance, dtype=np.float32)
    written = _lib.ggml_quantize_chunk(
        int(qtype),
        x.ctypes.data,
        out.ctypes.data,
        0,
        rows,
        n,
        None if qw is None else qw.ctypes.data,
    )
    assert written == rows * rs, (written, rows * rs)
    return out


def quantize_threaded(
    x: np.ndarray,
    qtype: GGMLQuantizationType,
    importance: np.ndarray | None,
    threads: int,
    pool: ThreadPoolExecutor | None = None,
) -> np.ndarray:
    """ggml_quantize_chunk on `threads` row chunks at once (as llama-quantize does)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rows, n = x.shape
    rs = row_size(qtype, n)
    out = np.empty((rows, rs), np.uint8)
    qw = None if importance is None else np.ascontiguousarray(importance, dtype=np.float32)
    chunk = max(1, -(-rows // (threads * 8)))

    def work(start: int) -> None:
        nr = min(chunk, rows - start)
        _lib.ggml_quantize_chunk(
            int(qtype),
            x.ctypes.data,
            out.ctypes.data,
            start * n,
            nr,
            n,
            None if qw is None else qw.ctypes.data,
        )

    own = pool is None
    pool = pool or ThreadPoolExecutor(threads)
    try:
        list(pool.map(work, range(0, rows, chunk)))
    finally:
        if own:
            pool.shutdown()
    return out


def dequantize(data: np.ndarray, qtype: GGMLQuantizationType, n_per_row: int) -> np.ndarray:
    """ggml's own dequantize_row_<t> (or the fp16/bf16 row converters)."""
    raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
    rows = raw.size // row_size(qtype, n_per_row)
    out = np.empty((rows, n_per_row), np.float32)
    k = rows * n_per_row
    if qtype == GGMLQuantizationType.F32:
        return raw.view(np.float32).reshape(rows, n_per_row).copy()
    name = {
        GGMLQuantizationType.F16: "ggml_fp16_to_fp32_row",
        GGMLQuantizationType.BF16: "ggml_bf16_to_fp32_row",
    }.get(qtype, f"dequantize_row_{qtype.name.lower().replace('_k', '_K')}")
    fn = getattr(_lib, name)
    fn.restype = None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(raw.ctypes.data, out.ctypes.data, k)
    return out
