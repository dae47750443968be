"""The quantization engine: GGML block types, byte-identical to ggml.

Public API::

    formats.quantize(x, qtype, importance=None, threads=None) -> uint8 (rows, row_bytes)
    formats.dequantize(data, qtype, n_per_row) -> float32 (rows, n_per_row)
    formats.supports(qtype) -> bool
    formats.row_size(qtype, n_per_row) -> int

``qtype`` is a `gguf.GGMLQuantizationType` or its name ("Q4_K").  Numba (and the kernels)
load on the first call that needs them, so importing this package stays cheap.
"""

from __future__ import annotations

import importlib
import os

import numpy as np
from gguf import GGMLQuantizationType

from .registry import REGISTRY, BlockType, QuantizationError

__all__ = [
    "quantize",
    "dequantize",
    "supports",
    "row_size",
    "block_type",
    "QuantizationError",
    "FAMILIES",
]

# One module per family; each registers its types on import.
FAMILIES = ("floats", "legacy", "kquants")
_loaded = False


def _kernel_cache_dir() -> str:
    """Numba's on-disk cache, keyed by the hash of every kernel source file.

    Numba invalidates a cached function only when its own file changes, not when a helper
    it inlines from another file does; keying the directory by all sources together makes a
    stale kernel impossible."""
    import hashlib
    from pathlib import Path

    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for src in sorted(here.glob("*.py")):
        h.update(src.name.encode())
        h.update(src.read_bytes())
    base = os.environ.get("QUANTCLI_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "quantcli"
    )
    return os.path.join(base, "numba-" + h.hexdigest()[:16])


def _load() -> None:
    global _loaded
    if not _loaded:
        import numba

        if not os.environ.get("NUMBA_CACHE_DIR"):
            numba.config.CACHE_DIR = _kernel_cache_dir()
        for family in FAMILIES:
            importlib.import_module(f"{__name__}.{family}")
        _loaded = True


def _as_qtype(qtype: GGMLQuantizationType | str | int) -> GGMLQuantizationType:
    if isinstance(qtype, GGMLQuantizationType):
        return qtype
    if isinstance(qtype, str):
        try:
            return GGMLQuantizationType[qtype.upper()]
        except KeyError:
            raise QuantizationError(f"unknown GGML type {qtype!r}") from None
    return GGMLQuantizationType(int(qtype))


def supports(qtype: GGMLQuantizationType | str | int) -> bool:
    try:
        qt = _as_qtype(qtype)
    except (QuantizationError, ValueError):
        return False
    _load()
    return qt in REGISTRY


def block_type(qtype: GGMLQuantizationType | str | int) -> BlockType:
    qt = _as_qtype(qtype)
    _load()
    try:
        return REGISTRY[qt]
    except KeyError:
        supported = ", ".join(t.name for t in REGISTRY)
        raise QuantizationError(
            f"{qt.name} is not supported by the engine (supported: {supported})"
        ) from None


def row_size(qtype: GGMLQuantizationType | str | int, n_per_row: int) -> int:
    return block_type(qtype).row_size(n_per_row)


def set_threads(threads: int | None) -> int:
    """Set Numba's thread count for the calls that follow; None means all cores."""
    import numba

    n = numba.config.NUMBA_NUM_THREADS if not threads else min(int(threads), numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(max(1, n))
    return n


def quantize(
    x: np.ndarray,
    qtype: GGMLQuantizationType | str | int,
    importance: np.ndarray | None = None,
    threads: int | None = None,
) -> np.ndarray:
    """Quantize rows of float32 exactly as ggml_quantize_chunk does."""
    bt = block_type(qtype)
    set_threads(threads)
    return bt.quantize(x, importance)


def dequantize(data: np.ndarray, qtype: GGMLQuantizationType | str | int, n_per_row: int) -> np.ndarray:
    """Inverse of quantize: ggml's dequantize_row_* over every row."""
    return block_type(qtype).dequantize(data, n_per_row)


def default_threads() -> int:
    return os.cpu_count() or 1
