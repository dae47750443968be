"""Numeric primitives shared by every kernel, each a copy of its ggml counterpart.

Byte-exactness is won or lost here. Rules that every kernel in `formats/` follows:

* float32 arithmetic in C's order; every constant is an explicit ``np.float32`` and every
  integer that meets a float is cast with ``f32(...)`` first (Numba would otherwise promote
  float32 * int64 to float64, which C never does);
* no ``fastmath`` (no reassociation, no FMA contraction: libggml-base is built without
  -march=native, so C does plain IEEE float32 multiply and add);
* integer stores into C's ``uint8_t`` / ``int8_t`` keep C's wrap-around (``& 0xFF``);
* ``error_model="numpy"`` on every kernel: a float division by zero gives inf/nan as in C
  instead of raising ZeroDivisionError (degenerate inputs reach such divisions in ggml too).

The bit casts are LLVM intrinsics: they accept float32 only, so a value that was silently
promoted to float64 fails to compile instead of producing different bytes.
"""

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

f32 = np.float32

GROUP_MAX_EPS = np.float32(1e-15)


@intrinsic
def f32_bits(typingctx, x):
    """The IEEE bits of a float32 as a non-negative int64 (C: memcpy into uint32_t)."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        i32 = builder.bitcast(args[0], ir.IntType(32))
        return builder.zext(i32, ir.IntType(64))

    return types.int64(types.float32), codegen


@intrinsic
def bits_f32(typingctx, i):
    """The float32 whose IEEE bits are the low 32 bits of ``i``."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        v = args[0]
        width = v.type.width
        if width > 32:
            v = builder.trunc(v, ir.IntType(32))
        elif width < 32:
            v = builder.zext(v, ir.IntType(32))
        return builder.bitcast(v, ir.FloatType())

    return types.float32(i), codegen


@njit(cache=True, error_model="numpy", inline="always")
def nearest_int(fval):
    """ggml's nearest_int: round half to even through the float32 mantissa.

    Kept bit-exact even outside |fval| <= 4194303, where C's assert is compiled out."""
    val = fval + f32(12582912.0)
    i = f32_bits(val)
    return (i & 0x007FFFFF) - 0x00400000


@njit(cache=True, error_model="numpy", inline="always")
def roundf(x):
    """C roundf on float32: half away from zero."""
    t = np.trunc(x)
    if abs(x - t) >= f32(0.5):
        t += f32(1.0) if x > f32(0.0) else f32(-1.0)
    return t


@njit(cache=True, error_model="numpy", inline="always")
def fp32_to_fp16(f):
    """ggml_compute_fp32_to_fp16: float32 -> IEEE half bits, round to nearest even."""
    base = (abs(f) * f32(5.192296858534828e33)) * f32(7.703719777548943e-34)  # 2^112, 2^-110
    w = f32_bits(f)
    shl1_w = (w + w) & 0xFFFFFFFF
    sign = w & 0x80000000
    bias = shl1_w & 0xFF000000
    if bias < 0x71000000:
        bias = 0x71000000
    base = bits_f32((bias >> 1) + 0x07800000) + base
    bits = f32_bits(base)
    exp_bits = (bits >> 13) & 0x00007C00
    mantissa_bits = bits & 0x00000FFF
    nonsign = exp_bits + mantissa_bits
    if shl1_w > 0xFF000000:
        nonsign = 0x7E00
    return (sign >> 16) | nonsign


@njit(cache=True, error_model="numpy", inline="always")
def fp16_to_fp32(h):
    """ggml_compute_fp16_to_fp32: IEEE half bits -> float32 (exact)."""
    w = np.int64(h) << 16
    sign = w & 0x80000000
    two_w = (w + w) & 0xFFFFFFFF
    exp_offset = 0xE0 << 23
    normalized_value = bits_f32((two_w >> 4) + exp_offset) * f32(1.925929944387236e-34)  # 2^-112
    magic_mask = 126 << 23
    denormalized_value = bits_f32((two_w >> 17) | magic_mask) - f32(0.5)
    if two_w < (1 << 27):
        result = sign | f32_bits(denormalized_value)
    else:
        result = sign | f32_bits(normalized_value)
    return bits_f32(result)


@njit(cache=True, error_model="numpy", inline="always")
def fp32_to_bf16(f):
    """ggml_compute_fp32_to_bf16: round to nearest even, NaN made quiet."""
    u = f32_bits(f)
    if (u & 0x7FFFFFFF) > 0x7F800000:
        return (u >> 16) | 64
    return ((u + (0x7FFF + ((u >> 16) & 1))) >> 16) & 0xFFFF


@njit(cache=True, error_model="numpy", inline="always")
def row_is_finite(row):
    """No NaN/Inf in a float32 row (exponent bits not all ones), with integer ops that
    vectorize; the kernels check each row as they quantize it, while it is in cache."""
    bits = row.view(np.uint32)
    m = np.uint32(0)
    for j in range(bits.shape[0]):
        e = bits[j] & np.uint32(0x7F800000)
        m = e if e > m else m
    return m != np.uint32(0x7F800000)
