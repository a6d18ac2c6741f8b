"""Convolutional layers Conv1d and Conv2d (notes 000 §6; 003 §2.1).

The notes' 1D convolution with kernel size k, z_i = Σ_{j=0}^{k-1} w_j x_{i+j−k/2}, generalised as in
torch.nn (cross-correlation, no kernel flip) to C_in input channels, C_out output channels,
stride s, dilation d, zero padding p and `groups` (output channel o sees the C_g = C_in/groups
input channels of its group g = o // (C_out/groups)):

    Conv1d:  z[n, o, i] = β_o + Σ_{c ∈ group(o)} Σ_{j=0}^{K−1} ω[o, c, j] · x[n, c, i·s − p + j·d]
    Conv2d:  z[n, o, i, l] = β_o + Σ_c Σ_{a,b} ω[o, c, a, b] · x[n, c, i·s_h − p_t + a·d_h, l·s_w − p_l + b·d_w]

with x = 0 outside the input (zero padding) and output length  L_out = ⌊(L + p_lo + p_hi − d(K−1) − 1)/s⌋ + 1.
Backward (the same sum read the other way):

    ∂ℓ/∂ω[o, c, j] = Σ_{n,i} ∂ℓ/∂z[n, o, i] · x[n, c, i·s − p + j·d]
    ∂ℓ/∂β_o        = Σ_{n,i} ∂ℓ/∂z[n, o, i]
    ∂ℓ/∂x[n, c, m] = Σ_{o,j,i : i·s − p + j·d = m} ∂ℓ/∂z[n, o, i] · ω[o, c, j]

Shapes as torch.nn: x (N, C_in, L) or (N, C_in, H, W); ω = `weight` (C_out, C_in/groups, K) or
(C_out, C_in/groups, KH, KW); β = `bias` (C_out,).

Reading order: the reference kernels (`conv1d_*_ref`, `conv2d_*_ref`: the sums above as loops,
what `with engine.reference_kernels():` runs), the argument helpers and the Layer classes, then
the fast kernels (im2col + GEMM, layers/im2col.py) in their own section at the end.
"""
from collections import namedtuple

import numpy as np
from numba import njit, prange

from engine.blas import NO_TRANS, TRANS, gemm_at, gemm_for
from engine.checks import check_bool, check_choice, check_dtype, check_int, check_rng, check_tuple
from engine.core import Layer, Parameter, use_reference
from engine.init import default_uniform
from engine.numerics import FASTMATH
from engine.threads import chunks_for, num_threads, parallel_call

from .im2col import (GATHER, ROWS, SEGMENTS, col2im, col2im_gather, col2im_rows, gather_map, im2col,
                     im2col_gather, im2col_rows, pad_into, padded_size, rows_slack)


# ---------------------------------------------------------------------------------------------
# reference kernels: the sums of the module docstring, as loops
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def conv1d_forward_ref(x, w, b, s, p, d, groups, L_out):
    """z[n, o, i] = β_o + Σ_c Σ_j ω[o, c, j] x[n, g·C_g + c, i·s − p + j·d]   (the notes'
    z_i = Σ_j w_j x_{i+j−k/2} with s = d = 1, p = k/2).  x (N, C_in, L) -> z (N, C_out, L_out);
    p is the padding on the low side (the high side's only shows in L_out)."""
    N, C_in, L = x.shape
    C_out, C_g, K = w.shape
    O_g = C_out // groups
    z = np.empty((N, C_out, L_out), x.dtype)
    for n in range(N):
        for o in range(C_out):
            g = o // O_g
            for i in range(L_out):
                acc = b[o]
                for c in range(C_g):
                    for j in range(K):
                        m = i * s - p + j * d
                        if 0 <= m < L:
                            acc += w[o, c, j] * x[n, g * C_g + c, m]
                z[n, o, i] = acc
    return z


@njit(cache=True)
def conv1d_backward_ref(dz, x, w, dw, db, s, p, d, groups):
    """Returns ∂ℓ/∂x (N, C_in, L); accumulates ∂ℓ/∂ω into dw and ∂ℓ/∂β into db (+=)."""
    N, C_in, L = x.shape
    C_out, C_g, K = w.shape
    O_g = C_out // groups
    L_out = dz.shape[2]
    dx = np.zeros_like(x)
    for n in range(N):
        for o in range(C_out):
            g = o // O_g
            for i in range(L_out):
                gz = dz[n, o, i]
                db[o] += gz
                for c in range(C_g):
                    for j in range(K):
                        m = i * s - p + j * d
                        if 0 <= m < L:
                            dw[o, c, j] += gz * x[n, g * C_g + c, m]
                            dx[n, g * C_g + c, m] += gz * w[o, c, j]
    return dx


@njit(cache=True)
def conv2d_forward_ref(x, w, b, sh, sw, pt, pl, dh, dw_, groups, OH, OW):
    """z[n, o, i, l] = β_o + Σ_c Σ_{a,b} ω[o, c, a, b] x[n, g·C_g + c, i·sh − pt + a·dh, l·sw − pl + b·dw].
    x (N, C_in, H, W) -> z (N, C_out, OH, OW); (pt, pl) the padding on the top and left."""
    N, C_in, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    O_g = C_out // groups
    z = np.empty((N, C_out, OH, OW), x.dtype)
    for n in range(N):
        for o in range(C_out):
            g = o // O_g
            for i in range(OH):
                for l in range(OW):
                    acc = b[o]
                    for c in range(C_g):
                        for a in range(KH):
                            r = i * sh - pt + a * dh
                            if r < 0 or r >= H:
                                continue
                            for bb in range(KW):
                                q = l * sw - pl + bb * dw_
                                if 0 <= q < W:
                                    acc += w[o, c, a, bb] * x[n, g * C_g + c, r, q]
                    z[n, o, i, l] = acc
    return z


@njit(cache=True)
def conv2d_backward_ref(dz, x, w, dw, db, sh, sw, pt, pl, dh, dw_, groups):
    """Returns ∂ℓ/∂x (N, C_in, H, W); accumulates ∂ℓ/∂ω into dw and ∂ℓ/∂β into db (+=)."""
    N, C_in, H, W = x.shape
    C_out, C_g, KH, KW = w.shape
    O_g = C_out // groups
    OH, OW = dz.shape[2], dz.shape[3]
    dx = np.zeros_like(x)
    for n in range(N):
        for o in range(C_out):
            g = o // O_g
            for i in range(OH):
                for l in range(OW):
                    gz = dz[n, o, i, l]
                    db[o] += gz
                    for c in range(C_g):
                        for a in range(KH):
                            r = i * sh - pt + a * dh
                            if r < 0 or r >= H:
                                continue
                            for bb in range(KW):
                                q = l * sw - pl + bb * dw_
                                if 0 <= q < W:
                                    dw[o, c, a, bb] += gz * x[n, g * C_g + c, r, q]
                                    dx[n, g * C_g + c, r, q] += gz * w[o, c, a, bb]
    return dx


# ---------------------------------------------------------------------------------------------
# argument handling shared by Conv1d and Conv2d, and the layers
# ---------------------------------------------------------------------------------------------
def _padding(padding, nd, kernel, stride, dilation):
    """-> ((lo, hi) per spatial dim). 'valid' is no padding; 'same' keeps the size for stride 1:
    total d(K−1), lo = total // 2 and the odd one on the high side, as PyTorch."""
    if isinstance(padding, str):
        check_choice("padding", padding, ("same", "valid"))
        if padding == "valid":
            return ((0, 0),) * nd
        if any(s != 1 for s in stride):
            raise ValueError(f"padding: 'same' needs stride 1, got stride {stride}")
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2) for k, d in zip(kernel, dilation))
    return tuple((p, p) for p in check_tuple("padding", padding, nd, low=0))


def conv_output_size(size, kernel, stride=1, pad_lo=0, pad_hi=0, dilation=1):
    """L_out = ⌊(L + p_lo + p_hi − d(K − 1) − 1) / s⌋ + 1 (can be <= 0 when the kernel does not fit)."""
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


class _ConvNd(Layer):
    nd = 2

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", dtype=np.float64, rng=None):
        nd = self.nd
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.out_channels = check_int("out_channels", out_channels, low=1)
        self.groups = check_int("groups", groups, low=1)
        if in_channels % groups:
            raise ValueError(f"groups: in_channels ({in_channels}) must be divisible by groups, got groups={groups}")
        if out_channels % groups:
            raise ValueError(f"groups: out_channels ({out_channels}) must be divisible by groups, got groups={groups}")
        self.kernel_size = check_tuple("kernel_size", kernel_size, nd, low=1)
        self.stride = check_tuple("stride", stride, nd, low=1)
        self.dilation = check_tuple("dilation", dilation, nd, low=1)
        self.padding = padding if isinstance(padding, str) else check_tuple("padding", padding, nd, low=0)
        self._pads = _padding(padding, nd, self.kernel_size, self.stride, self.dilation)
        check_choice("padding_mode", padding_mode, ("zeros",))
        self.dtype = check_dtype(dtype)
        self.has_bias = check_bool("bias", bias)
        rng = check_rng("rng", rng)            # last: a refused argument draws nothing from a given Generator
        fan_in = (in_channels // groups) * int(np.prod(self.kernel_size))
        self.weight = Parameter(default_uniform(
            (out_channels, in_channels // groups) + self.kernel_size, fan_in, rng, self.dtype))
        if self.has_bias:
            self.bias = Parameter(default_uniform((out_channels,), fan_in, rng, self.dtype))
        self._zero_bias = np.zeros(out_channels, self.dtype)
        # for the fast kernels: the geometry in 2D form, the plan of the last input shape, and the
        # per-thread workspaces, reused across calls while the shapes stay the same. Nothing in
        # the workspaces outlives a kernel call (the backward rebuilds its column matrix from the
        # saved input), so several calls per forward cannot corrupt each other.
        self._geom = self._geom_2d()
        self._plan = (None, None)
        self._ws = None

    def output_shape(self, input_shape):
        """Spatial output size for an input of spatial size `input_shape` (tuple of nd ints)."""
        return tuple(conv_output_size(n, k, s, lo, hi, d) for n, k, s, d, (lo, hi)
                     in zip(input_shape, self.kernel_size, self.stride, self.dilation, self._pads))

    def _check_x(self, x):
        x = self._check_input(x, ndim=self.nd + 2)
        if x.shape[1] != self.in_channels:
            want = "(N, %d, %s)" % (self.in_channels, "L" if self.nd == 1 else "H, W")
            raise ValueError(f"x: expected shape {want}, got {x.shape}")
        out = self.output_shape(x.shape[2:])
        if min(out) < 1:
            raise ValueError(f"x: spatial size {x.shape[2:]} with padding {self._pads} is smaller than the "
                             f"dilated kernel {tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))}")
        return x, out

    def _b(self):
        return self.bias.value if self.has_bias else self._zero_bias

    def forward(self, x, train=True):
        check_bool("train", train)
        x, out = self._check_x(x)
        z = self._forward_ref(x, out) if use_reference() else self._forward_fast(x, out)
        self._save(x, out)
        return z

    def backward(self, dy, *, input_grad=True):
        x, out = self._saved()
        check_bool("input_grad", input_grad)
        dy = self._check_input(dy, name="dy", shape=(x.shape[0], self.out_channels) + out, finite=False)
        self._release()
        db = self.bias.grad if self.has_bias else np.zeros_like(self._zero_bias)
        if use_reference():
            dx = self._backward_ref(dy, x, db)
        else:
            dx = self._backward_fast(dy, x, db, input_grad)
        return dx if input_grad else None

    # ---- reference path: the loops, in the layer's own dimension ------------------------------
    def _forward_ref(self, x, out):
        w, b = self.weight.value, self._b()
        if self.nd == 1:
            ((p, _),) = self._pads
            return conv1d_forward_ref(x, w, b, self.stride[0], p, self.dilation[0], self.groups, out[0])
        (pt, _), (pl, _) = self._pads
        return conv2d_forward_ref(x, w, b, *self.stride, pt, pl, *self.dilation, self.groups, *out)

    def _backward_ref(self, dy, x, db):
        w, dw = self.weight.value, self.weight.grad
        if self.nd == 1:
            ((p, _),) = self._pads
            return conv1d_backward_ref(dy, x, w, dw, db, self.stride[0], p, self.dilation[0], self.groups)
        (pt, _), (pl, _) = self._pads
        return conv2d_backward_ref(dy, x, w, dw, db, *self.stride, pt, pl, *self.dilation, self.groups)

    # ---- fast path: im2col + GEMM on a 2D geometry (Conv1d is a 2D convolution of height 1) ----
    def _geom_2d(self):
        """((KH, KW), (sh, sw), (dh, dw), (pt, pl)) of the 2D form."""
        if self.nd == 1:
            (K,), (s,), (d,), ((p, _),) = self.kernel_size, self.stride, self.dilation, self._pads
            return (1, K), (1, s), (1, d), (0, p)
        (pt, _), (pl, _) = self._pads
        return self.kernel_size, self.stride, self.dilation, (pt, pl)

    def _as_4d(self, x):
        return x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]) if self.nd == 1 else x

    def kernel_plan(self, x_shape):
        """How the fast kernels run on an input of shape `x_shape` (N, C_in, ...): a ConvPlan
        (im2col and col2im path, GEMM grid columns per sample, samples per GEMM, chunks of the
        batch, and whether the GEMMs work on the output in place); see `conv_plan`. Kept for
        the last shape and thread count (a few µs per call otherwise)."""
        key = (tuple(x_shape), num_threads())
        if self._plan[0] != key:
            spatial = key[0][2:]
            out = self.output_shape(spatial)
            (H, W), (OH, OW) = ((1, spatial[0]), (1, out[0])) if self.nd == 1 else (spatial, out)
            self._plan = (key, conv_plan(key[0][0], H, W, OH, OW, *self._geom, self.weight.value.size))
        return self._plan[1]

    def _workspace(self, plan, C, KH, KW):
        """Per-thread workspaces for `plan`: column matrices, output blocks, gradient buffers."""
        SQ = plan.samples * plan.columns
        shapes = ((plan.chunks, C * KH * KW, SQ), (plan.chunks, self.out_channels, SQ),
                  (plan.chunks, self.out_channels, self.weight.value[0].size + 1))
        if self._ws is None or tuple(w.shape for w in self._ws) != shapes:
            self._ws = tuple(np.empty(sh, self.dtype) for sh in shapes)
        return self._ws

    def _forward_fast(self, x, out):
        x4 = self._as_4d(x)
        (KH, KW), (sh, sw), (dh, dw), (pt, pl) = self._geom
        OH, OW = (1, out[0]) if self.nd == 1 else out
        plan = self.kernel_plan(x.shape)
        ws, zs, _ = self._workspace(plan, x.shape[1], KH, KW)
        wm = self.weight.value.reshape(self.out_channels, -1)
        z = parallel_call(conv2d_forward, plan.chunks, x4, wm, self._b(), KH, KW, sh, sw, pt, pl, dh, dw,
                          self.groups, OH, OW, ws, zs, gemm_for(self.dtype), plan.im2col)
        return z.reshape((x.shape[0], self.out_channels) + tuple(out))

    def _backward_fast(self, dy, x, db, input_grad):
        x4 = self._as_4d(x)
        (KH, KW), (sh, sw), (dh, dw), (pt, pl) = self._geom
        OH, OW = (1, dy.shape[2]) if self.nd == 1 else dy.shape[2:]
        plan = self.kernel_plan(x.shape)
        ws, zs, dws = self._workspace(plan, x.shape[1], KH, KW)
        wm = self.weight.value.reshape(self.out_channels, -1)
        dwm = self.weight.grad.reshape(self.out_channels, -1)
        dz = np.ascontiguousarray(dy).reshape(x.shape[0], self.out_channels, OH * OW)
        dx = parallel_call(conv2d_backward, plan.chunks, dz, x4, wm, dwm, db, KH, KW, sh, sw, pt, pl, dh, dw,
                           self.groups, OH, OW, ws, zs, dws, bool(input_grad), gemm_for(self.dtype),
                           plan.im2col, plan.col2im)
        return dx.reshape(x.shape) if input_grad else None

    def extra_repr(self):
        r = {"in_channels": self.in_channels, "out_channels": self.out_channels,
             "kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}
        if any(d != 1 for d in self.dilation):
            r["dilation"] = self.dilation
        if self.groups != 1:
            r["groups"] = self.groups
        if not self.has_bias:
            r["bias"] = False
        return r


class Conv1d(_ConvNd):
    """1D convolution over x (N, C_in, L) -> (N, C_out, L_out), as torch.nn.Conv1d.

    Arguments and defaults as torch.nn.Conv1d: in_channels, out_channels, kernel_size, stride=1,
    padding=0 (int, 1-tuple, "same" (stride 1 only) or "valid"), dilation=1, groups=1, bias=True,
    padding_mode="zeros" (the only mode), plus dtype and rng (seed or Generator). Weights are
    initialised as torch, U(±1/√fan_in) with fan_in = C_in/groups · K.
    """
    nd = 1


class Conv2d(_ConvNd):
    """2D convolution over x (N, C_in, H, W) -> (N, C_out, OH, OW), as torch.nn.Conv2d.

    Arguments as Conv1d with ints or (h, w) tuples for kernel_size, stride, padding, dilation.
    """
    nd = 2


# =============================================================================================
# fast kernels: per-sample im2col + GEMM, the batch split over threads
# =============================================================================================
# The batch is split into `nthreads` chunks with prange; each thread lays S samples side by side
# in its own column matrix (S·Q ≈ GEMM_COLUMNS, so small images still give GEMMs big enough to be
# fast; workspaces allocated once by the layer and reused) and calls CBLAS gemm on it (BLAS on
# one thread, engine.threads; engine.blas says why not np.dot); weight gradients go to per-thread
# buffers summed at the end. The column matrix is built one of three ways (im2col.py): stride-1
# convolutions on the padded-width grid (ROWS, every row one contiguous copy), narrow outputs by
# the index-map gather (GATHER), the rest by row segments (SEGMENTS). A sample with many output
# positions gets a GEMM of its own that writes z (and reads ∂ℓ/∂z) in place ("direct").
# Notation of the products: cols_g (Kg, S·Q) the rows of group g's input channels in the column
# matrix, Ω_g (O_g, Kg) group g's rows of ω reshaped to (C_out, Kg), Kg = C_g·KH·KW.

#: columns (output positions) one GEMM should cover: samples are batched until S·OH·OW reaches it
GEMM_COLUMNS = 2048
#: samples with at least this many output positions get one GEMM each, reading and writing the
#: layer's output and upstream gradient in place (no copy through the workspace)
DIRECT_MIN_COLUMNS = 512
#: output widths below these use the gather im2col / col2im (row segments too short for the copy
#: loops; measured 2026-11-21 on 3×3 convolutions of 4- to 28-pixel images)
GATHER_BELOW_OW = 32
GATHER_COL2IM_BELOW_OW = 12
#: stride-1 convolutions use the padded-width grid (im2col_rows) when it adds at most this
#: fraction of GEMM columns (Wp / OW − 1)
ROWS_MAX_WASTE = 0.25

#: how the fast kernels run one geometry: im2col / col2im path (SEGMENTS, GATHER or ROWS),
#: columns = Q grid columns per sample, samples = S per GEMM, chunks of the batch (threads),
#: direct = one sample per GEMM on z and ∂ℓ/∂z in place
ConvPlan = namedtuple("ConvPlan", "im2col col2im columns samples chunks direct")


def conv_plan(N, H, W, OH, OW, kernel, stride, dilation, pads, weight_size):
    """The ConvPlan for N samples of size (H, W) -> (OH, OW) with a 2D kernel (KH, KW), stride,
    dilation and top/left padding `pads`; weight_size = ω's element count (the work per output)."""
    (KH, KW), (sh, sw), (dh, dw), (pt, pl) = kernel, stride, dilation, pads
    P = OH * OW
    Wp = padded_size(H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)[1]
    if sh == sw == 1 and Wp <= (1 + ROWS_MAX_WASTE) * OW:
        path, path_c2i, Q = ROWS, ROWS, OH * Wp
    else:
        path = GATHER if OW < GATHER_BELOW_OW else SEGMENTS
        path_c2i = GATHER if OW < GATHER_COL2IM_BELOW_OW else SEGMENTS
        Q = P
    # one chunk per sample at least, and enough work each
    nt = chunks_for(N, min_rows=1, row_cost=weight_size * P)
    S = 1 if Q == P and P >= DIRECT_MIN_COLUMNS else max(1, min(GEMM_COLUMNS // Q, -(-N // nt)))
    return ConvPlan(path, path_c2i, Q, S, nt, S == 1 and Q == P)


@njit(cache=True)
def _grid(x, ws, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, rows):
    """The layout both kernels share, for the workspace ws (nthreads, ·, S·Q):
    (Hp, Wp): the zero-padded sample's size; Wg: the width of the grid the GEMMs compute on (the
    padded width Wp on the ROWS path (`rows`), else OW: the grid is the output); Q = OH·Wg grid
    columns per sample; S samples per GEMM; (R, L): the grid's kept part as R rows of L columns;
    direct: one sample per GEMM on the output itself, so the GEMMs can use z / ∂ℓ/∂z in place."""
    Hp, Wp = padded_size(x.shape[2], x.shape[3], KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)
    Wg = Wp if rows else OW
    Q = OH * Wg
    S = ws.shape[2] // Q
    if S < 1:
        raise ValueError("ws: the workspace must hold at least one sample's grid columns")
    R, L = (1, OH * OW) if Wg == OW else (OH, OW)
    return Hp, Wp, Wg, Q, S, R, L, S == 1 and Wg == OW


@njit(cache=True)
def _im2col_sample(path, x, cols, q0, xp, idx, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, Hp, Wp):
    """Column matrix of one sample by the chosen path, into the columns of cols from q0 on (the
    whole C-contiguous workspace and an offset, not a 2D slice: rows of a slice are not known to
    be contiguous, and their copy loops would not vectorise)."""
    if path == ROWS:
        pad_into(x, xp, pt, pl, Hp, Wp)
        im2col_rows(xp, cols, q0, x.shape[0], KH, KW, dh, dw, Hp, Wp, OH)
    elif path == GATHER:
        im2col_gather(x, cols, q0, xp, idx, pt, pl, Hp, Wp)
    else:
        im2col(x, cols, q0, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)


@njit(parallel=True, cache=True)
def conv2d_forward(x, wm, b, KH, KW, sh, sw, pt, pl, dh, dw, groups, OH, OW, ws, zs, gemm, path, nthreads):
    """z_n = Ω_g cols_g(x_n) + β for each sample n and group g, where cols = im2col(x_n).

    x (N, C_in, H, W); wm = ω reshaped (C_out, C_g·KH·KW); b (C_out,);
    ws (nthreads, C_in·KH·KW, S·Q), zs (nthreads, C_out, S·Q): per-thread workspaces, Q = OH·Wg
    columns per sample (Wg = OW, or the padded width on the ROWS path; see `_grid`).
    Each thread takes S samples at a time side by side in its column matrix, so that one GEMM
    covers S·Q output positions (small images make per-sample products too small to be fast);
    gemm: the CBLAS gemm for x's dtype (engine.blas.gemm_for);
    path: how im2col is done: SEGMENTS, GATHER or ROWS (stride 1 only; see im2col.py).
    Returns z (N, C_out, OH·OW)."""
    N, C = x.shape[0], x.shape[1]
    C_out, Kg = wm.shape
    O_g = C_out // groups
    P = OH * OW
    Kc, SP = ws.shape[1], ws.shape[2]
    Hp, Wp, Wg, Q, S, R, L, direct = _grid(x, ws, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, path == ROWS)
    z = np.empty((N, C_out, P), x.dtype)
    idx = gather_map(x.shape[2], x.shape[3], KH, KW, sh, sw, pt, pl, dh, dw, OH if path == GATHER else 0, OW)[0]
    xps = np.zeros((nthreads, C * Hp * Wp + rows_slack(KW, dw) if path != SEGMENTS else 0), x.dtype)
    for t in prange(nthreads):
        cols = ws[t]
        zt = zs[t]
        c0 = t * Kc * SP                  # cols = ws[t] starts here in ws
        n, hi = t * N // nthreads, (t + 1) * N // nthreads
        while n < hi:
            m = min(S, hi - n)
            for s in range(m):
                _im2col_sample(path, x[n + s], cols, s * Q, xps[t], idx,
                               KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, Hp, Wp)
            # the GEMMs' output (O_g rows of leading dimension ldo per group): z_n itself (direct),
            # or the thread's block zs[t], copied into z below with the bias
            zo, z0, ldo = (z, n * C_out * P, P) if direct else (zs, t * C_out * SP, SP)
            for g in range(groups):
                # z_g (O_g, m·Q) = Ω_g (O_g, Kg) cols_g (Kg, m·Q)
                gemm_at(gemm, O_g, m * Q, Kg, 1.0, wm, g * O_g * Kg, Kg, NO_TRANS,
                        ws, c0 + g * Kg * SP, SP, NO_TRANS, 0.0, zo, z0 + g * O_g * ldo, ldo)
            for s in range(m):
                for o in range(C_out):
                    bo = b[o]
                    for i in range(R):
                        zr = z[n + s, o, i * L:(i + 1) * L]
                        if direct:
                            for q in range(L):
                                zr[q] += bo
                        else:
                            src = zt[o, s * Q + i * Wg:s * Q + i * Wg + L]
                            for q in range(L):
                                zr[q] = src[q] + bo
            n += m
    return z


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def conv2d_backward(dz, x, wm, dwm, db, KH, KW, sh, sw, pt, pl, dh, dw, groups, OH, OW,
                    ws, zs, dws, input_grad, gemm, path, path_c2i, nthreads):
    """Given ∂ℓ/∂z (N, C_out, OH·OW), per sample n and group g, with cols = im2col(x_n)
    (recomputed, not stored):
        ∂ℓ/∂Ω_g += ∂ℓ/∂z_{n,g} cols_gᵀ,   ∂ℓ/∂β += Σ_p ∂ℓ/∂z_n,   ∂ℓ/∂x_n = col2im(Ω_gᵀ ∂ℓ/∂z_{n,g}),
    S samples at a time side by side as in conv2d_forward (ws, zs the same workspaces; on the
    ROWS grid ∂ℓ/∂z is laid out with zeros in the discarded columns).
    Parameter gradients accumulate into dwm (C_out, C_g·KH·KW) and db (C_out,) through per-thread
    buffers dws (nthreads, C_out, C_g·KH·KW + 1). Returns ∂ℓ/∂x (N, C_in, H, W), or an empty array
    when not `input_grad`. path / path_c2i: how im2col / col2im are done (ROWS for both or neither)."""
    N, C = x.shape[0], x.shape[1]
    C_out, Kg = wm.shape
    O_g = C_out // groups
    P = OH * OW
    Kc, SP = ws.shape[1], ws.shape[2]
    Hp, Wp, Wg, Q, S, R, L, direct = _grid(x, ws, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, path == ROWS)
    dx = np.zeros(x.shape if input_grad else (0, 0, 0, 0), x.dtype)
    any_gather = path == GATHER or path_c2i == GATHER
    idx = gather_map(x.shape[2], x.shape[3], KH, KW, sh, sw, pt, pl, dh, dw, OH if any_gather else 0, OW)[0]
    xps = np.zeros((nthreads, 2, C * Hp * Wp + rows_slack(KW, dw) if path != SEGMENTS or path_c2i != SEGMENTS else 0),
                   x.dtype)           # per thread: the padded sample, and the padded ∂ℓ/∂x of col2im
    for t in prange(nthreads):
        cols = ws[t]
        zt = zs[t]
        acc = dws[t]
        acc[:] = 0
        c0 = t * Kc * SP                  # cols = ws[t] starts here in ws
        a0 = t * C_out * (Kg + 1)         # acc = dws[t] starts here in dws
        n, hi = t * N // nthreads, (t + 1) * N // nthreads
        while n < hi:
            m = min(S, hi - n)
            for s in range(m):
                _im2col_sample(path, x[n + s], cols, s * Q, xps[t, 0], idx,
                               KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, Hp, Wp)
                if direct:
                    continue
                for o in range(C_out):
                    for i in range(R):
                        zt[o, s * Q + i * Wg:s * Q + i * Wg + L] = dz[n + s, o, i * L:(i + 1) * L]
                        zt[o, s * Q + i * Wg + L:s * Q + (i + 1) * Wg] = 0
            # the GEMMs' ∂ℓ/∂z (O_g rows of leading dimension ldz per group): ∂ℓ/∂z_n itself
            # (direct), or its copy on the grid in the thread's block zs[t]
            dzo, d0, ldz = (dz, n * C_out * P, P) if direct else (zs, t * C_out * SP, SP)
            for g in range(groups):
                # ∂ℓ/∂Ω_g (O_g, Kg; row stride Kg + 1 in acc) += ∂ℓ/∂z_g (O_g, m·Q) cols_gᵀ (m·Q, Kg)
                gemm_at(gemm, O_g, Kg, m * Q, 1.0, dzo, d0 + g * O_g * ldz, ldz, NO_TRANS,
                        ws, c0 + g * Kg * SP, SP, TRANS, 1.0, dws, a0 + g * O_g * (Kg + 1), Kg + 1)
            for o in range(C_out):
                acc[o, Kg] += dz[n, o].sum() if direct else zt[o, :m * Q].sum()
            if input_grad:
                for g in range(groups):
                    # ∂ℓ/∂cols_g (Kg, m·Q) = Ω_gᵀ (Kg, O_g) ∂ℓ/∂z_g (O_g, m·Q), into cols (free again)
                    gemm_at(gemm, Kg, m * Q, O_g, 1.0, wm, g * O_g * Kg, Kg, TRANS,
                            dzo, d0 + g * O_g * ldz, ldz, NO_TRANS, 0.0, ws, c0 + g * Kg * SP, SP)
                for s in range(m):
                    if path_c2i == ROWS:
                        col2im_rows(cols, s * Q, xps[t, 1], dx[n + s], pt, pl, KH, KW, dh, dw, Hp, Wp, OH)
                    elif path_c2i == GATHER:
                        col2im_gather(cols, s * Q, dx[n + s], xps[t, 1], idx, pt, pl, Hp, Wp)
                    else:
                        col2im(cols, s * Q, dx[n + s], KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)
            n += m
    for t in range(nthreads):
        dwm += dws[t, :, :Kg]
        db += dws[t, :, Kg]
    return dx
