"""Gradient traces: per-layer gradient norms at initialisation and along training (004 §3.6, 003 §1.3.2).

Backpropagation through the notes' MLP (000 §7.1.1) multiplies the gradient by Ω_kᵀ and a′[f_{k−1}]
once per layer:

    ∂ℓ/∂f_{k−1} = a′[f_{k−1}] ⊙ Ω_kᵀ ∂ℓ/∂f_k,        ∂ℓ/∂Ω_k = ∂ℓ/∂f_k h_kᵀ

so with a′ ≤ ¼ (sigmoid) the norm shrinks roughly geometrically towards the input (vanishing
gradients), and with a badly scaled Ω it grows (exploding). Norms reported here:

    ‖∂ℓ/∂f_k‖   = √(Σ_{n,j} (∂ℓ/∂f_k[n, j])² / N)     per-example RMS over the batch of N
    ‖∂ℓ/∂Ω_k‖, ‖∂ℓ/∂β_k‖  Frobenius norms of the accumulated parameter gradients

`layer_norms(model)` reads them from a model after backward; `gradient_norms(model, X, y, loss)`
runs one forward/backward; `GradientTrace` records them during training through
`engine.fit(..., callbacks=[trace.callback])`.

Extension point: `register_norms(LayerType)(fn)` adds a function `fn(model) -> {name: array}` used by
`layer_norms` for models of that type; `GradientTrace(probes={name: fn})` adds any other per-step
measurement (e.g. `lambda m: input_jacobian_trace(m.rnn, x_probe).norm`).

Through time (004 §5.1.3, 000 §8, 003 §2.5): an RNN unrolled over T steps is a deep network whose
layers share their weights, and backpropagation through time multiplies by one step's Jacobian
per step back. For the Elman RNN h_t = a[β + Ω_x x_t + Ω_h h_{t−1}]:

    ∂h_t/∂h_{t−1} = diag(a′(p_t)) Ω_h,      ∂h_T/∂x_t = ∂h_T/∂h_t diag(a′(p_t)) Ω_x
    ∂h_T/∂x_t     = [∏_{s=t+1}^{T} diag(a′(p_s)) Ω_h] diag(a′(p_t)) Ω_x

so with a′ = 1 (the linear limit of tanh, states near 0) and Ω_h = ρQ, Q orthogonal,
‖∂h_T/∂x_t‖_F = ρ^{T−t} ‖Ω_x‖_F exactly (‖Q^k A‖_F = ‖A‖_F): the log-norm falls on a line of
slope ln ρ against T − t (vanishing for ρ < 1, exploding for ρ > 1); a saturated tanh (a′ < 1)
adds a factor below 1 per step. The LSTM's cell path
c_t = f ⊙ c_{t−1} + i ⊙ g has ∂c_t/∂c_{t−1} = diag(f) (plus paths through h): the gradient keeps
its size while the forget gates stay near 1 (004 §5.2).

- `hidden_grad_trace(layer, x, dy, dstate)`: ∂ℓ/∂h_t for t = 0 … T−1 (and the state gradients
  carried back from step t+1, per layer, ∂ℓ/∂c_t for the LSTM), exact: BPTT run by the layer's own
  forward and backward one step at a time (the engine's per-call stack lets T one-step forwards
  be followed by T one-step backwards in reverse order, each handing its initial-state gradient
  to the step before). With neither dy nor dstate, ℓ = Σ_n u_n · h_{T−1, n} for fixed random unit
  vectors u_n: a loss at the last step.
- `input_jacobian_trace(layer, x)`: the Jacobians ∂h_T/∂x_t (H × I per example and step) and
  their Frobenius norms against T − t, exact: one forward and one backward of a batch in which
  every example is repeated H times and copy j gets the upstream gradient e_j on the final
  hidden state (dy = 0), so its input gradient at step t is row j of ∂h_T/∂x_t.
- `orthogonal_rnn(hidden_size, rho)`: the notes' test case, an RNN with Ω_h = ρQ and zero biases.

Both work for RNN (tanh, ReLU), LSTM and GRU of any number of layers (h_T is the last layer's;
bidirectional layers are refused: their "final state" mixes both ends), in evaluation mode
(dropout off). They use the layers' public forward/backward only, leave the parameters'
gradients as they found them and keep no saved calls.
"""
import math
from dataclasses import dataclass

import numpy as np

from engine.checks import check_float, check_int, check_rng

__all__ = ["layer_norms", "gradient_norms", "GradientTrace", "register_norms", "deep_mlp",
           "vanishing_profile", "HiddenGradTrace", "JacobianTrace", "hidden_grad_trace",
           "input_jacobian_trace", "orthogonal_rnn", "log_slope"]

_NORMS = {}


def register_norms(layer_type):
    """Decorator: `@register_norms(RNN) def rnn_norms(model): return {"dh_T_dx_t": …}` makes
    `layer_norms` (and so `GradientTrace`) report those arrays for models of that type."""
    if not isinstance(layer_type, type):
        raise TypeError(f"layer_type: expected a Layer class, got {type(layer_type).__name__} {layer_type!r}")

    def deco(fn):
        if not callable(fn):
            raise TypeError(f"fn: expected a function fn(model) -> dict, got {type(fn).__name__}")
        _NORMS[layer_type] = fn
        return fn
    return deco


def _param_norms(model):
    w, b, names = [], [], []
    for name, p in model.named_parameters():
        if name.endswith("weight"):
            w.append(float(np.linalg.norm(p.grad)))
            names.append(name)
        elif name.endswith("bias"):
            b.append(float(np.linalg.norm(p.grad)))
    return {"weight": np.array(w), "bias": np.array(b), "weight_names": names}


def _mlp_norms(model):
    out = _param_norms(model)
    out["preact"] = np.array([math.sqrt(float(np.sum(np.asarray(g, np.float64) ** 2)) / g.shape[0])
                              for g in model.preactivation_grads])
    return out


def _register_builtin():
    from layers.mlp import MLP
    _NORMS.setdefault(MLP, _mlp_norms)


def layer_norms(model):
    """Per-layer gradient norms of `model` after a backward pass: a dict with "weight" (‖∂ℓ/∂Ω_k‖,
    k = 0 … K), "bias", "weight_names", and, for the notes' MLP, "preact" (‖∂ℓ/∂f_k‖). Models of a
    type registered with `register_norms` get that function's entries too."""
    from engine.core import Layer
    if not isinstance(model, Layer):
        raise TypeError(f"model: expected a Layer, got {type(model).__name__}")
    _register_builtin()
    out = {}
    for t in type(model).__mro__:
        if t in _NORMS:
            out = _NORMS[t](model)
            break
    if not out:
        out = _param_norms(model)
    return out


def gradient_norms(model, X, y=None, loss=None):
    """One forward/backward of `model` on X and the per-layer norms (`layer_norms`). With `loss`
    (an engine.losses loss) and targets y the upstream gradient is ∂loss/∂f_K; without, it is
    ∂ℓ/∂f_K = 1/N for every output (ℓ = mean over the batch of the sum of outputs), which isolates
    the network's own amplification. Parameter gradients are zeroed first."""
    from engine.core import Layer
    from engine.losses import Loss
    if not isinstance(model, Layer):
        raise TypeError(f"model: expected a Layer, got {type(model).__name__}")
    if loss is not None and not isinstance(loss, Loss):
        raise TypeError(f"loss: expected an engine.losses loss or None, got {type(loss).__name__}")
    if loss is not None and y is None:
        raise ValueError("y: expected targets for the loss, got None")
    model.zero_grad()
    out = model.forward(X)
    if loss is None:
        dout = np.full_like(out, 1.0 / out.shape[0])
    else:
        loss.forward(out, y)
        dout = loss.backward()
    model.backward(dout, input_grad=False)
    return layer_norms(model)


class GradientTrace:
    """Per-layer gradient norms recorded along training. Pass `trace.callback` to
    `engine.fit(..., callbacks=[trace.callback])`; every `every` optimizer steps it stores the
    global step, epoch, loss and `layer_norms(model)`, plus each probe's value (`probes` maps a
    name to `fn(model)`). `arrays()` returns {"step", "epoch", "loss", "preact" (T, K+1),
    "weight" (T, K+1), "bias", <probe names>} as NumPy arrays."""

    def __init__(self, every=1, probes=None):
        self.every = check_int("every", every, low=1)
        if probes is not None and not isinstance(probes, dict):
            raise TypeError(f"probes: expected a dict {{name: fn(model)}} or None, got {type(probes).__name__}")
        self.probes = dict(probes or {})
        for k, f in self.probes.items():
            if not callable(f):
                raise TypeError(f"probes: expected callables, got {type(f).__name__} for {k!r}")
        self.steps, self.epochs, self.losses, self.records = [], [], [], []
        self._count = 0

    def callback(self, info):
        """cb(info) for engine.fit: info = {"epoch", "step", "loss", "model"}."""
        self._count += 1
        if (self._count - 1) % self.every:
            return
        self.record(info["model"], step=self._count, epoch=info.get("epoch"), loss=info.get("loss"))

    def record(self, model, step=None, epoch=None, loss=None):
        """Store the current norms of `model` (call after backward; usable from a manual loop)."""
        rec = layer_norms(model)
        for name, fn in self.probes.items():
            rec[name] = np.asarray(fn(model))
        self.steps.append(len(self.steps) if step is None else step)
        self.epochs.append(epoch)
        self.losses.append(np.nan if loss is None else float(loss))
        self.records.append(rec)

    def __len__(self):
        return len(self.records)

    def arrays(self):
        out = {"step": np.array(self.steps), "epoch": np.array([np.nan if e is None else e for e in self.epochs]),
               "loss": np.array(self.losses)}
        if self.records:
            for key, val in self.records[0].items():
                if isinstance(val, np.ndarray):
                    out[key] = np.stack([r[key] for r in self.records])
        return out


def deep_mlp(depth, width, activation, init="default", d_in=None, d_out=1, rng=0):
    """An `MLP` with `depth` hidden layers of `width` units and weights drawn N(0, v) per layer
    by `init` ("he", "xavier", "lecun", … as `analysis.signal.weight_variance`, biases zero), or the
    engine's default U(±1/√fan_in) for "default"."""
    from layers.mlp import MLP
    from .signal import weight_variance

    depth = check_int("depth", depth, low=1)
    width = check_int("width", width, low=1)
    d_in = width if d_in is None else check_int("d_in", d_in, low=1)
    d_out = check_int("d_out", d_out, low=1)
    default = isinstance(init, str) and init == "default"
    if not default:
        weight_variance(init, 1, 1)                        # a named error for an unknown scheme now
    widths = [d_in] + [width] * depth + [d_out]
    gen = check_rng("rng", rng)
    net = MLP(widths, activation=activation, rng=gen)
    if not default:
        for k, (W, b) in enumerate(zip(net.weights, net.biases)):
            W[...] = gen.normal(0.0, math.sqrt(weight_variance(init, widths[k], widths[k + 1])), W.shape)
            b[...] = 0.0
    return net


def vanishing_profile(activation, depth=50, width=32, init="default", batch_size=64, rng=0):
    """‖∂ℓ/∂f_k‖ for k = 0 … depth of a deep MLP at initialisation on a batch of N(0, 1) inputs with
    MSE loss against N(0, 1) targets: the data behind the vanishing-gradients figure."""
    from engine.losses import MSELoss

    batch_size = check_int("batch_size", batch_size, low=1)
    gen = check_rng("rng", rng)
    net = deep_mlp(depth, width, activation, init=init, rng=gen)
    X = gen.normal(size=(batch_size, width))
    y = gen.normal(size=(batch_size, 1))
    return gradient_norms(net, X, y, MSELoss())


# ---- recurrent layers: gradient norms through time (module docstring) -----------------------
def _check_recurrent(layer, name="layer"):
    """The layer's kind ("RNN", "LSTM", "GRU"), after checking it is a unidirectional one."""
    from layers.recurrent import GRU, LSTM, RNN
    if not isinstance(layer, (RNN, LSTM, GRU)):
        raise TypeError(f"{name}: expected a layers.RNN, LSTM or GRU, got {type(layer).__name__}")
    if layer.bidirectional:
        raise ValueError(f"{name}: expected a unidirectional layer (bidirectional=False): the final state of a "
                         "bidirectional layer mixes both ends of the sequence")
    return "LSTM" if isinstance(layer, LSTM) else "GRU" if isinstance(layer, GRU) else "RNN"


def _twin(layer, kind):
    """A fresh copy of `layer` (same class, sizes, nonlinearity, weights; time-major, no dropout),
    built from its public constructor arguments and state_dict: the analysis runs on it, so the
    original's gradients, saved calls and generator are untouched."""
    from layers.recurrent import GRU, LSTM, RNN
    kw = dict(num_layers=layer.num_layers, bias=layer.bias, batch_first=False, dropout=0.0,
              bidirectional=False, dtype=layer.dtype)
    if kind == "RNN":
        twin = RNN(layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **kw)
    else:
        twin = (LSTM if kind == "LSTM" else GRU)(layer.input_size, layer.hidden_size, **kw)
    twin.load_state_dict(layer.state_dict())
    return twin


def _time_major(name, layer, x):
    """x in the layer's layout -> (T, N, input_size) contiguous, and whether it came unbatched."""
    from engine.checks import check_array
    x = check_array(name, x, ndim=(2, 3), dtype=layer.dtype)
    if x.shape[-1] != layer.input_size:
        raise ValueError(f"{name}: expected input_size = {layer.input_size} in the last dimension, got shape {x.shape}")
    if x.ndim == 2:
        return x[:, None, :].copy(), True
    return np.ascontiguousarray(x.transpose(1, 0, 2) if layer.batch_first else x), False


def _state_arrays(name, layer, kind, s, N, unbatched, finite=True):
    """An initial state or a final-state gradient as the layer takes it (an array, or (h, c) for the
    LSTM, either part None for zero) -> a tuple of (layers, N, H) arrays (zeros for None)."""
    from engine.checks import check_array
    L, H = layer.num_layers, layer.hidden_size
    shape = (L, H) if unbatched else (L, N, H)
    if kind == "LSTM":
        s = (None, None) if s is None else s
        if not isinstance(s, (tuple, list)) or len(s) != 2:
            raise TypeError(f"{name}: expected a tuple (h, c) of two arrays (or None), got {type(s).__name__}")
        parts, names = s, (f"{name}[0]", f"{name}[1]")
    else:
        parts, names = (s,), (name,)
    out = []
    for p, nm in zip(parts, names):
        if p is None:
            out.append(np.zeros((L, N, H), layer.dtype))
            continue
        p = check_array(nm, p, shape=shape, dtype=layer.dtype, finite=finite)
        out.append(p[:, None, :].copy() if unbatched else p)
    return tuple(out)


def _as_hx(kind, parts):
    return parts if kind == "LSTM" else parts[0]


@dataclass
class HiddenGradTrace:
    """∂ℓ/∂h_t through time for a recurrent layer (`hidden_grad_trace`). Arrays are time-major
    (t = 0 … T−1 first), with the batch N second (N = 1 for an unbatched x):

    dh        (T, N, H)      ∂ℓ/∂h_t of the last layer: the output's gradient at t plus what comes
                             back from step t+1 (the total BPTT gradient at h_t)
    norm      (T,)           ‖∂ℓ/∂h_t‖ as a per-example RMS: √(Σ_{n,j} dh[t, n, j]² / N)
    lag       (T,)           T − 1 − t (T − t in the notes' steps 1 … T)
    carried   (T, L, N, H)   per layer, the gradient of the state h_t handed to step t+1 (the
                             backward's ∂ℓ/∂h_0 when the layer restarts at t+1; dh_n at t = T−1)
    carried_c (T, L, N, H)   the same for the LSTM's cell c_t (None for RNN and GRU)
    dx        (T, N, I)      ∂ℓ/∂x_t (equal to the layer's own backward over the whole sequence)
    dhx       the initial state's gradient, (L, N, H) (a tuple (dh_0, dc_0) for the LSTM)
    """
    dh: np.ndarray
    norm: np.ndarray
    lag: np.ndarray
    carried: np.ndarray
    carried_c: object
    dx: np.ndarray
    dhx: object


def hidden_grad_trace(layer, x, dy=None, dstate=None, hx=None, rng=0):
    """∂ℓ/∂h_t for t = 0 … T−1 of a unidirectional RNN, LSTM or GRU (module docstring).

    x, hx, dy, dstate in the layer's own layout and shapes (batch_first honoured; unbatched x
    (T, input_size) with hx and dstate (layers, H)): dy is ∂ℓ/∂output, dstate ∂ℓ/∂h_n (a tuple
    (dh_n, dc_n) for the LSTM, either None for zero), as `layer.backward` takes them. With both
    None the loss is ℓ = Σ_n u_n · h_{T−1, n}, u_n unit vectors drawn from `rng` (a loss at the
    last step), so ‖∂ℓ/∂h_{T−1}‖ = 1 per example.

    Exact: the layer's own one-step forwards carry the state from step to step (evaluation mode),
    then its one-step backwards run in reverse, each given ∂ℓ/∂y_t and the state gradient returned
    by step t+1's backward, and returning the gradient of the state at t−1: BPTT as the full
    backward does it, with every intermediate state gradient visible. Cost O(T) layer calls.
    Returns a `HiddenGradTrace` (time-major arrays); the layer itself is not touched.
    """
    kind = _check_recurrent(layer)
    X, unbatched = _time_major("x", layer, x)
    T, N, _ = X.shape
    L, H = layer.num_layers, layer.hidden_size
    h0 = _state_arrays("hx", layer, kind, hx, N, unbatched)
    if dy is None and dstate is None:
        gen = check_rng("rng", rng)
        u = gen.normal(size=(N, H))
        dY = np.zeros((T, N, H), layer.dtype)
        dY[-1] = u / np.linalg.norm(u, axis=1, keepdims=True)
    elif dy is None:
        dY = np.zeros((T, N, H), layer.dtype)
    else:
        from engine.checks import check_array
        oshape = (T, H) if unbatched else (N, T, H) if layer.batch_first else (T, N, H)
        dy = check_array("dy", dy, shape=oshape, dtype=layer.dtype, finite=False)
        dY = dy[:, None, :].copy() if unbatched else \
            np.ascontiguousarray(dy.transpose(1, 0, 2) if layer.batch_first else dy)
    g = _state_arrays("dstate", layer, kind, dstate, N, unbatched, finite=False)

    twin = _twin(layer, kind)
    state = _as_hx(kind, h0)
    for t in range(T):                                   # T one-step forwards, each call saved
        _, state = twin.forward(X[t:t + 1], state, train=False)
    carried = np.empty((T, L, N, H), layer.dtype)
    carried_c = np.empty((T, L, N, H), layer.dtype) if kind == "LSTM" else None
    dX = np.empty_like(X)
    for t in range(T - 1, -1, -1):                       # ... consumed newest first
        carried[t] = g[0]
        if carried_c is not None:
            carried_c[t] = g[1]
        dx, dprev = twin.backward(dY[t:t + 1], _as_hx(kind, g))
        dX[t] = dx[0]
        g = tuple(dprev) if kind == "LSTM" else (dprev,)
    dh = dY + carried[:, -1]
    norm = np.sqrt(np.sum(dh.astype(np.float64) ** 2, axis=(1, 2)) / N)
    return HiddenGradTrace(dh=dh, norm=norm, lag=np.arange(T - 1, -1, -1), carried=carried, carried_c=carried_c,
                           dx=dX, dhx=_as_hx(kind, g))


@dataclass
class JacobianTrace:
    """‖∂h_T/∂x_t‖ against T − t (`input_jacobian_trace`), time-major:

    jacobian  (T, N, H, I)   ∂h_T/∂x_t per example: jacobian[t, n, j, i] = ∂h_T[n, j]/∂x_t[n, i]
                             (h_T the last layer's final hidden state)
    frobenius (T, N)         ‖∂h_T/∂x_t‖_F per example
    norm      (T,)           RMS over the examples, √(mean_n ‖∂h_T/∂x_t‖_F²)
    lag       (T,)           T − 1 − t (T − t in the notes' steps 1 … T)
    """
    jacobian: np.ndarray
    frobenius: np.ndarray
    norm: np.ndarray
    lag: np.ndarray


def input_jacobian_trace(layer, x, hx=None):
    """The Jacobians ∂h_T/∂x_t of a unidirectional RNN, LSTM or GRU and their Frobenius norms
    against T − t (module docstring), in evaluation mode.

    x and hx in the layer's layout (unbatched x is one example). Exact, by one forward and one
    backward of the layer (a copy: the layer is not touched): every example is repeated H times
    along the batch, copy j of example n gets ∂ℓ/∂h_n = e_j on the last layer's final hidden state
    (zero on everything else: outputs, lower layers, the LSTM's cell), so ℓ = h_T[n, j] and the
    input gradient of that copy at step t is row j of ∂h_T/∂x_t. Returns a `JacobianTrace`.
    """
    kind = _check_recurrent(layer)
    X, unbatched = _time_major("x", layer, x)
    T, N, I = X.shape
    L, H = layer.num_layers, layer.hidden_size
    h0 = _state_arrays("hx", layer, kind, hx, N, unbatched)
    twin = _twin(layer, kind)
    Xr = np.repeat(X, H, axis=1)                         # row n·H + j: example n, unit j
    state = None if hx is None else _as_hx(kind, tuple(np.repeat(h, H, axis=1) for h in h0))
    twin.forward(Xr, state, train=False)
    dhn = np.zeros((L, N * H, H), layer.dtype)
    dhn[-1] = np.tile(np.eye(H, dtype=layer.dtype), (N, 1))
    res = twin.backward(None, (dhn, None) if kind == "LSTM" else dhn)
    dx = res if hx is None else res[0]
    J = dx.reshape(T, N, H, I).astype(np.float64)
    fro = np.sqrt(np.sum(J ** 2, axis=(2, 3)))
    return JacobianTrace(jacobian=J, frobenius=fro, norm=np.sqrt(np.mean(fro ** 2, axis=1)),
                         lag=np.arange(T - 1, -1, -1))


def orthogonal_rnn(hidden_size, rho, input_size=None, nonlinearity="tanh", rng=0, dtype=np.float64):
    """An `RNN` with Ω_h = weight_hh_l0 = ρQ (Q a Haar-random orthogonal matrix: QR of a Gaussian
    with the signs of R's diagonal moved into Q), zero biases and torch's default Ω_x = weight_ih_l0
    (input_size = hidden_size unless given): the notes' example, whose ‖∂h_T/∂x_t‖_F = ρ^{T−t}‖Ω_x‖_F
    in the linear regime. Parameters set through load_state_dict."""
    from layers.recurrent import RNN
    hidden_size = check_int("hidden_size", hidden_size, low=1)
    rho = check_float("rho", rho, low=0)
    input_size = hidden_size if input_size is None else check_int("input_size", input_size, low=1)
    gen = check_rng("rng", rng)
    net = RNN(input_size, hidden_size, nonlinearity=nonlinearity, dtype=dtype, rng=gen)
    Q, R = np.linalg.qr(gen.normal(size=(hidden_size, hidden_size)))
    Q = Q * np.where(np.diag(R) < 0, -1.0, 1.0)
    sd = net.state_dict()
    sd["weight_hh_l0"] = rho * Q
    sd["bias_ih_l0"] = np.zeros(hidden_size)
    sd["bias_hh_l0"] = np.zeros(hidden_size)
    net.load_state_dict(sd)
    return net


def log_slope(lag, norm):
    """Least-squares slope of ln(norm) against lag (e.g. ln ρ for `orthogonal_rnn` in the linear
    regime): the per-step factor of a trace is exp(slope). Non-positive norms are refused."""
    lag = np.asarray(lag, np.float64)
    norm = np.asarray(norm, np.float64)
    if lag.shape != norm.shape or lag.ndim != 1 or lag.size < 2:
        raise ValueError(f"norm: expected a 1-D array of the shape of lag with at least 2 entries, "
                         f"got {norm.shape} and lag {lag.shape}")
    if not np.all(norm > 0) or not np.all(np.isfinite(norm)):
        raise ValueError("norm: expected positive finite norms (the slope is of their logarithm)")
    return float(np.polyfit(lag, np.log(norm), 1)[0])
