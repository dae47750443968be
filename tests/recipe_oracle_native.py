"""The native side of the recipe oracles.  Imported only in the worker process
(tests/recipe_oracle_worker.py); the test process never loads libllama itself.

* ``quantize``: llama.cpp's ``llama_model_quantize`` through llama-cpp-python's ctypes
  bindings, with everything ``llama_model_quantize_params`` holds: tensor-type overrides
  (``llama_model_tensor_override[]``, NULL-pattern terminated), the importance matrix
  (``llama_model_imatrix_data[]``, NULL-name terminated) and KV overrides
  (``llama_model_kv_override[]``, empty-key terminated), as declared in include/llama.h.
* ``ggml_quantize``: ``ggml_quantize_chunk`` from the same build's libggml-base.
* ``cli_*``: the llama-quantize code compiled by tests/recipe_oracle_cli.py.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any, Mapping, Sequence

import llama_cpp
import numpy as np

_log: list[str] = []


@llama_cpp.llama_log_callback
def _log_cb(level, text, user_data):  # noqa: ARG001
    _log.append(text.decode("utf-8", errors="replace"))


llama_cpp.llama_log_set(_log_cb, ctypes.c_void_p(0))


def constants() -> dict[str, int]:
    """LLAMA_FTYPE_* and LLAMA_KV_OVERRIDE_TYPE_* from the bindings."""
    return {k: int(v) for k, v in vars(llama_cpp).items() if k.startswith(("LLAMA_FTYPE_", "LLAMA_KV_OVERRIDE_TYPE_"))}


def quantize(
    inp: str,
    out: str,
    ftype: int,
    *,
    nthread: int = 2,
    output_tensor_type: int | None = None,
    token_embedding_type: int | None = None,
    allow_requantize: bool = False,
    quantize_output_tensor: bool = True,
    only_copy: bool = False,
    pure: bool = False,
    tt_overrides: Sequence[tuple[str, int]] | None = None,
    imatrix: Mapping[str, np.ndarray] | None = None,
    kv_overrides: Sequence[tuple[str, Any]] | None = None,
) -> tuple[int, str]:
    """Run llama_model_quantize; returns (return code, log)."""
    p = llama_cpp.llama_model_quantize_default_params()
    p.nthread = nthread
    p.ftype = ftype
    if output_tensor_type is not None:
        p.output_tensor_type = int(output_tensor_type)
    if token_embedding_type is not None:
        p.token_embedding_type = int(token_embedding_type)
    p.allow_requantize = allow_requantize
    p.quantize_output_tensor = quantize_output_tensor
    p.only_copy = only_copy
    p.pure = pure

    keep: list[Any] = []  # everything the C side points into must outlive the call
    if tt_overrides is not None:
        arr = (llama_cpp.llama_model_tensor_override * (len(tt_overrides) + 1))()
        for i, (pattern, qtype) in enumerate(tt_overrides):
            b = ctypes.c_char_p(pattern.encode())
            keep.append(b)
            arr[i].pattern = b.value
            arr[i].type = int(qtype)
        arr[len(tt_overrides)].pattern = None
        arr[len(tt_overrides)].type = 43  # GGML_TYPE_COUNT
        keep.append(arr)
        p.tt_overrides = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_tensor_override))
    if imatrix is not None:
        items = list(imatrix.items())
        arr = (llama_cpp.llama_model_imatrix_data * (len(items) + 1))()
        for i, (name, vec) in enumerate(items):
            v = np.ascontiguousarray(vec, dtype=np.float32)
            keep.append(v)
            arr[i].name = name.encode()
            arr[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = v.size
        arr[len(items)].name = None
        keep.append(arr)
        p.imatrix = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_imatrix_data))
    if kv_overrides is not None:
        arr = (llama_cpp.llama_model_kv_override * (len(kv_overrides) + 1))()
        for i, (key, value) in enumerate(kv_overrides):
            arr[i].key = key.encode()
            if isinstance(value, bool):
                arr[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_BOOL
                arr[i].value.val_bool = value
            elif isinstance(value, int):
                arr[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
                arr[i].value.val_i64 = value
            elif isinstance(value, float):
                arr[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_FLOAT
                arr[i].value.val_f64 = value
            else:
                arr[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
                b = value.encode() if isinstance(value, str) else value
                arr[i].value.val_str = b[:127]
        arr[len(kv_overrides)].key = b""
        keep.append(arr)
        p.kv_overrides = ctypes.cast(arr, ctypes.POINTER(llama_cpp.llama_model_kv_override))

    _log.clear()
    rc = llama_cpp.llama_model_quantize(str(inp).encode(), str(out).encode(), ctypes.byref(p))
    return int(rc), "".join(_log)


# ---------------------------------------------------------------------------------------

_ggml = None


def ggml_quantize(x: np.ndarray, qtype: int, imatrix: np.ndarray | None = None) -> np.ndarray:
    """ggml_quantize_chunk over the rows of x (last axis = row): raw bytes (..., row_size)."""
    global _ggml
    if _ggml is None:
        _ggml = ctypes.CDLL(str(Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so"))
        _ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
        _ggml.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                              ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]  # fmt: skip
        _ggml.ggml_row_size.restype = ctypes.c_size_t
        _ggml.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
    x = np.ascontiguousarray(x, dtype=np.float32)
    n = x.shape[-1]
    rows = x.size // n
    out = np.zeros((rows, _ggml.ggml_row_size(int(qtype), n)), np.uint8)
    qw = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32)
    _ggml.ggml_quantize_chunk(int(qtype), x.ctypes.data, out.ctypes.data, 0, rows, n, None if qw is None else qw.ctypes.data)
    return out.reshape(*x.shape[:-1], -1)


# ---------------------------------------------------------------------------------------
# the compiled llama-quantize code (tests/recipe_oracle_cli.py builds it)

_cli_libs: dict[str, ctypes.CDLL] = {}


def _cli(lib_path: str) -> ctypes.CDLL:
    lib = _cli_libs.get(lib_path)
    if lib is not None:
        return lib
    lib = ctypes.CDLL(lib_path)
    lib.oracle_llama_quantize.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)]
    lib.oracle_llama_quantize.restype = ctypes.c_int
    lib.oracle_try_parse_ftype.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p, ctypes.c_int]
    lib.oracle_parse_ggml_type.argtypes = [ctypes.c_char_p]
    lib.oracle_parse_tensor_type.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.oracle_parse_kv_override.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p,
                                             ctypes.POINTER(ctypes.c_longlong), ctypes.POINTER(ctypes.c_double),
                                             ctypes.POINTER(ctypes.c_int), ctypes.c_char_p]  # fmt: skip
    lib.oracle_prepare_imatrix.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                           ctypes.POINTER(ctypes.c_char_p), ctypes.c_int]  # fmt: skip
    lib.oracle_prepare_imatrix.restype = ctypes.c_void_p
    indexed = ("oracle_imatrix_name", "oracle_imatrix_size", "oracle_imatrix_data", "oracle_imatrix_dataset")
    for fn, res in [
        ("oracle_imatrix_n", ctypes.c_int),
        ("oracle_imatrix_name", ctypes.c_char_p),
        ("oracle_imatrix_size", ctypes.c_size_t),
        ("oracle_imatrix_data", ctypes.POINTER(ctypes.c_float)),
        ("oracle_imatrix_n_datasets", ctypes.c_int),
        ("oracle_imatrix_dataset", ctypes.c_char_p),
        ("oracle_imatrix_last_call", ctypes.c_int),
        ("oracle_imatrix_free", None),
    ]:
        f = getattr(lib, fn)
        f.restype = res
        f.argtypes = [ctypes.c_void_p] + ([ctypes.c_int] if fn in indexed else [])
    _cli_libs[lib_path] = lib
    return lib


def cli_llama_quantize(lib_path: str, args: Sequence[str]) -> tuple[int, str]:
    """llama-quantize's main() on ARGS; (exit code, llama log).  1000+code: it called exit()."""
    lib = _cli(lib_path)
    argv = [b"llama-quantize"] + [a.encode() for a in args]
    arr = (ctypes.c_char_p * (len(argv) + 1))(*argv, None)
    _log.clear()
    rc = lib.oracle_llama_quantize(len(argv), arr)
    return int(rc), "".join(_log)


def cli_try_parse_ftype(lib_path: str, s: str) -> tuple[int, str] | None:
    ft = ctypes.c_int()
    buf = ctypes.create_string_buffer(64)
    if not _cli(lib_path).oracle_try_parse_ftype(s.encode(), ctypes.byref(ft), buf, 64):
        return None
    return ft.value, buf.value.decode()


def cli_parse_ggml_type(lib_path: str, s: str) -> int:
    return int(_cli(lib_path).oracle_parse_ggml_type(s.encode()))


def cli_parse_tensor_type(lib_path: str, s: str) -> tuple[bool, str, int]:
    buf = ctypes.create_string_buffer(1024)
    t = ctypes.c_int(-1)
    ok = _cli(lib_path).oracle_parse_tensor_type(s.encode(), buf, 1024, ctypes.byref(t))
    return bool(ok), buf.value.decode(), t.value


def cli_parse_kv_override(lib_path: str, s: str) -> tuple[str, Any] | None:
    tag, i64, f64, b = ctypes.c_int(), ctypes.c_longlong(), ctypes.c_double(), ctypes.c_int()
    key, text = ctypes.create_string_buffer(128), ctypes.create_string_buffer(128)
    refs = (ctypes.byref(tag), key, ctypes.byref(i64), ctypes.byref(f64), ctypes.byref(b), text)
    if not _cli(lib_path).oracle_parse_kv_override(s.encode(), *refs):
        return None
    value = {
        llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT: i64.value,
        llama_cpp.LLAMA_KV_OVERRIDE_TYPE_FLOAT: f64.value,
        llama_cpp.LLAMA_KV_OVERRIDE_TYPE_BOOL: bool(b.value),
        llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR: text.value.decode(),
    }[tag.value]
    return key.value.decode(), value


def cli_prepare_imatrix(lib_path: str, path: str, include: Sequence[str], exclude: Sequence[str]):
    """prepare_imatrix: (entries, datasets, m_last_call), or None if llama-quantize exits."""
    lib = _cli(lib_path)
    inc = (ctypes.c_char_p * max(1, len(include)))(*[s.encode() for s in include])
    exc = (ctypes.c_char_p * max(1, len(exclude)))(*[s.encode() for s in exclude])
    h = lib.oracle_prepare_imatrix(str(path).encode(), inc, len(include), exc, len(exclude))
    if not h:
        return None
    try:
        entries = {}
        for i in range(lib.oracle_imatrix_n(h)):
            name = lib.oracle_imatrix_name(h, i).decode()
            n = lib.oracle_imatrix_size(h, i)
            ptr = lib.oracle_imatrix_data(h, i)
            entries[name] = np.ctypeslib.as_array(ptr, shape=(n,)).copy() if n else np.zeros(0, np.float32)
        datasets = [lib.oracle_imatrix_dataset(h, i).decode() for i in range(lib.oracle_imatrix_n_datasets(h))]
        return entries, datasets, int(lib.oracle_imatrix_last_call(h))
    finally:
        lib.oracle_imatrix_free(h)
