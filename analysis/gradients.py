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
`layer_norms` for models of that type, so recurrent layers can contribute sensitivity through time
(‖∂h_T/∂x_t‖ for t = 1 … T) to the same traces; `GradientTrace(probes={name: fn})` adds any other
per-step measurement.
"""
import math

import numpy as np

from engine.checks import check_int, check_rng

__all__ = ["layer_norms", "gradient_norms", "GradientTrace", "register_norms", "deep_mlp",
           "vanishing_profile"]

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
