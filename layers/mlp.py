"""The notes' multi-layer perceptron (000 §4.2 and §7), with fused forward and backward kernels.

Forward pass, storing every quantity (000 §7.1.1, "Summarizing"):
    f_0 = β_0 + Ω_0 x
    h_k = a[f_{k−1}]              k = 1 … K
    f_k = β_k + Ω_k h_k           k = 1 … K      (f_K is the output: no activation on it)
Backward pass, from ∂ℓ/∂f_K (given by the loss) down to k = 0:
    ∂ℓ/∂β_k     = ∂ℓ/∂f_k
    ∂ℓ/∂Ω_k     = ∂ℓ/∂f_k h_kᵀ                 (h_0 = x)
    ∂ℓ/∂f_{k−1} = a'[f_{k−1}] ⊙ Ω_kᵀ ∂ℓ/∂f_k

Notes ↔ code: batch-first rows, so f_k is stored as (N, D_{k+1}) and the sums over the batch of
the per-example gradients are matrix products: ∂ℓ/∂Ω_k = (∂ℓ/∂f_k)ᵀ h_k, ∂ℓ/∂f_{k−1} =
a'[f_{k−1}] ⊙ (∂ℓ/∂f_k Ω_k).

Storage: all Ω_k, β_k live in one flat vector θ (layer by layer: Ω_0, β_0, Ω_1, β_1, …), so the
kernels take one array; `weight`/`bias` Parameters are views into it. The f_k, h_k and ∂ℓ/∂f_k
of a batch live in flat buffers reused from step to step.

Speed: the forward and the ∂ℓ/∂f recursion run each thread on its own block of the batch;
the parameter gradients run each thread on its own block of Ω_k's rows, accumulated in place by
BLAS's gemm with β = 1 (engine.blas; BLAS on one thread, PERFORMANCE.md lessons 1 and 5).
"""
import numpy as np
from numba import njit, prange

from engine.checks import check_dtype, check_int
from engine.core import Layer, Parameter
from engine.blas import NO_TRANS, ROW_MAJOR, TRANS, gemm_for
from engine.threads import chunks_for, parallel_call

from .activations import ACTIVATIONS, LeakyReLU, Softplus, act_grad_row, act_row
from .dense import default_uniform


@njit(cache=True)
def _offsets(widths, N):
    """Start of Ω_k and β_k in θ, and of the (N, D_{k+1}) block of layer k in the f buffer."""
    K = widths.shape[0] - 1
    w_off = np.empty(K, np.int64)
    b_off = np.empty(K, np.int64)
    f_off = np.empty(K, np.int64)
    p, q = 0, 0
    for k in range(K):
        w_off[k] = p
        p += widths[k + 1] * widths[k]
        b_off[k] = p
        p += widths[k + 1]
        f_off[k] = q
        q += N * widths[k + 1]
    return w_off, b_off, f_off


@njit(parallel=True, cache=True)
def mlp_forward(x, theta, widths, code, p0, p1, fs, hs, gemm, nthreads):
    """Forward pass over the batch x (N, D_0). Fills fs with f_0 … f_K (f_k of layer k at its
    block, (N, D_{k+1})) and hs with h_1 … h_K laid out like fs (the last block, which would be
    a[f_K], is unused). The output f_K is the last block of fs."""
    N = x.shape[0]
    K = widths.shape[0] - 1
    w_off, b_off, f_off = _offsets(widths, N)
    isz = x.itemsize
    for t in prange(nthreads):
        lo, hi = t * N // nthreads, (t + 1) * N // nthreads
        m = hi - lo
        if m == 0:
            continue
        for k in range(K):
            d_in, d_out = widths[k], widths[k + 1]
            b = theta[b_off[k]:b_off[k] + d_out]
            f = fs[f_off[k] + lo * d_out:f_off[k] + hi * d_out].reshape((m, d_out))
            h = x.ctypes.data + lo * d_in * isz if k == 0 else hs.ctypes.data + (f_off[k - 1] + lo * d_in) * isz
            gemm(ROW_MAJOR, NO_TRANS, TRANS, m, d_out, d_in, 1.0, h, d_in,          # Ω_k h_k
                 theta.ctypes.data + w_off[k] * isz, d_in, 0.0, f.ctypes.data, d_out)
            hk = hs[f_off[k] + lo * d_out:f_off[k] + hi * d_out].reshape((m, d_out))
            for n in range(m):
                fr = f[n]
                for j in range(d_out):
                    fr[j] += b[j]                                              # f_k = β_k + Ω_k h_k
                if k < K - 1:
                    act_row(code, fr, hk[n], p0, p1)                           # h_{k+1} = a[f_k]


@njit(parallel=True, cache=True)
def mlp_backward(dout, x, theta, grad, widths, code, p0, p1, fs, hs, dfs, input_grad, gemm, nthreads):
    """Backward pass from ∂ℓ/∂f_K = dout (N, D_K). Fills dfs with ∂ℓ/∂f_k (laid out like fs),
    accumulates ∂ℓ/∂θ into grad (+=) and returns ∂ℓ/∂x (N, D_0) (empty when not `input_grad`).

    Two parallel phases: (1) the recursion ∂ℓ/∂f_{k−1} = a'[f_{k−1}] ⊙ Ω_kᵀ ∂ℓ/∂f_k runs over
    blocks of the batch (rows are independent); (2) ∂ℓ/∂Ω_k = Σ_n ∂ℓ/∂f_k h_kᵀ and ∂ℓ/∂β_k run
    over blocks of Ω_k's rows, each one gemm with β = 1 straight into grad (no thread writes
    another's rows, so there is nothing to reduce)."""
    N = x.shape[0]
    K = widths.shape[0] - 1
    w_off, b_off, f_off = _offsets(widths, N)
    isz = x.itemsize
    dx = np.empty((N if input_grad else 0, widths[0]), x.dtype)
    last = widths[K]
    for t in prange(nthreads):                                                 # 1. over the batch
        lo, hi = t * N // nthreads, (t + 1) * N // nthreads
        m = hi - lo
        if m == 0:
            continue
        dfK = dfs[f_off[K - 1] + lo * last:f_off[K - 1] + hi * last].reshape((m, last))
        dfK[:] = dout[lo:hi]                                                   # ∂ℓ/∂f_K
        for k in range(K - 1, 0, -1):
            d_in, d_out = widths[k], widths[k + 1]
            df = dfs[f_off[k] + lo * d_out:f_off[k] + hi * d_out]
            dprev = dfs[f_off[k - 1] + lo * d_in:f_off[k - 1] + hi * d_in].reshape((m, d_in))
            fprev = fs[f_off[k - 1] + lo * d_in:f_off[k - 1] + hi * d_in].reshape((m, d_in))
            gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, d_in, d_out, 1.0, df.ctypes.data, d_out,
                 theta.ctypes.data + w_off[k] * isz, d_in, 0.0, dprev.ctypes.data, d_in)  # Ω_kᵀ ∂ℓ/∂f_k
            for n in range(m):
                act_grad_row(code, fprev[n], dprev[n], p0, p1)                 # ⊙ a'[f_{k−1}]
        if input_grad:
            df0 = dfs[lo * widths[1]:hi * widths[1]]
            gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, m, widths[0], widths[1], 1.0, df0.ctypes.data, widths[1],
                 theta.ctypes.data, widths[0], 0.0, dx.ctypes.data + lo * widths[0] * isz, widths[0])  # Ω_0ᵀ ∂ℓ/∂f_0
    for t in prange(nthreads):                                                 # 2. over rows of Ω_k
        for k in range(K):
            d_in, d_out = widths[k], widths[k + 1]
            lo, hi = t * d_out // nthreads, (t + 1) * d_out // nthreads
            if hi == lo:
                continue
            df = dfs[f_off[k]:f_off[k] + N * d_out].reshape((N, d_out))
            h = x.ctypes.data + 0 * isz if k == 0 else hs.ctypes.data + f_off[k - 1] * isz
            gemm(ROW_MAJOR, TRANS, NO_TRANS, hi - lo, d_in, N, 1.0, df.ctypes.data + lo * isz, d_out,
                 h, d_in, 1.0, grad.ctypes.data + (w_off[k] + lo * d_in) * isz, d_in)  # ∂ℓ/∂Ω_k += ∂ℓ/∂f_kᵀ h_k
            gb = grad[b_off[k] + lo:b_off[k] + hi]
            for n in range(N):
                gb += df[n, lo:hi]                                             # ∂ℓ/∂β_k += Σ_n ∂ℓ/∂f_k
    return dx


class MLP(Layer):
    """The notes' MLP: widths = [D_in, D_1, …, D_K, D_out], activation a[·] on every hidden layer,
    a linear output f_K.

    After `forward`, `preactivations` holds [f_0 … f_K] and `activations` [h_1 … h_K]; after
    `backward`, `preactivation_grads` holds [∂ℓ/∂f_0 … ∂ℓ/∂f_K] (read-only views, batch first,
    of buffers the next forward/backward overwrites: copy them to keep them across steps).
    Parameters are named as the equivalent torch.nn.Sequential(Linear, act, Linear, …):
    "0.weight", "0.bias", "2.weight", … so weights copy across either way.
    """

    def __init__(self, widths, activation="relu", negative_slope=0.01, beta=1.0, threshold=20.0,
                 dtype=np.float64, rng=None):
        if not isinstance(widths, (list, tuple, np.ndarray)) or len(widths) < 2:
            raise ValueError(f"widths: expected a list of at least 2 layer sizes, got {widths!r}")
        widths = list(widths)
        for i, w in enumerate(widths):
            check_int(f"widths[{i}]", w, low=1)
        if not isinstance(activation, str) or (activation not in ACTIVATIONS and activation != "gelu_tanh"):
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS) + ['gelu_tanh']}, got {activation!r}")
        self.widths = np.array(widths, np.int64)
        self.activation = activation
        self.dtype = check_dtype(dtype)
        if activation == "gelu_tanh":
            from .activations import GELU
            proto = GELU("tanh")
        elif activation == "leaky_relu":
            proto = LeakyReLU(negative_slope)
        elif activation == "softplus":
            proto = Softplus(beta, threshold)
        else:
            proto = ACTIVATIONS[activation]()
        self.act_layer = proto                     # the equivalent standalone layer
        self._code, self._p0, self._p1 = proto.code, proto.p0, proto.p1

        rng = np.random.default_rng(rng)
        K = len(widths) - 1
        self.theta = np.empty(sum(widths[k + 1] * (widths[k] + 1) for k in range(K)), self.dtype)
        self.grad = np.zeros_like(self.theta)
        self._params = {}
        p = 0
        for k in range(K):
            d_in, d_out = widths[k], widths[k + 1]
            W = self.theta[p:p + d_out * d_in].reshape(d_out, d_in)
            W[...] = default_uniform(rng, (d_out, d_in), d_in, self.dtype)
            wp = Parameter.__new__(Parameter)
            wp.value, wp.grad = W, self.grad[p:p + d_out * d_in].reshape(d_out, d_in)
            p += d_out * d_in
            b = self.theta[p:p + d_out]
            b[...] = default_uniform(rng, (d_out,), d_in, self.dtype)
            bp = Parameter.__new__(Parameter)
            bp.value, bp.grad = b, self.grad[p:p + d_out]
            p += d_out
            self._params[f"{2 * k}.weight"], self._params[f"{2 * k}.bias"] = wp, bp
        self._x = None
        self._N = -1

    @property
    def weights(self):
        """[Ω_0 … Ω_K] (views of the parameters)."""
        return [p.value for n, p in self._params.items() if n.endswith("weight")]

    @property
    def biases(self):
        return [p.value for n, p in self._params.items() if n.endswith("bias")]

    def _buffers_for(self, N):
        if N != self._N:
            total = N * int(self.widths[1:].sum())
            self._fs = np.empty(total, self.dtype)
            self._hs = np.empty(total, self.dtype)
            self._dfs = np.empty(total, self.dtype)
            self._N = N
        return chunks_for(N, row_cost=int(self.theta.size))

    def _blocks(self, buf, count):
        out, q = [], 0
        for k in range(count):
            d = int(self.widths[k + 1])
            v = buf[q:q + self._N * d].reshape(self._N, d)
            v.flags.writeable = False
            out.append(v)
            q += self._N * d
        return out

    def forward(self, x, train=True):
        x = self._check_input(x, shape=(None, int(self.widths[0])))
        nt = self._buffers_for(x.shape[0])
        self._x = x
        self._has_grads = False
        parallel_call(mlp_forward, nt, x, self.theta, self.widths, self._code, self._p0, self._p1, self._fs, self._hs,
                      gemm_for(self.dtype))
        K = len(self.widths) - 1
        return self._fs[-x.shape[0] * int(self.widths[K]):].reshape(x.shape[0], int(self.widths[K])).copy()

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        dy = self._check_input(dy, name="dy", shape=(self._N, int(self.widths[-1])), finite=False)
        nt = self._buffers_for(self._N)
        dx = parallel_call(mlp_backward, nt, dy, self._x, self.theta, self.grad, self.widths, self._code,
                           self._p0, self._p1, self._fs, self._hs, self._dfs, input_grad, gemm_for(self.dtype))
        self._has_grads = True
        return dx if input_grad else None

    @property
    def preactivations(self):
        """[f_0, …, f_K], each (N, D_{k+1}), from the last forward."""
        self._need_forward("_x")
        return self._blocks(self._fs, len(self.widths) - 1)

    @property
    def activations(self):
        """[h_1, …, h_K] (h_k = a[f_{k−1}]), each (N, D_k), from the last forward."""
        self._need_forward("_x")
        return self._blocks(self._hs, len(self.widths) - 2)

    @property
    def preactivation_grads(self):
        """[∂ℓ/∂f_0, …, ∂ℓ/∂f_K] from the last backward."""
        if not getattr(self, "_has_grads", False):
            raise RuntimeError("MLP.preactivation_grads: call backward after forward first")
        return self._blocks(self._dfs, len(self.widths) - 1)

    def to_sequential(self):
        """The equivalent Sequential of Linear and activation layers, with the same weights."""
        from engine.core import Sequential
        from .dense import Linear
        mods = []
        K = len(self.widths) - 1
        for k in range(K):
            mods.append(Linear(int(self.widths[k]), int(self.widths[k + 1]), dtype=self.dtype))
            if k < K - 1:
                mods.append(type(self.act_layer).__new__(type(self.act_layer)))
                mods[-1].__dict__.update({k2: v for k2, v in self.act_layer.__dict__.items() if k2 != "_f"})
                mods[-1]._f = None
        seq = Sequential(*mods)
        seq.load_state_dict(self.state_dict())
        return seq

    def extra_repr(self):
        return {"widths": [int(w) for w in self.widths], "activation": self.activation}
