"""Legacy 32-value block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0.

Row routines carry ggml's names (ggml-quants.c): ``quantize_row_<t>_ref`` without an
importance vector, ``quantize_row_<t>_impl`` with one, ``dequantize_row_<t>``.  Each
``quantize_<t>`` / ``dequantize_<t>`` runs them over all rows in parallel (rows are
independent in ggml too, so the bytes never depend on the thread count).
"""

import numpy as np
from numba import njit, prange

from ._numeric import row_is_finite, bits_f32, f32, fp16_to_fp32, fp32_to_fp16, roundf
from .helpers import from_lanes, make_qkx_quants_lanes, make_qx_quants_lanes, to_lanes
from .registry import BlockType, register

QK = 32
FLT_MAX = np.float32(3.4028234663852886e38)

# C structs from ggml-common.h; f16 fields are held as their IEEE half bits.
block_q4_0 = np.dtype([("d", "<u2"), ("qs", "u1", 16)])
block_q4_1 = np.dtype([("d", "<u2"), ("m", "<u2"), ("qs", "u1", 16)])
block_q5_0 = np.dtype([("d", "<u2"), ("qh", "u1", 4), ("qs", "u1", 16)])
block_q5_1 = np.dtype([("d", "<u2"), ("m", "<u2"), ("qh", "u1", 4), ("qs", "u1", 16)])
block_q8_0 = np.dtype([("d", "<u2"), ("qs", "i1", 32)])


@njit(cache=True, error_model="numpy", inline="always")
def _store_qh(y, qh):
    y.qh[0] = qh & 0xFF
    y.qh[1] = (qh >> 8) & 0xFF
    y.qh[2] = (qh >> 16) & 0xFF
    y.qh[3] = (qh >> 24) & 0xFF


@njit(cache=True, error_model="numpy", inline="always")
def _load_qh(y):
    return (
        np.int64(y.qh[0]) | (np.int64(y.qh[1]) << 8) | (np.int64(y.qh[2]) << 16)
        | (np.int64(y.qh[3]) << 24)
    )


@njit(cache=True, error_model="numpy", inline="always")
def _row_sigma2(x):
    sum_x2 = f32(0.0)
    for j in range(x.shape[0]):
        sum_x2 += x[j] * x[j]
    return sum_x2 / f32(x.shape[0])


# The `_ref` routines take the block length as a run-time value, ``qk = len(x) // nb``
# (always QK): with a compile-time trip count of 32 LLVM unrolls each block loop completely
# and then no longer vectorizes its reductions (max, min, or); with a run-time count it
# vectorizes them and the routines run about 1.4x faster.  The arithmetic is unchanged.


@njit(cache=True, error_model="numpy", inline="always")
def _block_len(x, nb):
    return x.shape[0] // nb


@njit(cache=True, error_model="numpy", inline="always")
def _order_key(b):
    """An int32 that orders float bits b as C's < orders finite floats (+0 and -0 equal)."""
    return b if b >= 0 else -(b & np.int32(0x7FFFFFFF))


@njit(cache=True, error_model="numpy", inline="always")
def _key_value(xb, qk, k):
    """The first value of the block whose order key is k (the float itself unless k is
    zero, where +0 and -0 share the key and the first one met is C's answer)."""
    if k != 0:
        return bits_f32(np.int64(k) if k > 0 else np.int64(-k) | 0x80000000)
    bits = xb.view(np.int32)
    for j in range(qk):
        if _order_key(bits[j]) == 0:
            return xb[j]
    return f32(0.0)


@njit(cache=True, error_model="numpy", inline="always")
def _first_min_max(xb, qk):
    """C's ``if (v < min) min = v; if (v > max) max = v;`` over a block of finite values:
    the first smallest and first largest value, via order-preserving integer keys."""
    bits = xb.view(np.int32)
    kmin = np.int32(0x7FFFFFFF)
    kmax = np.int32(-0x7FFFFFFF)
    for j in range(qk):
        k = _order_key(bits[j])
        kmin = min(kmin, k)
        kmax = max(kmax, k)
    return _key_value(xb, qk, kmin), _key_value(xb, qk, kmax)


@njit(cache=True, error_model="numpy", inline="always")
def _first_absmax(xb, qk):
    """The value of largest |x| in a block, first occurrence -- C's
    ``if (amax < fabsf(v)) { amax = fabsf(v); max = v; }``: the largest and the smallest
    value decide it, unless they are v and -v (then the first one met wins), or all zero
    (nothing beat C's initial amax = 0: max stays +0.0)."""
    bits = xb.view(np.int32)
    kmin = np.int32(0x7FFFFFFF)
    kmax = np.int32(-0x7FFFFFFF)
    for j in range(qk):
        k = _order_key(bits[j])
        kmin = min(kmin, k)
        kmax = max(kmax, k)
    if kmax > -kmin:
        return bits_f32(np.int64(kmax))
    if -kmin > kmax:
        return bits_f32(np.int64(-kmin) | 0x80000000)
    if kmax <= 0:
        return f32(0.0)
    for j in range(qk):
        k = _order_key(bits[j])
        if k == kmax or k == kmin:
            return xb[j]
    return f32(0.0)



# ---------------------------------------------------------------------------- Q4_0


@njit(cache=True, error_model="numpy")
def quantize_row_q4_0_ref(x, y):
    nb = y.shape[0]
    qk = _block_len(x, nb)
    for i in range(nb):
        xb = x[i * qk : (i + 1) * qk]
        max_ = _first_absmax(xb, qk)
        d = max_ / f32(-8.0)
        id_ = f32(1.0) / d if d != f32(0.0) else f32(0.0)
        y[i].d = fp32_to_fp16(d)
        qs = y[i].qs
        for j in range(qk // 2):
            x0 = xb[j] * id_
            x1 = xb[qk // 2 + j] * id_
            xi0 = min(15, np.int32(x0 + f32(8.5)))  # C: MIN(15, (int8_t)(x0 + 8.5f))
            xi1 = min(15, np.int32(x1 + f32(8.5)))
            qs[j] = xi0 | (xi1 << 4)


@njit(cache=True, error_model="numpy")
def _qx_row_search(x, quant_weights, nmax, d, L):
    """The per-block make_qx_quants(32, nmax, xb, L, 1, weight) of quantize_row_q4_0_impl /
    q5_0_impl for every block of the row at once, weight = qw * sqrtf(sigma2 + x*x)."""
    nb = d.shape[0]
    sigma2 = _row_sigma2(x)
    w = np.empty(x.shape[0], np.float32)
    for j in range(x.shape[0]):
        w[j] = quant_weights[j] * np.sqrt(sigma2 + x[j] * x[j])
    xt = np.empty((QK, nb), np.float32)
    wt = np.empty((QK, nb), np.float32)
    Lt = np.empty((QK, nb), np.int8)
    to_lanes(x, QK, xt)
    to_lanes(w, QK, wt)
    make_qx_quants_lanes(QK, nmax, xt, wt, Lt, d)
    from_lanes(Lt, QK, L)


@njit(cache=True, error_model="numpy")
def quantize_row_q4_0_impl(x, y, quant_weights):
    nb = y.shape[0]
    d = np.empty(nb, np.float32)
    L = np.empty(nb * QK, np.int8)
    _qx_row_search(x, quant_weights, 8, d, L)
    for ib in range(nb):
        yqs = y[ib].qs
        y[ib].d = fp32_to_fp16(d[ib])
        for j in range(16):
            yqs[j] = np.int64(L[QK * ib + j]) | (np.int64(L[QK * ib + j + 16]) << 4)


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q4_0(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q4_0_ref(src[r], dst[r])
        else:
            quantize_row_q4_0_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q4_0(x, y):
    for i in range(x.shape[0]):
        xqs = x[i].qs
        d = fp16_to_fp32(x[i].d)
        for j in range(QK // 2):
            x0 = f32((xqs[j] & 0x0F) - 8)
            x1 = f32((xqs[j] >> 4) - 8)
            y[i * QK + j] = x0 * d
            y[i * QK + j + QK // 2] = x1 * d


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q4_0(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q4_0(src[r], dst[r])


# ---------------------------------------------------------------------------- Q4_1


@njit(cache=True, error_model="numpy")
def quantize_row_q4_1_ref(x, y):
    nb = y.shape[0]
    qk = _block_len(x, nb)
    for i in range(nb):
        xb = x[i * qk : (i + 1) * qk]
        min_, max_ = _first_min_max(xb, qk)
        d = (max_ - min_) / f32(15.0)
        id_ = f32(1.0) / d if d != f32(0.0) else f32(0.0)
        y[i].d = fp32_to_fp16(d)
        y[i].m = fp32_to_fp16(min_)
        qs = y[i].qs
        for j in range(qk // 2):
            x0 = (xb[j] - min_) * id_
            x1 = (xb[qk // 2 + j] - min_) * id_
            xi0 = min(15, np.int32(x0 + f32(0.5)))  # C: MIN(15, (int8_t)(x0 + 0.5f))
            xi1 = min(15, np.int32(x1 + f32(0.5)))
            qs[j] = xi0 | (xi1 << 4)


@njit(cache=True, error_model="numpy")
def _qkx3_row_search(x, quant_weights, nmax, d, min_, L):
    """The per-block make_qkx3_quants(32, nmax, ..., -0.9f, 0.05f, 36, false) of
    quantize_row_q4_1_impl / q5_1_impl for every block of the row at once (lanes), with
    weight = qw * sqrtf(sigma2 + x*x) and sigma2 = sum(x^2)/n_per_row over the row."""
    nb = d.shape[0]
    sigma2 = _row_sigma2(x)
    w = np.empty(x.shape[0], np.float32)
    for j in range(x.shape[0]):
        w[j] = quant_weights[j] * np.sqrt(sigma2 + x[j] * x[j])
    xt = np.empty((QK, nb), np.float32)
    wt = np.empty((QK, nb), np.float32)
    Lt = np.empty((QK, nb), np.uint8)
    to_lanes(x, QK, xt)
    to_lanes(w, QK, wt)
    make_qkx_quants_lanes(QK, nmax, xt, wt, Lt, -0.9, 0.05, 36, False, d, min_)
    from_lanes(Lt, QK, L)


@njit(cache=True, error_model="numpy")
def quantize_row_q4_1_impl(x, y, quant_weights):
    nb = y.shape[0]
    d = np.empty(nb, np.float32)
    min_ = np.empty(nb, np.float32)
    L = np.empty(nb * QK, np.uint8)
    _qkx3_row_search(x, quant_weights, 15, d, min_, L)
    for ib in range(nb):
        yqs = y[ib].qs
        y[ib].d = fp32_to_fp16(d[ib])
        y[ib].m = fp32_to_fp16(-min_[ib])
        for j in range(16):
            yqs[j] = L[QK * ib + j] | (L[QK * ib + j + 16] << 4)


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q4_1(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q4_1_ref(src[r], dst[r])
        else:
            quantize_row_q4_1_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q4_1(x, y):
    for i in range(x.shape[0]):
        xqs = x[i].qs
        d = fp16_to_fp32(x[i].d)
        m = fp16_to_fp32(x[i].m)
        for j in range(QK // 2):
            x0 = f32(xqs[j] & 0x0F)
            x1 = f32(xqs[j] >> 4)
            y[i * QK + j] = x0 * d + m
            y[i * QK + j + QK // 2] = x1 * d + m


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q4_1(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q4_1(src[r], dst[r])


# ---------------------------------------------------------------------------- Q5_0


@njit(cache=True, error_model="numpy")
def quantize_row_q5_0_ref(x, y):
    nb = y.shape[0]
    qk = _block_len(x, nb)
    for i in range(nb):
        xb = x[i * qk : (i + 1) * qk]
        max_ = _first_absmax(xb, qk)
        d = max_ / f32(-16.0)
        id_ = f32(1.0) / d if d != f32(0.0) else f32(0.0)
        y[i].d = fp32_to_fp16(d)
        qs = y[i].qs
        qh = 0
        for j in range(qk // 2):
            x0 = xb[j] * id_
            x1 = xb[qk // 2 + j] * id_
            xi0 = min(31, np.int32(x0 + f32(16.5)))  # C: MIN(31, (int8_t)(x0 + 16.5f))
            xi1 = min(31, np.int32(x1 + f32(16.5)))
            qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)
            qh |= ((xi0 & 0x10) >> 4) << (j + 0)
            qh |= ((xi1 & 0x10) >> 4) << (j + qk // 2)
        _store_qh(y[i], qh)


@njit(cache=True, error_model="numpy")
def quantize_row_q5_0_impl(x, y, quant_weights):
    nb = y.shape[0]
    d = np.empty(nb, np.float32)
    L = np.empty(nb * QK, np.int8)
    _qx_row_search(x, quant_weights, 16, d, L)
    for ib in range(nb):
        yqs = y[ib].qs
        y[ib].d = fp32_to_fp16(d[ib])
        qh = 0
        for j in range(16):
            xi0 = np.int64(L[QK * ib + j]) & 0xFF
            xi1 = np.int64(L[QK * ib + j + 16]) & 0xFF
            yqs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)
            qh |= ((xi0 & 0x10) >> 4) << (j + 0)
            qh |= ((xi1 & 0x10) >> 4) << (j + QK // 2)
        _store_qh(y[ib], qh)


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q5_0(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q5_0_ref(src[r], dst[r])
        else:
            quantize_row_q5_0_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q5_0(x, y):
    for i in range(x.shape[0]):
        xqs = x[i].qs
        d = fp16_to_fp32(x[i].d)
        qh = _load_qh(x[i])
        for j in range(QK // 2):
            xh_0 = ((qh >> (j + 0)) << 4) & 0x10
            xh_1 = (qh >> (j + 12)) & 0x10
            x0 = f32(((xqs[j] & 0x0F) | xh_0) - 16)
            x1 = f32(((xqs[j] >> 4) | xh_1) - 16)
            y[i * QK + j] = x0 * d
            y[i * QK + j + QK // 2] = x1 * d


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q5_0(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q5_0(src[r], dst[r])


# ---------------------------------------------------------------------------- Q5_1


@njit(cache=True, error_model="numpy")
def quantize_row_q5_1_ref(x, y):
    nb = y.shape[0]
    qk = _block_len(x, nb)
    for i in range(nb):
        xb = x[i * qk : (i + 1) * qk]
        min_, max_ = _first_min_max(xb, qk)
        d = (max_ - min_) / f32(31.0)
        id_ = f32(1.0) / d if d != f32(0.0) else f32(0.0)
        y[i].d = fp32_to_fp16(d)
        y[i].m = fp32_to_fp16(min_)
        qs = y[i].qs
        qh = 0
        for j in range(qk // 2):
            x0 = (xb[j] - min_) * id_
            x1 = (xb[qk // 2 + j] - min_) * id_
            xi0 = np.int32(x0 + f32(0.5))  # C: (uint8_t)(x0 + 0.5f)
            xi1 = np.int32(x1 + f32(0.5))
            qs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)
            qh |= ((xi0 & 0x10) >> 4) << (j + 0)
            qh |= ((xi1 & 0x10) >> 4) << (j + qk // 2)
        _store_qh(y[i], qh)


@njit(cache=True, error_model="numpy")
def quantize_row_q5_1_impl(x, y, quant_weights):
    nb = y.shape[0]
    d = np.empty(nb, np.float32)
    min_ = np.empty(nb, np.float32)
    L = np.empty(nb * QK, np.uint8)
    _qkx3_row_search(x, quant_weights, 31, d, min_, L)
    for ib in range(nb):
        yqs = y[ib].qs
        y[ib].d = fp32_to_fp16(d[ib])
        y[ib].m = fp32_to_fp16(-min_[ib])
        qh = 0
        for j in range(16):
            xi0 = np.int64(L[QK * ib + j])
            xi1 = np.int64(L[QK * ib + j + 16])
            yqs[j] = (xi0 & 0x0F) | ((xi1 & 0x0F) << 4)
            qh |= ((xi0 & 0x10) >> 4) << (j + 0)
            qh |= ((xi1 & 0x10) >> 4) << (j + QK // 2)
        _store_qh(y[ib], qh)


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q5_1(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q5_1_ref(src[r], dst[r])
        else:
            quantize_row_q5_1_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q5_1(x, y):
    for i in range(x.shape[0]):
        xqs = x[i].qs
        d = fp16_to_fp32(x[i].d)
        m = fp16_to_fp32(x[i].m)
        qh = _load_qh(x[i])
        for j in range(QK // 2):
            xh_0 = ((qh >> (j + 0)) << 4) & 0x10
            xh_1 = (qh >> (j + 12)) & 0x10
            x0 = f32((xqs[j] & 0x0F) | xh_0)
            x1 = f32((xqs[j] >> 4) | xh_1)
            y[i * QK + j] = x0 * d + m
            y[i * QK + j + QK // 2] = x1 * d + m


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q5_1(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q5_1(src[r], dst[r])


# ---------------------------------------------------------------------------- Q8_0


@njit(cache=True, error_model="numpy")
def quantize_row_q8_0_ref(x, y):
    nb = y.shape[0]
    qk = _block_len(x, nb)
    for i in range(nb):
        xb = x[i * qk : (i + 1) * qk]
        bits = xb.view(np.uint32)
        m = np.uint32(0)  # C: amax = MAX(amax, fabsf(v)), on the bits of |v|
        for j in range(qk):
            m = max(m, bits[j] & np.uint32(0x7FFFFFFF))
        amax = bits_f32(m)
        d = amax / f32(127.0)
        id_ = f32(1.0) / d if d != f32(0.0) else f32(0.0)
        y[i].d = fp32_to_fp16(d)
        qs = y[i].qs
        for j in range(qk):
            qs[j] = np.int32(roundf(xb[j] * id_))


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q8_0(src, dst, quant_weights, bad):
    # ggml ignores the importance vector for Q8_0
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        quantize_row_q8_0_ref(src[r], dst[r])


@njit(cache=True, error_model="numpy")
def dequantize_row_q8_0(x, y):
    for i in range(x.shape[0]):
        xqs = x[i].qs
        d = fp16_to_fp32(x[i].d)
        for j in range(QK):
            y[i * QK + j] = f32(xqs[j]) * d


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q8_0(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q8_0(src[r], dst[r])


# ---------------------------------------------------------------------------- registry


@register
class Q4_0(BlockType):
    block = block_q4_0
    uses_importance = True
    kernels = (quantize_q4_0, dequantize_q4_0)


@register
class Q4_1(BlockType):
    block = block_q4_1
    uses_importance = True
    kernels = (quantize_q4_1, dequantize_q4_1)


@register
class Q5_0(BlockType):
    block = block_q5_0
    uses_importance = True
    kernels = (quantize_q5_0, dequantize_q5_0)


@register
class Q5_1(BlockType):
    block = block_q5_1
    uses_importance = True
    kernels = (quantize_q5_1, dequantize_q5_1)


@register
class Q8_0(BlockType):
    block = block_q8_0
    kernels = (quantize_q8_0, dequantize_q8_0)
