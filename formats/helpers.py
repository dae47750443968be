"""ggml-quants.c "Helper functions": the scale searches shared by legacy and K-quants.

Each function is a line-for-line copy of its C namesake.  Conventions:

* a C pointer that may be NULL (``quant_weights``/``qw``/``weights``) is a float32 array
  that is empty for NULL;
* C's ``*the_min`` out-parameter is returned: ``scale, the_min = make_qkx2_quants(...)``;
* ``L``/``Laux`` are uint8 or int8 arrays like C's, so stores wrap as C's do.
"""

import numpy as np
from numba import njit

from ._numeric import GROUP_MAX_EPS, f32, nearest_int


@njit(cache=True, error_model="numpy")
def make_qx_quants(n, nmax, x, L, rmse_type, qw):
    max_ = f32(0.0)
    amax = f32(0.0)
    for i in range(n):
        ax = abs(x[i])
        if ax > amax:
            amax = ax
            max_ = x[i]
    if amax < GROUP_MAX_EPS:  # all zero
        for i in range(n):
            L[i] = 0
        return f32(0.0)
    iscale = f32(-nmax) / max_
    if rmse_type == 0:
        for i in range(n):
            l = nearest_int(iscale * x[i])
            L[i] = nmax + max(-nmax, min(nmax - 1, l))
        return f32(1.0) / iscale
    return_early = False
    if rmse_type < 0:
        rmse_type = -rmse_type
        return_early = True
    has_qw = qw.shape[0] > 0
    w = np.empty(n, np.float32)
    for i in range(n):
        w[i] = _qx_weight(has_qw, qw, rmse_type, x[i], i)
    sumlx = f32(0.0)
    suml2 = f32(0.0)
    for i in range(n):
        l = nearest_int(iscale * x[i])
        l = max(-nmax, min(nmax - 1, l))
        L[i] = l + nmax
        fl = f32(l)
        sumlx += w[i] * x[i] * fl
        suml2 += w[i] * fl * fl
    scale = sumlx / suml2 if suml2 != f32(0.0) else f32(0.0)
    if return_early:
        return f32(0.5) * (scale + f32(1.0) / iscale) if suml2 > f32(0.0) else f32(1.0) / iscale
    best = scale * sumlx
    # C tries is = -9..9 (not 0) one after the other.  Each trial's sums only depend on its
    # own iscale, so all 18 are accumulated side by side (one lane per trial, each lane
    # summing over i in C's order: the same float32 values), then accepted in C's order.
    isc = np.empty(18, np.float32)
    slx = np.zeros(18, np.float32)
    sl2 = np.zeros(18, np.float32)
    t = 0
    for is_ in range(-9, 10):
        if is_ != 0:
            isc[t] = -(f32(nmax) + f32(0.1) * f32(is_)) / max_
            t += 1
    for i in range(n):
        xi = x[i]
        wi = w[i]
        wxi = wi * xi
        for t in range(18):
            l = nearest_int(isc[t] * xi)
            fl = f32(max(-nmax, min(nmax - 1, l)))
            slx[t] += wxi * fl
            sl2[t] += wi * fl * fl
    best_t = -1
    for t in range(18):
        if sl2[t] > f32(0.0) and slx[t] * slx[t] > best * sl2[t]:
            scale = slx[t] / sl2[t]
            best = scale * slx[t]
            best_t = t
    if best_t >= 0:
        for i in range(n):
            l = nearest_int(isc[best_t] * x[i])
            L[i] = nmax + max(-nmax, min(nmax - 1, l))
    return scale


@njit(cache=True, error_model="numpy", inline="always")
def _qx_weight(has_qw, qw, rmse_type, xi, i):
    if has_qw:
        return qw[i]
    if rmse_type == 1:
        return xi * xi
    if rmse_type == 2:
        return f32(1.0)
    if rmse_type == 3:
        return abs(xi)
    return f32(np.sqrt(abs(xi)))


@njit(cache=True, error_model="numpy")
def make_q3_quants(n, nmax, x, L, do_rmse):
    max_ = f32(0.0)
    amax = f32(0.0)
    for i in range(n):
        ax = abs(x[i])
        if ax > amax:
            amax = ax
            max_ = x[i]
    if amax < GROUP_MAX_EPS:  # all zero
        for i in range(n):
            L[i] = 0
        return f32(0.0)
    iscale = f32(-nmax) / max_
    if do_rmse:
        sumlx = f32(0.0)
        suml2 = f32(0.0)
        for i in range(n):
            l = nearest_int(iscale * x[i])
            l = max(-nmax, min(nmax - 1, l))
            L[i] = l
            w = x[i] * x[i]
            fl = f32(l)
            sumlx += w * x[i] * fl
            suml2 += w * fl * fl
        for itry in range(5):
            n_changed = 0
            for i in range(n):
                w = x[i] * x[i]
                fL = f32(L[i])
                slx = sumlx - w * x[i] * fL
                if slx > f32(0.0):
                    sl2 = suml2 - w * fL * fL
                    new_l = nearest_int(x[i] * sl2 / slx)
                    new_l = max(-nmax, min(nmax - 1, new_l))
                    if new_l != L[i]:
                        fn = f32(new_l)
                        slx += w * x[i] * fn
                        sl2 += w * fn * fn
                        if sl2 > f32(0.0) and slx * slx * suml2 > sumlx * sumlx * sl2:
                            L[i] = new_l
                            sumlx = slx
                            suml2 = sl2
                            n_changed += 1
            if n_changed == 0:
                break
        for i in range(n):
            L[i] += nmax
        return sumlx / suml2 if suml2 > f32(0.0) else f32(0.0)
    for i in range(n):
        l = nearest_int(iscale * x[i])
        l = max(-nmax, min(nmax - 1, l))
        L[i] = l + nmax
    return f32(1.0) / iscale


@njit(cache=True, error_model="numpy")
def make_qkx2_quants(n, nmax, x, weights, L, Laux, rmin, rdelta, nstep, use_mad):
    """Returns (scale, the_min)."""
    rmin = f32(rmin)
    rdelta = f32(rdelta)
    min_ = x[0]
    max_ = x[0]
    sum_w = weights[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        if x[i] < min_:
            min_ = x[i]
        if x[i] > max_:
            max_ = x[i]
        w = weights[i]
        sum_w += w
        sum_x += w * x[i]
    if min_ > f32(0.0):
        min_ = f32(0.0)
    if max_ == min_:
        for i in range(n):
            L[i] = 0
        return f32(0.0), -min_
    iscale = f32(nmax) / (max_ - min_)
    scale = f32(1.0) / iscale
    best_error = f32(0.0)
    for i in range(n):
        l = nearest_int(iscale * (x[i] - min_))
        L[i] = max(0, min(nmax, l))
        diff = scale * f32(L[i]) + min_ - x[i]
        diff = abs(diff) if use_mad else diff * diff
        best_error += weights[i] * diff
    if nstep < 1:
        return scale, -min_
    for is_ in range(nstep + 1):
        iscale = (rmin + rdelta * f32(is_) + f32(nmax)) / (max_ - min_)
        sum_l = f32(0.0)
        sum_l2 = f32(0.0)
        sum_xl = f32(0.0)
        for i in range(n):
            l = nearest_int(iscale * (x[i] - min_))
            l = max(0, min(nmax, l))
            Laux[i] = l
            w = weights[i]
            fl = f32(l)
            sum_l += w * fl
            sum_l2 += w * fl * fl
            sum_xl += w * fl * x[i]
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > f32(0.0):
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > f32(0.0):
                this_min = f32(0.0)
                this_scale = sum_xl / sum_l2
            cur_error = f32(0.0)
            for i in range(n):
                diff = this_scale * f32(Laux[i]) + this_min - x[i]
                diff = abs(diff) if use_mad else diff * diff
                cur_error += weights[i] * diff
            if cur_error < best_error:
                for i in range(n):
                    L[i] = Laux[i]
                best_error = cur_error
                scale = this_scale
                min_ = this_min
    return scale, -min_


@njit(cache=True, error_model="numpy")
def make_qkx3_quants(n, nmax, x, weights, L, Laux, rmin, rdelta, nstep, use_mad):
    """Returns (scale, the_min); ``weights`` empty means NULL (then x^2)."""
    rmin = f32(rmin)
    rdelta = f32(rdelta)
    has_w = weights.shape[0] > 0
    min_ = x[0]
    max_ = x[0]
    sum_w = weights[0] if has_w else x[0] * x[0]
    sum_x = sum_w * x[0]
    for i in range(1, n):
        if x[i] < min_:
            min_ = x[i]
        if x[i] > max_:
            max_ = x[i]
        w = weights[i] if has_w else x[i] * x[i]
        sum_w += w
        sum_x += w * x[i]
    if min_ > f32(0.0):
        min_ = f32(0.0)
    if max_ <= min_:
        for i in range(n):
            L[i] = 0
        return f32(0.0), -min_
    iscale = f32(nmax) / (max_ - min_)
    scale = f32(1.0) / iscale
    best_mad = f32(0.0)
    for i in range(n):
        l = nearest_int(iscale * (x[i] - min_))
        L[i] = max(0, min(nmax, l))
        diff = scale * f32(L[i]) + min_ - x[i]
        diff = abs(diff) if use_mad else diff * diff
        w = weights[i] if has_w else x[i] * x[i]
        best_mad += w * diff
    if nstep < 1:
        return scale, -min_
    for is_ in range(nstep + 1):
        iscale = (rmin + rdelta * f32(is_) + f32(nmax)) / (max_ - min_)
        sum_l = f32(0.0)
        sum_l2 = f32(0.0)
        sum_xl = f32(0.0)
        for i in range(n):
            l = nearest_int(iscale * (x[i] - min_))
            l = max(0, min(nmax, l))
            Laux[i] = l
            w = weights[i] if has_w else x[i] * x[i]
            fl = f32(l)
            sum_l += w * fl
            sum_l2 += w * fl * fl
            sum_xl += w * fl * x[i]
        D = sum_w * sum_l2 - sum_l * sum_l
        if D > f32(0.0):
            this_scale = (sum_w * sum_xl - sum_x * sum_l) / D
            this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D
            if this_min > f32(0.0):
                this_min = f32(0.0)
                this_scale = sum_xl / sum_l2
            mad = f32(0.0)
            for i in range(n):
                diff = this_scale * f32(Laux[i]) + this_min - x[i]
                diff = abs(diff) if use_mad else diff * diff
                w = weights[i] if has_w else x[i] * x[i]
                mad += w * diff
            if mad < best_mad:
                for i in range(n):
                    L[i] = Laux[i]
                best_mad = mad
                scale = this_scale
                min_ = this_min
    return scale, -min_


@njit(cache=True, error_model="numpy")
def make_qp_quants(n, nmax, x, L, quant_weights):
    max_ = f32(0.0)
    for i in range(n):
        max_ = max_ if max_ > x[i] else x[i]
    if max_ < GROUP_MAX_EPS:  # all zero
        for i in range(n):
            L[i] = 0
        return f32(0.0)
    iscale = f32(nmax) / max_
    for i in range(n):
        L[i] = nearest_int(iscale * x[i]) & 0xFF  # uint8_t store
    scale = f32(1.0) / iscale
    best_mse = f32(0.0)
    for i in range(n):
        diff = x[i] - scale * f32(L[i])
        w = quant_weights[i]
        best_mse += w * diff * diff
    for is_ in range(-4, 5):
        if is_ == 0:
            continue
        iscale_is = (f32(0.1) * f32(is_) + f32(nmax)) / max_
        scale_is = f32(1.0) / iscale_is
        mse = f32(0.0)
        for i in range(n):
            l = nearest_int(iscale_is * x[i])
            l = min(nmax, l)
            diff = x[i] - scale_is * f32(l)
            w = quant_weights[i]
            mse += w * diff * diff
        if mse < best_mse:
            best_mse = mse
            iscale = iscale_is
    sumlx = f32(0.0)
    suml2 = f32(0.0)
    for i in range(n):
        l = nearest_int(iscale * x[i])
        l = min(nmax, l)
        L[i] = l & 0xFF
        w = quant_weights[i]
        fl = f32(l)
        sumlx += w * x[i] * fl
        suml2 += w * fl * fl
    for itry in range(5):
        n_changed = 0
        for i in range(n):
            w = quant_weights[i]
            fL = f32(L[i])
            slx = sumlx - w * x[i] * fL
            sl2 = suml2 - w * fL * fL
            if slx > f32(0.0) and sl2 > f32(0.0):
                new_l = nearest_int(x[i] * sl2 / slx)
                new_l = min(nmax, new_l)
                if new_l != L[i]:
                    fn = f32(new_l)
                    slx += w * x[i] * fn
                    sl2 += w * fn * fn
                    if slx * slx * suml2 > sumlx * sumlx * sl2:
                        L[i] = new_l & 0xFF
                        sumlx = slx
                        suml2 = sl2
                        n_changed += 1
        if n_changed == 0:
            break
    return sumlx / suml2 if suml2 > f32(0.0) else f32(0.0)


# ---------------------------------------------------------------------------------------
# The same searches for many groups at once.
#
# ggml runs make_qkx2_quants / make_qkx3_quants on one group (16 or 32 values) at a time,
# and each trial scale depends on the previous acceptance (``min`` moves), so a single group
# cannot be split.  But the groups of a row are independent: the functions below run every
# group of a row side by side, one SIMD lane per group.  Data is laid out (n, S): column s
# is group s.  Each lane performs exactly C's float32 operations in C's order -- only the
# loop nest is interchanged (``for i: for s:``) -- so the result is bit-identical.
# ---------------------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def to_lanes(x, n, out):
    """out[i, s] = x[n*s + i]: consecutive groups of n values become columns."""
    S = out.shape[1]
    for s in range(S):
        for i in range(n):
            out[i, s] = x[n * s + i]


@njit(cache=True, error_model="numpy")
def from_lanes(Lt, n, L):
    """Inverse of to_lanes for the quantized levels."""
    S = Lt.shape[1]
    for s in range(S):
        for i in range(n):
            L[n * s + i] = Lt[i, s]


@njit(cache=True, error_model="numpy")
def make_qkx_quants_lanes(n, nmax, xt, wt, Lt, rmin, rdelta, nstep, use_mad, scales, the_mins):
    """make_qkx2_quants (and make_qkx3_quants with weights) on every column of xt at once.

    ``scales[s]``, ``the_mins[s]`` and ``Lt[:, s]`` receive what C returns, writes to
    ``*the_min`` and stores in ``L`` for group s.  (make_qkx3_quants differs from
    make_qkx2_quants only in its degenerate test, ``max <= min`` instead of ``max == min``;
    after ``min`` is clamped to <= 0, max >= min always holds, so the two agree.)"""
    S = xt.shape[1]
    rmin = f32(rmin)
    rdelta = f32(rdelta)
    fnmax = f32(nmax)
    mn = np.empty(S, np.float32)
    mx = np.empty(S, np.float32)
    sum_w = np.empty(S, np.float32)
    sum_x = np.empty(S, np.float32)
    iscale = np.empty(S, np.float32)
    scale = np.empty(S, np.float32)
    best = np.empty(S, np.float32)
    sum_l = np.empty(S, np.float32)
    sum_l2 = np.empty(S, np.float32)
    sum_xl = np.empty(S, np.float32)
    this_scale = np.empty(S, np.float32)
    this_min = np.empty(S, np.float32)
    cur = np.empty(S, np.float32)
    accept = np.empty(S, np.bool_)
    degenerate = np.empty(S, np.bool_)
    Lauxt = np.empty((n, S), np.uint8)

    for s in range(S):
        mn[s] = xt[0, s]
        mx[s] = xt[0, s]
        sum_w[s] = wt[0, s]
        sum_x[s] = sum_w[s] * xt[0, s]
    for i in range(1, n):
        for s in range(S):
            v = xt[i, s]
            m = mn[s]
            mn[s] = v if v < m else m
            m = mx[s]
            mx[s] = v if v > m else m
            w = wt[i, s]
            sum_w[s] += w
            sum_x[s] += w * v
    for s in range(S):
        m = mn[s]
        mn[s] = f32(0.0) if m > f32(0.0) else m
        degenerate[s] = mx[s] == mn[s]
        the_mins[s] = -mn[s]  # what C returns for a degenerate group
        iscale[s] = fnmax / (mx[s] - mn[s])
        scale[s] = f32(1.0) / iscale[s]
        best[s] = f32(0.0)
    for i in range(n):
        for s in range(S):
            l = nearest_int(iscale[s] * (xt[i, s] - mn[s]))
            l = max(0, min(nmax, l))
            Lt[i, s] = l
            diff = scale[s] * f32(l) + mn[s] - xt[i, s]
            diff = abs(diff) if use_mad else diff * diff
            best[s] += wt[i, s] * diff
    if nstep >= 1:
        for is_ in range(nstep + 1):
            for s in range(S):
                iscale[s] = (rmin + rdelta * f32(is_) + fnmax) / (mx[s] - mn[s])
                sum_l[s] = f32(0.0)
                sum_l2[s] = f32(0.0)
                sum_xl[s] = f32(0.0)
            for i in range(n):
                for s in range(S):
                    l = nearest_int(iscale[s] * (xt[i, s] - mn[s]))
                    l = max(0, min(nmax, l))
                    Lauxt[i, s] = l
                    w = wt[i, s]
                    fl = f32(l)
                    sum_l[s] += w * fl
                    sum_l2[s] += w * fl * fl
                    sum_xl[s] += w * fl * xt[i, s]
            for s in range(S):
                D = sum_w[s] * sum_l2[s] - sum_l[s] * sum_l[s]
                ts = (sum_w[s] * sum_xl[s] - sum_x[s] * sum_l[s]) / D
                tm = (sum_l2[s] * sum_x[s] - sum_l[s] * sum_xl[s]) / D
                if tm > f32(0.0):
                    tm = f32(0.0)
                    ts = sum_xl[s] / sum_l2[s]
                this_scale[s] = ts
                this_min[s] = tm
                accept[s] = D > f32(0.0)  # C skips the trial entirely when D <= 0
                cur[s] = f32(0.0)
            for i in range(n):
                for s in range(S):
                    diff = this_scale[s] * f32(Lauxt[i, s]) + this_min[s] - xt[i, s]
                    diff = abs(diff) if use_mad else diff * diff
                    cur[s] += wt[i, s] * diff
            any_accept = False
            for s in range(S):
                a = accept[s] and cur[s] < best[s]
                accept[s] = a
                if a:
                    best[s] = cur[s]
                    scale[s] = this_scale[s]
                    mn[s] = this_min[s]
                    any_accept = True
            if any_accept:
                for i in range(n):
                    for s in range(S):
                        if accept[s]:
                            Lt[i, s] = Lauxt[i, s]
    for s in range(S):
        if degenerate[s]:
            scales[s] = f32(0.0)
            for i in range(n):
                Lt[i, s] = 0
        else:
            scales[s] = scale[s]
            the_mins[s] = -mn[s]


@njit(cache=True, error_model="numpy", inline="always")
def _lanes_max_abs(xt, n, mx, amax):
    """Per column: amax = the largest |x| and mx = that x, first occurrence (C's loop)."""
    for i in range(n):
        for s in range(xt.shape[1]):
            v = xt[i, s]
            ax = abs(v)
            bigger = ax > amax[s]
            amax[s] = ax if bigger else amax[s]
            mx[s] = v if bigger else mx[s]


@njit(cache=True, error_model="numpy")
def make_qx_quants_lanes(n, nmax, xt, wt, Lt, scales):
    """make_qx_quants(n, nmax, x, L, rmse_type=1, qw) on every column of xt at once, with
    the weights given per value in wt (C: qw[i], or x[i]*x[i] when qw is NULL)."""
    S = xt.shape[1]
    fnmax = f32(nmax)
    mx = np.zeros(S, np.float32)
    amax = np.zeros(S, np.float32)
    iscale = np.empty(S, np.float32)
    best_iscale = np.empty(S, np.float32)
    improved = np.zeros(S, np.bool_)
    sumlx = np.zeros(S, np.float32)
    suml2 = np.zeros(S, np.float32)
    best = np.empty(S, np.float32)
    _lanes_max_abs(xt, n, mx, amax)
    for s in range(S):
        iscale[s] = -fnmax / mx[s]
    for i in range(n):
        for s in range(S):
            v = xt[i, s]
            l = nearest_int(iscale[s] * v)
            l = max(-nmax, min(nmax - 1, l))
            Lt[i, s] = l + nmax
            fl = f32(l)
            sumlx[s] += wt[i, s] * v * fl
            suml2[s] += wt[i, s] * fl * fl
    for s in range(S):
        scales[s] = sumlx[s] / suml2[s] if suml2[s] != f32(0.0) else f32(0.0)
        best[s] = scales[s] * sumlx[s]
    for is_ in range(-9, 10):
        if is_ == 0:
            continue
        for s in range(S):
            iscale[s] = -(fnmax + f32(0.1) * f32(is_)) / mx[s]
            sumlx[s] = f32(0.0)
            suml2[s] = f32(0.0)
        for i in range(n):
            for s in range(S):
                v = xt[i, s]
                l = nearest_int(iscale[s] * v)
                fl = f32(max(-nmax, min(nmax - 1, l)))
                sumlx[s] += wt[i, s] * v * fl
                suml2[s] += wt[i, s] * fl * fl
        for s in range(S):
            if suml2[s] > f32(0.0) and sumlx[s] * sumlx[s] > best[s] * suml2[s]:
                scales[s] = sumlx[s] / suml2[s]
                best[s] = scales[s] * sumlx[s]
                best_iscale[s] = iscale[s]
                improved[s] = True
    for i in range(n):
        for s in range(S):
            if improved[s]:
                l = nearest_int(best_iscale[s] * xt[i, s])
                Lt[i, s] = nmax + max(-nmax, min(nmax - 1, l))
    for s in range(S):
        if amax[s] < GROUP_MAX_EPS:  # all zero
            scales[s] = f32(0.0)
            for i in range(n):
                Lt[i, s] = 0


@njit(cache=True, error_model="numpy")
def make_q3_quants_lanes(n, nmax, xt, Lt, scales):
    """make_q3_quants(n, nmax, x, L, do_rmse=true) on every column of xt at once.

    C stops a group's coordinate descent after a pass that changed nothing; a further pass
    from the same state changes nothing either, so lanes simply run until no lane changes."""
    S = xt.shape[1]
    fnmax = f32(nmax)
    mx = np.zeros(S, np.float32)
    amax = np.zeros(S, np.float32)
    iscale = np.empty(S, np.float32)
    sumlx = np.zeros(S, np.float32)
    suml2 = np.zeros(S, np.float32)
    _lanes_max_abs(xt, n, mx, amax)
    for s in range(S):
        iscale[s] = -fnmax / mx[s]
    for i in range(n):
        for s in range(S):
            v = xt[i, s]
            l = nearest_int(iscale[s] * v)
            l = max(-nmax, min(nmax - 1, l))
            Lt[i, s] = l
            w = v * v
            fl = f32(l)
            sumlx[s] += w * v * fl
            suml2[s] += w * fl * fl
    for itry in range(5):
        n_changed = 0
        for i in range(n):
            for s in range(S):
                v = xt[i, s]
                w = v * v
                old = np.int64(Lt[i, s])
                fL = f32(old)
                slx = sumlx[s] - w * v * fL
                sl2 = suml2[s] - w * fL * fL
                new_l = nearest_int(v * sl2 / slx)
                new_l = max(-nmax, min(nmax - 1, new_l))
                fn = f32(new_l)
                slx2 = slx + w * v * fn
                sl22 = sl2 + w * fn * fn
                ok = (
                    (slx > f32(0.0))
                    & (new_l != old)
                    & (sl22 > f32(0.0))
                    & (slx2 * slx2 * suml2[s] > sumlx[s] * sumlx[s] * sl22)
                )
                # branch-free form of C's "if (...) { L[i] = new_l; ...; ++n_changed; }"
                Lt[i, s] = new_l if ok else old
                sumlx[s] = slx2 if ok else sumlx[s]
                suml2[s] = sl22 if ok else suml2[s]
                n_changed += np.int64(ok)
        if n_changed == 0:
            break
    for s in range(S):
        if amax[s] < GROUP_MAX_EPS:  # all zero
            scales[s] = f32(0.0)
            for i in range(n):
                Lt[i, s] = 0
        else:
            scales[s] = sumlx[s] / suml2[s] if suml2[s] > f32(0.0) else f32(0.0)
            for i in range(n):
                Lt[i, s] += nmax
