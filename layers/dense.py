"""The dense (fully connected) layer: f = β + Ω h (notes 000 §7).

Notes ↔ code: the notes use one column vector h per example; the code stacks the batch as rows,
so h is (N, D_in), Ω = W is (D_out, D_in) as in torch.nn.Linear, β = b is (D_out,), and
    f = h Ωᵀ + β                       (N, D_out)
    ∂ℓ/∂h = ∂ℓ/∂f Ω                    (N, D_in)     the notes' Ωᵀ ∂ℓ/∂f, row by row
    ∂ℓ/∂Ω = Σ_n ∂ℓ/∂f_n h_nᵀ = (∂ℓ/∂f)ᵀ h   (D_out, D_in)
    ∂ℓ/∂β = Σ_n ∂ℓ/∂f_n                 (D_out,)

Speed (PERFORMANCE.md): the kernels split rows into `nthreads` chunks with `prange` and call
BLAS's gemm on each (one BLAS thread, see engine.threads and engine.blas); the weight gradient
is split over disjoint blocks of Ω's rows, so no two threads write the same element.
"""
import math

import numpy as np
from numba import njit, prange

from engine.checks import check_dtype, check_int
from engine.core import Layer, Parameter
from engine.blas import NO_TRANS, ROW_MAJOR, TRANS, gemm_for
from engine.threads import chunks_for, parallel_call


@njit(cache=True)
def linear_forward_naive(x, W, b):
    """f[n, j] = β_j + Σ_i Ω[j, i] h[n, i], as loops: the statement the fast kernel is tested against."""
    N, D_in = x.shape
    f = np.empty((N, W.shape[0]), x.dtype)
    for n in range(N):
        for j in range(W.shape[0]):
            s = b[j]
            for i in range(D_in):
                s += W[j, i] * x[n, i]
            f[n, j] = s
    return f


@njit(cache=True)
def linear_backward_naive(df, x, W, dW, db):
    """Loops for ∂ℓ/∂h, and ∂ℓ/∂Ω, ∂ℓ/∂β accumulated (+=)."""
    N, D_in = x.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for j in range(W.shape[0]):
            db[j] += df[n, j]
            for i in range(D_in):
                dW[j, i] += df[n, j] * x[n, i]
                dx[n, i] += df[n, j] * W[j, i]
    return dx


@njit(parallel=True, cache=True)
def linear_forward(x, W, b, gemm, nthreads):
    """f = h Ωᵀ + β.  x (N, D_in), W (D_out, D_in), b (D_out,) -> f (N, D_out)."""
    N, D_in = x.shape
    D_out = W.shape[0]
    f = np.empty((N, D_out), x.dtype)
    isz = x.itemsize
    for t in prange(nthreads):                   # disjoint blocks of the batch
        lo, hi = t * N // nthreads, (t + 1) * N // nthreads
        if hi > lo:
            gemm(ROW_MAJOR, NO_TRANS, TRANS, hi - lo, D_out, D_in, 1.0, x.ctypes.data + lo * D_in * isz, D_in,
                 W.ctypes.data, D_in, 0.0, f.ctypes.data + lo * D_out * isz, D_out)
            for n in range(lo, hi):
                f[n] += b
    return f


@njit(parallel=True, cache=True)
def linear_backward(df, x, W, dW, db, input_grad, gemm, nthreads):
    """Given ∂ℓ/∂f (N, D_out): returns ∂ℓ/∂h = ∂ℓ/∂f Ω (N, D_in) (empty when not `input_grad`),
    and accumulates ∂ℓ/∂Ω += (∂ℓ/∂f)ᵀ h and ∂ℓ/∂β += Σ_n ∂ℓ/∂f_n into dW, db.
    The weight gradient is split over disjoint blocks of Ω's rows j ∈ [lo, hi): one gemm with
    β = 1 on the columns lo:hi of ∂ℓ/∂f (a strided block: lda = D_out), so nothing is copied."""
    N, D_in = x.shape
    D_out = W.shape[0]
    isz = x.itemsize
    for t in prange(nthreads):
        lo, hi = t * D_out // nthreads, (t + 1) * D_out // nthreads
        if hi > lo:
            gemm(ROW_MAJOR, TRANS, NO_TRANS, hi - lo, D_in, N, 1.0, df.ctypes.data + lo * isz, D_out,
                 x.ctypes.data, D_in, 1.0, dW.ctypes.data + lo * D_in * isz, D_in)
            dbt = db[lo:hi]
            for n in range(N):
                dbt += df[n, lo:hi]
    dx = np.empty((N if input_grad else 0, D_in), x.dtype)
    if input_grad:
        for t in prange(nthreads):               # disjoint blocks of the batch
            lo, hi = t * N // nthreads, (t + 1) * N // nthreads
            if hi > lo:
                gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, hi - lo, D_in, D_out, 1.0, df.ctypes.data + lo * D_out * isz,
                     D_out, W.ctypes.data, D_in, 0.0, dx.ctypes.data + lo * D_in * isz, D_in)
    return dx


def default_uniform(rng, shape, fan_in, dtype):
    """torch.nn.Linear/Conv default: U(−1/√fan_in, 1/√fan_in) (kaiming_uniform with a = √5)."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class Linear(Layer):
    """f = β + Ω h with Ω = `weight` (out_features, in_features) and β = `bias` (out_features,).

    Initialised as torch.nn.Linear, U(±1/√in_features), from `rng` (a numpy Generator or a seed).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float64, rng=None):
        self.in_features = check_int("in_features", in_features, low=1)
        self.out_features = check_int("out_features", out_features, low=1)
        self.dtype = check_dtype(dtype)
        rng = np.random.default_rng(rng)
        self.weight = Parameter(default_uniform(rng, (out_features, in_features), in_features, self.dtype))
        self.has_bias = bool(bias)
        if self.has_bias:
            self.bias = Parameter(default_uniform(rng, (out_features,), in_features, self.dtype))
        self._zero_bias = np.zeros(out_features, self.dtype)
        self._x = None

    def _chunks(self, n_rows):
        return chunks_for(n_rows, row_cost=self.in_features * self.out_features)

    def _b(self):
        return self.bias.value if self.has_bias else self._zero_bias

    def forward(self, x, train=True):
        x = self._check_input(x, shape=(None, self.in_features))
        self._x = x
        return parallel_call(linear_forward, self._chunks(x.shape[0]), x, self.weight.value, self._b(),
                             gemm_for(self.dtype))

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        dy = self._check_input(dy, name="dy", shape=(self._x.shape[0], self.out_features), finite=False)
        db = self.bias.grad if self.has_bias else np.zeros_like(self._zero_bias)
        dx = parallel_call(linear_backward, self._chunks(dy.shape[0]), dy, self._x, self.weight.value,
                           self.weight.grad, db, input_grad, gemm_for(self.dtype))
        return dx if input_grad else None

    def extra_repr(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.has_bias}
