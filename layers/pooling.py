"""Pooling layers and Flatten: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool2d (notes 003 §2.1:
pooling downsamples feature maps by a maximum or an average over local patches; 000 §6).

Windows as torch.nn. Output position (i, l) of a 2D pool with kernel (KH, KW), stride (s_h, s_w),
padding (p_t, p_l) and dilation (d_h, d_w) reads the taps
    r = i·s_h − p_t + a·d_h,  a = 0..KH−1,        q = l·s_w − p_l + c·d_w,  c = 0..KW−1
that lie inside the image (padding is −∞ for max pooling and 0 for average pooling), and the
output size is ⌊(H + 2p − d(K − 1) − 1)/s⌋ + 1 (ceil_mode=False). Windows may overlap (s < K).

    max:  y[i, l] = max_{(r, q) ∈ window(i, l)} x[r, q],   with arg-max (r*, q*)(i, l) the first
          maximum in row-major window order (ties as PyTorch's CPU kernel);
          ∂ℓ/∂x[r, q] = Σ_{(i, l): (r*, q*)(i, l) = (r, q)} ∂ℓ/∂y[i, l]
          (an input that is the maximum of several overlapping windows collects all of them).
    avg:  y[i, l] = (1/|i, l|) Σ_{(r, q) ∈ window(i, l)} x[r, q],   |i, l| = KH·KW
          (count_include_pad=True) or the number of taps inside the image;
          ∂ℓ/∂x[r, q] = Σ_{(i, l): (r, q) ∈ window(i, l)} ∂ℓ/∂y[i, l] / |i, l|.
    adaptive average (torch.nn.AdaptiveAvgPool2d, output (OH, OW)): window (i, l) is the rows
          ⌊iH/OH⌋..⌈(i+1)H/OH⌉−1 and the columns ⌊lW/OW⌋..⌈(l+1)W/OW⌉−1; then as avg.
    Flatten: a reshape; its backward reshapes the gradient back.

Kernels see the input as planes (B, H, W), B = N·C (the channels never mix); 1D pools are 2D
pools of height 1. A max pool's forward returns the arg-max indices r*·W + q* with its output,
and its backward takes them: they are what one call saves for its backward.

Reading order: the reference kernels (each output's window scanned tap by tap, plane after
plane), the Layer classes, then the fast kernels (planes split over threads, a 2×2 max kernel
with its taps written out, average windows as passes over whole rows).
"""
import numpy as np
from numba import njit, prange

from engine.checks import check_array, check_bool, check_dim, check_int, check_tuple
from engine.core import Layer, use_reference
from engine.threads import chunks_for, pool

from .conv import conv_output_size


# ---------------------------------------------------------------------------------------------
# reference kernels: one output at a time, its window tap by tap
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def maxpool2d_forward_ref(x, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """y[b, i, l] = max of x[b] over window (i, l), and idx[b, i, l] = r*·W + q* of its first
    maximum (taps scanned in row-major order, replaced only by a strictly larger value).
    x (B, H, W) -> y (B, OH, OW), idx (B, OH, OW) int32."""
    B, H, W = x.shape
    y = np.empty((B, OH, OW), x.dtype)
    idx = np.empty((B, OH, OW), np.int32)
    for b in range(B):
        for i in range(OH):
            for l in range(OW):
                best, arg = -np.inf, -1
                for a in range(KH):
                    r = i * sh - pt + a * dh
                    for c in range(KW):
                        q = l * sw - pl + c * dw
                        if 0 <= r < H and 0 <= q < W and x[b, r, q] > best:
                            best, arg = x[b, r, q], r * W + q
                y[b, i, l] = best
                idx[b, i, l] = arg
    return y, idx


@njit(cache=True)
def maxpool2d_backward_ref(dy, idx, H, W):
    """∂ℓ/∂x[b, r, q] = Σ over the windows (i, l) whose arg-max idx[b, i, l] is r·W + q of
    ∂ℓ/∂y[b, i, l].  dy, idx (B, OH, OW) -> dx (B, H, W)."""
    B, OH, OW = dy.shape
    dx = np.zeros((B, H, W), dy.dtype)
    for b in range(B):
        for i in range(OH):
            for l in range(OW):
                r, q = idx[b, i, l] // W, idx[b, i, l] % W
                dx[b, r, q] += dy[b, i, l]
    return dx


@njit(cache=True, inline="always")
def _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad):
    """|i, l|: KH·KW with count_include_pad, else the window's rows inside the image times its
    columns inside the image."""
    if include_pad:
        return KH * KW
    r0, q0 = i * sh - pt, l * sw - pl
    return (min(r0 + KH, H) - max(r0, 0)) * (min(q0 + KW, W) - max(q0, 0))


@njit(cache=True)
def avgpool2d_forward_ref(x, KH, KW, sh, sw, pt, pl, OH, OW, include_pad):
    """y[b, i, l] = (1/|i, l|) Σ of x[b] over window (i, l).  x (B, H, W) -> y (B, OH, OW)."""
    B, H, W = x.shape
    y = np.empty((B, OH, OW), x.dtype)
    for b in range(B):
        for i in range(OH):
            for l in range(OW):
                s = 0.0
                for a in range(KH):
                    r = i * sh - pt + a
                    for c in range(KW):
                        q = l * sw - pl + c
                        if 0 <= r < H and 0 <= q < W:
                            s += x[b, r, q]
                y[b, i, l] = s / _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad)
    return y


@njit(cache=True)
def avgpool2d_backward_ref(dy, H, W, KH, KW, sh, sw, pt, pl, include_pad):
    """Each tap (r, q) of window (i, l) inside the image receives ∂ℓ/∂y[b, i, l] / |i, l|.
    dy (B, OH, OW) -> dx (B, H, W)."""
    B, OH, OW = dy.shape
    dx = np.zeros((B, H, W), dy.dtype)
    for b in range(B):
        for i in range(OH):
            for l in range(OW):
                g = dy[b, i, l] / _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad)
                for a in range(KH):
                    r = i * sh - pt + a
                    for c in range(KW):
                        q = l * sw - pl + c
                        if 0 <= r < H and 0 <= q < W:
                            dx[b, r, q] += g
    return dx


@njit(cache=True, inline="always")
def _adaptive_window(i, n, n_out):
    """Output i of n_out over n inputs reads inputs ⌊i·n/n_out⌋ .. ⌈(i+1)·n/n_out⌉ − 1 (as torch)."""
    return (i * n) // n_out, -((-(i + 1) * n) // n_out)


@njit(cache=True)
def adaptive_avgpool2d_forward_ref(x, OH, OW):
    """y[b, i, l] = mean of x[b] over rows r0..r1−1, columns q0..q1−1 of window (i, l).
    x (B, H, W) -> y (B, OH, OW)."""
    B, H, W = x.shape
    y = np.empty((B, OH, OW), x.dtype)
    for b in range(B):
        for i in range(OH):
            r0, r1 = _adaptive_window(i, H, OH)
            for l in range(OW):
                q0, q1 = _adaptive_window(l, W, OW)
                s = 0.0
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        s += x[b, r, q]
                y[b, i, l] = s / ((r1 - r0) * (q1 - q0))
    return y


@njit(cache=True)
def adaptive_avgpool2d_backward_ref(dy, H, W):
    """Each input of window (i, l) receives ∂ℓ/∂y[b, i, l] / |window|.  -> dx (B, H, W)."""
    B, OH, OW = dy.shape
    dx = np.zeros((B, H, W), dy.dtype)
    for b in range(B):
        for i in range(OH):
            r0, r1 = _adaptive_window(i, H, OH)
            for l in range(OW):
                q0, q1 = _adaptive_window(l, W, OW)
                g = dy[b, i, l] / ((r1 - r0) * (q1 - q0))
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        dx[b, r, q] += g
    return dx


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
class _Pool(Layer):
    """What every pool shares: x (N, C, *spatial) or unbatched (C, *spatial), float32 or float64
    (the output and the gradient keep its dtype), seen as planes (B, H, W); each call saves the
    input's shape and dtype, the output's spatial size and (max pooling) the arg-max indices.
    Subclasses give `_output_size(spatial)`, `_forward(xp, OH, OW) -> (y, idx or None)` and
    `_backward(dyp, H, W, idx) -> dx`."""
    nd = 2

    def _hw(self, spatial):
        """A spatial size as (height, width): 1D sizes have height 1."""
        return (1,) + tuple(spatial) if self.nd == 1 else tuple(spatial)

    def forward(self, x, train=True):
        check_bool("train", train)
        x = check_array("x", x, ndim=(self.nd + 1, self.nd + 2))
        out = self._output_size(x.shape[-self.nd:])
        H, W = self._hw(x.shape[-self.nd:])
        OH, OW = self._hw(out)
        y, idx = self._forward(x.reshape(-1, H, W), OH, OW)
        self._save(x.shape, x.dtype, out, idx)
        return y.reshape(x.shape[:-self.nd] + out)

    def backward(self, dy, *, input_grad=True):
        shape, dtype, out, idx = self._saved()
        dy = check_array("dy", dy, shape=shape[:-self.nd] + out, dtype=dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        if not input_grad:
            return None
        H, W = self._hw(shape[-self.nd:])
        return self._backward(dy.reshape((-1,) + self._hw(out)), H, W, idx).reshape(shape)


class _PoolNd(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        nd = self.nd
        self.kernel_size = check_tuple("kernel_size", kernel_size, nd, low=1)
        self.stride = self.kernel_size if stride is None else check_tuple("stride", stride, nd, low=1)
        self.padding = check_tuple("padding", padding, nd, low=0)
        self.dilation = check_tuple("dilation", dilation, nd, low=1)
        for p, k in zip(self.padding, self.kernel_size):
            if 2 * p > k:
                raise ValueError(f"padding: expected at most half the kernel size {self.kernel_size}, got {self.padding}")
        if check_bool("ceil_mode", ceil_mode):
            raise ValueError("ceil_mode: only ceil_mode=False is supported, got True")

    def output_shape(self, input_shape):
        return tuple(conv_output_size(n, k, s, p, p, d) for n, k, s, p, d
                     in zip(input_shape, self.kernel_size, self.stride, self.padding, self.dilation))

    def _output_size(self, spatial):
        out = self.output_shape(spatial)
        if min(out) < 1:
            raise ValueError(f"x: spatial size {tuple(spatial)} with padding {self.padding} is smaller "
                             f"than the pooling window {self.kernel_size}")
        return out

    def _geom(self):
        """(KH, KW), (s_h, s_w), (p_t, p_l), (d_h, d_w) of the 2D pool the kernels run."""
        if self.nd == 1:
            return (1, self.kernel_size[0]), (1, self.stride[0]), (0, self.padding[0]), (1, self.dilation[0])
        return self.kernel_size, self.stride, self.padding, self.dilation

    def extra_repr(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


class _MaxPool(_PoolNd):
    def _forward(self, xp, OH, OW):
        (KH, KW), (sh, sw), (pt, pl), (dh, dw) = self._geom()
        if use_reference():
            return maxpool2d_forward_ref(xp, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)
        with pool(chunks_for(xp.size, row_cost=1)):
            if (KH, KW, dh, dw, pt, pl) == (2, 2, 1, 1, 0, 0) and (OH - 1) * sh + 2 <= xp.shape[1] \
                    and (OW - 1) * sw + 2 <= xp.shape[2]:
                return maxpool2x2_forward(xp, sh, sw, OH, OW)
            return maxpool2d_forward(xp, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)

    def _backward(self, dyp, H, W, idx):
        if use_reference():
            return maxpool2d_backward_ref(dyp, idx, H, W)
        with pool(chunks_for(dyp.shape[0] * H * W, row_cost=1)):
            return maxpool2d_backward(dyp, idx, H, W)


class MaxPool1d(_MaxPool):
    """Max pooling over x (N, C, L), as torch.nn.MaxPool1d(kernel_size, stride=None (= kernel_size),
    padding=0 (at most kernel_size/2, padded with −∞), dilation=1). Ties: first maximum."""
    nd = 1


class MaxPool2d(_MaxPool):
    """Max pooling over x (N, C, H, W), as torch.nn.MaxPool2d (ints or (h, w) tuples)."""
    nd = 2


class _AvgPool(_PoolNd):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        self.count_include_pad = check_bool("count_include_pad", count_include_pad)

    def _forward(self, xp, OH, OW):
        (KH, KW), (sh, sw), (pt, pl), _ = self._geom()
        if use_reference():
            return avgpool2d_forward_ref(xp, KH, KW, sh, sw, pt, pl, OH, OW, self.count_include_pad), None
        with pool(chunks_for(xp.size, row_cost=1)):
            return avgpool2d_forward(xp, KH, KW, sh, sw, pt, pl, OH, OW, self.count_include_pad), None

    def _backward(self, dyp, H, W, idx):
        (KH, KW), (sh, sw), (pt, pl), _ = self._geom()
        if use_reference():
            return avgpool2d_backward_ref(dyp, H, W, KH, KW, sh, sw, pt, pl, self.count_include_pad)
        with pool(chunks_for(dyp.shape[0] * H * W, row_cost=1)):
            return avgpool2d_backward(dyp, H, W, KH, KW, sh, sw, pt, pl, self.count_include_pad)


class AvgPool1d(_AvgPool):
    """Average pooling over x (N, C, L), as torch.nn.AvgPool1d(kernel_size, stride=None, padding=0,
    ceil_mode=False, count_include_pad=True)."""
    nd = 1


class AvgPool2d(_AvgPool):
    """Average pooling over x (N, C, H, W), as torch.nn.AvgPool2d (ints or (h, w) tuples)."""
    nd = 2


class AdaptiveAvgPool2d(_Pool):
    """Average pooling to a fixed output size (OH, OW), as torch.nn.AdaptiveAvgPool2d;
    `AdaptiveAvgPool2d(1)` or `((1, 1))` is global average pooling: (N, C, H, W) -> (N, C, 1, 1)."""
    nd = 2

    def __init__(self, output_size):
        self.output_size = check_tuple("output_size", output_size, 2, low=1)

    def _output_size(self, spatial):
        return self.output_size

    def _forward(self, xp, OH, OW):
        if use_reference():
            return adaptive_avgpool2d_forward_ref(xp, OH, OW), None
        with pool(chunks_for(xp.size, row_cost=1)):
            return adaptive_avgpool2d_forward(xp, OH, OW), None

    def _backward(self, dyp, H, W, idx):
        if use_reference():
            return adaptive_avgpool2d_backward_ref(dyp, H, W)
        with pool(chunks_for(dyp.shape[0] * H * W, row_cost=1)):
            return adaptive_avgpool2d_backward(dyp, H, W)

    def extra_repr(self):
        return {"output_size": self.output_size}


class Flatten(Layer):
    """Merge dimensions start_dim..end_dim into one, as torch.nn.Flatten (defaults 1, −1):
    (N, C, H, W) -> (N, C·H·W). The backward reshapes the gradient back (a reshape is its own
    reference and fast kernel)."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim = check_int("start_dim", start_dim)     # checked against the input's rank in forward
        self.end_dim = check_int("end_dim", end_dim)

    def forward(self, x, train=True):
        check_bool("train", train)
        x = check_array("x", x)
        if x.ndim == 0:
            raise ValueError("x: expected an array with at least 1 dimension, got shape ()")
        s, e = check_dim("start_dim", self.start_dim, x.ndim, x.shape), check_dim("end_dim", self.end_dim, x.ndim, x.shape)
        if s > e:
            raise ValueError(f"start_dim: expected start_dim <= end_dim for input shape {x.shape}, "
                             f"got {self.start_dim} and {self.end_dim}")
        out = x.shape[:s] + (int(np.prod(x.shape[s:e + 1])),) + x.shape[e + 1:]
        self._save(x.shape, x.dtype, out)
        return x.reshape(out)

    def backward(self, dy, *, input_grad=True):
        shape, dtype, out = self._saved()
        dy = check_array("dy", dy, shape=out, dtype=dtype, finite=False)     # the output's shape, not just its size
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        return dy.reshape(shape) if input_grad else None

    def extra_repr(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}


# ---------------------------------------------------------------------------------------------
# fast kernels: planes split over threads
# ---------------------------------------------------------------------------------------------
# prange over disjoint planes, in `engine.threads.pool(chunks_for(size, row_cost=1))` with the
# input's size (forward and backward: the backward writes the whole ∂ℓ/∂x): one thread per 2^16
# elements at most, since waking a thread costs about what that much work does.
@njit(cache=True, inline="always")
def _taps(i, s, p, d, K, n):
    """The window taps a = lo..hi−1 of output i whose input index i·s − p + a·d lies in [0, n).
    (Read the other way, _taps(c, 1, p, s, n_out, n) is the outputs l = lo..hi−1 whose column
    tap c, at l·s + c − p, lies in [0, n).)"""
    r0 = i * s - p
    lo = 0 if r0 >= 0 else (-r0 + d - 1) // d
    hi = K
    last = n - 1 - r0                   # need a·d <= last
    if last < 0:
        hi = 0
    elif last // d + 1 < K:
        hi = last // d + 1
    return lo, max(lo, hi)


@njit(parallel=True, cache=True)
def maxpool2d_forward(x, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW):
    """maxpool2d_forward_ref with each output row's and column's valid taps computed once (no
    bounds test inside the window), planes in parallel. Same y and idx, ties included."""
    B, H, W = x.shape
    y = np.empty((B, OH, OW), x.dtype)
    idx = np.empty((B, OH, OW), np.int32)
    tr = np.empty((OH, 2), np.int64)             # valid taps per output row and column, once
    tc = np.empty((OW, 2), np.int64)
    for i in range(OH):
        tr[i, 0], tr[i, 1] = _taps(i, sh, pt, dh, KH, H)
    for l in range(OW):
        tc[l, 0], tc[l, 1] = _taps(l, sw, pl, dw, KW, W)
    for bi in prange(B):
        xp = x[bi]
        for i in range(OH):
            alo, ahi = tr[i, 0], tr[i, 1]
            r0 = i * sh - pt
            yr = y[bi, i]
            ir = idx[bi, i]
            for l in range(OW):
                blo, bhi = tc[l, 0], tc[l, 1]
                q0 = l * sw - pl
                best = -np.inf               # inputs are finite: the first tap always replaces it
                arg = 0
                for a in range(alo, ahi):
                    r = r0 + a * dh
                    xr = xp[r]
                    for b in range(blo, bhi):
                        v = xr[q0 + b * dw]
                        if v > best:
                            best = v
                            arg = r * W + q0 + b * dw
                yr[l] = best
                ir[l] = arg
    return y, idx


@njit(parallel=True, cache=True)
def maxpool2x2_forward(x, sh, sw, OH, OW):
    """maxpool2d_forward for the common 2×2 window without padding or dilation (every window
    inside the image): the same result and arg-max, with the four taps written out. The general
    kernel's tap loops, with bounds known only at run time, made it 5x slower on this case
    (measured 2026-11-21)."""
    B, H, W = x.shape
    y = np.empty((B, OH, OW), x.dtype)
    idx = np.empty((B, OH, OW), np.int32)
    for bi in prange(B):
        for i in range(OH):
            r = i * sh
            for l in range(OW):
                q = l * sw
                best, arg = x[bi, r, q], r * W + q
                for a in range(2):
                    for b in range(2):
                        v = x[bi, r + a, q + b]
                        better = v > best           # a select, not a branch: ties keep the first
                        arg = (r + a) * W + q + b if better else arg
                        best = v if better else best
                y[bi, i, l] = best
                idx[bi, i, l] = arg
    return y, idx


@njit(parallel=True, cache=True)
def maxpool2d_backward(dy, idx, H, W):
    """∂ℓ/∂x[b, idx[b, i, l]] += ∂ℓ/∂y[b, i, l] on flat planes, planes in parallel -> dx (B, H, W)."""
    B, OH, OW = dy.shape
    dx = np.zeros((B, H * W), dy.dtype)
    for bi in prange(B):
        d = dx[bi]
        gi = idx[bi]
        gy = dy[bi]
        for i in range(OH):
            for l in range(OW):
                d[gi[i, l]] += gy[i, l]
    return dx.reshape((B, H, W))


@njit(cache=True)
def _col_taps(KW, sw, pl, OW, W):
    """For each column tap c of the window: the outputs l = lo..hi−1 whose input column
    l·s_w + c − p_l lies inside [0, W)  -> (KW, 2)."""
    cols = np.empty((KW, 2), np.int64)
    for c in range(KW):
        cols[c, 0], cols[c, 1] = _taps(c, 1, pl, sw, OW, W)
    return cols


@njit(cache=True, inline="always")
def _gather_row(yr, xr, cols, sw, pl):
    """yr[l] += xr[l·s_w + c − p_l] for every column tap c and its outputs l inside the row."""
    for c in range(cols.shape[0]):
        for l in range(cols[c, 0], cols[c, 1]):
            yr[l] += xr[l * sw + c - pl]


@njit(cache=True, inline="always")
def _scatter_row(dr, gr, cols, sw, pl):
    """dr[l·s_w + c − p_l] += gr[l]: _gather_row transposed."""
    for c in range(cols.shape[0]):
        for l in range(cols[c, 0], cols[c, 1]):
            dr[l * sw + c - pl] += gr[l]


@njit(parallel=True, cache=True)
def avgpool2d_forward(x, KH, KW, sh, sw, pt, pl, OH, OW, include_pad):
    """avgpool2d_forward_ref as passes over output rows: for each window row a inside the image
    and each column tap c, the outputs whose tap is inside add x[r, l·s_w + c − p_l] in one loop
    over l (no bounds test), then divide by |i, l|."""
    B, H, W = x.shape
    cols = _col_taps(KW, sw, pl, OW, W)
    y = np.zeros((B, OH, OW), x.dtype)
    for bi in prange(B):
        for i in range(OH):
            yr = y[bi, i]
            for r in range(max(i * sh - pt, 0), min(i * sh - pt + KH, H)):
                _gather_row(yr, x[bi, r], cols, sw, pl)
            for l in range(OW):
                yr[l] /= _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad)
    return y


@njit(parallel=True, cache=True)
def avgpool2d_backward(dy, H, W, KH, KW, sh, sw, pt, pl, include_pad):
    """The forward's passes transposed: g[l] = ∂ℓ/∂y[i, l] / |i, l| once per output row, then
    for each window row inside the image and each column tap c, the inputs x[r, l·s_w + c − p_l]
    receive g[l] in one loop over l."""
    B, OH, OW = dy.shape
    cols = _col_taps(KW, sw, pl, OW, W)
    dx = np.zeros((B, H, W), dy.dtype)
    for bi in prange(B):
        g = np.empty(OW, dy.dtype)
        for i in range(OH):
            for l in range(OW):
                g[l] = dy[bi, i, l] / _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad)
            for r in range(max(i * sh - pt, 0), min(i * sh - pt + KH, H)):
                _scatter_row(dx[bi, r], g, cols, sw, pl)
    return dx


@njit(parallel=True, cache=True)
def adaptive_avgpool2d_forward(x, OH, OW):
    """adaptive_avgpool2d_forward_ref, separably: for output row i, the window's input rows are
    added into one row of W sums (a vectorised pass over whole rows), then each output column
    averages its columns of those sums."""
    B, H, W = x.shape
    y = np.empty((B, OH, OW), x.dtype)
    for bi in prange(B):
        acc = np.empty(W)
        for i in range(OH):
            r0, r1 = _adaptive_window(i, H, OH)
            acc[:] = 0.0
            for r in range(r0, r1):
                acc += x[bi, r]
            for l in range(OW):
                q0, q1 = _adaptive_window(l, W, OW)
                y[bi, i, l] = acc[q0:q1].sum() / ((r1 - r0) * (q1 - q0))
    return y


@njit(parallel=True, cache=True)
def adaptive_avgpool2d_backward(dy, H, W):
    """The forward's two passes transposed: for output row i, one row g of W values collects
    ∂ℓ/∂y[i, l] / |window| over its columns, and is added to every input row of the window."""
    B, OH, OW = dy.shape
    dx = np.zeros((B, H, W), dy.dtype)
    for bi in prange(B):
        g = np.empty(W, dy.dtype)
        for i in range(OH):
            r0, r1 = _adaptive_window(i, H, OH)
            g[:] = 0.0
            for l in range(OW):
                q0, q1 = _adaptive_window(l, W, OW)
                g[q0:q1] += dy[bi, i, l] / ((r1 - r0) * (q1 - q0))
            for r in range(r0, r1):
                dx[bi, r] += g
    return dx
