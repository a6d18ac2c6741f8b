"""Dense layers: Linear, f = β + Ω h (notes 000 §7), and Bilinear, f = x₁ᵀ A x₂ + b.

Linear. The notes use one column vector h per example; the code stacks the batch as rows, so
h is (N, D_in), Ω = `weight` (D_out, D_in) as in torch.nn.Linear, β = `bias` (D_out,), and
    f = h Ωᵀ + β                            (N, D_out)
    ∂ℓ/∂h = ∂ℓ/∂f Ω                         (N, D_in)     the notes' Ωᵀ ∂ℓ/∂f, row by row
    ∂ℓ/∂Ω = Σ_n ∂ℓ/∂f_n h_nᵀ = (∂ℓ/∂f)ᵀ h    (D_out, D_in)
    ∂ℓ/∂β = Σ_n ∂ℓ/∂f_n                      (D_out,)

Bilinear (torch.nn.Bilinear), two inputs x₁ (N, I), x₂ (N, J), A = `weight` (O, I, J):
    f[n, o]      = b_o + Σ_{i,j} x₁[n, i] A[o, i, j] x₂[n, j]
    ∂ℓ/∂x₁[n, i] = Σ_o ∂ℓ/∂f[n, o] Σ_j A[o, i, j] x₂[n, j]
    ∂ℓ/∂x₂[n, j] = Σ_o ∂ℓ/∂f[n, o] Σ_i x₁[n, i] A[o, i, j]
    ∂ℓ/∂A[o,i,j] = Σ_n ∂ℓ/∂f[n, o] x₁[n, i] x₂[n, j],     ∂ℓ/∂b_o = Σ_n ∂ℓ/∂f[n, o]

Reading order: the reference kernels (the sums as loops), the Layer classes, then the fast
kernels (BLAS products over chunks of the batch).
"""
import numpy as np
from numba import njit, prange

from engine.blas import NO_TRANS, TRANS, gemm_at, gemm_for
from engine.checks import check_bool, check_dtype, check_int, check_rng
from engine.core import Layer, Parameter, input_grad_flags, use_reference
from engine.init import default_uniform
from engine.threads import chunks_for, parallel_call


# ---------------------------------------------------------------------------------------------
# reference kernels: the equations above, as loops
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def linear_forward_ref(x, W, b):
    """f[n, j] = β_j + Σ_i Ω[j, i] h[n, i].  x (N, D_in), W (D_out, D_in), b (D_out,) -> f (N, D_out)."""
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
def linear_backward_ref(df, x, W, dW, db):
    """∂ℓ/∂h[n, i] = Σ_j ∂ℓ/∂f[n, j] Ω[j, i] (returned); ∂ℓ/∂Ω += (∂ℓ/∂f)ᵀ h and
    ∂ℓ/∂β += Σ_n ∂ℓ/∂f_n accumulated into dW, db."""
    N, D_in = x.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for j in range(W.shape[0]):
            db[j] += df[n, j]
            for i in range(D_in):
                dW[j, i] += df[n, j] * x[n, i]
                dx[n, i] += df[n, j] * W[j, i]
    return dx


@njit(cache=True)
def bilinear_forward_ref(x1, x2, A, b):
    """f[n, o] = b_o + Σ_{i,j} x₁[n, i] A[o, i, j] x₂[n, j].  -> f (N, O)."""
    N, I = x1.shape
    O, _, J = A.shape
    f = np.empty((N, O), x1.dtype)
    for n in range(N):
        for o in range(O):
            s = b[o]
            for i in range(I):
                for j in range(J):
                    s += x1[n, i] * A[o, i, j] * x2[n, j]
            f[n, o] = s
    return f


@njit(cache=True)
def bilinear_backward_ref(df, x1, x2, A, dA, db):
    """Returns (∂ℓ/∂x₁, ∂ℓ/∂x₂); accumulates ∂ℓ/∂A and ∂ℓ/∂b into dA, db (+=)."""
    N, I = x1.shape
    O, _, J = A.shape
    dx1 = np.zeros_like(x1)
    dx2 = np.zeros_like(x2)
    for n in range(N):
        for o in range(O):
            g = df[n, o]
            db[o] += g
            for i in range(I):
                for j in range(J):
                    dx1[n, i] += g * A[o, i, j] * x2[n, j]
                    dx2[n, j] += g * x1[n, i] * A[o, i, j]
                    dA[o, i, j] += g * x1[n, i] * x2[n, j]
    return dx1, dx2


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
class Linear(Layer):
    """f = β + Ω h with Ω = `weight` (out_features, in_features) and β = `bias` (out_features,).

    Initialised as torch.nn.Linear, U(±1/√in_features), from `rng` (a numpy Generator or a seed).
    """

    def __init__(self, in_features, out_features, bias=True, dtype=np.float64, rng=None):
        self.in_features = check_int("in_features", in_features, low=1)
        self.out_features = check_int("out_features", out_features, low=1)
        self.has_bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)                   # every argument checked before the first draw
        d_in, d_out = self.in_features, self.out_features
        self.weight = Parameter(default_uniform((d_out, d_in), d_in, rng, self.dtype))
        if self.has_bias:
            self.bias = Parameter(default_uniform((d_out,), d_in, rng, self.dtype))
        self._zero_bias = np.zeros(d_out, self.dtype)

    def _chunks(self, n_rows):
        return chunks_for(n_rows, row_cost=self.in_features * self.out_features)

    def _b(self):
        return self.bias.value if self.has_bias else self._zero_bias

    def forward(self, x, train=True):
        check_bool("train", train)
        x = self._check_input(x, shape=(None, self.in_features))
        if use_reference():
            f = linear_forward_ref(x, self.weight.value, self._b())
        else:
            f = parallel_call(linear_forward, self._chunks(x.shape[0]), x, self.weight.value, self._b(),
                              gemm_for(self.dtype))
        self._save(x)
        return f

    def backward(self, dy, *, input_grad=True):
        x, = self._saved()
        dy = self._check_input(dy, name="dy", shape=(x.shape[0], self.out_features), finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        db = self.bias.grad if self.has_bias else np.zeros_like(self._zero_bias)
        if use_reference():
            dx = linear_backward_ref(dy, x, self.weight.value, self.weight.grad, db)
        else:
            dx = parallel_call(linear_backward, self._chunks(dy.shape[0]), dy, x, self.weight.value,
                               self.weight.grad, db, input_grad, gemm_for(self.dtype))
        return dx if input_grad else None

    def extra_repr(self):
        return {"in_features": self.in_features, "out_features": self.out_features, "bias": self.has_bias}


class Bilinear(Layer):
    """f = x₁ᵀ A x₂ + b, as torch.nn.Bilinear: `weight` A (out_features, in1_features,
    in2_features), `bias` b (out_features,), both initialised U(±1/√in1_features).

    forward(x1, x2) -> f (N, out_features); backward(df) -> (∂ℓ/∂x₁, ∂ℓ/∂x₂), with
    `input_grad` a bool or one per input (None for an input whose gradient is not wanted)."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, dtype=np.float64, rng=None):
        self.in1_features = check_int("in1_features", in1_features, low=1)
        self.in2_features = check_int("in2_features", in2_features, low=1)
        self.out_features = check_int("out_features", out_features, low=1)
        self.has_bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)                   # every argument checked before the first draw
        O, I = self.out_features, self.in1_features
        self.weight = Parameter(default_uniform((O, I, self.in2_features), I, rng, self.dtype))
        if self.has_bias:
            self.bias = Parameter(default_uniform((O,), I, rng, self.dtype))
        self._zero_bias = np.zeros(O, self.dtype)

    def forward(self, x1, x2, train=True):
        check_bool("train", train)
        x1 = self._check_input(x1, name="x1", shape=(None, self.in1_features))
        x2 = self._check_input(x2, name="x2", shape=(x1.shape[0], self.in2_features))
        b = self.bias.value if self.has_bias else self._zero_bias
        kernel = bilinear_forward_ref if use_reference() else bilinear_forward
        f = kernel(x1, x2, self.weight.value, b)
        self._save(x1, x2)
        return f

    def backward(self, dy, *, input_grad=True):
        x1, x2 = self._saved()
        flags = input_grad_flags(input_grad, 2)
        dy = self._check_input(dy, name="dy", shape=(x1.shape[0], self.out_features), finite=False)
        self._release()
        db = self.bias.grad if self.has_bias else np.zeros_like(self._zero_bias)
        kernel = bilinear_backward_ref if use_reference() else bilinear_backward
        dx1, dx2 = kernel(dy, x1, x2, self.weight.value, self.weight.grad, db)
        return (dx1 if flags[0] else None), (dx2 if flags[1] else None)

    def extra_repr(self):
        return {"in1_features": self.in1_features, "in2_features": self.in2_features,
                "out_features": self.out_features, "bias": self.has_bias}


# ---------------------------------------------------------------------------------------------
# fast kernels: BLAS products, the batch (or Ω's rows) split over threads
# ---------------------------------------------------------------------------------------------
# Speed (PERFORMANCE.md): the kernels split rows into `nthreads` chunks with `prange` and call
# BLAS's gemm on each (one BLAS thread, see engine.threads and engine.blas); the weight gradient
# is split over disjoint blocks of Ω's rows, so no two threads write the same element.
@njit(parallel=True, cache=True)
def linear_forward(x, W, b, gemm, nthreads):
    """f = h Ωᵀ + β.  x (N, D_in), W (D_out, D_in), b (D_out,) -> f (N, D_out)."""
    N, D_in = x.shape
    D_out = W.shape[0]
    f = np.empty((N, D_out), x.dtype)
    for t in prange(nthreads):                   # disjoint blocks of the batch
        lo, hi = t * N // nthreads, (t + 1) * N // nthreads
        if hi > lo:
            # f[lo:hi] = h[lo:hi] Ωᵀ
            gemm_at(gemm, hi - lo, D_out, D_in, 1.0, x, lo * D_in, D_in, NO_TRANS, W, 0, D_in, TRANS,
                    0.0, f, lo * D_out, D_out)
            for n in range(lo, hi):
                fn = f[n]
                for j in range(D_out):
                    fn[j] += b[j]
    return f


@njit(parallel=True, cache=True)
def linear_backward(df, x, W, dW, db, input_grad, gemm, nthreads):
    """Given ∂ℓ/∂f (N, D_out): returns ∂ℓ/∂h = ∂ℓ/∂f Ω (N, D_in) (empty when not `input_grad`),
    and accumulates ∂ℓ/∂Ω += (∂ℓ/∂f)ᵀ h and ∂ℓ/∂β += Σ_n ∂ℓ/∂f_n into dW, db.
    Thread t takes the block of the batch [n0, n1) for both: ∂ℓ/∂h[n0:n1], and the block's share
    of the sums over n, (∂ℓ/∂f[n0:n1])ᵀ h[n0:n1], added into dW by thread 0 (β = 1) and into a
    buffer of its own by the others, which are added after the parallel region. Splitting the
    sum (K = N) rather than Ω's rows keeps each product's M and N whole: OpenBLAS ran the halves
    of a 128 x 512 (K = 2048) product 15% faster that way (64 rows each: 1.06 ms, K halves:
    0.91 ms, one thread, 2026-12-06)."""
    N, D_in = x.shape
    D_out = W.shape[0]
    dx = np.empty((N if input_grad else 0, D_in), x.dtype)
    part = np.empty((nthreads - 1, D_out, D_in), x.dtype)      # the sums of threads 1 … nthreads−1
    pdb = np.empty((nthreads, D_out), db.dtype)
    for t in prange(nthreads):
        n0, n1 = t * N // nthreads, (t + 1) * N // nthreads
        pb = pdb[t]
        for j in range(D_out):
            pb[j] = 0.0
        if t == 0:
            # ∂ℓ/∂Ω += ∂ℓ/∂f[n0:n1]ᵀ h[n0:n1]
            gemm_at(gemm, D_out, D_in, n1 - n0, 1.0, df, n0 * D_out, D_out, TRANS, x, n0 * D_in, D_in, NO_TRANS,
                    1.0, dW, 0, D_in)
        else:
            gemm_at(gemm, D_out, D_in, n1 - n0, 1.0, df, n0 * D_out, D_out, TRANS, x, n0 * D_in, D_in, NO_TRANS,
                    0.0, part, (t - 1) * D_out * D_in, D_in)
        for n in range(n0, n1):
            dfn = df[n]
            for j in range(D_out):
                pb[j] += dfn[j]
        if input_grad and n1 > n0:
            # ∂ℓ/∂h[n0:n1] = ∂ℓ/∂f[n0:n1] Ω
            gemm_at(gemm, n1 - n0, D_in, D_out, 1.0, df, n0 * D_out, D_out, NO_TRANS, W, 0, D_in, NO_TRANS,
                    0.0, dx, n0 * D_in, D_in)
    for t in range(nthreads - 1):           # explicit loops: `dW += part[t]` would be a parallel region
        pt = part[t]
        for j in range(D_out):
            dWj, pj = dW[j], pt[j]
            for i in range(D_in):
                dWj[i] += pj[i]
    for t in range(nthreads):
        for j in range(D_out):
            db[j] += pdb[t, j]
    return dx


@njit(cache=True)
def bilinear_forward(x1, x2, A, b):
    """U = x₁ A (U[n, o, j] = Σ_i x₁[n, i] A[o, i, j]) as one product, then f[n, o] = b_o + Σ_j U[n, o, j] x₂[n, j]."""
    N, I = x1.shape
    O, _, J = A.shape
    At = np.ascontiguousarray(A.transpose(1, 0, 2)).reshape(I, O * J)
    U = np.dot(x1, At).reshape(N, O, J)
    f = np.empty((N, O), x1.dtype)
    for n in range(N):
        for o in range(O):
            f[n, o] = b[o] + np.dot(U[n, o], x2[n])
    return f


@njit(cache=True)
def bilinear_backward(df, x1, x2, A, dA, db):
    """With M[n, o, j] = ∂ℓ/∂f[n, o] x₂[n, j]:  ∂ℓ/∂x₁ = M A (summing o, j), ∂ℓ/∂A += x₁ᵀ M
    (as (I, O, J), transposed), ∂ℓ/∂x₂[n] = Σ_o ∂ℓ/∂f[n, o] U[n, o] with U = x₁ A."""
    N, I = x1.shape
    O, _, J = A.shape
    M = np.empty((N, O, J), x1.dtype)
    for n in range(N):
        for o in range(O):
            M[n, o] = df[n, o] * x2[n]
    Mf = M.reshape(N, O * J)
    Ai = np.ascontiguousarray(A.transpose(0, 2, 1)).reshape(O * J, I)
    dx1 = np.dot(Mf, Ai)
    dAt = np.dot(x1.T.copy(), Mf).reshape(I, O, J)
    for o in range(O):
        dA[o] += dAt[:, o, :]
    At = np.ascontiguousarray(A.transpose(1, 0, 2)).reshape(I, O * J)
    U = np.dot(x1, At).reshape(N, O, J)
    dx2 = np.zeros_like(x2)
    for n in range(N):
        for o in range(O):
            dx2[n] += df[n, o] * U[n, o]
        db += df[n]
    return dx1, dx2
