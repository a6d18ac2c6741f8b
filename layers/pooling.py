"""Pooling layers: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool2d (notes 000 §6; 003 §2.1).

Windows as torch.nn: output position (i, l) of a 2D pool reads the window
    rows  i·s_h − p_t + a·d_h,  a = 0..KH−1,     columns  l·s_w − p_l + b·d_w,  b = 0..KW−1
(padding is −∞ for max pooling and 0 for average pooling), and the output size is
⌊(H + 2p − d(K − 1) − 1)/s⌋ + 1 (ceil_mode=False). Windows may overlap (stride < kernel).

    max:  y[n, c, i, l] = max over the window of x;   ∂ℓ/∂x receives ∂ℓ/∂y at the arg-max only
          (ties: the first maximum in row-major window order, as PyTorch's CPU kernel), summed
          over all windows that picked the same input (overlapping windows).
    avg:  y = (1/|window|) Σ_window x, |window| = KH·KW (count_include_pad=True) or the number of
          inputs inside the image;  ∂ℓ/∂x[r, q] = Σ_{windows ∋ (r, q)} ∂ℓ/∂y / |window|.

Kernels work on planes (N·C, H, W), split over threads with prange (planes are disjoint).
The 1D pools are 2D pools of height 1.
"""
import numpy as np
from numba import njit, prange

from engine.threads import chunks_for, pool
from engine.checks import check_array, check_int
from engine.core import Layer

from .conv import _tuple, conv_output_size


@njit(cache=True, inline="always")
def _taps(i, s, p, d, K, n):
    """The window taps a = lo..hi−1 of output i whose input index i·s − p + a·d lies in [0, n)."""
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
    """x (B, H, W) planes -> y (B, OH, OW) and idx (B, OH, OW), the flat index r·W + q of each
    window's first maximum (what the backward routes the gradient to). Each window is scanned in
    row-major order with a strict comparison, so ties go to the first maximum (as PyTorch)."""
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
    """∂ℓ/∂x[b, idx[b, i, l]] += ∂ℓ/∂y[b, i, l]  -> dx (B, H, W)."""
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


@njit(cache=True, inline="always")
def _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad):
    if include_pad:
        return KH * KW
    r0, q0 = i * sh - pt, l * sw - pl
    nr = min(r0 + KH, H) - max(r0, 0)
    nq = min(q0 + KW, W) - max(q0, 0)
    return nr * nq


@njit(parallel=True, cache=True)
def avgpool2d_forward(x, KH, KW, sh, sw, pt, pl, OH, OW, include_pad):
    """x (B, H, W) -> y (B, OH, OW), y = window sum / |window|."""
    B, H, W = x.shape
    y = np.zeros((B, OH, OW), x.dtype)
    for bi in prange(B):
        xp = x[bi]
        for i in range(OH):
            yr = y[bi, i]
            for a in range(KH):
                r = i * sh - pt + a
                if r < 0 or r >= H:
                    continue
                xr = xp[r]
                for b in range(KW):
                    off = b - pl
                    for l in range(OW):
                        q = l * sw + off
                        if 0 <= q < W:
                            yr[l] += xr[q]
            for l in range(OW):
                yr[l] /= _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad)
    return y


@njit(parallel=True, cache=True)
def avgpool2d_backward(dy, H, W, KH, KW, sh, sw, pt, pl, include_pad):
    """∂ℓ/∂x[r, q] = Σ_{windows ∋ (r, q)} ∂ℓ/∂y / |window|  -> dx (B, H, W)."""
    B, OH, OW = dy.shape
    dx = np.zeros((B, H, W), dy.dtype)
    for bi in prange(B):
        for i in range(OH):
            for l in range(OW):
                g = dy[bi, i, l] / _avg_count(i, l, KH, KW, sh, sw, pt, pl, H, W, include_pad)
                for a in range(KH):
                    r = i * sh - pt + a
                    if r < 0 or r >= H:
                        continue
                    for b in range(KW):
                        q = l * sw - pl + b
                        if 0 <= q < W:
                            dx[bi, r, q] += g
    return dx


@njit(parallel=True, cache=True)
def adaptive_avgpool2d_forward(x, OH, OW):
    """Output (i, l) averages rows ⌊iH/OH⌋..⌈(i+1)H/OH⌉−1 and columns ⌊lW/OW⌋..⌈(l+1)W/OW⌉−1
    (as torch.nn.AdaptiveAvgPool2d; (1, 1) is global average pooling).  x (B, H, W) -> (B, OH, OW)."""
    B, H, W = x.shape
    y = np.empty((B, OH, OW), x.dtype)
    for bi in prange(B):
        for i in range(OH):
            r0, r1 = (i * H) // OH, -((-(i + 1) * H) // OH)
            for l in range(OW):
                q0, q1 = (l * W) // OW, -((-(l + 1) * W) // OW)
                s = 0.0
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        s += x[bi, r, q]
                y[bi, i, l] = s / ((r1 - r0) * (q1 - q0))
    return y


@njit(parallel=True, cache=True)
def adaptive_avgpool2d_backward(dy, H, W):
    """Each input in window (i, l) receives ∂ℓ/∂y[i, l] / |window|.  -> dx (B, H, W)."""
    B, OH, OW = dy.shape
    dx = np.zeros((B, H, W), dy.dtype)
    for bi in prange(B):
        for i in range(OH):
            r0, r1 = (i * H) // OH, -((-(i + 1) * H) // OH)
            for l in range(OW):
                q0, q1 = (l * W) // OW, -((-(l + 1) * W) // OW)
                g = dy[bi, i, l] / ((r1 - r0) * (q1 - q0))
                for r in range(r0, r1):
                    for q in range(q0, q1):
                        dx[bi, r, q] += g
    return dx


def _chunks(x):
    """Threads for a pass over x: enough elements per thread to pay for waking it."""
    return chunks_for(x.size, row_cost=1)


class _PoolNd(Layer):
    nd = 2
    has_dilation = True

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
        nd = self.nd
        self.kernel_size = _tuple("kernel_size", kernel_size, nd, 1)
        self.stride = self.kernel_size if stride is None else _tuple("stride", stride, nd, 1)
        self.padding = _tuple("padding", padding, nd, 0)
        self.dilation = _tuple("dilation", dilation, nd, 1)
        for p, k in zip(self.padding, self.kernel_size):
            if 2 * p > k:
                raise ValueError(f"padding: expected at most half the kernel size {self.kernel_size}, got {self.padding}")
        if ceil_mode:
            raise ValueError("ceil_mode: only ceil_mode=False is supported, got True")
        self._x = None

    def output_shape(self, input_shape):
        return tuple(conv_output_size(n, k, s, p, p, d) for n, k, s, p, d
                     in zip(input_shape, self.kernel_size, self.stride, self.padding, self.dilation))

    def _geom(self):
        if self.nd == 1:
            return (1, self.kernel_size[0]), (1, self.stride[0]), (0, self.padding[0]), (1, self.dilation[0])
        return self.kernel_size, self.stride, self.padding, self.dilation

    def _planes(self, x):
        """Check x, return it as planes (B, H, W) and the output spatial shape."""
        x = check_array_float(self, x)
        out = self.output_shape(x.shape[-self.nd:])
        if min(out) < 1:
            raise ValueError(f"x: spatial size {x.shape[-self.nd:]} with padding {self.padding} is smaller "
                             f"than the pooling window {self.kernel_size}")
        sp = x.shape[-self.nd:]
        H, W = (1, sp[0]) if self.nd == 1 else sp
        return x, x.reshape(-1, H, W), out

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        dy = check_dy(self, dy, self._yshape)
        if not input_grad:
            return None
        H, W = self._hw
        dyp = dy.reshape(-1, self._out2[0], self._out2[1])
        return self._backward(dyp, H, W).reshape(self._x.shape)

    def extra_repr(self):
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding}


def check_array_float(layer, x):
    """Pools take (N, C, *spatial) or unbatched (C, *spatial) float32/float64 inputs, as torch;
    the output and gradients keep the input's dtype (parameter-free layers take either)."""
    return check_array("x", x, ndim=(layer.nd + 1, layer.nd + 2))


def check_dy(layer, dy, shape):
    return check_array("dy", dy, shape=shape, dtype=layer._x.dtype, finite=False)


class _MaxPool(_PoolNd):
    def forward(self, x, train=True):
        x, xp, out = self._planes(x)
        (KH, KW), (sh, sw), (pt, pl), (dh, dw) = self._geom()
        OH, OW = (1, out[0]) if self.nd == 1 else out
        with pool(_chunks(xp)):
            if (KH, KW, dh, dw, pt, pl) == (2, 2, 1, 1, 0, 0) and (OH - 1) * sh + 2 <= xp.shape[1] \
                    and (OW - 1) * sw + 2 <= xp.shape[2]:
                y, self._idx = maxpool2x2_forward(xp, sh, sw, OH, OW)
            else:
                y, self._idx = maxpool2d_forward(xp, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)
        self._x, self._hw, self._out2 = x, xp.shape[1:], (OH, OW)
        self._yshape = x.shape[:-self.nd] + tuple(out)
        return y.reshape(self._yshape)

    def _backward(self, dyp, H, W):
        with pool(_chunks(dyp)):
            return maxpool2d_backward(dyp, self._idx, H, W)


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
        self.count_include_pad = bool(count_include_pad)

    def forward(self, x, train=True):
        x, xp, out = self._planes(x)
        (KH, KW), (sh, sw), (pt, pl), _ = self._geom()
        OH, OW = (1, out[0]) if self.nd == 1 else out
        with pool(_chunks(xp)):
            y = avgpool2d_forward(xp, KH, KW, sh, sw, pt, pl, OH, OW, self.count_include_pad)
        self._x, self._hw, self._out2 = x, xp.shape[1:], (OH, OW)
        self._yshape = x.shape[:-self.nd] + tuple(out)
        return y.reshape(self._yshape)

    def _backward(self, dyp, H, W):
        (KH, KW), (sh, sw), (pt, pl), _ = self._geom()
        with pool(_chunks(dyp)):
            return avgpool2d_backward(dyp, H, W, KH, KW, sh, sw, pt, pl, self.count_include_pad)


class AvgPool1d(_AvgPool):
    """Average pooling over x (N, C, L), as torch.nn.AvgPool1d(kernel_size, stride=None, padding=0,
    ceil_mode=False, count_include_pad=True)."""
    nd = 1


class AvgPool2d(_AvgPool):
    """Average pooling over x (N, C, H, W), as torch.nn.AvgPool2d (ints or (h, w) tuples)."""
    nd = 2


class AdaptiveAvgPool2d(Layer):
    """Average pooling to a fixed output size (OH, OW), as torch.nn.AdaptiveAvgPool2d;
    `AdaptiveAvgPool2d(1)` or `((1, 1))` is global average pooling: (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, output_size):
        self.output_size = _tuple("output_size", output_size, 2, 1)
        self._x = None

    def forward(self, x, train=True):
        x = check_array("x", x, ndim=(3, 4))
        H, W = x.shape[-2:]
        OH, OW = self.output_size
        with pool(_chunks(x)):
            y = adaptive_avgpool2d_forward(x.reshape(-1, H, W), OH, OW)
        self._x = x
        return y.reshape(x.shape[:-2] + (OH, OW))

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        x = self._x
        dy = check_dy(self, dy, x.shape[:-2] + self.output_size)
        if not input_grad:
            return None
        H, W = x.shape[-2:]
        with pool(_chunks(x)):
            return adaptive_avgpool2d_backward(dy.reshape((-1,) + self.output_size), H, W).reshape(x.shape)

    def extra_repr(self):
        return {"output_size": self.output_size}


class Flatten(Layer):
    """Merge dimensions start_dim..end_dim into one, as torch.nn.Flatten (defaults 1, −1):
    (N, C, H, W) -> (N, C·H·W). The backward reshapes the gradient back."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim = check_int("start_dim", start_dim)
        self.end_dim = check_int("end_dim", end_dim)
        self._shape = None

    def forward(self, x, train=True):
        x = check_array("x", x)
        s, e = self.start_dim % x.ndim, self.end_dim % x.ndim
        if s > e:
            raise ValueError(f"start_dim: expected start_dim <= end_dim for input shape {x.shape}, "
                             f"got {self.start_dim} and {self.end_dim}")
        self._shape, self._dtype = x.shape, x.dtype
        return x.reshape(x.shape[:s] + (-1,) + x.shape[e + 1:])

    def backward(self, dy, input_grad=True):
        self._need_forward("_shape")
        n = int(np.prod(self._shape))
        dy = check_array("dy", dy, dtype=self._dtype, finite=False)
        if dy.size != n:
            raise ValueError(f"dy: expected {n} elements (input shape {self._shape}), got shape {dy.shape}")
        return dy.reshape(self._shape) if input_grad else None

    def extra_repr(self):
        return {"start_dim": self.start_dim, "end_dim": self.end_dim}
