"""Normalization layers: BatchNorm1d, BatchNorm2d, LayerNorm (notes 004 §3.7; 003 §2.2).

Batch norm normalises each channel c over the batch (and the spatial positions): with the M = N·S
values x_{m,c} of channel c,
    μ_c = (1/M) Σ_m x_{m,c},   σ²_c = (1/M) Σ_m (x_{m,c} − μ_c)²,   x̂ = (x − μ_c) / √(σ²_c + ε),
    y = γ_c x̂ + β_c.
Backward (train mode, the statistics depend on x):
    ∂ℓ/∂γ_c = Σ_m ∂ℓ/∂y · x̂,   ∂ℓ/∂β_c = Σ_m ∂ℓ/∂y,
    ∂ℓ/∂x = (γ_c / (M √(σ²_c + ε))) · (M ∂ℓ/∂y − Σ_m ∂ℓ/∂y − x̂ Σ_m ∂ℓ/∂y · x̂).
In eval mode μ, σ² are the running statistics (constants): ∂ℓ/∂x = γ_c ∂ℓ/∂y / √(σ²_c + ε).
Running statistics as torch.nn.BatchNorm: r ← (1 − momentum) r + momentum · batch statistic, with the
unbiased variance σ²·M/(M − 1) for running_var; momentum=None is the cumulative average
(factor 1/num_batches_tracked).

Layer norm normalises each example over its last dimensions (D values) instead: the same formulas
with the sums over those D values and γ, β of the normalised shape.

Kernels see x as (N, C, S) (batch norm; S = 1 for (N, C) inputs) or (M, D) (layer norm). Sums
accumulate in float64 whatever the dtype; the reduction loops may be reassociated (engine.threads.
FASTMATH, without the no-NaN/no-Inf assumptions) so they vectorise.
"""
import numbers

import numpy as np
from numba import njit, prange

from engine.checks import check_dtype, check_float, check_int
from engine.core import Layer, Parameter
from engine.numerics import FASTMATH
from engine.threads import chunks_for, parallel_call, pool


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def batchnorm_stats(x):
    """Per-channel batch mean μ (C,) and biased variance σ² (C,) of x (N, C, S), in float64."""
    N, C, S = x.shape
    mean = np.zeros(C)
    var = np.zeros(C)
    M = N * S
    for c in prange(C):
        s = 0.0
        for n in range(N):
            xr = x[n, c]
            for j in range(S):
                s += xr[j]
        mu = s / M
        v = 0.0
        for n in range(N):
            xr = x[n, c]
            for j in range(S):
                d = xr[j] - mu
                v += d * d
        mean[c] = mu
        var[c] = v / M
    return mean, var


@njit(parallel=True, cache=True)
def batchnorm_forward(x, mean, var, gamma, beta, eps):
    """y = γ (x − μ)/√(σ² + ε) + β per channel.  x (N, C, S); mean, var (C,) float64 (batch or
    running statistics); returns y (N, C, S) and rstd = 1/√(σ² + ε) (C,) for the backward."""
    N, C, S = x.shape
    y = np.empty_like(x)
    rstd = 1.0 / np.sqrt(var + eps)
    for c in prange(C):
        a = gamma[c] * rstd[c]
        b = beta[c] - mean[c] * a
        for n in range(N):
            xr = x[n, c]
            yr = y[n, c]
            for j in range(S):
                yr[j] = xr[j] * a + b
    return y, rstd


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def batchnorm_backward(dy, x, mean, rstd, gamma, dgamma, dbeta, batch_stats, input_grad):
    """∂ℓ/∂x (N, C, S) (empty if not `input_grad`); accumulates ∂ℓ/∂γ, ∂ℓ/∂β (+=).
    batch_stats: the statistics were the batch's (train mode), so their gradient is included."""
    N, C, S = x.shape
    M = N * S
    dx = np.empty(x.shape if input_grad else (0, 0, 0), x.dtype)
    for c in prange(C):
        mu, r = mean[c], rstd[c]
        sdy = 0.0
        sdyx = 0.0
        for n in range(N):
            xr = x[n, c]
            gr = dy[n, c]
            for j in range(S):
                sdy += gr[j]
                sdyx += gr[j] * (xr[j] - mu)
        sdyx *= r                                  # Σ ∂ℓ/∂y · x̂
        dgamma[c] += sdyx
        dbeta[c] += sdy
        if input_grad:
            k = gamma[c] * r
            if batch_stats:
                # dx = k (dy − mean(dy) − x̂ mean(dy x̂)),  x̂ = (x − μ) r
                a = sdy / M
                b = sdyx / M * r
                for n in range(N):
                    xr = x[n, c]
                    gr = dy[n, c]
                    dr = dx[n, c]
                    for j in range(S):
                        dr[j] = k * (gr[j] - a - (xr[j] - mu) * b)
            else:
                for n in range(N):
                    gr = dy[n, c]
                    dr = dx[n, c]
                    for j in range(S):
                        dr[j] = k * gr[j]
    return dx


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def layernorm_forward(x, gamma, beta, eps, nthreads):
    """Row-wise y = γ ⊙ (x − μ)/√(σ² + ε) + β.  x (M, D), γ, β (D,) -> y (M, D), mean (M,), rstd (M,)."""
    M, D = x.shape
    y = np.empty_like(x)
    mean = np.empty(M)
    rstd = np.empty(M)
    for t in prange(nthreads):
        for m in range(t * M // nthreads, (t + 1) * M // nthreads):
            xr = x[m]
            s = 0.0
            for j in range(D):
                s += xr[j]
            mu = s / D
            v = 0.0
            for j in range(D):
                d = xr[j] - mu
                v += d * d
            r = 1.0 / np.sqrt(v / D + eps)
            yr = y[m]
            for j in range(D):
                yr[j] = (xr[j] - mu) * r * gamma[j] + beta[j]
            mean[m] = mu
            rstd[m] = r
    return y, mean, rstd


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def layernorm_backward(dy, x, mean, rstd, gamma, dgamma, dbeta, nthreads):
    """∂ℓ/∂x_m = r_m (g − mean(g) − x̂_m mean(g ⊙ x̂_m)) with g = γ ⊙ ∂ℓ/∂y_m; accumulates
    ∂ℓ/∂γ += Σ_m ∂ℓ/∂y_m ⊙ x̂_m, ∂ℓ/∂β += Σ_m ∂ℓ/∂y_m through per-thread buffers."""
    M, D = x.shape
    dx = np.empty_like(x)
    part = np.zeros((nthreads, 2, D))
    for t in prange(nthreads):
        pg = part[t, 0]
        pb = part[t, 1]
        for m in range(t * M // nthreads, (t + 1) * M // nthreads):
            xr, gr, dr = x[m], dy[m], dx[m]
            mu, r = mean[m], rstd[m]
            s1 = 0.0
            s2 = 0.0
            for j in range(D):
                xh = (xr[j] - mu) * r
                g = gr[j] * gamma[j]
                s1 += g
                s2 += g * xh
                pg[j] += gr[j] * xh
                pb[j] += gr[j]
            s1 /= D
            s2 /= D
            for j in range(D):
                dr[j] = r * (gr[j] * gamma[j] - s1 - (xr[j] - mu) * r * s2)
    for t in range(nthreads):
        dgamma += part[t, 0]
        dbeta += part[t, 1]
    return dx


def _chunks(x):
    """Threads for an elementwise-cost kernel over x: enough elements per thread to pay for waking it."""
    return chunks_for(x.size, row_cost=1)


class _BatchNorm(Layer):
    ranks = (2, 3, 4)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float64):
        self.num_features = check_int("num_features", num_features, low=1)
        self.eps = check_float("eps", eps, low=0, low_open=True)
        self.momentum = None if momentum is None else check_float("momentum", momentum, low=0, high=1)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.dtype = check_dtype(dtype)
        C = num_features
        if self.affine:
            self.weight = Parameter(np.ones(C, self.dtype))
            self.bias = Parameter(np.zeros(C, self.dtype))
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, self.dtype))
            self.register_buffer("running_var", np.ones(C, self.dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        self._ones, self._zeros = np.ones(C, self.dtype), np.zeros(C, self.dtype)
        self._x = None

    def _gb(self):
        return (self.weight.value, self.bias.value) if self.affine else (self._ones, self._zeros)

    def forward(self, x, train=True):
        x = self._check_input(x, ndim=self.ranks)
        if x.shape[1] != self.num_features:
            raise ValueError(f"x: expected {self.num_features} channels in dimension 1, got shape {x.shape}")
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        batch_stats = train or not self.track_running_stats
        if batch_stats:
            M = x3.shape[0] * x3.shape[2]
            if M < 2 and train:
                raise ValueError(f"x: expected more than 1 value per channel when training, got shape {x.shape}")
            with pool(_chunks(x3)):
                mean, var = batchnorm_stats(x3)
            if train and self.track_running_stats:
                self.num_batches_tracked += 1
                f = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean[...] = (1 - f) * self.running_mean + f * mean
                self.running_var[...] = (1 - f) * self.running_var + f * var * (M / max(M - 1, 1))
        else:
            mean = self.running_mean.astype(np.float64)
            var = self.running_var.astype(np.float64)
        g, b = self._gb()
        with pool(_chunks(x3)):
            y, rstd = batchnorm_forward(x3, mean, var, g, b, self.eps)
        self._x, self._x3, self._mean, self._rstd, self._batch = x, x3, mean, rstd, batch_stats
        return y.reshape(x.shape)

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        dy = self._check_input(dy, name="dy", shape=self._x.shape, finite=False)
        g, _ = self._gb()
        dg = self.weight.grad if self.affine else np.zeros_like(self._ones)
        db = self.bias.grad if self.affine else np.zeros_like(self._ones)
        with pool(_chunks(self._x3)):
            dx = batchnorm_backward(dy.reshape(self._x3.shape), self._x3, self._mean, self._rstd, g, dg, db,
                                    self._batch, input_grad)
        return dx.reshape(self._x.shape) if input_grad else None

    def extra_repr(self):
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats}


class BatchNorm1d(_BatchNorm):
    """Batch norm over x (N, C) or (N, C, L), per channel C, as torch.nn.BatchNorm1d(num_features,
    eps=1e-5, momentum=0.1, affine=True, track_running_stats=True). Parameters `weight` (γ),
    `bias` (β); buffers `running_mean`, `running_var`, `num_batches_tracked`.
    `forward(x, train=True)` uses the batch statistics and updates the running ones;
    `train=False` uses the running statistics (or the batch's when not tracking)."""
    ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over x (N, C, H, W), per channel, as torch.nn.BatchNorm2d (see BatchNorm1d)."""
    ranks = (4,)


class LayerNorm(Layer):
    """Layer norm over the last dimensions `normalized_shape` of x, as torch.nn.LayerNorm(
    normalized_shape, eps=1e-5, elementwise_affine=True, bias=True): parameters `weight` (γ) and
    `bias` (β) of shape normalized_shape. Same in train and eval."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, dtype=np.float64):
        if isinstance(normalized_shape, numbers.Integral) and not isinstance(normalized_shape, bool):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)) or len(normalized_shape) == 0:
            raise TypeError(f"normalized_shape: expected an int or a tuple of ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(check_int(f"normalized_shape[{i}]", s, low=1)
                                      for i, s in enumerate(normalized_shape))
        self.eps = check_float("eps", eps, low=0, low_open=True)
        self.elementwise_affine = bool(elementwise_affine)
        self.dtype = check_dtype(dtype)
        self.has_bias = self.elementwise_affine and bool(bias)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, self.dtype))
            if self.has_bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, self.dtype))
        D = int(np.prod(self.normalized_shape))
        self._ones, self._zeros = np.ones(D, self.dtype), np.zeros(D, self.dtype)
        self._x = None

    def forward(self, x, train=True):
        k = len(self.normalized_shape)
        x = self._check_input(x)
        if x.shape[x.ndim - k:] != self.normalized_shape or x.ndim < k:
            raise ValueError(f"x: expected shape (..., {', '.join(map(str, self.normalized_shape))}), got {x.shape}")
        D = self._ones.size
        g = self.weight.value.reshape(D) if self.elementwise_affine else self._ones
        b = self.bias.value.reshape(D) if self.has_bias else self._zeros
        x2 = x.reshape(-1, D)
        y, self._mean, self._rstd = parallel_call(layernorm_forward, _chunks(x2), x2, g, b, self.eps)
        self._x, self._x2 = x, x2
        return y.reshape(x.shape)

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        dy = self._check_input(dy, name="dy", shape=self._x.shape, finite=False)
        D = self._ones.size
        g = self.weight.value.reshape(D) if self.elementwise_affine else self._ones
        dg = self.weight.grad.reshape(D) if self.elementwise_affine else np.zeros_like(self._ones)
        db = self.bias.grad.reshape(D) if self.has_bias else np.zeros_like(self._ones)
        dx = parallel_call(layernorm_backward, _chunks(self._x2), dy.reshape(self._x2.shape), self._x2,
                           self._mean, self._rstd, g, dg, db)
        return dx.reshape(self._x.shape) if input_grad else None

    def extra_repr(self):
        return {"normalized_shape": self.normalized_shape, "eps": self.eps,
                "elementwise_affine": self.elementwise_affine}
