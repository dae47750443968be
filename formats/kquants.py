"""K-quants: 256-value super-blocks Q2_K, Q3_K, Q4_K, Q5_K, Q6_K.

Without an importance vector ggml runs ``quantize_row_<t>_ref``; with one it runs
``quantize_row_<t>_impl`` row by row (ggml-quants.c ``quantize_<t>``).  The functions below
keep those names and follow the C line by line; see `formats/_numeric.py` for the float32
rules that keep the bytes identical.
"""

import numpy as np
from numba import njit, prange

from ._numeric import row_is_finite, GROUP_MAX_EPS, f32, fp16_to_fp32, fp32_to_fp16, nearest_int
from .helpers import (
    from_lanes,
    make_q3_quants_lanes,
    make_qkx_quants_lanes,
    make_qp_quants,
    make_qx_quants_lanes,
    make_qx_quants,
    to_lanes,
)
from .registry import BlockType, register

QK_K = 256
K_SCALE_SIZE = 12

# C structs from ggml-common.h; f16 fields are held as their IEEE half bits.
block_q2_K = np.dtype(
    [("scales", "u1", QK_K // 16), ("qs", "u1", QK_K // 4), ("d", "<u2"), ("dmin", "<u2")]
)
block_q3_K = np.dtype(
    [("hmask", "u1", QK_K // 8), ("qs", "u1", QK_K // 4), ("scales", "u1", 12), ("d", "<u2")]
)
block_q4_K = np.dtype(
    [("d", "<u2"), ("dmin", "<u2"), ("scales", "u1", K_SCALE_SIZE), ("qs", "u1", QK_K // 2)]
)
block_q5_K = np.dtype(
    [
        ("d", "<u2"),
        ("dmin", "<u2"),
        ("scales", "u1", K_SCALE_SIZE),
        ("qh", "u1", QK_K // 8),
        ("qs", "u1", QK_K // 2),
    ]
)
block_q6_K = np.dtype(
    [("ql", "u1", QK_K // 2), ("qh", "u1", QK_K // 4), ("scales", "i1", QK_K // 16), ("d", "<u2")]
)


@njit(cache=True, error_model="numpy", inline="always")
def _i8(v):
    """C's store into int8_t: keep the low 8 bits, signed."""
    return ((v + 128) & 0xFF) - 128


@njit(cache=True, error_model="numpy", inline="always")
def _sum_x2(x, n):
    s = f32(0.0)
    for j in range(n):
        s += x[j] * x[j]
    return s


@njit(cache=True, error_model="numpy", inline="always")
def get_scale_min_k4(j, q):
    if j < 4:
        return np.int64(q[j]) & 63, np.int64(q[j + 4]) & 63
    a = np.int64(q[j + 4])
    return (a & 0xF) | ((np.int64(q[j - 4]) >> 6) << 4), (a >> 4) | ((np.int64(q[j]) >> 6) << 4)


@njit(cache=True, error_model="numpy", inline="always")
def _pack_2bit(L, qs):
    """qs[j/4 + l] = L[j+l] | L[j+l+32] << 2 | L[j+l+64] << 4 | L[j+l+96] << 6 (Q2_K, Q3_K)."""
    for j in range(0, QK_K, 128):
        for l in range(32):
            qs[j // 4 + l] = (
                L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6)
            ) & 0xFF


@njit(cache=True, error_model="numpy", inline="always")
def _pack_k4_scales(scales, j, ls, lm):
    """The 12-byte 6-bit scale/min packing of Q4_K and Q5_K."""
    if j < 4:
        scales[j] = ls
        scales[j + 4] = lm
    else:
        scales[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4)
        scales[j - 4] |= (ls >> 4) << 6
        scales[j - 0] |= (lm >> 4) << 6


# ============================================================================ Q2_K


@njit(cache=True, error_model="numpy")
def _q2_K_pack(xb, b, L, dm, mm):
    """Requantize the 16 sub-blocks with the stored 4-bit scales/mins, then pack."""
    scales = b.scales  # (one record-field lookup, not one per access)
    for j in range(QK_K // 16):
        d = dm * f32(scales[j] & 0xF)
        if d == f32(0.0):
            continue
        m = mm * f32(scales[j] >> 4)
        for ii in range(16):
            l = nearest_int((xb[16 * j + ii] + m) / d)
            L[16 * j + ii] = max(0, min(3, l))
    _pack_2bit(L, b.qs)


@njit(cache=True, error_model="numpy")
def quantize_row_q2_K_ref(x, y):
    nb = y.shape[0]
    S = nb * (QK_K // 16)
    # make_qkx2_quants(16, 3, x + 16*j, |x|, ..., -0.5f, 0.1f, 15, true) for every
    # sub-block of the row at once (see helpers.make_qkx_quants_lanes)
    xt = np.empty((16, S), np.float32)
    wt = np.empty((16, S), np.float32)
    Lt = np.empty((16, S), np.uint8)
    scales = np.empty(S, np.float32)
    mins = np.empty(S, np.float32)
    to_lanes(x, 16, xt)
    for i in range(16):
        for s in range(S):
            wt[i, s] = abs(xt[i, s])
    make_qkx_quants_lanes(16, 3, xt, wt, Lt, -0.5, 0.1, 15, True, scales, mins)
    L = np.empty(nb * QK_K, np.uint8)
    from_lanes(Lt, 16, L)
    q4scale = f32(15.0)
    for i in range(nb):
        xb = x[i * QK_K : (i + 1) * QK_K]
        Lb = L[i * QK_K : (i + 1) * QK_K]
        sc = scales[16 * i : 16 * i + 16]
        mi = mins[16 * i : 16 * i + 16]
        max_scale = f32(0.0)
        max_min = f32(0.0)
        for j in range(QK_K // 16):
            if sc[j] > max_scale:
                max_scale = sc[j]
            if mi[j] > max_min:
                max_min = mi[j]
        b = y[i]
        if max_scale > f32(0.0):
            iscale = q4scale / max_scale
            for j in range(QK_K // 16):
                b.scales[j] = nearest_int(iscale * sc[j]) & 0xFF
            b.d = fp32_to_fp16(max_scale / q4scale)
        else:
            for j in range(QK_K // 16):
                b.scales[j] = 0
            b.d = fp32_to_fp16(f32(0.0))
        if max_min > f32(0.0):
            iscale = q4scale / max_min
            for j in range(QK_K // 16):
                l = nearest_int(iscale * mi[j])
                b.scales[j] = (b.scales[j] | (l << 4)) & 0xFF
            b.dmin = fp32_to_fp16(max_min / q4scale)
        else:
            b.dmin = fp32_to_fp16(f32(0.0))
        _q2_K_pack(xb, b, Lb, fp16_to_fp32(b.d), fp16_to_fp32(b.dmin))


@njit(cache=True, error_model="numpy")
def _impl_weights(x, quant_weights, group, sigma2_factor, n, wt, sw):
    """weight = qw * sqrtf(sigma2 + x*x) with sigma2 = factor*sum(x^2)/QK_K per super-block,
    laid out in lanes of n values, and sw[s] = sum of group s's weights (C's order)."""
    nb = x.shape[0] // QK_K
    w = np.empty(x.shape[0], np.float32)
    for i in range(nb):
        xb = x[i * QK_K : (i + 1) * QK_K]
        sigma2 = sigma2_factor * _sum_x2(xb, QK_K) / f32(QK_K)
        for l in range(QK_K):
            w[i * QK_K + l] = quant_weights[i * QK_K + l] * np.sqrt(sigma2 + xb[l] * xb[l])
    to_lanes(w, n, wt)
    for s in range(wt.shape[1]):
        sw[s] = f32(0.0)
    for i in range(n):
        for s in range(wt.shape[1]):
            sw[s] += wt[i, s]


@njit(cache=True, error_model="numpy")
def quantize_row_q2_K_impl(x, y, quant_weights):
    nb = y.shape[0]
    S = nb * (QK_K // 16)
    xt = np.empty((16, S), np.float32)
    wt = np.empty((16, S), np.float32)
    Lt = np.empty((16, S), np.uint8)
    scales = np.empty(S, np.float32)
    mins = np.empty(S, np.float32)
    sw = np.empty(S, np.float32)
    to_lanes(x, 16, xt)
    _impl_weights(x, quant_weights, 16, f32(1.0), 16, wt, sw)
    make_qkx_quants_lanes(16, 3, xt, wt, Lt, -0.9, 0.05, 36, False, scales, mins)
    L = np.empty(nb * QK_K, np.uint8)
    from_lanes(Lt, 16, L)
    Ls = np.empty(QK_K // 16, np.uint8)
    Lm = np.empty(QK_K // 16, np.uint8)
    for i in range(nb):
        xb = x[i * QK_K : (i + 1) * QK_K]
        Lb = L[i * QK_K : (i + 1) * QK_K]
        dm = make_qp_quants(QK_K // 16, 15, scales[16 * i : 16 * i + 16], Ls, sw[16 * i : 16 * i + 16])
        mm = make_qp_quants(QK_K // 16, 15, mins[16 * i : 16 * i + 16], Lm, sw[16 * i : 16 * i + 16])
        b = y[i]
        b.d = fp32_to_fp16(dm)
        b.dmin = fp32_to_fp16(mm)
        for j in range(QK_K // 16):
            b.scales[j] = (Ls[j] | (Lm[j] << 4)) & 0xFF
        _q2_K_pack(xb, b, Lb, fp16_to_fp32(b.d), fp16_to_fp32(b.dmin))


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q2_K(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q2_K_ref(src[r], dst[r])
        else:
            quantize_row_q2_K_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q2_K(x, y):
    for i in range(x.shape[0]):
        b = x[i]
        d = fp16_to_fp32(b.d)
        min_ = fp16_to_fp32(b.dmin)
        out = i * QK_K
        is_ = 0
        for n in range(0, QK_K, 128):
            q = n // 4
            shift = 0
            for j in range(4):
                sc = b.scales[is_]
                is_ += 1
                dl = d * f32(sc & 0xF)
                ml = min_ * f32(sc >> 4)
                for l in range(16):
                    y[out] = dl * f32((b.qs[q + l] >> shift) & 3) - ml
                    out += 1
                sc = b.scales[is_]
                is_ += 1
                dl = d * f32(sc & 0xF)
                ml = min_ * f32(sc >> 4)
                for l in range(16):
                    y[out] = dl * f32((b.qs[q + l + 16] >> shift) & 3) - ml
                    out += 1
                shift += 2


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q2_K(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q2_K(src[r], dst[r])


# ============================================================================ Q3_K


@njit(cache=True, error_model="numpy", inline="always")
def _q3_pack_scale(scales, j, l):
    """Store the 6-bit scale l (0..63) of sub-block j into Q3_K's 12 scale bytes."""
    if j < 8:
        scales[j] = l & 0xF
    else:
        scales[j - 8] |= (l & 0xF) << 4
    l >>= 4
    scales[j % 4 + 8] |= l << (2 * (j // 4))


@njit(cache=True, error_model="numpy", inline="always")
def _q3_scale(scales, j):
    """The signed scale of sub-block j (-32..31)."""
    if j < 8:
        sc = np.int64(scales[j]) & 0xF
    else:
        sc = np.int64(scales[j - 8]) >> 4
    return (sc | (((np.int64(scales[8 + j % 4]) >> (2 * (j // 4))) & 3) << 4)) - 32


@njit(cache=True, error_model="numpy", inline="always")
def _q3_finish(xb, b, L):
    """Requantize with the stored scales, then hmask + 2-bit packing (ref and impl)."""
    scales = b.scales
    hmask = b.hmask
    d_all = fp16_to_fp32(b.d)
    for j in range(QK_K // 16):
        d = d_all * f32(_q3_scale(scales, j))
        if d == f32(0.0):
            continue
        for ii in range(16):
            l = nearest_int(xb[16 * j + ii] / d)
            L[16 * j + ii] = max(-4, min(3, l)) + 4
    # hmask bit j // 32 of byte j % 32 holds L[j] > 3; C walks j with a counter m = j % 32
    for m in range(QK_K // 8):
        h = 0
        for k in range(QK_K // 32):
            j = 32 * k + m
            if L[j] > 3:
                h |= 1 << k
                L[j] -= 4
        hmask[m] = h
    _pack_2bit(L, b.qs)


@njit(cache=True, error_model="numpy")
def quantize_row_q3_K_ref(x, y):
    nb = y.shape[0]
    S = nb * (QK_K // 16)
    # make_q3_quants(16, 4, x + 16*j, L + 16*j, true) for every sub-block at once
    xt = np.empty((16, S), np.float32)
    Lt = np.empty((16, S), np.int8)
    scales = np.empty(S, np.float32)
    to_lanes(x, 16, xt)
    make_q3_quants_lanes(16, 4, xt, Lt, scales)
    L = np.empty(nb * QK_K, np.int8)
    from_lanes(Lt, 16, L)
    for i in range(nb):
        xb = x[i * QK_K : (i + 1) * QK_K]
        b = y[i]
        sc = scales[16 * i : 16 * i + 16]
        max_scale = f32(0.0)
        amax = f32(0.0)
        for j in range(QK_K // 16):
            scale = abs(sc[j])
            if scale > amax:
                amax = scale
                max_scale = sc[j]
        for j in range(12):
            b.scales[j] = 0
        if max_scale != f32(0.0):
            iscale = f32(-32.0) / max_scale
            for j in range(QK_K // 16):
                l = _i8(nearest_int(iscale * sc[j]))
                l = max(-32, min(31, l)) + 32
                _q3_pack_scale(b.scales, j, l)
            b.d = fp32_to_fp16(f32(1.0) / iscale)
        else:
            b.d = fp32_to_fp16(f32(0.0))
        _q3_finish(xb, b, L[i * QK_K : (i + 1) * QK_K])


@njit(cache=True, error_model="numpy")
def quantize_row_q3_K_impl(x, y, quant_weights):
    nb = y.shape[0]
    S = nb * (QK_K // 16)
    # make_qx_quants(16, 4, x + 16*j, L + 16*j, 1, weight) for every sub-block at once
    xt = np.empty((16, S), np.float32)
    wt = np.empty((16, S), np.float32)
    Lt = np.empty((16, S), np.int8)
    scales = np.empty(S, np.float32)
    sw = np.empty(S, np.float32)
    to_lanes(x, 16, xt)
    _impl_weights(x, quant_weights, 16, f32(2.0), 16, wt, sw)
    make_qx_quants_lanes(16, 4, xt, wt, Lt, scales)
    L = np.empty(nb * QK_K, np.int8)
    from_lanes(Lt, 16, L)
    Ls = np.empty(QK_K // 16, np.int8)
    for i in range(nb):
        xb = x[i * QK_K : (i + 1) * QK_K]
        b = y[i]
        for j in range(12):
            b.scales[j] = 0
        d_block = make_qx_quants(
            QK_K // 16, 32, scales[16 * i : 16 * i + 16], Ls, 1, sw[16 * i : 16 * i + 16]
        )
        for j in range(QK_K // 16):
            _q3_pack_scale(b.scales, j, np.int64(Ls[j]))
        b.d = fp32_to_fp16(d_block)
        _q3_finish(xb, b, L[i * QK_K : (i + 1) * QK_K])


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q3_K(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q3_K_ref(src[r], dst[r])
        else:
            quantize_row_q3_K_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q3_K(x, y):
    for i in range(x.shape[0]):
        b = x[i]
        d_all = fp16_to_fp32(b.d)
        out = i * QK_K
        m = 1
        is_ = 0
        for n in range(0, QK_K, 128):
            q = n // 4
            shift = 0
            for j in range(4):
                dl = d_all * f32(_q3_scale(b.scales, is_))
                is_ += 1
                for l in range(16):
                    h = 0 if (b.hmask[l] & m) else 4
                    y[out] = dl * f32(((b.qs[q + l] >> shift) & 3) - h)
                    out += 1
                dl = d_all * f32(_q3_scale(b.scales, is_))
                is_ += 1
                for l in range(16):
                    h = 0 if (b.hmask[l + 16] & m) else 4
                    y[out] = dl * f32(((b.qs[q + l + 16] >> shift) & 3) - h)
                    out += 1
                shift += 2
                m <<= 1


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q3_K(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q3_K(src[r], dst[r])


# ============================================================================ Q4_K / Q5_K


@njit(cache=True, error_model="numpy", inline="always")
def _k4_requantize(xb, b, L, nmax):
    """Requantize 8 sub-blocks of 32 with the stored 6-bit scales and mins."""
    scales = b.scales
    d_all = fp16_to_fp32(b.d)
    dmin = fp16_to_fp32(b.dmin)
    for j in range(QK_K // 32):
        sc, m = get_scale_min_k4(j, scales)
        d = d_all * f32(sc)
        if d == f32(0.0):
            continue
        dm = dmin * f32(m)
        for ii in range(32):
            l = nearest_int((xb[32 * j + ii] + dm) / d)
            L[32 * j + ii] = max(0, min(nmax, l))


@njit(cache=True, error_model="numpy")
def _k4_ref_search(x, nmax, rmin, rdelta, nstep, scales, mins, L):
    """The per-32 make_qkx2_quants of quantize_row_q4_K_ref / q5_K_ref, for every
    sub-block of the row at once; weights av_x + |x| with av_x = sqrtf(sum_x2/32)."""
    S = scales.shape[0]
    xt = np.empty((32, S), np.float32)
    wt = np.empty((32, S), np.float32)
    Lt = np.empty((32, S), np.uint8)
    to_lanes(x, 32, xt)
    sum_x2 = np.zeros(S, np.float32)
    for l in range(32):
        for s in range(S):
            sum_x2[s] += xt[l, s] * xt[l, s]
    for s in range(S):
        sum_x2[s] = np.sqrt(sum_x2[s] / f32(32.0))  # av_x
    for l in range(32):
        for s in range(S):
            wt[l, s] = sum_x2[s] + abs(xt[l, s])
    make_qkx_quants_lanes(32, nmax, xt, wt, Lt, rmin, rdelta, nstep, False, scales, mins)
    from_lanes(Lt, 32, L)


@njit(cache=True, error_model="numpy")
def _k4_impl_search(x, quant_weights, nmax, scales, mins, sw, L):
    """The per-32 make_qkx3_quants of quantize_row_q4_K_impl / q5_K_impl, all at once."""
    S = scales.shape[0]
    xt = np.empty((32, S), np.float32)
    wt = np.empty((32, S), np.float32)
    Lt = np.empty((32, S), np.uint8)
    to_lanes(x, 32, xt)
    _impl_weights(x, quant_weights, 32, f32(2.0), 32, wt, sw)
    make_qkx_quants_lanes(32, nmax, xt, wt, Lt, -0.9, 0.05, 36, False, scales, mins)
    from_lanes(Lt, 32, L)


@njit(cache=True, error_model="numpy", inline="always")
def _k4_ref_pack_scales(b, scales, mins, max_scale, max_min):
    inv_scale = f32(63.0) / max_scale if max_scale > f32(0.0) else f32(0.0)
    inv_min = f32(63.0) / max_min if max_min > f32(0.0) else f32(0.0)
    for j in range(QK_K // 32):
        ls = nearest_int(inv_scale * scales[j]) & 0xFF
        lm = nearest_int(inv_min * mins[j]) & 0xFF
        _pack_k4_scales(b.scales, j, min(63, ls), min(63, lm))
    b.d = fp32_to_fp16(max_scale / f32(63.0))
    b.dmin = fp32_to_fp16(max_min / f32(63.0))


@njit(cache=True, error_model="numpy", inline="always")
def _q4_K_pack(L, b):
    qs = b.qs
    for j in range(0, QK_K, 64):
        for l in range(32):
            qs[j // 2 + l] = L[j + l] | (L[j + l + 32] << 4)


@njit(cache=True, error_model="numpy")
def _k45_row_ref(x, y, nmax, rmin, nstep):
    """quantize_row_q4_K_ref (nmax 15) and quantize_row_q5_K_ref (nmax 31) share every step
    but the final packing of the levels, which the callers do; returns the levels L."""
    nb = y.shape[0]
    scales = np.empty(nb * (QK_K // 32), np.float32)
    mins = np.empty(nb * (QK_K // 32), np.float32)
    L = np.empty(nb * QK_K, np.uint8)
    _k4_ref_search(x, nmax, rmin, f32(0.1), nstep, scales, mins, L)
    for i in range(nb):
        xb = x[i * QK_K : (i + 1) * QK_K]
        Lb = L[i * QK_K : (i + 1) * QK_K]
        sc = scales[8 * i : 8 * i + 8]
        mi = mins[8 * i : 8 * i + 8]
        max_scale = f32(0.0)
        max_min = f32(0.0)
        for j in range(QK_K // 32):
            if sc[j] > max_scale:
                max_scale = sc[j]
            if mi[j] > max_min:
                max_min = mi[j]
        b = y[i]
        _k4_ref_pack_scales(b, sc, mi, max_scale, max_min)
        _k4_requantize(xb, b, Lb, nmax)
    return L


@njit(cache=True, error_model="numpy")
def _k45_row_impl(x, y, quant_weights, nmax):
    """quantize_row_q4_K_impl (nmax 15) and quantize_row_q5_K_impl (nmax 31), but the
    packing of the levels; returns the levels L."""
    nb = y.shape[0]
    scales = np.empty(nb * (QK_K // 32), np.float32)
    mins = np.empty(nb * (QK_K // 32), np.float32)
    sw = np.empty(nb * (QK_K // 32), np.float32)
    L = np.empty(nb * QK_K, np.uint8)
    _k4_impl_search(x, quant_weights, nmax, scales, mins, sw, L)
    Ls = np.empty(QK_K // 32, np.uint8)
    Lm = np.empty(QK_K // 32, np.uint8)
    for i in range(nb):
        xb = x[i * QK_K : (i + 1) * QK_K]
        Lb = L[i * QK_K : (i + 1) * QK_K]
        d_block = make_qp_quants(QK_K // 32, 63, scales[8 * i : 8 * i + 8], Ls, sw[8 * i : 8 * i + 8])
        m_block = make_qp_quants(QK_K // 32, 63, mins[8 * i : 8 * i + 8], Lm, sw[8 * i : 8 * i + 8])
        b = y[i]
        for j in range(QK_K // 32):
            ls = np.int64(Ls[j])
            lm = np.int64(Lm[j])
            if nmax == 31:  # only the Q5_K code clamps (a no-op unless a scale wrapped)
                ls = min(63, ls)
                lm = min(63, lm)
            _pack_k4_scales(b.scales, j, ls, lm)
        b.d = fp32_to_fp16(d_block)
        b.dmin = fp32_to_fp16(m_block)
        _k4_requantize(xb, b, Lb, nmax)
    return L


@njit(cache=True, error_model="numpy")
def quantize_row_q4_K_ref(x, y):
    L = _k45_row_ref(x, y, 15, f32(-1.0), 20)
    for i in range(y.shape[0]):
        _q4_K_pack(L[i * QK_K : (i + 1) * QK_K], y[i])


@njit(cache=True, error_model="numpy")
def quantize_row_q4_K_impl(x, y, quant_weights):
    L = _k45_row_impl(x, y, quant_weights, 15)
    for i in range(y.shape[0]):
        _q4_K_pack(L[i * QK_K : (i + 1) * QK_K], y[i])


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q4_K(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q4_K_ref(src[r], dst[r])
        else:
            quantize_row_q4_K_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q4_K(x, y):
    for i in range(x.shape[0]):
        b = x[i]
        d = fp16_to_fp32(b.d)
        min_ = fp16_to_fp32(b.dmin)
        out = i * QK_K
        is_ = 0
        for j in range(0, QK_K, 64):
            q = j // 2
            sc, m = get_scale_min_k4(is_ + 0, b.scales)
            d1 = d * f32(sc)
            m1 = min_ * f32(m)
            sc, m = get_scale_min_k4(is_ + 1, b.scales)
            d2 = d * f32(sc)
            m2 = min_ * f32(m)
            for l in range(32):
                y[out + l] = d1 * f32(b.qs[q + l] & 0xF) - m1
            for l in range(32):
                y[out + 32 + l] = d2 * f32(b.qs[q + l] >> 4) - m2
            out += 64
            is_ += 2


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q4_K(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q4_K(src[r], dst[r])


@njit(cache=True, error_model="numpy", inline="always")
def _q5_K_pack(L, b):
    qh = b.qh
    qs = b.qs
    for j in range(QK_K // 8):
        qh[j] = 0
    m1 = 1
    m2 = 2
    for n in range(0, QK_K, 64):
        for j in range(32):
            l1 = np.int64(L[n + j])
            if l1 > 15:
                l1 -= 16
                qh[j] |= m1
            l2 = np.int64(L[n + j + 32])
            if l2 > 15:
                l2 -= 16
                qh[j] |= m2
            qs[n // 2 + j] = l1 | (l2 << 4)
        m1 <<= 2
        m2 <<= 2


@njit(cache=True, error_model="numpy")
def quantize_row_q5_K_ref(x, y):
    L = _k45_row_ref(x, y, 31, f32(-0.5), 15)
    for i in range(y.shape[0]):
        _q5_K_pack(L[i * QK_K : (i + 1) * QK_K], y[i])


@njit(cache=True, error_model="numpy")
def quantize_row_q5_K_impl(x, y, quant_weights):
    L = _k45_row_impl(x, y, quant_weights, 31)
    for i in range(y.shape[0]):
        _q5_K_pack(L[i * QK_K : (i + 1) * QK_K], y[i])


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q5_K(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q5_K_ref(src[r], dst[r])
        else:
            quantize_row_q5_K_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q5_K(x, y):
    for i in range(x.shape[0]):
        b = x[i]
        d = fp16_to_fp32(b.d)
        min_ = fp16_to_fp32(b.dmin)
        out = i * QK_K
        is_ = 0
        u1 = 1
        u2 = 2
        for j in range(0, QK_K, 64):
            ql = j // 2
            sc, m = get_scale_min_k4(is_ + 0, b.scales)
            d1 = d * f32(sc)
            m1 = min_ * f32(m)
            sc, m = get_scale_min_k4(is_ + 1, b.scales)
            d2 = d * f32(sc)
            m2 = min_ * f32(m)
            for l in range(32):
                h = 16 if (b.qh[l] & u1) else 0
                y[out + l] = d1 * f32((b.qs[ql + l] & 0xF) + h) - m1
            for l in range(32):
                h = 16 if (b.qh[l] & u2) else 0
                y[out + 32 + l] = d2 * f32((b.qs[ql + l] >> 4) + h) - m2
            out += 64
            is_ += 2
            u1 <<= 2
            u2 <<= 2


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q5_K(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q5_K(src[r], dst[r])


# ============================================================================ Q6_K


@njit(cache=True, error_model="numpy", inline="always")
def _q6_K_finish(xb, b, L, scales, max_scale, max_abs_scale):
    bql = b.ql
    bqh = b.qh
    bscales = b.scales
    if max_abs_scale < GROUP_MAX_EPS:
        for j in range(QK_K // 2):
            bql[j] = 0
        for j in range(QK_K // 4):
            bqh[j] = 0
        for j in range(QK_K // 16):
            bscales[j] = 0
        b.d = fp32_to_fp16(f32(0.0))
        return
    iscale = f32(-128.0) / max_scale
    b.d = fp32_to_fp16(f32(1.0) / iscale)
    for ib in range(QK_K // 16):
        bscales[ib] = _i8(min(127, nearest_int(iscale * scales[ib])))
    d_all = fp16_to_fp32(b.d)
    for j in range(QK_K // 16):
        d = d_all * f32(bscales[j])
        if d == f32(0.0):
            continue
        for ii in range(16):
            l = nearest_int(xb[16 * j + ii] / d)
            L[16 * j + ii] = max(-32, min(31, l)) + 32
    for j in range(0, QK_K, 128):
        ql = j // 2
        qh = j // 4
        for l in range(32):
            q1 = L[j + l + 0] & 0xF
            q2 = L[j + l + 32] & 0xF
            q3 = L[j + l + 64] & 0xF
            q4 = L[j + l + 96] & 0xF
            bql[ql + l + 0] = q1 | (q3 << 4)
            bql[ql + l + 32] = q2 | (q4 << 4)
            bqh[qh + l] = (
                (L[j + l] >> 4)
                | ((L[j + l + 32] >> 4) << 2)
                | ((L[j + l + 64] >> 4) << 4)
                | ((L[j + l + 96] >> 4) << 6)
            )


@njit(cache=True, error_model="numpy")
def _q6_K_row(x, y, quant_weights, has_qw):
    """quantize_row_q6_K_ref (has_qw False: make_qx_quants weights x*x) and
    quantize_row_q6_K_impl (the raw importance as weights) differ only in those weights."""
    nb = y.shape[0]
    S = nb * (QK_K // 16)
    xt = np.empty((16, S), np.float32)
    wt = np.empty((16, S), np.float32)
    Lt = np.empty((16, S), np.int8)
    scales = np.empty(S, np.float32)
    to_lanes(x, 16, xt)
    if has_qw:
        to_lanes(quant_weights, 16, wt)
    else:
        for i in range(16):
            for s in range(S):
                wt[i, s] = xt[i, s] * xt[i, s]
    make_qx_quants_lanes(16, 32, xt, wt, Lt, scales)
    L = np.empty(nb * QK_K, np.int8)
    from_lanes(Lt, 16, L)
    for i in range(nb):
        sc = scales[16 * i : 16 * i + 16]
        max_scale = f32(0.0)
        max_abs_scale = f32(0.0)
        for ib in range(QK_K // 16):
            abs_scale = abs(sc[ib])
            if abs_scale > max_abs_scale:
                max_abs_scale = abs_scale
                max_scale = sc[ib]
        _q6_K_finish(
            x[i * QK_K : (i + 1) * QK_K], y[i], L[i * QK_K : (i + 1) * QK_K], sc,
            max_scale, max_abs_scale,
        )


@njit(cache=True, error_model="numpy")
def quantize_row_q6_K_ref(x, y):
    _q6_K_row(x, y, np.empty(0, np.float32), False)


@njit(cache=True, error_model="numpy")
def quantize_row_q6_K_impl(x, y, quant_weights):
    _q6_K_row(x, y, quant_weights, True)


@njit(cache=True, error_model="numpy", parallel=True)
def quantize_q6_K(src, dst, quant_weights, bad):
    for r in prange(src.shape[0]):
        if not row_is_finite(src[r]):
            bad[r] = True
            continue
        if quant_weights.shape[0] == 0:
            quantize_row_q6_K_ref(src[r], dst[r])
        else:
            quantize_row_q6_K_impl(src[r], dst[r], quant_weights)


@njit(cache=True, error_model="numpy")
def dequantize_row_q6_K(x, y):
    for i in range(x.shape[0]):
        b = x[i]
        d = fp16_to_fp32(b.d)
        for n in range(0, QK_K, 128):
            out = i * QK_K + n
            ql = n // 2
            qh = n // 4
            sc = n // 16
            for l in range(32):
                is_ = l // 16
                q1 = ((b.ql[ql + l + 0] & 0xF) | (((b.qh[qh + l] >> 0) & 3) << 4)) - 32
                q2 = ((b.ql[ql + l + 32] & 0xF) | (((b.qh[qh + l] >> 2) & 3) << 4)) - 32
                q3 = ((b.ql[ql + l + 0] >> 4) | (((b.qh[qh + l] >> 4) & 3) << 4)) - 32
                q4 = ((b.ql[ql + l + 32] >> 4) | (((b.qh[qh + l] >> 6) & 3) << 4)) - 32
                y[out + l + 0] = d * f32(b.scales[sc + is_ + 0]) * f32(q1)
                y[out + l + 32] = d * f32(b.scales[sc + is_ + 2]) * f32(q2)
                y[out + l + 64] = d * f32(b.scales[sc + is_ + 4]) * f32(q3)
                y[out + l + 96] = d * f32(b.scales[sc + is_ + 6]) * f32(q4)


@njit(cache=True, error_model="numpy", parallel=True)
def dequantize_q6_K(src, dst):
    for r in prange(src.shape[0]):
        dequantize_row_q6_K(src[r], dst[r])


# ============================================================================ registry


@register
class Q2_K(BlockType):
    block = block_q2_K
    uses_importance = True
    kernels = (quantize_q2_K, dequantize_q2_K)


@register
class Q3_K(BlockType):
    block = block_q3_K
    uses_importance = True
    kernels = (quantize_q3_K, dequantize_q3_K)


@register
class Q4_K(BlockType):
    block = block_q4_K
    uses_importance = True
    kernels = (quantize_q4_K, dequantize_q4_K)


@register
class Q5_K(BlockType):
    block = block_q5_K
    uses_importance = True
    kernels = (quantize_q5_K, dequantize_q5_K)


@register
class Q6_K(BlockType):
    block = block_q6_K
    uses_importance = True
    kernels = (quantize_q6_K, dequantize_q6_K)
