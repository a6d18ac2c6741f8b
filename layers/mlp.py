"""The notes' multi-layer perceptron (000 §4.2 and §7): K hidden layers, output f_K.

Forward pass, storing every quantity (000 §7.1.1):
    f_0 = β_0 + Ω_0 x
    h_k = a[f_{k−1}]              k = 1 … K
    f_k = β_k + Ω_k h_k           k = 1 … K      (f_K is the output: no activation on it)
Backward pass, from ∂ℓ/∂f_K (given by the loss) down to k = 0 (h_0 = x):
    ∂ℓ/∂β_k     = ∂ℓ/∂f_k                         k = K … 0
    ∂ℓ/∂Ω_k     = ∂ℓ/∂f_k h_kᵀ                    k = K … 0
    ∂ℓ/∂f_{k−1} = a'[f_{k−1}] ⊙ Ω_kᵀ ∂ℓ/∂f_k       k = K … 1
The notes' "Summarizing" block is garbled in the extracted text (its f_0 lacks x, its indices run
over k ∈ {0 … K} in every line, and its ReLU indicator is written 𝕀[g_{k−1} > 0]); the equations
above are the standard form of the worked derivation just before it, with a general activation
a[·] (a'[f] = 𝕀[f > 0] for ReLU).

Notes ↔ code: batch-first rows, so f_k is stored as (N, D_{k+1}) and the sums over the batch of
the per-example gradients are matrix products: f_k = h_k Ω_kᵀ + β_k, ∂ℓ/∂Ω_k = (∂ℓ/∂f_k)ᵀ h_k,
∂ℓ/∂f_{k−1} = a'[f_{k−1}] ⊙ (∂ℓ/∂f_k Ω_k). `widths` = [D_0, D_1, …, D_K, D_{K+1}]: K hidden
layers, K + 1 weight matrices.

Reading order: the reference kernels (the equations above, one line each, over lists of f_k,
h_k), the MLP class, then the fused fast kernels.
"""
import numba
import numpy as np
from numba import njit, prange
from numba.typed import List

from engine.blas import NO_TRANS, TRANS, gemm_at, gemm_for
from engine.checks import check_bool, check_dtype, check_int, check_rng
from engine.core import Layer, Parameter, Sequential, use_reference
from engine.init import default_uniform
from engine.threads import chunks_for, parallel_call

from .activations import (activation_backward_ref, activation_forward_ref, act_grad_row, act_row,
                          make_activation)
from .dense import Linear


# ---------------------------------------------------------------------------------------------
# reference kernels: the notes' forward and backward pass, line by line
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def mlp_forward_ref(x, Omegas, betas, code, p0, p1):
    """x (N, D_0); Omegas[k] = Ω_k (D_{k+1}, D_k), betas[k] = β_k (D_{k+1},), k = 0 … K.
    Returns the lists [f_0 … f_K] (f_k: (N, D_{k+1})) and [h_1 … h_K] (h_k: (N, D_k))."""
    K = len(Omegas) - 1
    fs = List()
    hs = List()
    fs.append(np.dot(x, Omegas[0].T) + betas[0])                       # f_0 = β_0 + Ω_0 x
    for k in range(1, K + 1):
        f = fs[k - 1]
        h = activation_forward_ref(f.ravel(), code, p0, p1).reshape(f.shape)
        hs.append(h)                                                     # h_k = a[f_{k−1}]
        fs.append(np.dot(h, Omegas[k].T) + betas[k])                     # f_k = β_k + Ω_k h_k
    return fs, hs


@njit(cache=True)
def mlp_backward_ref(dfK, x, Omegas, fs, hs, dOmegas, dbetas, code, p0, p1):
    """From ∂ℓ/∂f_K = dfK (N, D_{K+1}): accumulates ∂ℓ/∂Ω_k, ∂ℓ/∂β_k into dOmegas[k], dbetas[k]
    (+=) and returns (∂ℓ/∂x, [∂ℓ/∂f_0 … ∂ℓ/∂f_K])."""
    K = len(Omegas) - 1
    dfs = List()
    for k in range(K + 1):
        dfs.append(np.empty_like(fs[k]))
    dfs[K][:] = dfK
    dx = np.empty_like(x)
    for k in range(K, -1, -1):
        h = x if k == 0 else hs[k - 1]
        dbetas[k] += dfs[k].sum(axis=0)                                  # ∂ℓ/∂β_k = ∂ℓ/∂f_k
        dOmegas[k] += np.dot(dfs[k].T, h)                                # ∂ℓ/∂Ω_k = ∂ℓ/∂f_k h_kᵀ
        dh = np.dot(dfs[k], Omegas[k])                                   # Ω_kᵀ ∂ℓ/∂f_k
        if k > 0:
            f = fs[k - 1]                                                # ∂ℓ/∂f_{k−1} = a'[f_{k−1}] ⊙ Ω_kᵀ ∂ℓ/∂f_k
            dfs[k - 1][:] = activation_backward_ref(dh.ravel(), f.ravel(), code, p0, p1).reshape(f.shape)
        else:
            dx[:] = dh                                                   # ∂ℓ/∂x = Ω_0ᵀ ∂ℓ/∂f_0
    return dx, dfs


# ---------------------------------------------------------------------------------------------
# the layer
# ---------------------------------------------------------------------------------------------
def _typed_list(arrays, like):
    """A numba typed List of 2D arrays, also when empty (no hidden layer: no h_k)."""
    return List(arrays) if arrays else List.empty_list(numba.typeof(like))


class _Call:
    """One forward call's stored quantities: the lists f_0 … f_K, h_1 … h_K and, after its
    backward, ∂ℓ/∂f_0 … ∂ℓ/∂f_K (views into flat buffers on the fast path)."""

    def __init__(self, x, fs, hs, flat=None):
        self.x, self.fs, self.hs, self.dfs, self.flat = x, fs, hs, None, flat


class MLP(Layer):
    """The notes' MLP: widths = [D_0, D_1, …, D_K, D_{K+1}], activation a[·] on each of the K
    hidden layers, a linear output f_K.

    After `forward`, `preactivations` holds [f_0 … f_K] and `activations` [h_1 … h_K] of the last
    forward; after `backward`, `preactivation_grads` holds [∂ℓ/∂f_0 … ∂ℓ/∂f_K] of the last
    backward (read-only views, batch first, of buffers a later forward may overwrite: copy them
    to keep them across steps). Parameters are named as the equivalent
    torch.nn.Sequential(Linear, act, Linear, …): "0.weight", "0.bias", "2.weight", … so weights
    copy across either way. All Ω_k, β_k live in one flat vector `theta` (layer by layer), their
    gradients in `grad`: the fused kernels take one array, the Parameters are views into it.
    """

    def __init__(self, widths, activation="relu", negative_slope=0.01, beta=1.0, threshold=20.0,
                 dtype=np.float64, rng=None):
        if not isinstance(widths, (list, tuple, np.ndarray)) or getattr(widths, "ndim", 1) != 1:
            raise TypeError(f"widths: expected a list of layer sizes, got {type(widths).__name__} {widths!r}")
        if len(widths) < 2:
            raise ValueError(f"widths: expected a list of at least 2 layer sizes, got {widths!r}")
        widths = [check_int(f"widths[{i}]", w, low=1) for i, w in enumerate(widths)]
        self.act_layer = make_activation(activation, negative_slope, beta, threshold)   # the standalone equivalent
        self._act_args = (activation, negative_slope, beta, threshold)
        self.widths = np.array(widths, np.int64)
        self.activation = activation
        self.dtype = check_dtype(dtype)
        self._code, self._p0, self._p1 = self.act_layer.code, self.act_layer.p0, self.act_layer.p1

        rng = check_rng("rng", rng)                   # every argument checked before the first draw
        self.theta = np.empty(sum(widths[k + 1] * (widths[k] + 1) for k in range(len(widths) - 1)), self.dtype)
        self.grad = np.zeros_like(self.theta)
        p = 0
        for k in range(len(widths) - 1):
            d_in, d_out = widths[k], widths[k + 1]
            W, dW = (a[p:p + d_out * d_in].reshape(d_out, d_in) for a in (self.theta, self.grad))
            W[...] = default_uniform((d_out, d_in), d_in, rng, self.dtype)
            p += d_out * d_in
            b, db = self.theta[p:p + d_out], self.grad[p:p + d_out]
            b[...] = default_uniform((d_out,), d_in, rng, self.dtype)
            p += d_out
            self.register_parameter(f"{2 * k}.weight", Parameter(W, grad=dW))
            self.register_parameter(f"{2 * k}.bias", Parameter(b, grad=db))
        self._pool, self._pool_N = [], -1
        self._last = self._last_backward = None

    @property
    def K(self):
        """The number of hidden layers (the notes' K)."""
        return len(self.widths) - 2

    @property
    def weights(self):
        """[Ω_0 … Ω_K] (views of the parameters)."""
        return [p.value for n, p in self.named_parameters() if n.endswith("weight")]

    @property
    def biases(self):
        """[β_0 … β_K] (views of the parameters)."""
        return [p.value for n, p in self.named_parameters() if n.endswith("bias")]

    def _grads(self, kind):
        return [p.grad for n, p in self.named_parameters() if n.endswith(kind)]

    # ---- fast-path buffers: one set per call in flight, reused once its backward is done ----
    def _take_buffers(self, N):
        if N != self._pool_N:
            self._pool, self._pool_N = [], N
        if self._pool:
            return self._pool.pop()
        total = N * int(self.widths[1:].sum())
        return tuple(np.empty(total, self.dtype) for _ in range(3))     # f, h, ∂ℓ/∂f

    def _blocks(self, buf, N, count):
        out, q = [], 0
        for k in range(count):
            d = int(self.widths[k + 1])
            out.append(buf[q:q + N * d].reshape(N, d))
            q += N * d
        return out

    def forward(self, x, train=True):
        check_bool("train", train)
        x = self._check_input(x, shape=(None, int(self.widths[0])))
        N, K = x.shape[0], self.K
        if use_reference():
            fs, hs = mlp_forward_ref(x, List(self.weights), List(self.biases), self._code, self._p0, self._p1)
            call = _Call(x, list(fs), list(hs))
        else:
            flat = self._take_buffers(N)
            parallel_call(mlp_forward, chunks_for(N, row_cost=int(self.theta.size)), x, self.theta, self.widths,
                          self._code, self._p0, self._p1, flat[0], flat[1], gemm_for(self.dtype))
            call = _Call(x, self._blocks(flat[0], N, K + 1), self._blocks(flat[1], N, K), flat)
        self._last = call
        self._save(call)
        return call.fs[K].copy()

    def backward(self, dy, *, input_grad=True):
        call, = self._saved()
        N, K = call.x.shape[0], self.K
        dy = self._check_input(dy, name="dy", shape=(N, int(self.widths[-1])), finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        if use_reference():
            dx, dfs = mlp_backward_ref(dy, call.x, List(self.weights), List(call.fs), _typed_list(call.hs, call.x),
                                       List(self._grads("weight")), List(self._grads("bias")),
                                       self._code, self._p0, self._p1)
            call.dfs = list(dfs)
        else:
            dx = parallel_call(mlp_backward, chunks_for(N, row_cost=int(self.theta.size)), dy, call.x, self.theta,
                               self.grad, self.widths, self._code, self._p0, self._p1, call.flat[0], call.flat[1],
                               call.flat[2], input_grad, gemm_for(self.dtype))
            call.dfs = self._blocks(call.flat[2], N, K + 1)
            if N == self._pool_N:              # free for the next forward of this batch size; views stay readable
                self._pool.append(call.flat)
        self._last_backward = call
        return dx if input_grad else None

    @staticmethod
    def _read_only(arrays):
        out = []
        for a in arrays:
            v = a.view()
            v.flags.writeable = False
            out.append(v)
        return out

    @property
    def preactivations(self):
        """[f_0, …, f_K], each (N, D_{k+1}), from the last forward."""
        if self._last is None:
            raise RuntimeError("MLP.preactivations: call forward first")
        return self._read_only(self._last.fs)

    @property
    def activations(self):
        """[h_1, …, h_K] (h_k = a[f_{k−1}]), each (N, D_k), from the last forward."""
        if self._last is None:
            raise RuntimeError("MLP.activations: call forward first")
        return self._read_only(self._last.hs)

    @property
    def preactivation_grads(self):
        """[∂ℓ/∂f_0, …, ∂ℓ/∂f_K] from the last backward."""
        if self._last_backward is None:
            raise RuntimeError("MLP.preactivation_grads: call backward after forward first")
        return self._read_only(self._last_backward.dfs)

    def to_sequential(self):
        """The equivalent Sequential of Linear and activation layers, with the same weights."""
        mods = []
        for k in range(self.K + 1):
            mods.append(Linear(int(self.widths[k]), int(self.widths[k + 1]), dtype=self.dtype))
            if k < self.K:
                mods.append(make_activation(*self._act_args))
        seq = Sequential(*mods)
        seq.load_state_dict(self.state_dict())
        return seq

    def extra_repr(self):
        return {"widths": [int(w) for w in self.widths], "activation": self.activation}


# ---------------------------------------------------------------------------------------------
# fast kernels: the whole network fused, θ and the stored quantities in flat buffers
# ---------------------------------------------------------------------------------------------
# The forward and the ∂ℓ/∂f recursion run each thread on its own block of the batch; the
# parameter gradients run each thread on its own block of Ω_k's rows, accumulated in place by
# BLAS's gemm with β = 1 (engine.blas; BLAS on one thread, PERFORMANCE.md lessons 1 and 5).
@njit(cache=True)
def _offsets(widths, N):
    """Start of Ω_k and β_k in θ, and of the (N, D_{k+1}) block of f_k in the f buffer, k = 0 … K."""
    K = widths.shape[0] - 2
    w_off = np.empty(K + 1, np.int64)
    b_off = np.empty(K + 1, np.int64)
    f_off = np.empty(K + 1, np.int64)
    p, q = 0, 0
    for k in range(K + 1):
        w_off[k] = p
        p += widths[k + 1] * widths[k]
        b_off[k] = p
        p += widths[k + 1]
        f_off[k] = q
        q += N * widths[k + 1]
    return w_off, b_off, f_off


@njit(parallel=True, cache=True)
def mlp_forward(x, theta, widths, code, p0, p1, fs, hs, gemm, nthreads):
    """Forward pass over the batch x (N, D_0). Fills fs with f_0 … f_K (f_k at its block,
    (N, D_{k+1})) and hs with h_1 … h_K laid out like fs (h_{k+1} = a[f_k] in f_k's block; the
    last block, which would be a[f_K], is unused). The output f_K is the last block of fs."""
    N = x.shape[0]
    K = widths.shape[0] - 2
    w_off, b_off, f_off = _offsets(widths, N)
    for t in prange(nthreads):
        lo, hi = t * N // nthreads, (t + 1) * N // nthreads
        m = hi - lo
        if m == 0:
            continue
        for k in range(K + 1):
            d_in, d_out = widths[k], widths[k + 1]
            b = theta[b_off[k]:b_off[k] + d_out]
            if k == 0:                                                 # Ω_0 x over rows lo:hi
                gemm_at(gemm, m, d_out, d_in, 1.0, x, lo * d_in, d_in, NO_TRANS, theta, w_off[0], d_in, TRANS,
                        0.0, fs, f_off[0] + lo * d_out, d_out)
            else:                                                      # Ω_k h_k over rows lo:hi
                gemm_at(gemm, m, d_out, d_in, 1.0, hs, f_off[k - 1] + lo * d_in, d_in, NO_TRANS, theta, w_off[k],
                        d_in, TRANS, 0.0, fs, f_off[k] + lo * d_out, d_out)
            f = fs[f_off[k] + lo * d_out:f_off[k] + hi * d_out].reshape((m, d_out))
            h = hs[f_off[k] + lo * d_out:f_off[k] + hi * d_out].reshape((m, d_out))
            for n in range(m):
                fr = f[n]
                for j in range(d_out):
                    fr[j] += b[j]                                      # f_k = β_k + Ω_k h_k
                if k < K:
                    act_row(code, fr, h[n], p0, p1)                    # h_{k+1} = a[f_k]


@njit(parallel=True, cache=True)
def mlp_backward(dout, x, theta, grad, widths, code, p0, p1, fs, hs, dfs, input_grad, gemm, nthreads):
    """Backward pass from ∂ℓ/∂f_K = dout (N, D_{K+1}). Fills dfs with ∂ℓ/∂f_k (laid out like fs),
    accumulates ∂ℓ/∂θ into grad (+=) and returns ∂ℓ/∂x (N, D_0) (empty when not `input_grad`).

    Two parallel phases: (1) the recursion ∂ℓ/∂f_{k−1} = a'[f_{k−1}] ⊙ Ω_kᵀ ∂ℓ/∂f_k runs over
    blocks of the batch (rows are independent); (2) ∂ℓ/∂Ω_k = Σ_n ∂ℓ/∂f_k h_kᵀ and ∂ℓ/∂β_k run
    over blocks of Ω_k's rows, each one gemm with β = 1 straight into grad (no thread writes
    another's rows, so there is nothing to reduce)."""
    N = x.shape[0]
    K = widths.shape[0] - 2
    w_off, b_off, f_off = _offsets(widths, N)
    dx = np.empty((N if input_grad else 0, widths[0]), x.dtype)
    last = widths[K + 1]
    for t in prange(nthreads):                                         # 1. over the batch
        lo, hi = t * N // nthreads, (t + 1) * N // nthreads
        m = hi - lo
        if m == 0:
            continue
        dfK = dfs[f_off[K] + lo * last:f_off[K] + hi * last].reshape((m, last))
        dfK[:] = dout[lo:hi]                                           # ∂ℓ/∂f_K
        for k in range(K, 0, -1):
            d_in, d_out = widths[k], widths[k + 1]
            # ∂ℓ/∂f_{k−1}[lo:hi] = ∂ℓ/∂f_k[lo:hi] Ω_k   (the notes' Ω_kᵀ ∂ℓ/∂f_k, row by row)
            gemm_at(gemm, m, d_in, d_out, 1.0, dfs, f_off[k] + lo * d_out, d_out, NO_TRANS, theta, w_off[k], d_in,
                    NO_TRANS, 0.0, dfs, f_off[k - 1] + lo * d_in, d_in)
            dprev = dfs[f_off[k - 1] + lo * d_in:f_off[k - 1] + hi * d_in].reshape((m, d_in))
            fprev = fs[f_off[k - 1] + lo * d_in:f_off[k - 1] + hi * d_in].reshape((m, d_in))
            for n in range(m):
                act_grad_row(code, fprev[n], dprev[n], dprev[n], p0, p1)         # ⊙ a'[f_{k−1}]
        if input_grad:                                                 # ∂ℓ/∂x[lo:hi] = ∂ℓ/∂f_0[lo:hi] Ω_0
            gemm_at(gemm, m, widths[0], widths[1], 1.0, dfs, lo * widths[1], widths[1], NO_TRANS, theta, 0,
                    widths[0], NO_TRANS, 0.0, dx, lo * widths[0], widths[0])
    for t in prange(nthreads):                                         # 2. over rows of Ω_k
        for k in range(K + 1):
            d_in, d_out = widths[k], widths[k + 1]
            lo, hi = t * d_out // nthreads, (t + 1) * d_out // nthreads
            if hi == lo:
                continue
            # ∂ℓ/∂Ω_k[lo:hi] += ∂ℓ/∂f_k[:, lo:hi]ᵀ h_k   (h_0 = x)
            if k == 0:
                gemm_at(gemm, hi - lo, d_in, N, 1.0, dfs, f_off[0] + lo, d_out, TRANS, x, 0, d_in, NO_TRANS,
                        1.0, grad, w_off[0] + lo * d_in, d_in)
            else:
                gemm_at(gemm, hi - lo, d_in, N, 1.0, dfs, f_off[k] + lo, d_out, TRANS, hs, f_off[k - 1], d_in,
                        NO_TRANS, 1.0, grad, w_off[k] + lo * d_in, d_in)
            df = dfs[f_off[k]:f_off[k] + N * d_out].reshape((N, d_out))
            gb = grad[b_off[k] + lo:b_off[k] + hi]
            for n in range(N):
                gb += df[n, lo:hi]                                     # ∂ℓ/∂β_k += Σ_n ∂ℓ/∂f_k
    return dx
