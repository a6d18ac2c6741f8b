"""Normalization layers: BatchNorm1d, BatchNorm2d, LayerNorm (notes 004 §3.7.4-3.7.5; 003 §2.2).

Batch norm (notes 004 §3.7.4) normalises each feature over the batch, z̃ = (z − μ)/√σ² with μ, σ²
"computed from the entire batch", then scales by γ and shifts by β (learned). As torch.nn, per
channel c over its M = N·S values x_m (S spatial positions; S = 1 for (N, C) inputs), with ε:
    μ_c = (1/M) Σ_m x_m,   σ²_c = (1/M) Σ_m (x_m − μ_c)²,   r_c = 1/√(σ²_c + ε),
    x̂_m = (x_m − μ_c) r_c,   y_m = γ_c x̂_m + β_c.
Backward: ∂ℓ/∂γ_c = Σ_m ∂ℓ/∂y_m x̂_m,  ∂ℓ/∂β_c = Σ_m ∂ℓ/∂y_m,  and with g_m = ∂ℓ/∂x̂_m = γ_c ∂ℓ/∂y_m
the chain rule through σ² and μ (Ioffe & Szegedy 2015; what the reference kernels compute):
    ∂ℓ/∂σ²_c = −½ r_c³ Σ_m g_m (x_m − μ_c)
    ∂ℓ/∂μ_c  = −r_c Σ_m g_m − (2/M) ∂ℓ/∂σ²_c Σ_m (x_m − μ_c)
    ∂ℓ/∂x_m  = r_c g_m + (2/M) ∂ℓ/∂σ²_c (x_m − μ_c) + (1/M) ∂ℓ/∂μ_c,
which, as Σ_m (x_m − μ_c) = 0, is the closed form the fast kernels compute:
    ∂ℓ/∂x_m  = r_c (g_m − (1/M) Σ_m' g_m' − x̂_m (1/M) Σ_m' g_m' x̂_m').
In eval mode μ, σ² are the running statistics (constants, "at test time, we use running average
of μ and σ²"): ∂ℓ/∂x_m = r_c g_m. Running statistics as torch.nn.BatchNorm: r ← (1 − momentum) r
+ momentum · (batch statistic), with the unbiased variance σ²·M/(M − 1) for running_var;
momentum=None is the cumulative average (factor 1/num_batches_tracked).

Layer norm (notes 004 §3.7.5) normalises each example over its last dimensions (its D values)
instead: the same μ, σ², x̂ and chain rule per row m of x (M, D), with γ, β of the normalised
shape, y_{m,j} = γ_j x̂_{m,j} + β_j, g_{m,j} = γ_j ∂ℓ/∂y_{m,j}. Same in train and eval.

Statistics without cancellation. Summing the raw x_m lost the data under a large common offset: a
constant channel of 10¹² + 0.3 gave x̂ up to 0.47 instead of 0 (the rounding of Σ x_m is M times
the spacing of floats near 10¹², and x − μ picked it up). So the sums run over d_m = x_m − K_c,
K_c the group's first value (a sample of the data: "shifted data"), and the output is computed as
γ_c (x_m − μ_c) r_c + β_c (never as x_m a_c + b_c with b_c = β_c − μ_c a_c, which cancels):
  reference kernels, two passes:  μ_c = K_c + (1/M) Σ d_m,   σ²_c = (1/M) Σ (x_m − μ_c)²;
  fast kernels, one pass:         μ_c = K_c + δ_c, δ_c = (1/M) Σ d_m,   σ²_c = (1/M) Σ d_m² − δ_c²,
whose relative error in σ² is about the sums' rounding times (1 + δ²/σ²): as a data point, K lies
within √M σ of μ, usually within a few σ; where it lies farther than 8σ (δ² > 64 σ², `shift_far`)
the fast kernel recomputes σ² around μ in a second pass, so it never loses more than ~6 bits to
the subtraction (the one pass reads the data once: 15-30% faster than two). A constant group
gives d = 0 exactly, so μ_c = K_c, σ²_c = 0 and y = β exactly, for any offset, in float64 and
float32, on both paths. For other data the only error left is μ_c's own rounding to float64 (half
a unit in the last place of the offset, ~6·10⁻⁵ at 10¹²), which moves x̂ by that over σ_c: as
much as rounding the input itself to float64 does. Float32 inputs are summed in float64, so there
x̂ is exact to float32 rounding (~10⁻⁷ relative) whatever the offset.

Overflow. The statistics are float64 whatever the dtype. A batch whose values spread over more than
~10¹⁵⁴ (float64 inputs) has a variance float64 cannot hold: the forward refuses it with a
ValueError rather than normalising by an infinite σ. Float32 inputs never overflow the float64
statistics, but their variance can exceed float32's largest value (~3.4·10³⁸, values spread over
~10¹⁹); a train-mode forward whose running_var (or running_mean) would then become infinite is
refused before anything is updated, so the running statistics stay finite (and loadable: a state
dict with Inf is refused by load_state_dict).

Kernels see x as (N, C, S) (batch norm) or (M, D) (layer norm). Statistics and sums accumulate in
float64 whatever the dtype. Reading order: the reference kernels (loops over the formulas above),
the Layer classes, then the fast kernels (channels or rows split over threads, the closed-form
backward in one pass, reductions reassociated with engine.numerics.FASTMATH, which keeps NaN and
Inf semantics, so that they vectorise).
"""
import numbers

import numpy as np
from numba import njit, prange

from engine.checks import NonFiniteError, all_finite, check_bool, check_dtype, check_float, check_int
from engine.core import Layer, Parameter, use_reference
from engine.numerics import FASTMATH
from engine.threads import chunks_for, parallel_call, pool


# ---------------------------------------------------------------------------------------------
# reference kernels: the formulas above, as loops
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def normalize_stats_ref(x):
    """μ_c = K_c + (1/M) Σ (x[:, c, :] − K_c) with K_c = x[0, c, 0] (shifted by a sample: no
    cancellation under a common offset), then σ²_c = (1/M) Σ (x[:, c, :] − μ_c)² (biased),
    M = N·S, for each group c of x (N, C, S), in float64. Batch norm: the groups are the
    channels; layer norm passes x (1, M, D): the groups are the rows."""
    N, C, S = x.shape
    M = N * S
    mean = np.zeros(C)
    var = np.zeros(C)
    for c in range(C):
        K = np.float64(x[0, c, 0])
        s = 0.0
        for n in range(N):
            for j in range(S):
                s += x[n, c, j] - K
        mean[c] = K + s / M
        for n in range(N):
            for j in range(S):
                var[c] += (x[n, c, j] - mean[c]) ** 2
        var[c] /= M
    return mean, var


@njit(cache=True)
def normalize_backward_ref(g, x, mean, rstd):
    """∂ℓ/∂x from g = ∂ℓ/∂x̂ (N, C, S) through x̂ = (x − μ_c) r_c, where μ_c and σ²_c are group c's
    own statistics: the chain rule through ∂ℓ/∂σ²_c and ∂ℓ/∂μ_c (module docstring).
    -> dx (N, C, S), in x's dtype."""
    N, C, S = x.shape
    M = N * S
    dx = np.empty_like(x)
    for c in range(C):
        mu, r = mean[c], rstd[c]
        sg, sgd, sd = 0.0, 0.0, 0.0              # Σ g, Σ g (x − μ), Σ (x − μ)
        for n in range(N):
            for j in range(S):
                sg += g[n, c, j]
                sgd += g[n, c, j] * (x[n, c, j] - mu)
                sd += x[n, c, j] - mu
        dvar = -0.5 * r ** 3 * sgd               # ∂ℓ/∂σ²_c
        dmean = -r * sg - 2.0 / M * dvar * sd    # ∂ℓ/∂μ_c
        for n in range(N):
            for j in range(S):
                dx[n, c, j] = r * g[n, c, j] + 2.0 / M * dvar * (x[n, c, j] - mu) + dmean / M
    return dx


@njit(cache=True)
def batchnorm_forward_ref(x, mean, var, gamma, beta, eps):
    """y = γ_c x̂ + β_c with x̂ = (x − μ_c) r_c, r_c = 1/√(σ²_c + ε).  x (N, C, S); mean, var (C,)
    float64 (the batch's or the running statistics) -> y (N, C, S), rstd (C,)."""
    N, C, S = x.shape
    rstd = 1.0 / np.sqrt(var + eps)
    y = np.empty_like(x)
    for n in range(N):
        for c in range(C):
            for j in range(S):
                y[n, c, j] = gamma[c] * (x[n, c, j] - mean[c]) * rstd[c] + beta[c]
    return y, rstd


@njit(cache=True)
def batchnorm_backward_ref(dy, x, mean, rstd, gamma, dgamma, dbeta, batch_stats):
    """Returns ∂ℓ/∂x (N, C, S); accumulates ∂ℓ/∂γ_c = Σ ∂ℓ/∂y x̂ and ∂ℓ/∂β_c = Σ ∂ℓ/∂y (+=).
    batch_stats: μ, σ² were the batch's (train mode), so ∂ℓ/∂x goes through them too; else
    ∂ℓ/∂x = r_c γ_c ∂ℓ/∂y."""
    N, C, S = x.shape
    g = np.empty(x.shape)                        # ∂ℓ/∂x̂ = γ_c ∂ℓ/∂y
    for c in range(C):
        sgx, sg = 0.0, 0.0
        for n in range(N):
            for j in range(S):
                sgx += dy[n, c, j] * (x[n, c, j] - mean[c]) * rstd[c]
                sg += dy[n, c, j]
                g[n, c, j] = gamma[c] * dy[n, c, j]
        dgamma[c] += sgx
        dbeta[c] += sg
    if batch_stats:
        return normalize_backward_ref(g, x, mean, rstd)
    dx = np.empty_like(x)
    for n in range(N):
        for c in range(C):
            for j in range(S):
                dx[n, c, j] = rstd[c] * g[n, c, j]
    return dx


@njit(cache=True)
def layernorm_forward_ref(x, gamma, beta, eps):
    """Row m of x (M, D): μ_m, σ²_m over its D values, y = γ ⊙ x̂ + β.
    -> y (M, D), mean (M,), rstd (M,)."""
    M, D = x.shape
    mean, var = normalize_stats_ref(x.reshape(1, M, D))
    rstd = 1.0 / np.sqrt(var + eps)
    y = np.empty_like(x)
    for m in range(M):
        for j in range(D):
            y[m, j] = gamma[j] * (x[m, j] - mean[m]) * rstd[m] + beta[j]
    return y, mean, rstd


@njit(cache=True)
def layernorm_backward_ref(dy, x, mean, rstd, gamma, dgamma, dbeta):
    """Returns ∂ℓ/∂x (M, D), each row through its own μ_m, σ²_m; accumulates
    ∂ℓ/∂γ_j = Σ_m ∂ℓ/∂y_{m,j} x̂_{m,j} and ∂ℓ/∂β_j = Σ_m ∂ℓ/∂y_{m,j} (+=)."""
    M, D = x.shape
    g = np.empty((M, D))                         # ∂ℓ/∂x̂ = γ_j ∂ℓ/∂y
    for j in range(D):
        sgx, sg = 0.0, 0.0
        for m in range(M):
            sgx += dy[m, j] * (x[m, j] - mean[m]) * rstd[m]
            sg += dy[m, j]
            g[m, j] = gamma[j] * dy[m, j]
        dgamma[j] += sgx
        dbeta[j] += sg
    return normalize_backward_ref(g.reshape(1, M, D), x.reshape(1, M, D), mean, rstd).reshape(M, D)


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
def check_stats(ok, group, x):
    """Refuse statistics float64 cannot hold (module docstring, Overflow): `ok` says per group
    whether μ and σ² are finite; `group(i)` names the i-th group (a channel or a row). x itself
    holding NaN or Inf (possible when a composite layer skipped the scan, engine.checks.inputs_checked)
    is reported as that."""
    bad = ~ok
    if bad.any():
        if not all_finite(x):
            raise NonFiniteError("x: expected finite values, got NaN or Inf")
        raise ValueError(f"x: the variance of {group(int(np.flatnonzero(bad)[0]))} overflows float64 "
                         "(its values spread over more than ~1e154); scale the input down")


class _BatchNorm(Layer):
    ranks = (2, 3, 4)

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 dtype=np.float64):
        self.num_features = check_int("num_features", num_features, low=1)
        self.eps = check_float("eps", eps, low=0, low_open=True)
        self.momentum = None if momentum is None else check_float("momentum", momentum, low=0, high=1)
        self.affine = check_bool("affine", affine)
        self.track_running_stats = check_bool("track_running_stats", track_running_stats)
        self.dtype = check_dtype(dtype)
        C = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(C, self.dtype))
            self.bias = Parameter(np.zeros(C, self.dtype))
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(C, self.dtype))
            self.register_buffer("running_var", np.ones(C, self.dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        self._ones, self._zeros = np.ones(C, self.dtype), np.zeros(C, self.dtype)

    def _gb(self):
        return (self.weight.value, self.bias.value) if self.affine else (self._ones, self._zeros)

    def _running_update(self, mean, var, M):
        """The running statistics after this batch, in the buffers' dtype, checked but not yet
        written: (1 − f) r + f · (batch statistic), f = momentum or 1/num_batches_tracked."""
        f = 1.0 / float(self.num_batches_tracked + 1) if self.momentum is None else self.momentum
        with np.errstate(over="ignore"):
            rm = ((1 - f) * self.running_mean.astype(np.float64) + f * mean).astype(self.dtype)
            rv = ((1 - f) * self.running_var.astype(np.float64) + f * var * (M / (M - 1))).astype(self.dtype)
        bad = ~(np.isfinite(rm) & np.isfinite(rv))
        if bad.any():
            c = int(np.flatnonzero(bad)[0])
            raise ValueError(f"x: the running statistics of channel {c} would overflow {np.dtype(self.dtype)} "
                             f"(batch mean {mean[c]:.3g}, variance {var[c]:.3g}); scale the input down or use float64")
        return rm, rv

    def forward(self, x, train=True):
        train = check_bool("train", train)
        x = self._check_input(x, ndim=self.ranks)
        if x.shape[1] != self.num_features:
            raise ValueError(f"x: expected {self.num_features} channels in dimension 1, got shape {x.shape}")
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        M = x3.shape[0] * x3.shape[2]
        batch_stats = train or not self.track_running_stats
        update = None
        if batch_stats and M < 2 and train:
            raise ValueError(f"x: expected more than 1 value per channel when training, got shape {x.shape}")
        ref = use_reference()
        if batch_stats:
            if ref:
                mean, var = normalize_stats_ref(x3)
            else:
                with pool(chunks_for(x3.size, row_cost=1)):
                    mean, var = batchnorm_stats(x3)
            check_stats(np.isfinite(mean) & np.isfinite(var), lambda c: f"channel {c}", x)
            if train and self.track_running_stats:       # checked now, written once all is computed
                update = self._running_update(mean, var, M)
        else:
            mean = self.running_mean.astype(np.float64)     # copies: later updates leave this call's alone
            var = self.running_var.astype(np.float64)
        g, b = self._gb()
        if ref:
            y, rstd = batchnorm_forward_ref(x3, mean, var, g, b, self.eps)
        else:
            with pool(chunks_for(x3.size, row_cost=1)):
                y, rstd = batchnorm_forward(x3, mean, var, g, b, self.eps)
        if update is not None:
            self.num_batches_tracked += 1
            self.running_mean[...], self.running_var[...] = update
        self._save(x.shape, x3, mean, rstd, batch_stats)
        return y.reshape(x.shape)

    def backward(self, dy, *, input_grad=True):
        shape, x3, mean, rstd, batch_stats = self._saved()
        dy = self._check_input(dy, name="dy", shape=shape, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        dy3 = dy.reshape(x3.shape)
        g, _ = self._gb()
        dg = self.weight.grad if self.affine else np.zeros_like(self._ones)
        db = self.bias.grad if self.affine else np.zeros_like(self._ones)
        if use_reference():
            dx = batchnorm_backward_ref(dy3, x3, mean, rstd, g, dg, db, batch_stats)
        else:
            with pool(chunks_for(x3.size, row_cost=1)):
                dx = batchnorm_backward(dy3, x3, mean, rstd, g, dg, db, batch_stats, input_grad)
        return dx.reshape(shape) if input_grad else None

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
        self.elementwise_affine = check_bool("elementwise_affine", elementwise_affine)
        self.dtype = check_dtype(dtype)
        self.has_bias = check_bool("bias", bias) and self.elementwise_affine     # (checked either way)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, self.dtype))
            if self.has_bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, self.dtype))
        D = int(np.prod(self.normalized_shape))
        self._ones, self._zeros = np.ones(D, self.dtype), np.zeros(D, self.dtype)

    def forward(self, x, train=True):
        check_bool("train", train)
        k = len(self.normalized_shape)
        x = self._check_input(x)
        if x.ndim < k or x.shape[x.ndim - k:] != self.normalized_shape:
            raise ValueError(f"x: expected shape (..., {', '.join(map(str, self.normalized_shape))}), got {x.shape}")
        D = self._ones.size
        g = self.weight.value.reshape(D) if self.elementwise_affine else self._ones
        b = self.bias.value.reshape(D) if self.has_bias else self._zeros
        x2 = x.reshape(-1, D)
        if use_reference():
            y, mean, rstd = layernorm_forward_ref(x2, g, b, self.eps)
        else:
            y, mean, rstd = parallel_call(layernorm_forward, chunks_for(x2.size, row_cost=1), x2, g, b, self.eps)
        lead = x.shape[:x.ndim - k]                      # rstd = 0 where σ² overflowed
        check_stats(np.isfinite(mean) & (rstd > 0),
                    lambda m: f"x[{', '.join(str(i) for i in np.unravel_index(m, lead))}]" if lead else "x", x)
        self._save(x.shape, x2, mean, rstd)
        return y.reshape(x.shape)

    def backward(self, dy, *, input_grad=True):
        shape, x2, mean, rstd = self._saved()
        dy = self._check_input(dy, name="dy", shape=shape, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        dy2 = dy.reshape(x2.shape)
        D = self._ones.size
        g = self.weight.value.reshape(D) if self.elementwise_affine else self._ones
        dg = self.weight.grad.reshape(D) if self.elementwise_affine else np.zeros_like(self._ones)
        db = self.bias.grad.reshape(D) if self.has_bias else np.zeros_like(self._ones)
        if use_reference():
            dx = layernorm_backward_ref(dy2, x2, mean, rstd, g, dg, db)
        else:
            dx = parallel_call(layernorm_backward, chunks_for(x2.size, row_cost=1), dy2, x2, mean, rstd,
                               g, dg, db, input_grad)
        return dx.reshape(shape) if input_grad else None

    def extra_repr(self):
        return {"normalized_shape": self.normalized_shape, "eps": self.eps,
                "elementwise_affine": self.elementwise_affine}


# ---------------------------------------------------------------------------------------------
# fast kernels: channels (batch norm) or rows (layer norm) split over threads
# ---------------------------------------------------------------------------------------------
# Batch norm: prange over disjoint channels, in engine.threads.pool(chunks_for(size, row_cost=1))
# (one thread per 2^16 values at most). Layer norm: nthreads chunks of rows through parallel_call;
# γ's and β's gradients are sums over rows, collected in per-thread buffers.
SHIFT_FAR = 64.0      # (μ − K)² > 64 σ²: the shifted sums may lose log2(65) bits; recompute around μ


@njit(cache=True, inline="always")
def shift_far(dm, v):
    """True when the shift K lies more than 8σ from the mean (dm = μ − K, v = σ² from the
    shifted sums), or the sums are not finite: then σ² is recomputed around μ."""
    return not (dm * dm <= SHIFT_FAR * v)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _shifted_sums(xr, K, s, q):
    """(s + Σ d, q + Σ d²) over the 1-D row xr, d = x − K (one vectorised pass)."""
    for j in range(xr.shape[0]):
        d = xr[j] - K
        s += d
        q += d * d
    return s, q


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _centred_sum(xr, mu, v):
    """v + Σ (x − μ)² over the 1-D row xr (the second pass where the shift was far)."""
    for j in range(xr.shape[0]):
        d = xr[j] - mu
        v += d * d
    return v


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def batchnorm_stats(x):
    """Per-channel batch mean μ and biased variance σ² (C,) of x (N, C, S), in float64, from the
    shifted sums in one pass (module docstring): d = x − K, K = x[0, c, 0], μ = K + mean(d),
    σ² = mean(d²) − (μ − K)²; around μ in a second pass where K is far from μ (shift_far)."""
    N, C, S = x.shape
    mean = np.zeros(C)
    var = np.zeros(C)
    M = N * S
    for c in prange(C):
        K = np.float64(x[0, c, 0])                # the shift: a sample of the channel
        s = 0.0
        q = 0.0
        for n in range(N):
            s, q = _shifted_sums(x[n, c], K, s, q)
        dm = s / M
        mu = K + dm
        v = q / M - dm * dm
        if shift_far(dm, v):
            v = 0.0
            for n in range(N):
                v = _centred_sum(x[n, c], mu, v)
            v /= M
        mean[c] = mu
        var[c] = 0.0 if v < 0.0 else v            # (rounding may leave a negative ulp; NaN is kept, and refused)
    return mean, var


@njit(parallel=True, cache=True)
def batchnorm_forward(x, mean, var, gamma, beta, eps):
    """y = γ (x − μ)/√(σ² + ε) + β per channel.  x (N, C, S); mean, var (C,) float64 (batch or
    running statistics); returns y (N, C, S) and rstd = 1/√(σ² + ε) (C,) for the backward."""
    N, C, S = x.shape
    y = np.empty_like(x)
    rstd = 1.0 / np.sqrt(var + eps)
    for c in prange(C):
        mu = mean[c]
        a = gamma[c] * rstd[c]
        b = beta[c]
        for n in range(N):
            xr = x[n, c]
            yr = y[n, c]
            for j in range(S):
                yr[j] = (xr[j] - mu) * a + b      # not x a + (β − μ a): that cancels when μ is large
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
    """Row-wise y = γ ⊙ (x − μ)/√(σ² + ε) + β, μ and σ² from the row's shifted sums as
    batchnorm_stats (K = the row's first value).  x (M, D), γ, β (D,) -> y (M, D), mean (M,), rstd (M,)."""
    M, D = x.shape
    y = np.empty_like(x)
    mean = np.empty(M)
    rstd = np.empty(M)
    for t in prange(nthreads):
        for m in range(t * M // nthreads, (t + 1) * M // nthreads):
            xr = x[m]
            K = np.float64(xr[0])                 # the shift: the row's first value
            s, q = _shifted_sums(xr, K, 0.0, 0.0)
            dm = s / D
            mu = K + dm
            v = q / D - dm * dm
            if shift_far(dm, v):
                v = _centred_sum(xr, mu, 0.0) / D
            if v < 0.0:
                v = 0.0
            r = 1.0 / np.sqrt(v + eps)
            yr = y[m]
            for j in range(D):
                yr[j] = (xr[j] - mu) * r * gamma[j] + beta[j]
            mean[m] = mu
            rstd[m] = r
    return y, mean, rstd


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def layernorm_backward(dy, x, mean, rstd, gamma, dgamma, dbeta, input_grad, nthreads):
    """∂ℓ/∂x_m = r_m (g − mean(g) − x̂_m mean(g ⊙ x̂_m)) with g = γ ⊙ ∂ℓ/∂y_m (M, D) (empty when
    not `input_grad`); accumulates ∂ℓ/∂γ += Σ_m ∂ℓ/∂y_m ⊙ x̂_m, ∂ℓ/∂β += Σ_m ∂ℓ/∂y_m through
    per-thread buffers."""
    M, D = x.shape
    dx = np.empty((M if input_grad else 0, D), x.dtype)
    part = np.empty((nthreads, 2, D))         # np.empty: np.zeros would be a parallel region of its own
    for t in prange(nthreads):
        pg = part[t, 0]
        pb = part[t, 1]
        for j in range(D):
            pg[j] = 0.0
            pb[j] = 0.0
        for m in range(t * M // nthreads, (t + 1) * M // nthreads):
            xr, gr = x[m], dy[m]
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
            if input_grad:
                s1 /= D
                s2 /= D
                dr = dx[m]
                for j in range(D):
                    dr[j] = r * (gr[j] * gamma[j] - s1 - (xr[j] - mu) * r * s2)
    for t in range(nthreads):                 # explicit loops: `dgamma += part[t, 0]` would be a
        for j in range(D):                    # parallel region per statement and per thread
            dgamma[j] += part[t, 0, j]
            dbeta[j] += part[t, 1, j]
    return dx
