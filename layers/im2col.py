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
`im2col_gather`/`col2im_gather` do the same through a precomputed index map instead. The module
also binds the CBLAS gemm the convolution kernels call (bottom of the file).
"""
import numpy as np
from numba import njit


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
def im2col(x, cols, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """x (C, H, W) -> cols (C·KH·KW, OH·OW), written in place (every entry overwritten)."""
    C, H, W = x.shape
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                row = cols[(c * KH + kh) * KW + kw]
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
def col2im(cols, dx, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """The adjoint of im2col: dx (C, H, W) += scatter of cols (C·KH·KW, OH·OW)."""
    C, H, W = dx.shape
    for c in range(C):
        for kh in range(KH):
            for kw in range(KW):
                row = cols[(c * KH + kh) * KW + kw]
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
def gather_map(H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """-> (idx (KH·KW, OH·OW), Hp, Wp): idx[a·KW + b, i·OW + l] is the flat offset of the input
    the tap (a, b) of output (i, l) reads, in the zero-padded sample of size (Hp, Wp)."""
    Hp = max(H + pt, (OH - 1) * sh + (KH - 1) * dh + 1)
    Wp = max(W + pl, (OW - 1) * sw + (KW - 1) * dw + 1)
    idx = np.empty((KH * KW, OH * OW), np.int64)
    for a in range(KH):
        for b in range(KW):
            for i in range(OH):
                for l in range(OW):
                    idx[a * KW + b, i * OW + l] = (i * sh + a * dh) * Wp + l * sw + b * dw
    return idx, Hp, Wp


@njit(cache=True)
def im2col_gather(x, cols, xp, idx, pt, pl, Hp, Wp):
    """im2col by gathering: xp (≥ C·Hp·Wp,) is scratch for the zero-padded sample."""
    C, H, W = x.shape
    KK, P = idx.shape
    HW = Hp * Wp
    xp[:C * HW] = 0
    for c in range(C):
        for r in range(H):
            dst = xp[c * HW + (r + pt) * Wp + pl:c * HW + (r + pt) * Wp + pl + W]
            src = x[c, r]
            for q in range(W):
                dst[q] = src[q]
    for c in range(C):
        xc = xp[c * HW:(c + 1) * HW]
        for k in range(KK):
            row = cols[c * KK + k]
            ik = idx[k]
            for p in range(P):
                row[p] = xc[ik[p]]


@njit(cache=True)
def col2im_gather(cols, dx, xp, idx, pt, pl, Hp, Wp):
    """The adjoint of im2col_gather: dx (C, H, W) += the scatter of cols."""
    C, H, W = dx.shape
    KK, P = idx.shape
    HW = Hp * Wp
    xp[:C * HW] = 0
    for c in range(C):
        xc = xp[c * HW:(c + 1) * HW]
        for k in range(KK):
            row = cols[c * KK + k]
            ik = idx[k]
            for p in range(P):
                xc[ik[p]] += row[p]
    for c in range(C):
        for r in range(H):
            src = xp[c * HW + (r + pt) * Wp + pl:c * HW + (r + pt) * Wp + pl + W]
            dst = dx[c, r]
            for q in range(W):
                dst[q] += src[q]


# The CBLAS gemm the convolution kernels call lives in engine.blas (shared with the dense kernels).
from engine.blas import NO_TRANS, ROW_MAJOR, TRANS, gemm_for  # noqa: E402,F401
