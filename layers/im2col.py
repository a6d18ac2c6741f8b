"""im2col / col2im for one sample: the gather that turns a convolution into a matrix product.

For one sample x (C, H, W) and a kernel (KH, KW) with stride (sh, sw), padding top/left (pt, pl)
and dilation (dh, dw), row r = (c·KH + kh)·KW + kw of the column matrix holds, for every output
position p = oh·OW + ow, the input value the kernel tap (c, kh, kw) sees there:

    cols[r, p] = x[c, oh·sh − pt + kh·dh, ow·sw − pl + kw·dw]      (0 outside the input: zero padding)

so the convolution of the notes, z = Σ_taps w_tap · x_tap, becomes z (C_out, P) = W (C_out, C·KH·KW) @ cols.
col2im is its adjoint: it scatters (+=) every entry of a column matrix back onto the input
position it was read from, so ∂ℓ/∂x = col2im(Wᵀ ∂ℓ/∂z).

Speed (PERFORMANCE.md lesson 2): for each tap the valid range of `ow` is computed once, so the
inner loop runs branch-free over a slice of one input row and one output row. For narrow outputs
`im2col_gather`/`col2im_gather` do the same through a precomputed index map instead, and for
stride 1 `im2col_rows`/`col2im_rows` work on a padded-width grid where every row of the column
matrix is one contiguous copy (see there). Every function takes the whole workspace and a column
offset q0, not a 2D slice of it: Numba cannot prove a slice's rows contiguous, and the copy loops
over them did not vectorise (3-5x slower, measured 2026-11-21).
"""
import numpy as np
from numba import njit

#: the three ways to build a column matrix (a kernel argument: which functions below run)
SEGMENTS, GATHER, ROWS = 0, 1, 2


@njit(cache=True, inline="always")
def _ow_range(kw, W, OW, sw, pl, dw):
    """Output columns ow whose input column iw = ow·sw − pl + kw·dw lies in [0, W)."""
    a = pl - kw * dw                      # need ow·sw >= a
    lo = -((-a) // sw) if a > 0 else 0    # ceil(a / sw), clipped at 0
    hi = (W - 1 + pl - kw * dw) // sw + 1  # floor((W − 1 + pl − kw·dw) / sw) + 1
    if hi > OW:
        hi = OW
    if hi < lo:
        hi = lo
    if lo > OW:
        lo = OW
        hi = OW
    return lo, hi


@njit(cache=True)
def im2col(x, cols, q0, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """x (C, H, W) -> columns q0 … q0 + OH·OW of cols (C·KH·KW, ·), every entry overwritten."""
    C, H, W = x.shape
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                row = cols[(c * KH + kh) * KW + kw, q0:q0 + OH * OW]
                lo, hi = _ow_range(kw, W, OW, sw, pl, dw)
                off = kw * dw - pl
                for oh in range(OH):
                    ih = oh * sh - pt + kh * dh
                    seg = row[oh * OW:(oh + 1) * OW]
                    if ih < 0 or ih >= H:
                        seg[:] = 0
                        continue
                    xr = x[c, ih]
                    for ow in range(lo):
                        seg[ow] = 0
                    for ow in range(hi, OW):
                        seg[ow] = 0
                    if sw == 1:
                        xs = xr[lo + off:hi + off]
                        ss = seg[lo:hi]
                        for j in range(hi - lo):
                            ss[j] = xs[j]
                    else:
                        for ow in range(lo, hi):
                            seg[ow] = xr[ow * sw + off]


@njit(cache=True)
def col2im(cols, q0, dx, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """The adjoint of im2col: dx (C, H, W) += scatter of columns q0 … q0 + OH·OW of cols."""
    C, H, W = dx.shape
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                row = cols[(c * KH + kh) * KW + kw, q0:q0 + OH * OW]
                lo, hi = _ow_range(kw, W, OW, sw, pl, dw)
                off = kw * dw - pl
                for oh in range(OH):
                    ih = oh * sh - pt + kh * dh
                    if ih < 0 or ih >= H:
                        continue
                    seg = row[oh * OW:(oh + 1) * OW]
                    xr = dx[c, ih]
                    if sw == 1:
                        xs = xr[lo + off:hi + off]
                        ss = seg[lo:hi]
                        for j in range(hi - lo):
                            xs[j] += ss[j]
                    else:
                        for ow in range(lo, hi):
                            xr[ow * sw + off] += seg[ow]



# Small images (a few output columns) make the row segments above so short that their loop
# overhead dominates; there a gather through a precomputed index map into a zero-padded copy of
# the sample is faster (one load and one store per column-matrix entry, no bounds logic).
@njit(cache=True)
def padded_size(H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """(Hp, Wp): the zero-padded sample that holds the input at (pt, pl) and every position any
    output's kernel reads (for stride 1: Hp = OH + (KH−1)·dh, Wp = OW + (KW−1)·dw)."""
    Hp = max(H + pt, (OH - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(W + pl, (OW - 1) * sw + (KW - 1) * dw + 1)
    return Hp, Wp


@njit(cache=True)
def gather_map(H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """-> (idx (KH·KW, OH·OW), Hp, Wp): idx[a·KW + b, i·OW + l] is the flat offset of the input
    the tap (a, b) of output (i, l) reads, in the zero-padded sample of size (Hp, Wp)."""
    Hp, Wp = padded_size(H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)
    idx = np.empty((KH * KW, OH * OW), np.int64)
    for a in range(KH):
        for b in range(KW):
            for i in range(OH):
                for l in range(OW):
                    idx[a * KW + b, i * OW + l] = (i * sh + a * dh) * Wp + l * sw + b * dw
    return idx, Hp, Wp


@njit(cache=True)
def pad_into(x, xp, pt, pl, Hp, Wp):
    """Copy x (C, H, W) into the interior of the zero-padded planes xp (flat, ≥ C·Hp·Wp). Only the
    interior is written: the border must already be zero."""
    C, H, W = x.shape
    HW = Hp * Wp
    for c in range(C):
        for r in range(H):
            dst = xp[c * HW + (r + pt) * Wp + pl:c * HW + (r + pt) * Wp + pl + W]
            src = x[c, r]
            for q in range(W):
                dst[q] = src[q]


@njit(cache=True)
def crop_add(xp, dx, pt, pl, Hp, Wp):
    """The adjoint of pad_into: dx (C, H, W) += the interior of the padded planes xp."""
    C, H, W = dx.shape
    HW = Hp * Wp
    for c in range(C):
        for r in range(H):
            src = xp[c * HW + (r + pt) * Wp + pl:c * HW + (r + pt) * Wp + pl + W]
            dst = dx[c, r]
            for q in range(W):
                dst[q] += src[q]


@njit(cache=True)
def im2col_gather(x, cols, q0, xp, idx, pt, pl, Hp, Wp):
    """im2col by gathering: xp (≥ C·Hp·Wp,) is scratch for the zero-padded sample."""
    C = x.shape[0]
    KK, P = idx.shape
    HW = Hp * Wp
    xp[:C * HW] = 0
    pad_into(x, xp, pt, pl, Hp, Wp)
    for c in range(C):
        xc = xp[c * HW:(c + 1) * HW]
        for k in range(KK):
            row = cols[c * KK + k, q0:q0 + P]
            ik = idx[k]
            for p in range(P):
                row[p] = xc[ik[p]]


@njit(cache=True)
def col2im_gather(cols, q0, dx, xp, idx, pt, pl, Hp, Wp):
    """The adjoint of im2col_gather: dx (C, H, W) += the scatter of cols."""
    C = dx.shape[0]
    KK, P = idx.shape
    HW = Hp * Wp
    xp[:C * HW] = 0
    for c in range(C):
        xc = xp[c * HW:(c + 1) * HW]
        for k in range(KK):
            row = cols[c * KK + k, q0:q0 + P]
            ik = idx[k]
            for p in range(P):
                xc[ik[p]] += row[p]
    crop_add(xp, dx, pt, pl, Hp, Wp)


# Stride 1: the padded-width grid. In the zero-padded sample xp (C, Hp, Wp), output (i, l) of the
# tap (c, a, b) reads xp[c, i + a·dh, l + b·dw], the flat offset c·Hp·Wp + a·dh·Wp + b·dw + q with
# q = i·Wp + l. Computed on the grid q ∈ [0, OH·Wp), whose columns l ≥ OW are discarded, every row
# of the column matrix is ONE contiguous copy of xp, and col2im one contiguous add per row
# (instead of OH short segments with bounds checks); the price is Wp/OW more GEMM columns.
@njit(cache=True)
def rows_slack(KW, dw):
    """Zeros after the last plane of xp: the last grid row reads up to (KW−1)·dw past it."""
    return (KW - 1) * dw


@njit(cache=True)
def im2col_rows(xp, cols, q0, C, KH, KW, dh, dw, Hp, Wp, OH):
    """cols[(c·KH + a)·KW + b, q0 + q] = xp[c·Hp·Wp + a·dh·Wp + b·dw + q] for q < OH·Wp (stride 1;
    xp is the zero-padded sample from pad_into, with rows_slack zeros after it)."""
    Q = OH * Wp
    HW = Hp * Wp
    for c in range(C):
        for a in range(KH):
            for b in range(KW):
                off = c * HW + a * dh * Wp + b * dw
                src = xp[off:off + Q]
                dst = cols[(c * KH + a) * KW + b, q0:q0 + Q]
                for q in range(Q):
                    dst[q] = src[q]


@njit(cache=True)
def col2im_rows(cols, q0, dxp, dx, pt, pl, KH, KW, dh, dw, Hp, Wp, OH):
    """The adjoint of pad_into ∘ im2col_rows: dx (C, H, W) += it applied to columns q0 … q0 + OH·Wp
    of cols; dxp (≥ C·Hp·Wp + rows_slack) is scratch. The discarded grid columns of cols must be
    zero: they land on the border, or wrap onto the next row."""
    C = dx.shape[0]
    Q = OH * Wp
    HW = Hp * Wp
    dxp[:] = 0
    for c in range(C):
        for a in range(KH):
            for b in range(KW):
                off = c * HW + a * dh * Wp + b * dw
                dst = dxp[off:off + Q]
                src = cols[(c * KH + a) * KW + b, q0:q0 + Q]
                for q in range(Q):
                    dst[q] += src[q]
    crop_add(dxp, dx, pt, pl, Hp, Wp)
