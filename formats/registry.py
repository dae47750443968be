"""One registry of block types, keyed by `gguf.GGMLQuantizationType`.

Each family module (`floats`, `legacy`, `kquants`) declares one small class per type: its
block layout as a numpy structured dtype (checked here against `gguf.GGML_QUANT_SIZES`) and
the two Numba drivers that run ggml's row routines over all rows in parallel.  Everything
shared by all types -- argument checks, non-finite input, the importance vector, thread
count, the bytes view of the result -- lives in `BlockType`, once.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

REGISTRY: dict[GGMLQuantizationType, "BlockType"] = {}


class QuantizationError(ValueError):
    """Input that a block type cannot take (shape, row length, NaN/Inf, importance)."""


def register(cls: type["BlockType"]) -> type["BlockType"]:
    """Class decorator: check the declared layout against gguf and add the type."""
    qtype = GGMLQuantizationType[cls.__name__]
    block_size, type_size = GGML_QUANT_SIZES[qtype]
    if cls.block.itemsize != type_size:
        raise AssertionError(
            f"{cls.__name__}: block layout is {cls.block.itemsize} bytes, "
            f"GGML_QUANT_SIZES says {type_size}"
        )
    cls.qtype = qtype
    cls.block_size = block_size
    cls.type_size = type_size
    REGISTRY[qtype] = cls()
    return cls


class BlockType:
    """A GGML tensor type: block layout plus quantize/dequantize over rows."""

    qtype: ClassVar[GGMLQuantizationType]
    block: ClassVar[np.dtype]  # one block, fields in C struct order
    block_size: ClassVar[int]  # values per block
    type_size: ClassVar[int]  # bytes per block
    uses_importance: ClassVar[bool] = False  # does ggml read quant_weights for this type?
    # The two kernels each type provides (Numba, prange over rows), as ggml names them:
    #   quantize_<t>(x, y, qw, bad): x float32 (rows, n); y blocks (rows, n // block_size);
    #                           qw float32 (n,), or (0,) for no importance vector;
    #                           bad (rows,) bool: set for rows holding NaN/Inf (left unquantized)
    #   dequantize_<t>(y, x):   y blocks (rows, nb); x float32 (rows, nb * block_size)
    kernels: ClassVar[tuple]

    def _quantize(self, x: np.ndarray, y: np.ndarray, qw: np.ndarray, bad: np.ndarray) -> None:
        self.kernels[0](x, y, qw, bad)

    def _dequantize(self, y: np.ndarray, x: np.ndarray) -> None:
        self.kernels[1](y, x)

    # -- shared by every type ------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.qtype.name

    def row_size(self, n_per_row: int) -> int:
        self._check_row_length(n_per_row)
        return n_per_row // self.block_size * self.type_size

    def _check_row_length(self, n_per_row: int) -> None:
        if n_per_row <= 0 or n_per_row % self.block_size != 0:
            raise QuantizationError(
                f"{self.name} packs {self.block_size} values per block; a row of "
                f"{n_per_row} values does not divide into blocks"
            )

    def quantize(self, x: np.ndarray, importance: np.ndarray | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x)
        if x.ndim != 2 or x.dtype != np.float32:
            raise QuantizationError(
                f"expected a 2-D float32 array (rows x n_per_row), got {x.dtype} {x.shape}"
            )
        rows, n_per_row = x.shape
        self._check_row_length(n_per_row)
        qw = np.zeros(0, np.float32)
        if importance is not None:
            qw = np.ascontiguousarray(importance, dtype=np.float32).reshape(-1)
            if qw.shape[0] != n_per_row:
                raise QuantizationError(
                    f"importance vector has {qw.shape[0]} values, rows have {n_per_row}"
                )
            if not np.isfinite(qw).all():
                bad = int(np.flatnonzero(~np.isfinite(qw))[0])
                raise QuantizationError(f"importance vector is not finite at column {bad}")
        y = np.empty((rows, n_per_row // self.block_size), dtype=self.block)
        bad = np.zeros(rows, np.bool_)
        if rows:
            self._quantize(x, y, qw, bad)
        if bad.any():
            bad_row = int(np.flatnonzero(bad)[0])
            col = int(np.flatnonzero(~np.isfinite(x[bad_row]))[0])
            raise QuantizationError(
                f"non-finite value ({x[bad_row, col]}) in row {bad_row}, column {col}; "
                f"the source weights are corrupt or overflowed"
            )
        return y.view(np.uint8).reshape(rows, -1)

    def dequantize(self, data: np.ndarray, n_per_row: int) -> np.ndarray:
        self._check_row_length(n_per_row)
        raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
        row_bytes = self.row_size(n_per_row)
        if raw.size % row_bytes != 0:
            raise QuantizationError(
                f"{raw.size} bytes is not a whole number of {self.name} rows of "
                f"{n_per_row} values ({row_bytes} bytes each)"
            )
        rows = raw.size // row_bytes
        y = raw.view(self.block).reshape(rows, -1)
        x = np.empty((rows, n_per_row), np.float32)
        if rows:
            self._dequantize(y, x)
        return x
