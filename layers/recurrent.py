"""Recurrent layers: RNN, LSTM, GRU and their cells, with explicit backpropagation through time
(notes 000 §8, 003 §2.3–2.5, 004 §5.1–5.4), as torch.nn's.

One step, in the notes' column-vector notation (x_t the input, h_{t−1} the previous state):

RNN (003 §2.3), a = tanh or ReLU:
    h_t = a[β_x + Ω_x x_t + β_h + Ω_h h_{t−1}]
    ∂ℓ/∂p_t = a'(p_t) ⊙ ∂ℓ/∂h_t                     (tanh' = 1 − h_t², ReLU' = 𝟙[h_t > 0])
    ∂ℓ/∂x_t = Ω_xᵀ ∂ℓ/∂p_t,   ∂ℓ/∂h_{t−1} = Ω_hᵀ ∂ℓ/∂p_t,
    ∂ℓ/∂Ω_x += ∂ℓ/∂p_t x_tᵀ,  ∂ℓ/∂Ω_h += ∂ℓ/∂p_t h_{t−1}ᵀ,  ∂ℓ/∂β_x = ∂ℓ/∂β_h += ∂ℓ/∂p_t

LSTM (003 §2.4 with torch's output gate, see ../shared/notes/README.md), gates stacked i, f, g, o:
    [i; f; g; o] = [σ; σ; tanh; σ](β_x + Ω_x x_t + β_h + Ω_h h_{t−1})
    c_t = f ⊙ c_{t−1} + i ⊙ g,       h_t = o ⊙ tanh(c_t)
    backward, with ∂ℓ/∂c_t accumulating the path through h_t:
    ∂ℓ/∂o = ∂ℓ/∂h_t ⊙ tanh(c_t),     ∂ℓ/∂c_t += ∂ℓ/∂h_t ⊙ o ⊙ (1 − tanh²(c_t))
    ∂ℓ/∂i = ∂ℓ/∂c_t ⊙ g,  ∂ℓ/∂g = ∂ℓ/∂c_t ⊙ i,  ∂ℓ/∂f = ∂ℓ/∂c_t ⊙ c_{t−1},  ∂ℓ/∂c_{t−1} = ∂ℓ/∂c_t ⊙ f
    preactivations: σ' = s(1 − s), tanh' = 1 − g²; then as the RNN with p = the four stacked.

GRU (003 §2.5 with torch's placement of the reset gate), gates stacked r, z, n:
    r = σ(W_ir x + b_ir + W_hr h + b_hr),   z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)),     h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
    ∂ℓ/∂n = ∂ℓ/∂h_t ⊙ (1 − z),   ∂ℓ/∂z = ∂ℓ/∂h_t ⊙ (h_{t−1} − n),   ∂ℓ/∂h_{t−1} = ∂ℓ/∂h_t ⊙ z + …
    ∂ℓ/∂p_n = ∂ℓ/∂n (1 − n²),   ∂ℓ/∂r = ∂ℓ/∂p_n ⊙ (W_hn h + b_hn),   ∂ℓ/∂(W_hn h + b_hn) = ∂ℓ/∂p_n ⊙ r
    the input side's preactivation gradient is [∂ℓ/∂p_r; ∂ℓ/∂p_z; ∂ℓ/∂p_n], the hidden side's
    [∂ℓ/∂p_r; ∂ℓ/∂p_z; ∂ℓ/∂p_n ⊙ r].

Batch-first rows: one example per row, so Ω_x x_t is x_t Ω_xᵀ with x_t (N, I) and Ω_x = weight_ih
(G·H, I), G = 1, 4, 3 gates; Ω_hᵀ ∂ℓ/∂p_t is ∂ℓ/∂p_t Ω_h, and ∂ℓ/∂Ω_h += ∂ℓ/∂p_tᵀ h_{t−1}.

BPTT (000 §8): the forward keeps every step's state (and the LSTM's cells and gates, the GRU's
gates and W_hn h + b_hn); the backward runs t = T−1 … 0 (0 … T−1 for the reverse direction of a
bidirectional layer), adding at each step the output's gradient ∂ℓ/∂y_t to the gradient that
arrived through h_t from step t+1. Stacked layers take the previous layer's output (both
directions concatenated), after dropout in train mode (not after the last layer).

Shapes as torch: x (T, N, I) ((N, T, I) with batch_first; (T, I) unbatched), states
(num_layers · num_directions, N, H), output (T, N, num_directions · H); the state of layer k and
direction d is row k · num_directions + d. The backward takes the output's gradient and the final
state's (either may be None: zero) and returns ∂ℓ/∂x, with ∂ℓ/∂h_0 (and ∂ℓ/∂c_0) when the forward
was given an initial state. Truncated BPTT: `detach_state`.

Reading order: the reference step kernels (one step, loops), the Layer classes (which drive the
reference steps one at a time; the cells are exactly one reference step), then the fast kernels:
per layer and direction, X Ω_xᵀ for all t as one product before the recurrence, the recurrence
over the whole sequence in one compiled function with the batch's rows split over threads (rows
do not interact, so each thread runs its rows through all T steps), and ∂ℓ/∂X, ∂ℓ/∂Ω_x, ∂ℓ/∂Ω_h
as one product each after it, into arrays the layer reuses from call to call. The forwards'
per-step products use Ω_h packed once per sequence for OpenBLAS's micro-kernel where that is
available (`engine.blas.gemm_packed_at`); the LSTM's backward ones (and its forward's elsewhere)
run in column blocks that OpenBLAS's small-matrix kernels take (`step_blocks`); its biases are
added and summed in the gate loops, and a first layer may read an embedding table instead of its
rows (`TokenLookup`, used by layers.language_models.RecurrentLM). The fast kernels' gates use
vectorisable functions with errors bounded by tests: in float32 a rational tanh (σ from it), in
float64 tanh and σ from e^x = 2^k e^r (about 2 units in the last place); the reference kernels
use libm's.
"""
import numpy as np
from numba import njit, prange

from engine.blas import (NO_TRANS, TRANS, gemm_at, gemm_for, gemm_packed_at, pack_weight, packed_for,
                         packing_scratch, transpose_rows)
from engine.checks import check_array, check_bool, check_choice, check_dtype, check_float, check_int, check_rng
from engine.core import Layer, Parameter, input_grad_flags, use_reference
from engine.init import default_uniform
from engine.memory import huge_empty
from engine.numerics import sigmoid as _sig
from engine.threads import chunks_for, parallel_call

GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


# ---------------------------------------------------------------------------------------------
# reference kernels: one step, the equations above as loops
# ---------------------------------------------------------------------------------------------
@njit(cache=True)
def _affine_ref(x, h, Wih, Whh, bih, bhh):
    """(p_x, p_h): p_x = β_x + Ω_x x (N, GH) and p_h = β_h + Ω_h h (N, GH), kept apart for the GRU."""
    N, I = x.shape
    GH, H = Whh.shape
    px = np.empty((N, GH), x.dtype)
    ph = np.empty((N, GH), x.dtype)
    for n in range(N):
        for j in range(GH):
            s = bih[j]
            for i in range(I):
                s += Wih[j, i] * x[n, i]
            px[n, j] = s
            s = bhh[j]
            for k in range(H):
                s += Whh[j, k] * h[n, k]
            ph[n, j] = s
    return px, ph


@njit(cache=True)
def _affine_backward_ref(dpx, dph, x, h, Wih, Whh, dWih, dWhh, dbih, dbhh):
    """∂ℓ/∂x = ∂ℓ/∂p_x Ω_x, ∂ℓ/∂h = ∂ℓ/∂p_h Ω_h (returned); ∂ℓ/∂Ω_x += ∂ℓ/∂p_xᵀ x,
    ∂ℓ/∂Ω_h += ∂ℓ/∂p_hᵀ h, ∂ℓ/∂β_x += Σ_n ∂ℓ/∂p_x, ∂ℓ/∂β_h += Σ_n ∂ℓ/∂p_h."""
    N, I = x.shape
    GH, H = Whh.shape
    dx = np.zeros_like(x)
    dh = np.zeros_like(h)
    for n in range(N):
        for j in range(GH):
            dbih[j] += dpx[n, j]
            dbhh[j] += dph[n, j]
            for i in range(I):
                dx[n, i] += dpx[n, j] * Wih[j, i]
                dWih[j, i] += dpx[n, j] * x[n, i]
            for k in range(H):
                dh[n, k] += dph[n, j] * Whh[j, k]
                dWhh[j, k] += dph[n, j] * h[n, k]
    return dx, dh


@njit(cache=True)
def rnn_step_forward_ref(x, h, Wih, Whh, bih, bhh, relu):
    """h_t = a[β_x + Ω_x x_t + β_h + Ω_h h_{t−1}], a = ReLU if relu else tanh.  -> h_t (N, H)."""
    px, ph = _affine_ref(x, h, Wih, Whh, bih, bhh)
    hn = np.empty_like(h)
    for n in range(h.shape[0]):
        for k in range(h.shape[1]):
            p = px[n, k] + ph[n, k]
            hn[n, k] = max(p, 0.0) if relu else np.tanh(p)
    return hn


@njit(cache=True)
def rnn_step_backward_ref(dh_t, x, h_prev, h_t, Wih, Whh, dWih, dWhh, dbih, dbhh, relu):
    """∂ℓ/∂p_t = a'(p_t) ⊙ ∂ℓ/∂h_t; returns (∂ℓ/∂x_t, ∂ℓ/∂h_{t−1} = Ω_hᵀ ∂ℓ/∂p_t), accumulates
    the parameters' gradients."""
    dp = np.empty_like(dh_t)
    for n in range(dh_t.shape[0]):
        for k in range(dh_t.shape[1]):
            d = (1.0 if h_t[n, k] > 0 else 0.0) if relu else 1.0 - h_t[n, k] * h_t[n, k]
            dp[n, k] = dh_t[n, k] * d
    return _affine_backward_ref(dp, dp, x, h_prev, Wih, Whh, dWih, dWhh, dbih, dbhh)


@njit(cache=True)
def lstm_step_forward_ref(x, h, c, Wih, Whh, bih, bhh):
    """[i; f; g; o] = [σ; σ; tanh; σ](p), c_t = f ⊙ c + i ⊙ g, h_t = o ⊙ tanh(c_t).
    -> (h_t, c_t, gates (N, 4H) activated)."""
    px, ph = _affine_ref(x, h, Wih, Whh, bih, bhh)
    N, H = h.shape
    gates = np.empty((N, 4 * H), x.dtype)
    hn = np.empty_like(h)
    cn = np.empty_like(c)
    for n in range(N):
        for k in range(H):
            i = _sig(px[n, k] + ph[n, k])
            f = _sig(px[n, H + k] + ph[n, H + k])
            g = np.tanh(px[n, 2 * H + k] + ph[n, 2 * H + k])
            o = _sig(px[n, 3 * H + k] + ph[n, 3 * H + k])
            gates[n, k], gates[n, H + k], gates[n, 2 * H + k], gates[n, 3 * H + k] = i, f, g, o
            cn[n, k] = f * c[n, k] + i * g
            hn[n, k] = o * np.tanh(cn[n, k])
    return hn, cn, gates


@njit(cache=True)
def lstm_step_backward_ref(dh_t, dc_t, x, h_prev, c_prev, c_t, gates, Wih, Whh, dWih, dWhh, dbih, dbhh):
    """From ∂ℓ/∂h_t and ∂ℓ/∂c_t (the gradient through c_t from step t+1): returns
    (∂ℓ/∂x_t, ∂ℓ/∂h_{t−1}, ∂ℓ/∂c_{t−1}); accumulates the parameters' gradients."""
    N, H = dh_t.shape
    dp = np.empty((N, 4 * H), x.dtype)
    dc_prev = np.empty_like(dc_t)
    for n in range(N):
        for k in range(H):
            i, f, g, o = gates[n, k], gates[n, H + k], gates[n, 2 * H + k], gates[n, 3 * H + k]
            tc = np.tanh(c_t[n, k])
            dc = dc_t[n, k] + dh_t[n, k] * o * (1.0 - tc * tc)
            dp[n, k] = dc * g * i * (1.0 - i)
            dp[n, H + k] = dc * c_prev[n, k] * f * (1.0 - f)
            dp[n, 2 * H + k] = dc * i * (1.0 - g * g)
            dp[n, 3 * H + k] = dh_t[n, k] * tc * o * (1.0 - o)
            dc_prev[n, k] = dc * f
    dx, dh = _affine_backward_ref(dp, dp, x, h_prev, Wih, Whh, dWih, dWhh, dbih, dbhh)
    return dx, dh, dc_prev


@njit(cache=True)
def gru_step_forward_ref(x, h, Wih, Whh, bih, bhh):
    """r, z = σ(p_x + p_h) (their blocks), n = tanh(p_x,n + r ⊙ p_h,n), h_t = (1 − z) ⊙ n + z ⊙ h.
    -> (h_t, gates (N, 4H): r, z, n and p_h,n = W_hn h + b_hn)."""
    px, ph = _affine_ref(x, h, Wih, Whh, bih, bhh)
    N, H = h.shape
    gates = np.empty((N, 4 * H), x.dtype)
    hn = np.empty_like(h)
    for n in range(N):
        for k in range(H):
            r = _sig(px[n, k] + ph[n, k])
            z = _sig(px[n, H + k] + ph[n, H + k])
            nn = np.tanh(px[n, 2 * H + k] + r * ph[n, 2 * H + k])
            gates[n, k], gates[n, H + k], gates[n, 2 * H + k], gates[n, 3 * H + k] = r, z, nn, ph[n, 2 * H + k]
            hn[n, k] = (1.0 - z) * nn + z * h[n, k]
    return hn, gates


@njit(cache=True)
def gru_step_backward_ref(dh_t, x, h_prev, gates, Wih, Whh, dWih, dWhh, dbih, dbhh):
    """Returns (∂ℓ/∂x_t, ∂ℓ/∂h_{t−1}); accumulates the parameters' gradients (docstring above)."""
    N, H = dh_t.shape
    dpx = np.empty((N, 3 * H), x.dtype)
    dph = np.empty((N, 3 * H), x.dtype)
    for n in range(N):
        for k in range(H):
            r, z, nn, hn = gates[n, k], gates[n, H + k], gates[n, 2 * H + k], gates[n, 3 * H + k]
            d = dh_t[n, k]
            dpn = d * (1.0 - z) * (1.0 - nn * nn)
            dpr = dpn * hn * r * (1.0 - r)
            dpz = d * (h_prev[n, k] - nn) * z * (1.0 - z)
            dpx[n, k], dpx[n, H + k], dpx[n, 2 * H + k] = dpr, dpz, dpn
            dph[n, k], dph[n, H + k], dph[n, 2 * H + k] = dpr, dpz, dpn * r
    dx, dh = _affine_backward_ref(dpx, dph, x, h_prev, Wih, Whh, dWih, dWhh, dbih, dbhh)
    for n in range(N):
        for k in range(H):
            dh[n, k] += dh_t[n, k] * gates[n, H + k]
    return dx, dh


# ---- one layer and direction on the reference steps (a Python loop over t) ------------------
def _dir_forward_ref(mode, X, h0, c0, W, relu, reverse):
    """Run one direction of one layer over X (T, N, I) one step at a time.
    -> (Y (T, N, H), h_T, c_T, saved)."""
    T = X.shape[0]
    Wih, Whh, bih, bhh = W
    order = range(T - 1, -1, -1) if reverse else range(T)
    Y = np.empty((T,) + h0.shape, X.dtype)
    C = np.empty_like(Y) if mode == "LSTM" else None
    Gs = [None] * T
    h, c = h0, c0
    for t in order:
        if mode == "RNN":
            h = rnn_step_forward_ref(X[t], h, Wih, Whh, bih, bhh, relu)
        elif mode == "LSTM":
            h, c, Gs[t] = lstm_step_forward_ref(X[t], h, c, Wih, Whh, bih, bhh)
            C[t] = c
        else:
            h, Gs[t] = gru_step_forward_ref(X[t], h, Wih, Whh, bih, bhh)
        Y[t] = h
    return Y, h, c, (Y, C, Gs)


def _dir_backward_ref(mode, dY, dhT, dcT, X, h0, c0, saved, W, dW, relu, reverse):
    """BPTT over one direction of one layer: t = T−1 … 0 (0 … T−1 reversed). -> (dX, dh0, dc0)."""
    Y, C, Gs = saved
    T = X.shape[0]
    Wih, Whh, _, _ = W
    dWih, dWhh, dbih, dbhh = dW
    dX = np.empty_like(X)
    dh, dc = dhT.copy(), (dcT.copy() if mode == "LSTM" else None)
    for t in (range(T) if reverse else range(T - 1, -1, -1)):
        prev = t + 1 if reverse else t - 1
        first = prev < 0 or prev >= T
        h_prev = h0 if first else Y[prev]
        dh = dh + dY[t]                                      # ∂ℓ/∂h_t: from y_t and from step t+1
        if mode == "RNN":
            dX[t], dh = rnn_step_backward_ref(dh, X[t], h_prev, Y[t], Wih, Whh, dWih, dWhh, dbih, dbhh, relu)
        elif mode == "LSTM":
            c_prev = c0 if first else C[prev]
            dX[t], dh, dc = lstm_step_backward_ref(dh, dc, X[t], h_prev, c_prev, C[t], Gs[t], Wih, Whh,
                                                   dWih, dWhh, dbih, dbhh)
        else:
            dX[t], dh = gru_step_backward_ref(dh, X[t], h_prev, Gs[t], Wih, Whh, dWih, dWhh, dbih, dbhh)
    return dX, dh, dc


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
def detach_state(state):
    """A copy of a (nested) recurrent state with no gradient link: what `h.detach()` (and
    `tuple(s.detach() for s in state)`) does in torch, for truncated BPTT. The engine keeps no
    graph between calls, so the state returned by one forward never carries gradient into an
    earlier batch anyway; passing it to the next forward as `hx` makes it a plain input whose
    gradient (returned by `backward` as dh0) the caller is free to drop. The copy only guarantees
    that the next forward's saved arrays are not the previous call's outputs (which a caller
    might change in place). None stays None."""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(detach_state(s) for s in state)
    if not isinstance(state, np.ndarray):
        raise TypeError(f"state: expected an array or a tuple of arrays, got {type(state).__name__}")
    return state.copy()


def _grad_or_zero(name, g, shape, dtype):
    """An upstream gradient, None for zero (-> None), checked against the output's shape."""
    if g is None:
        return None
    return check_array(name, g, shape=shape, dtype=dtype, finite=False)


class TokenLookup:
    """A recurrent layer's input x = weight[ids] given without being materialised: ids (T, N) integer
    token ids, time first (whatever the layer's batch_first), weight (V, input_size) an embedding
    table. On the fast path the first layer then takes x_t Ω_xᵀ as rows of the table weight Ω_xᵀ
    (V × G·H: one small product instead of T·N·G·H·input_size multiply-adds), and its backward sums
    ∂ℓ/∂Φ_x by token first, S = Σ_{i: ids_i = v} ∂ℓ/∂Φ_x[i] (V × G·H), so that ∂ℓ/∂Ω_x += Sᵀ weight
    and ∂ℓ/∂weight = S Ω_x are small products too. The layer's backward then returns ∂ℓ/∂weight
    (V, input_size) in place of ∂ℓ/∂x. Only the ids' checks are the caller's (RecurrentLM uses it
    when the vocabulary is small against T·N; the reference path materialises x)."""

    def __init__(self, ids, weight):
        self.ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.weight = weight
        self.shape = self.ids.shape + (weight.shape[1],)

    def rows(self):
        """x = weight[ids] materialised, (T, N, input_size)."""
        return self.weight[self.ids]

    def scatter(self, dx):
        """∂ℓ/∂weight from ∂ℓ/∂x (T, N, input_size): Σ over each token's positions."""
        dw = np.zeros_like(self.weight)
        np.add.at(dw, self.ids.reshape(-1), dx.reshape(-1, dx.shape[-1]))
        return dw


class _RNNBase(Layer):
    """What RNN, LSTM and GRU share: parameters with torch's names, the state checks, the
    sequence driver over layers and directions, inter-layer dropout."""

    mode = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype=np.float64, rng=None, fix_mask=False, nonlinearity="tanh"):
        self.input_size = check_int("input_size", input_size, low=1)
        self.hidden_size = check_int("hidden_size", hidden_size, low=1)
        self.num_layers = check_int("num_layers", num_layers, low=1)
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dropout = check_float("dropout", dropout, low=0, high=1)
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.dtype = check_dtype(dtype)
        self.fix_mask = check_bool("fix_mask", fix_mask)
        given = rng is not None
        rng = check_rng("rng", rng)                    # every argument checked before the first draw
        H, G = self.hidden_size, GATES[self.mode]
        self.num_directions = 2 if self.bidirectional else 1
        self.stochastic = self.dropout > 0 and self.num_layers > 1
        self._weights = []                             # [layer][direction] -> (Wih, Whh, bih, bhh) Parameters
        for k in range(self.num_layers):
            row = []
            for d in range(self.num_directions):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                fan = self.input_size if k == 0 else H * self.num_directions
                ps = [Parameter(default_uniform((G * H, fan), H, rng, self.dtype)),
                      Parameter(default_uniform((G * H, H), H, rng, self.dtype))]
                self.register_parameter("weight_ih" + sfx, ps[0])
                self.register_parameter("weight_hh" + sfx, ps[1])
                if self.bias:
                    ps += [Parameter(default_uniform((G * H,), H, rng, self.dtype)),
                           Parameter(default_uniform((G * H,), H, rng, self.dtype))]
                    self.register_parameter("bias_ih" + sfx, ps[2])
                    self.register_parameter("bias_hh" + sfx, ps[3])
                row.append(ps)
            self._weights.append(row)
        if given:
            self.set_generator(rng)                    # dropout masks continue the same stream
        self._masks = {}                               # fixed dropout masks (fix_mask), by layer
        self._ws = Workspace()                         # the fast kernels' arrays, reused from call to call

    # ---- arguments ----
    def _values(self, k, d):
        ps = self._weights[k][d]
        if self.bias:
            return tuple(p.value for p in ps)
        z = np.zeros(ps[0].shape[0], self.dtype)
        return ps[0].value, ps[1].value, z, z

    def _grads(self, k, d):
        ps = self._weights[k][d]
        if self.bias:
            return tuple(p.grad for p in ps)
        return ps[0].grad, ps[1].grad, np.zeros(ps[0].shape[0], self.dtype), np.zeros(ps[0].shape[0], self.dtype)

    def _state_shape(self, N):
        return (self.num_layers * self.num_directions, N, self.hidden_size)

    def _check_x(self, x):
        """x as (T, N, input_size), and whether it came unbatched ((T, input_size), as torch)."""
        x = check_array("x", x, dtype=self.dtype)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            order = "(N, T, input_size)" if self.batch_first else "(T, N, input_size)"
            raise ValueError(f"x: expected a 3-dimensional array {order} (or 2-dimensional (T, input_size), "
                             f"unbatched) with input_size = {self.input_size}, got shape {x.shape}")
        if x.ndim == 2:
            return x[:, None, :], True
        return (np.ascontiguousarray(x.transpose(1, 0, 2)) if self.batch_first else x), False

    def _check_hx(self, hx, N, unbatched):
        """The initial state(s) checked against (layers · directions, N, H), or (layers · directions,
        H) for an unbatched input; returned as (layers · directions, N, H) arrays."""
        shape = self._state_shape(N)
        if unbatched:
            shape = (shape[0], shape[2])
        if self.mode != "LSTM":
            hs = (check_array("hx (h_0)", hx, shape=shape, dtype=self.dtype),)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a tuple (h_0, c_0) of two arrays, got {type(hx).__name__}")
            hs = (check_array("hx[0] (h_0)", hx[0], shape=shape, dtype=self.dtype),
                  check_array("hx[1] (c_0)", hx[1], shape=shape, dtype=self.dtype))
        return tuple(h[:, None, :] for h in hs) if unbatched else hs

    def _mask(self, k, shape):
        """The dropout mask applied to layer k's input (k ≥ 1), drawn from self.generator (kept
        while fix_mask holds and the shape is the same)."""
        m = self._masks.get(k)
        if not (self.fix_mask and m is not None and m.shape == shape):
            p = self.dropout
            m = np.zeros(shape, self.dtype) if p == 1 else \
                ((self.generator.random(shape) >= p) / (1.0 - p)).astype(self.dtype)
            self._masks[k] = m
        return m

    def resample(self):
        """Forget the fixed dropout masks: the next train-mode forward draws new ones."""
        self._masks = {}

    # ---- forward / backward ----
    def forward(self, x, hx=None, train=True):
        train = check_bool("train", train)
        lookup = x if isinstance(x, TokenLookup) else None
        ref = use_reference()
        if lookup is not None:                          # the first layer reads the embedding table
            if lookup.ids.ndim != 2 or lookup.weight.dtype != self.dtype or lookup.shape[2] != self.input_size:
                raise ValueError(f"x: expected ids (T, N) into a {np.dtype(self.dtype).name} table with "
                                 f"{self.input_size} columns, got ids {lookup.ids.shape} and a "
                                 f"{lookup.weight.dtype} table of shape {lookup.weight.shape}")
            X, unbatched = (lookup.rows() if ref else lookup), False
        else:
            X, unbatched = self._check_x(x)                            # (T, N, I)
        T, N, _ = X.shape
        try:
            states = None if hx is None else self._check_hx(hx, N, unbatched)
        except ValueError as e:                         # the state's shape follows x's
            raise ValueError(f"{e} (for x of shape {x.shape})") from None
        zero = np.zeros(self._state_shape(N), self.dtype)
        h0 = zero if states is None else states[0]
        c0 = (zero if states is None else states[1]) if self.mode == "LSTM" else None
        relu = self.nonlinearity == "relu"
        D, H = self.num_directions, self.hidden_size
        hn = np.empty_like(zero)
        cn = np.empty_like(zero) if self.mode == "LSTM" else None
        inp, saved, masks = X, [], []
        for k in range(self.num_layers):
            mask = None
            if k > 0 and train and self.dropout > 0:
                mask = self._mask(k, inp.shape)
                inp = inp * mask
            masks.append(mask)
            # one direction: its Y is the layer's output (a new array for the last layer, which the
            # caller keeps; the workspace's for the others); two: both copied side by side
            out = None if D == 1 and not ref else np.empty((T, N, D * H), self.dtype)
            row = []
            for d in range(D):
                s = k * D + d
                W = self._values(k, d)
                c_init = c0[s] if cn is not None else None
                if ref:
                    Y, h, c, sv = _dir_forward_ref(self.mode, inp, h0[s], c_init, W, relu, d == 1)
                else:
                    Y, h, c, sv = _dir_forward_fast(self.mode, inp, h0[s], c_init, W, relu, d == 1, self._ws,
                                                    states is None, out is None and k == self.num_layers - 1)
                if out is None:
                    out = Y
                else:
                    out[:, :, d * H:(d + 1) * H] = Y
                hn[s] = h
                if cn is not None:
                    cn[s] = c
                row.append(sv)
            saved.append((inp, row))
            inp = out
        self._save((T, N), unbatched, states is not None, h0, c0, saved, masks, lookup)
        if unbatched:
            y, hn, cn = inp[:, 0], hn[:, 0], (None if cn is None else cn[:, 0])
        else:
            y = np.ascontiguousarray(inp.transpose(1, 0, 2)) if self.batch_first else inp
        return (y, (hn, cn)) if self.mode == "LSTM" else (y, hn)

    def backward(self, dy, dstate=None, *, input_grad=True):
        (T, N), unbatched, has_hx, h0, c0, saved, masks, lookup = self._saved()
        D, H = self.num_directions, self.hidden_size
        yshape = (T, D * H) if unbatched else (N, T, D * H) if self.batch_first else (T, N, D * H)
        dy = _grad_or_zero("dy", dy, yshape, self.dtype)
        sshape = (D * self.num_layers, H) if unbatched else self._state_shape(N)
        if self.mode == "LSTM":
            if dstate is None:
                dstate = (None, None)
            if not isinstance(dstate, (tuple, list)) or len(dstate) != 2:
                raise TypeError(f"dstate: expected a tuple (dh_n, dc_n) of two arrays or None, "
                                f"got {type(dstate).__name__}")
            dhn = _grad_or_zero("dstate[0] (dh_n)", dstate[0], sshape, self.dtype)
            dcn = _grad_or_zero("dstate[1] (dc_n)", dstate[1], sshape, self.dtype)
        else:
            dhn = _grad_or_zero("dh_n", dstate, sshape, self.dtype)
            dcn = None
        flags = input_grad_flags(input_grad, 2 if has_hx else 1)
        self._release()
        relu = self.nonlinearity == "relu"
        ref = use_reference()
        if dy is None:
            dout = np.zeros((T, N, D * H), self.dtype)
        elif unbatched:
            dout = dy[:, None, :]
        else:
            dout = np.ascontiguousarray(dy.transpose(1, 0, 2)) if self.batch_first else dy
        if unbatched:                                   # (layers · directions, H) -> (…, 1, H)
            dhn = None if dhn is None else dhn[:, None, :]
            dcn = None if dcn is None else dcn[:, None, :]
            sshape = self._state_shape(N)
        zero = np.zeros(sshape, self.dtype)
        dhn = zero if dhn is None else dhn
        dh0 = np.empty_like(zero)
        dc0 = np.empty_like(zero) if self.mode == "LSTM" else None
        if self.mode == "LSTM" and dcn is None:
            dcn = zero
        for k in range(self.num_layers - 1, -1, -1):
            inp, row = saved[k]
            dinp = None
            for d in range(D):
                s = k * D + d
                dYd = np.ascontiguousarray(dout[:, :, d * H:(d + 1) * H])
                args = (self.mode, dYd, dhn[s], None if dcn is None else dcn[s], inp, h0[s],
                        None if c0 is None else c0[s], row[d], self._values(k, d), self._grads(k, d), relu, d == 1)
                fast = isinstance(inp, TokenLookup) or not ref   # the table's backward is the fast path's
                dX, dh, dc = _dir_backward_fast(*args, self._ws, has_hx) if fast else _dir_backward_ref(*args)
                dinp = dX if dinp is None else dinp + dX
                dh0[s] = dh
                if dc0 is not None:
                    dc0[s] = dc
            if masks[k] is not None:
                dinp = dinp * masks[k]
            dout = dinp
        if lookup is not None:                          # ∂ℓ/∂weight of the table (V, input_size)
            dx = dout if isinstance(saved[0][0], TokenLookup) else lookup.scatter(dout)
        elif unbatched:
            dx, dh0, dc0 = dout[:, 0], dh0[:, 0], (None if dc0 is None else dc0[:, 0])
        else:
            dx = np.ascontiguousarray(dout.transpose(1, 0, 2)) if self.batch_first else dout
        dx = dx if flags[0] else None
        if not has_hx:
            return dx
        dhx = ((dh0, dc0) if self.mode == "LSTM" else dh0) if flags[1] else None
        return dx, dhx

    def extra_repr(self):
        r = {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers}
        if self.mode == "RNN":
            r["nonlinearity"] = self.nonlinearity
        r.update(bias=self.bias, batch_first=self.batch_first, dropout=self.dropout,
                 bidirectional=self.bidirectional)
        return r


class RNN(_RNNBase):
    """Elman RNN, torch.nn.RNN: h_t = a(x_t Ω_xᵀ + β_x + h_{t−1} Ω_hᵀ + β_h), a = tanh or ReLU.

    forward(x, hx=None) -> (output, h_n): x (T, N, input_size) (or (N, T, input_size) with
    batch_first), hx and h_n (num_layers · num_directions, N, hidden_size), output (T, N,
    num_directions · hidden_size); unbatched as torch: x (T, input_size), hx and h_n without N. backward(dy, dh_n=None) -> dx, or (dx, dh_0) when forward got hx;
    None for a zero upstream gradient. Parameters weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
    bias_hh_l{k} (suffix _reverse for the backward direction), all U(±1/√hidden_size) as torch.
    `dropout` between layers in train mode, drawn from self.generator (`rng` seeds it as well as the
    weights); `fix_mask=True` keeps the masks drawn first (for gradient checks) until `resample()`.
    """

    mode = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float64, rng=None, fix_mask=False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, rng, fix_mask, nonlinearity)

    def backward(self, dy, dh_n=None, *, input_grad=True):
        return super().backward(dy, dh_n, input_grad=input_grad)


class LSTM(_RNNBase):
    """torch.nn.LSTM (gates i, f, g, o stacked in weight_ih/weight_hh as torch): forward(x, hx=None)
    with hx = (h_0, c_0) -> (output, (h_n, c_n)); backward(dy, dstate=None) with dstate = (dh_n,
    dc_n) (either may be None) -> dx, or (dx, (dh_0, dc_0)) when forward got hx. Otherwise as RNN."""

    mode = "LSTM"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype=np.float64, rng=None, fix_mask=False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, rng, fix_mask)


class GRU(_RNNBase):
    """torch.nn.GRU (gates r, z, n; the reset gate multiplies W_hn h + b_hn, as torch):
    forward(x, hx=None) -> (output, h_n); backward(dy, dh_n=None) as RNN."""

    mode = "GRU"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, dtype=np.float64, rng=None, fix_mask=False):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype, rng, fix_mask)

    def backward(self, dy, dh_n=None, *, input_grad=True):
        return super().backward(dy, dh_n, input_grad=input_grad)


# ---- cells: one step, exactly the reference step kernels ------------------------------------
class _CellBase(Layer):
    mode = "RNN"

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64, rng=None, nonlinearity="tanh"):
        self.input_size = check_int("input_size", input_size, low=1)
        self.hidden_size = check_int("hidden_size", hidden_size, low=1)
        self.bias = check_bool("bias", bias)
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)
        H, G = self.hidden_size, GATES[self.mode]
        self.weight_ih = Parameter(default_uniform((G * H, self.input_size), H, rng, self.dtype))
        self.weight_hh = Parameter(default_uniform((G * H, H), H, rng, self.dtype))
        if self.bias:
            self.bias_ih = Parameter(default_uniform((G * H,), H, rng, self.dtype))
            self.bias_hh = Parameter(default_uniform((G * H,), H, rng, self.dtype))

    def _wb(self):
        z = np.zeros(GATES[self.mode] * self.hidden_size, self.dtype)
        W = (self.weight_ih.value, self.weight_hh.value)
        dW = (self.weight_ih.grad, self.weight_hh.grad)
        if self.bias:
            return W + (self.bias_ih.value, self.bias_hh.value), dW + (self.bias_ih.grad, self.bias_hh.grad)
        return W + (z, z), dW + (np.zeros_like(z), np.zeros_like(z))

    def forward(self, x, hx=None, train=True):
        check_bool("train", train)
        x = check_array("x", x, dtype=self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected shape (N, {self.input_size}) (or ({self.input_size},) unbatched), "
                             f"got {x.shape}")
        unbatched = x.ndim == 1
        shape = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
        zero = np.zeros(shape, self.dtype)
        try:
            if hx is None:
                h, c = zero, zero
            elif self.mode == "LSTM":
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"hx: expected a tuple (h_0, c_0) of two arrays, got {type(hx).__name__}")
                h = check_array("hx[0] (h_0)", hx[0], shape=shape, dtype=self.dtype)
                c = check_array("hx[1] (c_0)", hx[1], shape=shape, dtype=self.dtype)
            else:
                h, c = check_array("hx (h_0)", hx, shape=shape, dtype=self.dtype), None
        except ValueError as e:                         # the state's shape follows x's
            raise ValueError(f"{e} (for x of shape {x.shape})") from None
        (Wih, Whh, bih, bhh), _ = self._wb()
        if unbatched:                                   # one row: (1, …) for the kernels
            x, h, c = x[None], h[None], (None if c is None else c[None])
        cn = gates = None
        if self.mode == "RNN":
            hn = rnn_step_forward_ref(x, h, Wih, Whh, bih, bhh, self.nonlinearity == "relu")
        elif self.mode == "LSTM":
            hn, cn, gates = lstm_step_forward_ref(x, h, c, Wih, Whh, bih, bhh)
        else:
            hn, gates = gru_step_forward_ref(x, h, Wih, Whh, bih, bhh)
        self._save(x, h, c, hn, cn, gates, hx is not None, unbatched)
        if unbatched:
            hn, cn = hn[0], (None if cn is None else cn[0])
        return (hn, cn) if self.mode == "LSTM" else hn

    def _backward(self, dh, dc, input_grad):
        x, h, c, hn, cn, gates, has_hx, unbatched = self._saved()
        shape = hn.shape[1:] if unbatched else hn.shape
        if self.mode == "LSTM":                         # two outputs: either gradient may be None
            dh = _grad_or_zero("dh", dh, shape, self.dtype)
            dc = _grad_or_zero("dc", dc, shape, self.dtype)
        else:                                           # one output: its gradient is an array
            dh = check_array("dh", dh, shape=shape, dtype=self.dtype, finite=False)
        flags = input_grad_flags(input_grad, 2 if has_hx else 1)
        self._release()
        (Wih, Whh, _, _), (dWih, dWhh, dbih, dbhh) = self._wb()
        zero = np.zeros(hn.shape, self.dtype)
        if unbatched:
            dh, dc = (None if dh is None else dh[None]), (None if dc is None else dc[None])
        dh = zero if dh is None else dh
        if self.mode == "RNN":
            dx, dhp = rnn_step_backward_ref(dh, x, h, hn, Wih, Whh, dWih, dWhh, dbih, dbhh,
                                            self.nonlinearity == "relu")
            dhx = dhp
        elif self.mode == "LSTM":
            dx, dhp, dcp = lstm_step_backward_ref(dh, zero if dc is None else dc, x, h, c, cn, gates,
                                                  Wih, Whh, dWih, dWhh, dbih, dbhh)
            dhx = (dhp, dcp)
        else:
            dx, dhx = gru_step_backward_ref(dh, x, h, gates, Wih, Whh, dWih, dWhh, dbih, dbhh)
        if unbatched:
            dx = dx[0]
            dhx = tuple(d[0] for d in dhx) if self.mode == "LSTM" else dhx[0]
        dx = dx if flags[0] else None
        if not has_hx:
            return dx
        return dx, (dhx if flags[1] else None)

    def extra_repr(self):
        r = {"input_size": self.input_size, "hidden_size": self.hidden_size, "bias": self.bias}
        if self.mode == "RNN":
            r["nonlinearity"] = self.nonlinearity
        return r


class RNNCell(_CellBase):
    """torch.nn.RNNCell: h' = a(x Ω_xᵀ + β_x + h Ω_hᵀ + β_h). forward(x, hx=None) -> h' (N, hidden_size);
    backward(dh) -> dx, or (dx, dhx) when forward got hx. Parameters weight_ih, weight_hh, bias_ih, bias_hh."""

    mode = "RNN"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float64, rng=None):
        super().__init__(input_size, hidden_size, bias, dtype, rng, nonlinearity)

    def backward(self, dh, *, input_grad=True):
        return self._backward(dh, None, input_grad)


class LSTMCell(_CellBase):
    """torch.nn.LSTMCell: forward(x, hx=None) with hx = (h, c) -> (h', c'); backward(dh, dc=None)
    -> dx, or (dx, (dh_0, dc_0)) when forward got hx."""

    mode = "LSTM"

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64, rng=None):
        super().__init__(input_size, hidden_size, bias, dtype, rng)

    def backward(self, dh, dc=None, *, input_grad=True):
        return self._backward(dh, dc, input_grad)


class GRUCell(_CellBase):
    """torch.nn.GRUCell: forward(x, hx=None) -> h'; backward(dh) -> dx or (dx, dhx)."""

    mode = "GRU"

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64, rng=None):
        super().__init__(input_size, hidden_size, bias, dtype, rng)

    def backward(self, dh, *, input_grad=True):
        return self._backward(dh, None, input_grad)


# ---------------------------------------------------------------------------------------------
# fast kernels: the whole sequence of one layer and direction in compiled functions
# ---------------------------------------------------------------------------------------------
# Layout (the cuDNN-style split; PERFORMANCE.md lessons 1 and 5):
#   1. before the recurrence, Φ_x = X Ω_xᵀ for every step at once: one GEMM over the T·N rows,
#      rows split over threads (`_input_products`); for a TokenLookup the V rows of E Ω_xᵀ;
#   2. the recurrence: the batch's rows do not interact, so the batch is split into chunks with
#      prange and each thread runs its rows through all T steps (BLAS calls per step on its rows,
#      in small-kernel blocks for the LSTM, BLAS on one thread; no barrier between steps), writing
#      into arrays allocated once; the LSTM's gate loops add β_x + β_h and sum ∂ℓ/∂Φ per chunk;
#   3. after the backward recurrence, ∂ℓ/∂X, ∂ℓ/∂Ω_x, ∂ℓ/∂Ω_h (and the RNN's and GRU's biases'
#      gradients) as one GEMM each over all T·N rows, ∂ℓ/∂X split over rows and the weights' over
#      Ω's rows (`_param_products`); h_{t−1} is read from Y shifted by one step (and h_0), not
#      copied; for a TokenLookup ∂ℓ/∂Φ_x summed by token, then V-row products (`_table_backward`).
# Every product is `engine.blas.gemm_at` on whole C-contiguous arrays with element offsets.
def _contig(*arrays):
    return tuple(np.ascontiguousarray(a) for a in arrays)


def _batch_chunks(N, T, GH, H):
    """Chunks of the batch for the recurrence: each row costs T · GH · H multiply-adds per pass."""
    return chunks_for(N, min_rows=MIN_ROWS_PER_CHUNK, row_cost=T * GH * H)


MIN_ROWS_PER_CHUNK = 4

# The per-step products (a chunk's m = 16-32 rows by Ω_h) are too small for OpenBLAS's packed GEMM:
# it repacks Ω_h (1 MB for H = 256) on every call, which at m = 16 costs as much as the arithmetic.
# OpenBLAS's small-matrix kernels (built for SkylakeX-class AVX-512 cores; `*_small_kernel_permit_skylakex.c`)
# read the operands in place, and take a product C = A op(B) (row-major, m × n × k) when
# m·n·k ≤ 10^6 and, with op(B) = Bᵀ, also m·n ≤ 1200 and k ≥ 32. The fast kernels therefore split
# the step's product into column blocks that qualify: forward h Ω_hᵀ with Ω_hᵀ stored (float32) or
# with Ω_h itself (Bᵀ, float64, blocks of ≤ 1200 / m gate columns), backward ∂ℓ/∂h = ∂ℓ/∂Φ Ω_h in
# blocks of hidden columns × one gate's rows (`step_blocks`). Measured 2026-12-06 (Xeon AVX-512,
# OpenBLAS 0.3.31, one thread, 64 steps, H = 256, float32), against one product per step: forward
# with Bᵀ m = 16: 91 -> 129 GFLOP/s, m = 32: 113 -> 133; backward m = 16: 87 -> 118, m = 32:
# 104 -> 115 (float64 forward m = 16: 39 -> 63). Ω_h and Ω_hᵀ are copied to huge pages for the
# recurrence (`Workspace.recurrent_weight`). On other cores (no small kernels) the blocks would
# only add calls: one product each, with Ω_hᵀ stored for the forward.
SMALL_KERNEL_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
SMALL_MNK, SMALL_MN_TRANS, SMALL_K_TRANS = 1_000_000, 1200, 32


def _blas_has_small_kernels():
    """Whether the OpenBLAS that engine.blas calls (NumPy's, else SciPy's) runs a core with small kernels."""
    try:
        from threadpoolctl import threadpool_info
        libs = [i for i in threadpool_info() if i.get("internal_api") == "openblas"]
    except Exception:                                   # noqa: BLE001 (no information: no blocks)
        return False
    libs.sort(key=lambda i: "numpy" not in str(i.get("filepath", "")))
    return bool(libs) and libs[0].get("architecture") in SMALL_KERNEL_CORES


SMALL_KERNELS = _blas_has_small_kernels()

# The forward's per-step product (RNN, GRU, LSTM) with Ω_h packed once per sequence for OpenBLAS's
# kernel (engine.blas.gemm_packed_at), where that is available, for sequences of MIN_STEPS_FOR_COPY
# steps or more. LSTM, 64 steps of 16 rows × Ω_hᵀ (H 256, float32, one thread): 3.0 ms against
# 3.4-4.2 ms in the best small-kernel blocks. Whole layers, T 64, B 32, float32, forward + backward,
# packed against the earlier forms in one process (2026-12-06): GRU H 256 14.3-14.9 against
# 16.8-17.1 ms, RNN H 256 9.5-9.9 against 10.6-11.0, LSTM H 128 the same (5.1-5.4), GRU H 128
# 4.55-4.63 against 4.38-4.43 (one small-kernel call per step is as fast at that size; not worth a
# rule of its own). The backward's product ∂ℓ/∂Φ Ω_h stays in small-kernel blocks: packed, it ran
# no faster (3.05 against 2.93 ms, LSTM H 256). Tests switch packing off to run the other forms.
PACKED_STEPS = True


def step_blocks(m, H, GH, dtype=np.float64, small=None, stored=True):
    """(nf, nn, nb, kb) for per-step products over chunks of at most m rows: the forward's product
    h Ω_hᵀ in blocks of nf gate columns, with Ω_hᵀ stored (nn: A·B) or Ω_h itself (A·Bᵀ); the
    backward's ∂ℓ/∂Φ Ω_h in blocks of nb hidden columns × kb gate rows (module comment above).
    With small kernels the float32 forward is A·B in power-of-two blocks of m·nf·H ≤ 10^6 (on
    Ω_hᵀ on huge pages, 15–25 % faster than A·Bᵀ: H 256 3.4 vs 4.0 ms, H 128 0.73 vs 1.2 ms,
    64 steps of 16 rows per thread, float32, 2026-12-06), the float64 forward A·Bᵀ in blocks of
    ≤ 1200 / m (H 256: 8.4 vs 9.1 ms for A·B). stored=False: no copy of Ω_hᵀ is made (a short
    sequence, where copying it would cost more than it saves), so the forward is A·Bᵀ on Ω_h.
    Without small kernels: (GH, stored, H, GH), one product each."""
    small = SMALL_KERNELS if small is None else small
    if not small:
        return GH, stored, H, GH
    nf, nn = GH, stored
    if np.dtype(dtype) == np.float32 and stored:
        w = 16
        while w * 2 <= GH and m * w * 2 * H <= SMALL_MNK:
            w *= 2
        if m * w * H <= SMALL_MNK:
            nf = min(w, GH)
    elif H >= SMALL_K_TRANS:
        w = min(SMALL_MN_TRANS // m, SMALL_MNK // (m * H))
        if w >= GH:
            nf, nn = GH, False
        elif w >= 16:
            nf, nn = w // 16 * 16, False
    nb, kb = H, GH
    if m * H * GH > SMALL_MNK:
        kb = min(GH, 256)
        while m * nb * kb > SMALL_MNK and nb > 16:
            nb = (nb + 1) // 2
        if m * nb * kb > SMALL_MNK:                     # too many rows for the small kernels anyway
            nb, kb = H, GH
    return nf, nn, nb, kb


# Copy Ω_h to huge pages (Workspace.recurrent_weight) only for sequences of at least this many
# steps: a copy costs about one step's product (1024 x 256 float32: 0.04 ms, transposed 0.18), and a
# sampler's one-token calls would pay it for every token.
MIN_STEPS_FOR_COPY = 4


class Workspace:
    """Arrays the fast kernels fill (Φ and the gates, Y, C, tanh C, ∂ℓ/∂Φ), kept by shape and handed
    out again once the backward that read them is done: a fresh array of a few MB costs a page fault
    per 4 kB on first touch (PERFORMANCE.md lesson 5; 2272 faults, ~3 ms, per float32 forward +
    backward of LSTM T64 B32 I64 H128 before this). An array is in the pool or in one call's
    saved state, never both; arrays of a call whose backward never comes are left to the garbage
    collector. At most `keep` arrays per shape and dtype."""

    def __init__(self, keep=8):
        self.keep = keep
        self.free = {}
        self.huge = {}                                 # the recurrent weights' copies (recurrent_weight)

    def take(self, shape, dtype):
        lst = self.free.get((shape, np.dtype(dtype)))
        return lst.pop() if lst else np.empty(shape, dtype)

    def give(self, *arrays):
        for a in arrays:
            if a is not None:
                lst = self.free.setdefault((a.shape, a.dtype), [])
                if len(lst) < self.keep:
                    lst.append(a)

    def _take_weight(self, shape, dtype):
        lst = self.huge.get((shape, dtype))
        return lst.pop() if lst else huge_empty(shape, dtype)

    def recurrent_weight(self, Whh, transposed):
        """Ω_h (or Ω_hᵀ) copied to an array on huge pages (engine.memory.huge_empty), kept from call
        to call: every step's product reads it, and on 4 KiB pages the product's time varied by up
        to 1.6x with where the pages fell in the cache. Give it back with give_weight."""
        W = self._take_weight(Whh.shape[::-1] if transposed else Whh.shape, Whh.dtype)
        n = chunks_for(Whh.shape[0], min_rows=16, row_cost=Whh.shape[1])
        if n > 1:                     # NumPy's strided copy: 0.33 ms for 1024 x 256 float32, this 0.18;
            parallel_call(_copy_into, n, Whh, W, transposed)   # the straight copy of a cold Ω_h 0.15 ms
        else:
            W[...] = Whh.T if transposed else Whh
        return W

    def packed_weight(self, Whh, pack_w):
        """Ω_h packed for OpenBLAS's kernel (engine.blas.pack_weight) in an array on huge pages of
        Ω_h's shape, kept from call to call like recurrent_weight's copies; give it back with give_weight."""
        W = self._take_weight(Whh.shape, Whh.dtype)
        pack_weight(pack_w, Whh, W)
        return W

    def give_weight(self, W):
        lst = self.huge.setdefault((W.shape, W.dtype), [])
        if len(lst) < max(self.keep, 1):
            lst.append(W)


@njit(cache=True, parallel=True)
def _copy_into(src, dst, transposed, nthreads):
    """dst = srcᵀ (dst (C, R)) or src (dst (R, C)), src (R, C) C-contiguous, src's rows split over threads."""
    R, C = src.shape
    flat = src.reshape(R * C)
    for c in prange(nthreads):
        lo, hi = c * R // nthreads, (c + 1) * R // nthreads
        if transposed:
            transpose_rows(flat, lo * C, C, hi - lo, C, dst[:, lo:hi])
        else:
            dst[lo:hi] = src[lo:hi]


def _project(X, Wih, b, P, add_bias, gemm):
    """P = Φ_x = X Ω_xᵀ (+ b): one product over the T·N rows, or for a TokenLookup the rows of the
    table weight Ω_xᵀ (V × G·H) gathered by token."""
    T, N, GH = P.shape
    if isinstance(X, TokenLookup):
        table = X.weight @ Wih.T
        if add_bias:
            table += b
        parallel_call(_gather_rows, chunks_for(T * N, row_cost=GH // 8), X.ids.reshape(-1), table,
                      P.reshape(T * N, GH))
        return
    X, = _contig(X)
    parallel_call(_input_products, chunks_for(T * N, row_cost=GH * X.shape[2]), X, Wih, b, P, add_bias, gemm)


def _table_backward(X, dP, Wih, dWih):
    """For a TokenLookup input: S = ∂ℓ/∂Φ_x summed by token (V × G·H); ∂ℓ/∂Ω_x += Sᵀ weight;
    returns ∂ℓ/∂weight = S Ω_x (V, input_size)."""
    T, N, GH = dP.shape
    S = np.empty((X.weight.shape[0], GH), dP.dtype)
    parallel_call(_scatter_rows, chunks_for(GH, min_rows=16, row_cost=T * N), dP.reshape(T * N, GH),
                  X.ids.reshape(-1), S)
    dWih += S.T @ X.weight
    return S @ Wih


def _dir_forward_fast(mode, X, h0, c0, W, relu, reverse, ws=None, h0_zero=False, fresh=False):
    """One layer and direction over the whole sequence. h0_zero: h_0 (and c_0) are known zeros (no
    initial state given), so the LSTM skips the first step's product with them. fresh: Y is a new
    array, not the workspace's (it is the layer's output, which the caller keeps)."""
    ws = Workspace(0) if ws is None else ws
    Wih, Whh, bih, bhh = _contig(*W)
    h0, = _contig(h0)
    T, N, I = X.shape
    H = h0.shape[1]
    GH = Wih.shape[0]
    dt = Wih.dtype
    gemm = gemm_for(dt)
    P = ws.take((T, N, GH), dt)
    nb = _batch_chunks(N, T, GH, H)
    last = 0 if reverse else -1
    Y = np.empty((T, N, H), dt) if fresh else ws.take((T, N, H), dt)
    copy = T >= MIN_STEPS_FOR_COPY
    packed, pack_w, pack_x, kernel = packed_for(dt)
    packed = packed and copy and PACKED_STEPS          # Ω_h packed once for all T steps (engine.blas)
    if mode == "LSTM":
        # Φ_x = X Ω_xᵀ without the biases: the gate loop adds β_x + β_h to each row while it is in cache;
        # a TokenLookup's rows of E Ω_xᵀ are read there too (no gathered copy)
        if isinstance(X, TokenLookup):
            xids, xtab = X.ids, X.weight @ Wih.T
        else:
            xids, xtab = np.empty((0, 0), np.int64), np.empty((0, 0), dt)
            _project(X, Wih, bih, P, False, gemm)
        c0, = _contig(c0)
        C = ws.take((T, N, H), dt)
        if packed:
            nf, nn, Wr = GH, False, ws.packed_weight(Whh, pack_w)
        else:
            nf, nn = step_blocks(-(-N // nb), H, GH, dt, stored=copy)[:2]
            Wr = ws.recurrent_weight(Whh, nn) if copy else Whh   # Ω_hᵀ (nn) or Ω_h, on huge pages
        parallel_call(lstm_seq_forward, nb, P, Y, C, h0, c0, Wr, bih + bhh, xids, xtab, reverse,
                      dt == np.float32, h0_zero, packed, nf, nn, gemm, pack_x, kernel)
        if copy:
            ws.give_weight(Wr)
        return Y, Y[last].copy(), C[last].copy(), (Y, C, P, not fresh)
    bx = bih if mode == "GRU" else bih + bhh          # the GRU keeps β_h apart (its n gate)
    _project(X, Wih, bx, P, True, gemm)
    # without packing, the per-step product h Ω_hᵀ with Ω_hᵀ stored: BLAS runs it 1.5-2x faster than
    # with Ω_h transposed on the fly (32 x 1024 x 256 float32: 10.0 vs 14.5 ms for 64 steps, one thread)
    Wr = ws.packed_weight(Whh, pack_w) if packed else ws.recurrent_weight(Whh, True)
    if mode == "RNN":
        parallel_call(rnn_seq_forward, nb, P, Y, h0, Wr, relu, reverse, packed, gemm, pack_x, kernel)
        ws.give(P)
        ws.give_weight(Wr)
        return Y, Y[last].copy(), None, (Y, None, None, not fresh)
    G = ws.take((T, N, 4 * H), dt)
    parallel_call(gru_seq_forward, nb, P, G, Y, h0, Wr, bhh, reverse, dt == np.float32, packed, gemm, pack_x, kernel)
    ws.give(P)
    ws.give_weight(Wr)
    return Y, Y[last].copy(), None, (Y, None, G, not fresh)


def _dir_backward_fast(mode, dY, dhT, dcT, X, h0, c0, saved, W, dW, relu, reverse, ws=None, need_dh0=True):
    """BPTT of one layer and direction; the saved arrays go back to the workspace afterwards (Y only
    when it came from there). need_dh0=False: the caller drops ∂ℓ/∂h_0 (no initial state was
    given), so the LSTM skips the last step's product for it and returns zeros."""
    ws = Workspace(0) if ws is None else ws
    Y, C, G, pooled = saved
    Wih, Whh, _, _ = _contig(*W)
    dWih, dWhh, dbih, dbhh = dW
    lookup = isinstance(X, TokenLookup)
    dY, dhT, h0 = _contig(dY, dhT, h0)
    X = X if lookup else np.ascontiguousarray(X)
    T, N, I = X.shape
    H = h0.shape[1]
    GH = Wih.shape[0]
    dt = Wih.dtype
    gemm = gemm_for(dt)
    nb = _batch_chunks(N, T, GH, H)
    dc = None
    dP = G if mode == "LSTM" else ws.take((T, N, GH), dt)   # the LSTM's ∂ℓ/∂Φ overwrites its gates
    dPh = dP
    bias_sums = True
    copy = T >= MIN_STEPS_FOR_COPY
    Wb = ws.recurrent_weight(Whh, False) if copy else Whh   # Ω_h on huge pages, for every step's product
    if mode == "RNN":
        dh = parallel_call(rnn_seq_backward, nb, dP, dY, dhT, Y, Wb, relu, reverse, gemm)
    elif mode == "LSTM":
        dcT, c0 = _contig(dcT, c0)
        cb, kb = step_blocks(-(-N // nb), H, GH, dt)[2:]
        dB = ws.take((nb, GH), dt)                     # per-chunk sums of ∂ℓ/∂Φ: the biases' gradient
        dh, dc = parallel_call(lstm_seq_backward, nb, dY, dhT, dcT, c0, C, G, Wb, dB, dbih, dbhh,
                               reverse, dt == np.float32, need_dh0, cb, kb, gemm)
        ws.give(dB)
        bias_sums = False
    else:
        dPh = ws.take((T, N, GH), dt)
        dh = parallel_call(gru_seq_backward, nb, dP, dPh, dY, dhT, h0, Y, G, Wb, reverse, gemm)
    if copy:
        ws.give_weight(Wb)
    # a TokenLookup's X side (∂ℓ/∂X, ∂ℓ/∂Ω_x) is the table's: X is then a placeholder for the kernel
    dX = parallel_call(_param_products, chunks_for(T * N, row_cost=GH * (H if lookup else I + H)), dP, dPh,
                       np.empty((T, N, 0), dt) if lookup else X, Y, h0, Wih, dWih, dWhh, dbih, dbhh, reverse,
                       need_dh0, bias_sums, not lookup, gemm)
    if lookup:
        dX = _table_backward(X, dP, Wih, dWih)
    ws.give(dP, None if dPh is dP else dPh, None if G is dP else G, Y if pooled else None)
    if mode == "LSTM":
        ws.give(C)
    return dX, dh, dc


# float32 gates (PERFORMANCE.md, lesson 4): exp and tanh are scalar calls that dominate the
# LSTM's and GRU's time; in float32 the fast kernels use a rational approximation of tanh that
# LLVM vectorises, tanh(x) ≈ x P(x²) / Q(x²) with P of degree 6 and Q of degree 3 (P(0) = Q(0) = 1,
# so tanh'(0) = 1 exactly), and exactly ±1 from |x| ≥ 7.9053 on (tanh there is within 2.7e-7 of it), and
# σ(v) = ½ + ½ tanh(v/2). The coefficients were fitted for this project by
# scripts/derive_tanh32.py (Lawson-reweighted, linearised least squares for the relative error on
# (0, 7.9053]): relative error 1.6e-9 in float64 arithmetic, 3.2e-7 evaluated in float32.
# tests/test_recurrent.py bounds the error over float32's range (4e-7 relative for tanh, 3e-7
# absolute for σ). float64 keeps the exact functions.
@njit(cache=True, inline="always")
def _tanh32(x):
    c = np.float32(7.90531110763549805)
    x = min(max(x, -c), c)
    x2 = x * x
    p = x2 * np.float32(-1.19913322324713e-13) + np.float32(6.507570864130494e-11)
    p = x2 * p + np.float32(-2.2575268780617476e-08)
    p = x2 * p + np.float32(1.1701634870900848e-05)
    p = x2 * p + np.float32(0.003154804232546576)
    p = x2 * p + np.float32(0.13129168625225285)
    p = x2 * p + np.float32(1.0)
    q = x2 * np.float32(0.00026210153530021175) + np.float32(0.02469649618229633)
    q = x2 * q + np.float32(0.4646250088343747)
    q = x2 * q + np.float32(1.0)
    r = x * p / q
    # at the clamp (|x| ≥ c) the exact limit ±1: tanh(c) = 1 − 2.7e-7, inside the error bound
    return r if abs(x) < c else (np.float32(1.0) if x > 0 else np.float32(-1.0))


@njit(cache=True, inline="always")
def _sig32(x):
    h = np.float32(0.5)
    return h + h * _tanh32(h * x)


# float64 gates: the same lesson with full accuracy. e^x for x ≤ 0 as 2^k (1 + q), k = round(x / ln 2),
# r = x − k ln 2 (Cody–Waite: ln 2 split in two so that k · LN2_HI is exact), |r| ≤ ln 2 / 2,
# q = e^r − 1 by its Taylor series to r^13 (remainder below 4e-18 there), 2^k from the bits of −k
# as exact products of powers of two; x is clamped at −708 (e^−708 = 3e-308, still normal). Then
# tanh|x| = −m / (2 + m) with m = e^{−2|x|} − 1 = 2^k q + (2^k − 1) (no cancellation near 0) and
# σ(x) = (1 or e) / (1 + e) with e = e^{−|x|}. Selects and arithmetic only, so the loops vectorise
# (4x faster than the scalar libm calls here); tests/test_recurrent.py bounds the error against
# NumPy's tanh and exp (within 5e-16 relative, about 2 units in the last place).
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
LOG2E = 1.4426950408889634


@njit(cache=True, inline="always", error_model="numpy")
def _exp_parts64(x):
    """(2^k, q) with e^x = 2^k (1 + q) for x ≤ 0 (clamped at −708)."""
    x = max(x, -708.0)
    k = np.floor(x * LOG2E + 0.5)
    r = (x - k * LN2_HI) - k * LN2_LO
    q = 1.0 / 6227020800.0
    q = q * r + 1.0 / 479001600.0
    q = q * r + 1.0 / 39916800.0
    q = q * r + 1.0 / 3628800.0
    q = q * r + 1.0 / 362880.0
    q = q * r + 1.0 / 40320.0
    q = q * r + 1.0 / 5040.0
    q = q * r + 1.0 / 720.0
    q = q * r + 1.0 / 120.0
    q = q * r + 1.0 / 24.0
    q = q * r + 1.0 / 6.0
    q = q * r + 0.5
    q = (q * r) * r + r
    m = np.int64(-k)                                      # 0 ≤ −k ≤ 1022
    s = 1.0
    s = s * 0.5 if m & 1 else s
    s = s * 0.25 if m & 2 else s
    s = s * 0.0625 if m & 4 else s
    s = s * 0.00390625 if m & 8 else s
    s = s * 1.52587890625e-05 if m & 16 else s
    s = s * 2.3283064365386963e-10 if m & 32 else s
    s = s * 5.421010862427522e-20 if m & 64 else s
    s = s * 2.938735877055719e-39 if m & 128 else s
    s = s * 8.636168555094445e-78 if m & 256 else s
    s = s * 7.458340731200207e-155 if m & 512 else s
    return s, q


@njit(cache=True, inline="always", error_model="numpy")
def _tanh64(x):
    s, q = _exp_parts64(-2.0 * abs(x))
    m = s * q + (s - 1.0)                                 # e^{−2|x|} − 1 ∈ (−1, 0]
    t = -m / (2.0 + m)
    return t if x >= 0 else -t


@njit(cache=True, inline="always", error_model="numpy")
def _sig64(x):
    s, q = _exp_parts64(-abs(x))
    e = s + s * q                                         # e^{−|x|}
    return (1.0 if x >= 0 else e) / (1.0 + e)


def fast_gate(x, tanh=True):
    """The fast kernels' tanh (tanh=True) or σ, elementwise over a 1-D array: for float32 the
    vectorisable rational approximation, for float64 the vectorisable exact-to-rounding one (for the
    error tests)."""
    out = x.copy()
    _activate(out, 0, out.size, tanh, out.dtype == np.float32)
    return out


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _activate(g, lo, hi, tanh, approx):
    """g[lo:hi] = tanh(g) or σ(g) in place: the float32 approximations when `approx`, else the
    float64 ones (both vectorise; the reference kernels keep libm's). With FMA contraction (its own
    flags, not a caller's): per 1M elements, one thread, float32 tanh 0.67 -> 0.36 ms, σ 0.78 ->
    0.42 ms, float64 tanh 4.1 -> 2.9 ms; the error bounds of tests/test_recurrent.py hold."""
    r = g[lo:hi]
    if approx:
        if tanh:
            for j in range(r.size):
                r[j] = _tanh32(r[j])
        else:
            for j in range(r.size):
                r[j] = _sig32(r[j])
    else:
        if tanh:
            for j in range(r.size):
                r[j] = _tanh64(r[j])
        else:
            for j in range(r.size):
                r[j] = _sig64(r[j])


@njit(cache=True, parallel=True)
def _input_products(X, Wih, b, P, add_bias, gemm, nthreads):
    """P = Φ_x = X Ω_xᵀ (+ b when add_bias) for every step at once: (T, N, I) -> (T, N, GH), the T·N
    rows split over threads."""
    T, N, I = X.shape
    GH = Wih.shape[0]
    R = T * N
    for c in prange(nthreads):
        lo, hi = c * R // nthreads, (c + 1) * R // nthreads
        if hi > lo:
            # Φ_x[rows lo:hi] = X[rows lo:hi] Ω_xᵀ
            gemm_at(gemm, hi - lo, GH, I, 1.0, X, lo * I, I, NO_TRANS, Wih, 0, I, TRANS, 0.0, P, lo * GH, GH)
            if add_bias:
                P2 = P.reshape(R, GH)
                for r in range(lo, hi):
                    P2[r] += b


@njit(cache=True, parallel=True)
def _param_products(dPx, dPh, X, Y, h0, Wih, dWih, dWhh, dbih, dbhh, reverse, with_h0, bias_sums, x_side, gemm,
                    nthreads):
    """After the recurrence, over all T·N rows at once: returns ∂ℓ/∂X = ∂ℓ/∂Φ_x Ω_x (rows split over
    threads) and accumulates ∂ℓ/∂Ω_x += ∂ℓ/∂Φ_xᵀ X, ∂ℓ/∂Ω_h += Σ_t ∂ℓ/∂Φ_h[t]ᵀ h_{t−1} (the h_0
    term only when with_h0: without it h_0 is zero), and when bias_sums ∂ℓ/∂β_x += Σ ∂ℓ/∂Φ_x,
    ∂ℓ/∂β_h += Σ ∂ℓ/∂Φ_h (Ω's rows j split over threads). h_{t−1} is Y[t ∓ 1] (the direction's
    previous step) or h_0 at the direction's first step. Without x_side, neither ∂ℓ/∂X (returned
    empty) nor ∂ℓ/∂Ω_x (a TokenLookup's are the table's, `_table_backward`)."""
    T, N, GH = dPx.shape
    I = Wih.shape[1]
    H = Y.shape[2]
    R = T * N
    dX = np.empty((T, N, I if x_side else 0), Y.dtype)
    Ax = dPx.reshape(R, GH)
    Ah = dPh.reshape(R, GH)
    t0 = T - 1 if reverse else 0                       # the step whose h_{t−1} is h_0
    for c in prange(nthreads):
        lo, hi = c * R // nthreads, (c + 1) * R // nthreads
        if hi > lo and x_side:
            # ∂ℓ/∂X[rows lo:hi] = ∂ℓ/∂Φ_x[rows lo:hi] Ω_x
            gemm_at(gemm, hi - lo, I, GH, 1.0, dPx, lo * GH, GH, NO_TRANS, Wih, 0, I, NO_TRANS, 0.0, dX, lo * I, I)
        jl, jh = c * GH // nthreads, (c + 1) * GH // nthreads
        if jh > jl:
            m = jh - jl
            if x_side:
                # ∂ℓ/∂Ω_x[jl:jh] += ∂ℓ/∂Φ_x[:, jl:jh]ᵀ X
                gemm_at(gemm, m, I, R, 1.0, dPx, jl, GH, TRANS, X, 0, I, NO_TRANS, 1.0, dWih, jl * I, I)
            if T > 1:
                if reverse:
                    # ∂ℓ/∂Ω_h[jl:jh] += ∂ℓ/∂Φ_h[0:T−1, :, jl:jh]ᵀ Y[1:T]
                    gemm_at(gemm, m, H, (T - 1) * N, 1.0, dPh, jl, GH, TRANS, Y, N * H, H, NO_TRANS,
                            1.0, dWhh, jl * H, H)
                else:
                    # ∂ℓ/∂Ω_h[jl:jh] += ∂ℓ/∂Φ_h[1:T, :, jl:jh]ᵀ Y[0:T−1]
                    gemm_at(gemm, m, H, (T - 1) * N, 1.0, dPh, N * GH + jl, GH, TRANS, Y, 0, H, NO_TRANS,
                            1.0, dWhh, jl * H, H)
            if with_h0:
                # ∂ℓ/∂Ω_h[jl:jh] += ∂ℓ/∂Φ_h[t0, :, jl:jh]ᵀ h_0
                gemm_at(gemm, m, H, N, 1.0, dPh, t0 * N * GH + jl, GH, TRANS, h0, 0, H, NO_TRANS,
                        1.0, dWhh, jl * H, H)
            if bias_sums:
                # ∂ℓ/∂β_x[jl:jh] += Σ_rows ∂ℓ/∂Φ_x[:, jl:jh], the same for β_h (summed once when Φ_x is Φ_h)
                bx, bh = dbih[jl:jh], dbhh[jl:jh]
                sx = _column_sums(Ax, jl, jh)
                sh = sx if dPh is dPx else _column_sums(Ah, jl, jh)
                for j in range(m):
                    bx[j] += sx[j]
                    bh[j] += sh[j]
    return dX


@njit(cache=True)
def _column_sums(A, lo, hi):
    """Σ_r A[r, lo:hi] over the rows of a C-contiguous 2D array (each row read as a 1D slice)."""
    acc = np.zeros(hi - lo, A.dtype)
    for r in range(A.shape[0]):
        a = A[r]
        row = a[lo:hi]
        for j in range(hi - lo):
            acc[j] += row[j]
    return acc


@njit(cache=True, parallel=True)
def _gather_rows(ids, table, P2, nthreads):
    """P2[r] = table[ids[r]] for the R rows (TokenLookup's Φ_x), rows split over threads."""
    R, GH = P2.shape
    for c in prange(nthreads):
        for r in range(c * R // nthreads, (c + 1) * R // nthreads):
            src, dst = table[ids[r]], P2[r]
            for j in range(GH):
                dst[j] = src[j]


@njit(cache=True, parallel=True)
def _scatter_rows(A, ids, S, nthreads):
    """S[v] = Σ_{r: ids[r] = v} A[r] (V × GH), over column blocks split between threads (no two threads
    write one element; each block walks the rows in order)."""
    R, GH = A.shape
    V = S.shape[0]
    for c in prange(nthreads):
        lo, hi = c * GH // nthreads, (c + 1) * GH // nthreads
        for v in range(V):
            s = S[v, lo:hi]
            for j in range(hi - lo):
                s[j] = 0.0
        for r in range(R):
            s, a = S[ids[r], lo:hi], A[r, lo:hi]
            for j in range(hi - lo):
                s[j] += a[j]


# ---- RNN ----
@njit(cache=True, error_model="numpy")
def _rnn_rows_forward(P, Y, h0, Wr, lo, hi, relu, reverse, packed, gemm, pack_x, kernel):
    """Rows lo:hi of the batch through all T steps: Φ[t] += h_{t−1} Ω_hᵀ, y_t = a(Φ[t]); Wr = Ω_h
    packed for OpenBLAS's kernel when `packed` (engine.blas.gemm_packed_at), else Ω_hᵀ."""
    T, N, H = P.shape
    m = hi - lo
    Xp = packing_scratch(m * H if packed else 0, P)          # h_{t−1}[lo:hi] packed for the kernel
    for s in range(T):
        t = T - 1 - s if reverse else s
        prev = t + 1 if reverse else t - 1
        # Φ[t, lo:hi] += h_{t−1}[lo:hi] Ω_hᵀ
        src = h0 if s == 0 else Y[prev]
        if packed:
            gemm_packed_at(kernel, pack_x, m, H, H, 1.0, src, lo * H, H, Wr, Xp, P, (t * N + lo) * H, H)
        else:
            gemm_at(gemm, m, H, H, 1.0, src, lo * H, H, NO_TRANS, Wr, 0, H, NO_TRANS, 1.0, P, (t * N + lo) * H, H)
        for n in range(lo, hi):
            p, y = P[t, n], Y[t, n]
            if relu:
                for k in range(H):
                    y[k] = max(p[k], 0.0)
            else:
                for k in range(H):
                    y[k] = np.tanh(p[k])


@njit(cache=True, parallel=True)
def rnn_seq_forward(P, Y, h0, Wr, relu, reverse, packed, gemm, pack_x, kernel, nthreads):
    """h_t = a(Φ[t] + h_{t−1} Ω_hᵀ) for the whole sequence, Φ = X Ω_xᵀ + β_x + β_h given as P
    (T, N, H) (overwritten), into Y (T, N, H). The batch split over threads."""
    T, N, H = P.shape
    for c in prange(nthreads):
        lo, hi = c * N // nthreads, (c + 1) * N // nthreads
        if hi > lo:
            _rnn_rows_forward(P, Y, h0, Wr, lo, hi, relu, reverse, packed, gemm, pack_x, kernel)


@njit(cache=True, error_model="numpy")
def _rnn_rows_backward(dP, dh, dY, Y, Whh, lo, hi, relu, reverse, gemm):
    T, N, H = Y.shape
    m = hi - lo
    for s in range(T):
        t = s if reverse else T - 1 - s
        for n in range(lo, hi):
            y, d, dyt, dp = Y[t, n], dh[n], dY[t, n], dP[t, n]
            if relu:
                for k in range(H):
                    dp[k] = (d[k] + dyt[k]) if y[k] > 0 else 0.0
            else:
                for k in range(H):
                    dp[k] = (d[k] + dyt[k]) * (1 - y[k] * y[k])
        # ∂ℓ/∂h_{t−1}[lo:hi] = ∂ℓ/∂Φ[t, lo:hi] Ω_h
        gemm_at(gemm, m, H, H, 1.0, dP, (t * N + lo) * H, H, NO_TRANS, Whh, 0, H, NO_TRANS, 0.0, dh, lo * H, H)


@njit(cache=True, parallel=True)
def rnn_seq_backward(dP, dY, dhT, Y, Whh, relu, reverse, gemm, nthreads):
    """BPTT: ∂ℓ/∂Φ[t] = a'(Φ[t]) ⊙ (∂ℓ/∂y_t + ∂ℓ/∂h_t from t+1), ∂ℓ/∂h_{t−1} = ∂ℓ/∂Φ[t] Ω_h, the
    batch split over threads. Fills dP = ∂ℓ/∂Φ (T, N, H). -> ∂ℓ/∂h_0."""
    T, N, H = Y.shape
    dh = dhT.copy()
    for c in prange(nthreads):
        lo, hi = c * N // nthreads, (c + 1) * N // nthreads
        if hi > lo:
            _rnn_rows_backward(dP, dh, dY, Y, Whh, lo, hi, relu, reverse, gemm)
    return dh


# ---- LSTM ----
@njit(cache=True, error_model="numpy")
def _lstm_rows_forward(G, Y, C, h0, c0, Wr, b, xids, xtab, lo, hi, reverse, approx, h0_zero, packed, nf, nn, gemm,
                       pack_x, kernel):
    """Rows lo:hi of the batch through all T steps. G[t] holds x_t Ω_xᵀ on entry, or, when xids is
    not empty (a TokenLookup), nothing: x_t Ω_xᵀ is then row xids[t, n] of the table xtab (V, 4H),
    added in the gate loop. On exit G holds the activated gates [i f g o]; b = β_x + β_h. The step's
    product h_{t−1} Ω_hᵀ goes into a scratch array the gate loop adds: with Wr = Ω_h packed for
    OpenBLAS's kernel when `packed` (engine.blas.gemm_packed_at), else in blocks of nf gate columns
    (OpenBLAS's small kernels, see step_blocks) with Wr = Ω_hᵀ (nn) or Wr = Ω_h; skipped at the
    first step when h_0 is known to be zero."""
    T, N, GH = G.shape
    H = GH // 4
    m = hi - lo
    lookup = xids.shape[0] > 0
    S = np.empty((m, GH), G.dtype)                            # the step's h_{t−1} Ω_hᵀ for rows lo:hi
    Xp = packing_scratch(m * H if packed else 0, G)          # h_{t−1}[lo:hi] packed for the kernel
    tc = np.empty(H, G.dtype)                                 # tanh(c_t) of one row (not kept: the
    # backward recomputes it from c_t, bit for bit, cheaper than a (T, N, H) array through memory)
    for s in range(T):
        t = T - 1 - s if reverse else s
        prev = t + 1 if reverse else t - 1
        # S = h_{t−1}[lo:hi] Ω_hᵀ, written (β = 0) to a small array that stays in cache and added in
        # the gate loop: accumulating into G[t] (β = 1) read and wrote the streamed gate array in the
        # product, ~10 % slower (H = 256, float32)
        product = s > 0 or not h0_zero
        if product:
            src = h0 if s == 0 else Y[prev]
            if packed:                                        # the kernel adds to S: S = 0 + h Ω_hᵀ
                S[:] = 0.0
                gemm_packed_at(kernel, pack_x, m, GH, H, 1.0, src, lo * H, H, Wr, Xp, S, 0, GH)
            else:
                for j in range(0, GH, nf):
                    if nn:                                    # Wr = Ω_hᵀ (H, GH): columns j … j + nf
                        gemm_at(gemm, m, min(nf, GH - j), H, 1.0, src, lo * H, H, NO_TRANS, Wr, j, GH,
                                NO_TRANS, 0.0, S, j, GH)
                    else:                                     # Wr = Ω_h (GH, H): rows j … j + nf
                        gemm_at(gemm, m, min(nf, GH - j), H, 1.0, src, lo * H, H, NO_TRANS, Wr, j * H, H,
                                TRANS, 0.0, S, j, GH)
        for n in range(lo, hi):
            g, hs = G[t, n], S[n - lo]
            if lookup:
                xr = xtab[xids[t, n]]
                if product:
                    for j in range(GH):                       # x_t Ω_xᵀ + h_{t−1} Ω_hᵀ + β_x + β_h
                        g[j] = xr[j] + hs[j] + b[j]
                else:
                    for j in range(GH):
                        g[j] = xr[j] + b[j]
            elif product:
                for j in range(GH):
                    g[j] += hs[j] + b[j]
            else:
                for j in range(GH):
                    g[j] += b[j]
            _activate(g, 0, 2 * H, False, approx)             # i, f
            _activate(g, 2 * H, 3 * H, True, approx)          # g
            _activate(g, 3 * H, 4 * H, False, approx)         # o
            gi, gf, gg, go = g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H]
            cp = c0[n] if s == 0 else C[prev, n]
            cn, y = C[t, n], Y[t, n]
            for k in range(H):
                cn[k] = gf[k] * cp[k] + gi[k] * gg[k]
            for k in range(H):
                tc[k] = cn[k]
            _activate(tc, 0, H, True, approx)
            for k in range(H):
                y[k] = go[k] * tc[k]


@njit(cache=True, parallel=True)
def lstm_seq_forward(P, Y, C, h0, c0, Wr, b, xids, xtab, reverse, approx, h0_zero, packed, nf, nn, gemm, pack_x, kernel,
                     nthreads):
    """The LSTM over the whole sequence from P = X Ω_xᵀ (T, N, 4H) (or, for a TokenLookup, from the
    rows xids (T, N) of xtab = E Ω_xᵀ, P's contents ignored), P becoming the activated gates;
    b = β_x + β_h; fills Y and C (T, N, H). The batch split over threads."""
    T, N, GH = P.shape
    for c in prange(nthreads):
        lo, hi = c * N // nthreads, (c + 1) * N // nthreads
        if hi > lo:
            _lstm_rows_forward(P, Y, C, h0, c0, Wr, b, xids, xtab, lo, hi, reverse, approx, h0_zero, packed, nf, nn,
                               gemm, pack_x, kernel)


@njit(cache=True, error_model="numpy")
def _lstm_rows_backward(G, dh, dc, dY, c0, C, Whh, db, lo, hi, reverse, approx, need_dh0, nb, kb, gemm):
    """BPTT for rows lo:hi, G's activated gates overwritten by ∂ℓ/∂Φ (each element's gate values are
    read before its gradient is written: one array streamed through memory instead of two); dh, dc
    hold ∂ℓ/∂h_T, ∂ℓ/∂c_T on entry and ∂ℓ/∂h_0 (zeros unless need_dh0), ∂ℓ/∂c_0 on exit;
    db (4H,) <- Σ_{t, rows} ∂ℓ/∂Φ. The step's product ∂ℓ/∂Φ Ω_h in blocks of nb hidden columns ×
    kb gate rows (step_blocks)."""
    T, N, GH = G.shape
    H = GH // 4
    m = hi - lo
    one = G.dtype.type(1.0)
    tc = np.empty(H, G.dtype)                                 # tanh(c_t) of one row
    dct = np.empty(H, G.dtype)                                # ∂ℓ/∂c_t of one row
    for j in range(GH):
        db[j] = 0.0
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev = t + 1 if reverse else t - 1
        for n in range(lo, hi):
            g = G[t, n]
            gi, gf, gg, go = g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H]
            cp = c0[n] if s == T - 1 else C[prev, n]
            ct, dyt, dhn, dcn = C[t, n], dY[t, n], dh[n], dc[n]
            for k in range(H):                               # tanh(c_t), as the forward computed it
                tc[k] = ct[k]
            _activate(tc, 0, H, True, approx)
            # three loops rather than one: LLVM vectorises a loop over several arrays only after
            # checking at run time that they do not overlap, and gives up when there are too many
            # (one loop over all nine ran scalar: 1.04 -> 0.68 ms per 1024 rows of H 256, one thread)
            for k in range(H):
                d = dhn[k] + dyt[k]                          # ∂ℓ/∂h_t: from y_t and from step t+1
                th, o = tc[k], go[k]
                dct[k] = dcn[k] + d * o * (one - th * th)    # ∂ℓ/∂c_t += ∂ℓ/∂h_t ⊙ o ⊙ (1 − tanh²(c_t))
                go[k] = d * th * o * (one - o)               # ∂ℓ/∂p_o (the gates' gradients in place)
            for k in range(H):
                i, gv = gi[k], gg[k]
                gi[k] = dct[k] * gv * i * (one - i)          # ∂ℓ/∂p_i
                gg[k] = dct[k] * i * (one - gv * gv)         # ∂ℓ/∂p_g
            for k in range(H):
                f = gf[k]
                gf[k] = dct[k] * cp[k] * f * (one - f)       # ∂ℓ/∂p_f
                dcn[k] = dct[k] * f                          # ∂ℓ/∂c_{t−1} = ∂ℓ/∂c_t ⊙ f
            for j in range(GH):
                db[j] += g[j]
        # ∂ℓ/∂h_{t−1}[lo:hi] = ∂ℓ/∂Φ[t, lo:hi] Ω_h (not needed for h_0 when no initial state was given)
        if s < T - 1 or need_dh0:
            for j in range(0, H, nb):
                for k in range(0, GH, kb):
                    gemm_at(gemm, m, min(nb, H - j), min(kb, GH - k), 1.0, G, (t * N + lo) * GH + k, GH, NO_TRANS,
                            Whh, k * H + j, H, NO_TRANS, 0.0 if k == 0 else 1.0, dh, lo * H + j, H)
        else:
            for n in range(lo, hi):
                dhn = dh[n]
                for k in range(H):
                    dhn[k] = 0.0


@njit(cache=True, parallel=True)
def lstm_seq_backward(dY, dhT, dcT, c0, C, G, Whh, dB, dbih, dbhh, reverse, approx, need_dh0, nb, kb, gemm, nthreads):
    """BPTT through the LSTM (module docstring), the batch split over threads. Overwrites the gates
    G (T, N, 4H) with ∂ℓ/∂Φ; adds Σ ∂ℓ/∂Φ to dbih and dbhh (each chunk's sum in its row of dB
    (nthreads, 4H)). -> (∂ℓ/∂h_0, ∂ℓ/∂c_0)."""
    T, N, GH = G.shape
    dh = dhT.copy()
    dc = dcT.copy()
    for c in prange(nthreads):
        lo, hi = c * N // nthreads, (c + 1) * N // nthreads
        if hi > lo:
            _lstm_rows_backward(G, dh, dc, dY, c0, C, Whh, dB[c], lo, hi, reverse, approx, need_dh0, nb, kb, gemm)
        else:
            db = dB[c]
            for j in range(GH):
                db[j] = 0.0
    for c in range(nthreads):
        db = dB[c]
        for j in range(GH):
            dbih[j] += db[j]
            dbhh[j] += db[j]
    return dh, dc


# ---- GRU ----
@njit(cache=True, error_model="numpy")
def _gru_rows_forward(P, Q, G, Y, h0, Wr, bhh, lo, hi, reverse, approx, packed, gemm, pack_x, kernel):
    """Rows lo:hi through all T steps; P = Φ_x = X Ω_xᵀ + β_x (T, N, 3H), Q (N, 3H) the step's
    h_{t−1} Ω_hᵀ, G (T, N, 4H) <- r, z, n, W_hn h + b_hn; Wr = Ω_h packed for OpenBLAS's kernel
    when `packed` (engine.blas.gemm_packed_at), else Ω_hᵀ."""
    T, N, H3 = P.shape
    H = H3 // 3
    m = hi - lo
    Xp = packing_scratch(m * H if packed else 0, P)          # h_{t−1}[lo:hi] packed for the kernel
    for s in range(T):
        t = T - 1 - s if reverse else s
        prev = t + 1 if reverse else t - 1
        # Q[lo:hi] = h_{t−1}[lo:hi] Ω_hᵀ
        src = h0 if s == 0 else Y[prev]
        if packed:                                            # the kernel adds to Q: Q = 0 + h Ω_hᵀ
            Q[lo:hi] = 0.0
            gemm_packed_at(kernel, pack_x, m, H3, H, 1.0, src, lo * H, H, Wr, Xp, Q, lo * H3, H3)
        else:
            gemm_at(gemm, m, H3, H, 1.0, src, lo * H, H, NO_TRANS, Wr, 0, H3, NO_TRANS, 0.0, Q, lo * H3, H3)
        for n in range(lo, hi):
            a, q, g, y = P[t, n], Q[n], G[t, n], Y[t, n]
            hp = h0[n] if s == 0 else Y[prev, n]
            for j in range(2 * H):
                g[j] = a[j] + q[j] + bhh[j]
            _activate(g, 0, 2 * H, False, approx)             # r, z
            gr, gz, gn, ghn = g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H]
            an, qn, bn = a[2 * H:3 * H], q[2 * H:3 * H], bhh[2 * H:3 * H]
            for k in range(H):
                ghn[k] = qn[k] + bn[k]
            for k in range(H):
                gn[k] = an[k] + gr[k] * ghn[k]
            _activate(g, 2 * H, 3 * H, True, approx)          # n
            for k in range(H):
                y[k] = gn[k] + gz[k] * (hp[k] - gn[k])       # (1 − z) n + z h_{t−1}


@njit(cache=True, parallel=True)
def gru_seq_forward(P, G, Y, h0, Wr, bhh, reverse, approx, packed, gemm, pack_x, kernel, nthreads):
    """The GRU over the whole sequence from P = Φ_x = X Ω_xᵀ + β_x (T, N, 3H); fills Y and the gates
    G (T, N, 4H): r, z, n, W_hn h + b_hn. The batch split over threads."""
    T, N, H3 = P.shape
    Q = np.empty((N, H3), P.dtype)
    for c in prange(nthreads):
        lo, hi = c * N // nthreads, (c + 1) * N // nthreads
        if hi > lo:
            _gru_rows_forward(P, Q, G, Y, h0, Wr, bhh, lo, hi, reverse, approx, packed, gemm, pack_x, kernel)


@njit(cache=True, error_model="numpy")
def _gru_rows_backward(dPx, dPh, dh, dY, h0, Y, G, Whh, lo, hi, reverse, gemm):
    T, N, H3 = dPx.shape
    H = H3 // 3
    m = hi - lo
    one = G.dtype.type(1.0)
    for s in range(T):
        t = s if reverse else T - 1 - s
        prev = t + 1 if reverse else t - 1
        for n in range(lo, hi):
            g, px, ph = G[t, n], dPx[t, n], dPh[t, n]
            gr, gz, gn, ghn = g[0:H], g[H:2 * H], g[2 * H:3 * H], g[3 * H:4 * H]
            xr, xz, xn = px[0:H], px[H:2 * H], px[2 * H:3 * H]
            hr, hz, hn = ph[0:H], ph[H:2 * H], ph[2 * H:3 * H]
            hp = h0[n] if s == T - 1 else Y[prev, n]
            d, dyt = dh[n], dY[t, n]
            for k in range(H):
                d[k] += dyt[k]
            for k in range(H):                                   # ∂ℓ/∂p_n
                xn[k] = d[k] * (one - gz[k]) * (one - gn[k] * gn[k])
            for k in range(H):                                   # ∂ℓ/∂p_r
                xr[k] = xn[k] * ghn[k] * gr[k] * (one - gr[k])
            for k in range(H):                                   # ∂ℓ/∂p_z
                xz[k] = d[k] * (hp[k] - gn[k]) * gz[k] * (one - gz[k])
            for k in range(H):
                hr[k] = xr[k]
                hz[k] = xz[k]
            for k in range(H):
                hn[k] = xn[k] * gr[k]
            for k in range(H):                                   # the direct path h_{t−1} → h_t
                d[k] *= gz[k]
        # ∂ℓ/∂h_{t−1}[lo:hi] += ∂ℓ/∂Φ_h[t, lo:hi] Ω_h
        gemm_at(gemm, m, H, H3, 1.0, dPh, (t * N + lo) * H3, H3, NO_TRANS, Whh, 0, H, NO_TRANS, 1.0, dh, lo * H, H)


@njit(cache=True, parallel=True)
def gru_seq_backward(dPx, dPh, dY, dhT, h0, Y, G, Whh, reverse, gemm, nthreads):
    """BPTT through the GRU (module docstring), the batch split over threads. Fills dPx = ∂ℓ/∂Φ_x
    and dPh = ∂ℓ/∂Φ_h (T, N, 3H). -> ∂ℓ/∂h_0."""
    T, N, H = Y.shape
    dh = dhT.copy()
    for c in prange(nthreads):
        lo, hi = c * N // nthreads, (c + 1) * N // nthreads
        if hi > lo:
            _gru_rows_backward(dPx, dPh, dh, dY, h0, Y, G, Whh, lo, hi, reverse, gemm)
    return dh
