"""Float types: F32, F16, BF16 (ggml_fp32_to_fp16_row, ggml_fp32_to_bf16_row_ref)."""

import numpy as np
from numba import njit, prange

from ._numeric import row_is_finite, bits_f32, fp16_to_fp32, fp32_to_bf16, fp32_to_fp16
from .registry import BlockType, register


@njit(cache=True, error_model="numpy", parallel=True)
def copy_rows(src, dst, qw=None, bad=None):
    for r in prange(src.shape[0]):
        if bad is not None and not row_is_finite(src[r]):
            bad[r] = True
            continue
        dst[r] = src[r]


@njit(cache=True, error_model="numpy", parallel=True)
def ggml_fp32_to_fp16_rows(x, y, qw, bad):
    for r in prange(x.shape[0]):
        if not row_is_finite(x[r]):
            bad[r] = True
            continue
        for j in range(x.shape[1]):
            y[r, j] = fp32_to_fp16(x[r, j])


@njit(cache=True, error_model="numpy", parallel=True)
def ggml_fp16_to_fp32_rows(y, x):
    for r in prange(y.shape[0]):
        for j in range(y.shape[1]):
            x[r, j] = fp16_to_fp32(y[r, j])


@njit(cache=True, error_model="numpy", parallel=True)
def ggml_fp32_to_bf16_rows(x, y, qw, bad):
    for r in prange(x.shape[0]):
        if not row_is_finite(x[r]):
            bad[r] = True
            continue
        for j in range(x.shape[1]):
            y[r, j] = fp32_to_bf16(x[r, j])


@njit(cache=True, error_model="numpy", parallel=True)
def ggml_bf16_to_fp32_rows(y, x):
    for r in prange(y.shape[0]):
        for j in range(y.shape[1]):
            x[r, j] = bits_f32(np.int64(y[r, j]) << 16)


# The importance vector (qw) is ignored by these types, as in ggml.


@register
class F32(BlockType):
    block = np.dtype("<f4")
    kernels = (copy_rows, copy_rows)


@register
class F16(BlockType):
    block = np.dtype("<u2")  # IEEE half bits
    kernels = (ggml_fp32_to_fp16_rows, ggml_fp16_to_fp32_rows)


@register
class BF16(BlockType):
    block = np.dtype("<u2")  # bfloat16 bits
    kernels = (ggml_fp32_to_bf16_rows, ggml_bf16_to_fp32_rows)
