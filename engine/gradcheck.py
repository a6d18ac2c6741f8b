"""Finite-difference gradient checking (DESIGN.md).

For a layer y = F(x; θ) we check the scalar L = Σ y ⊙ G with a random upstream gradient G
(never all ones: that hides normalisation and softmax bugs). The analytic gradients come from
one `backward(G)`; the numeric ones from central differences
    ∂L/∂u ≈ (L(u + ε) − L(u − ε)) / 2ε
on every element of every input and every parameter, in float64. The error reported per array is
the largest relative error  |a − n| / max(1e-8, |a| + |n|).
"""
from dataclasses import dataclass, field

import numpy as np

from .core import Layer


@dataclass
class GradcheckResult:
    errors: dict = field(default_factory=dict)   # array name -> largest relative error

    @property
    def max_error(self):
        return max(self.errors.values()) if self.errors else 0.0

    def passed(self, tol=1e-6):
        return self.max_error <= tol

    def __str__(self):
        return ", ".join(f"{k}: {v:.1e}" for k, v in self.errors.items())


def rel_error(a, n):
    """Largest |a − n| / max(1e-8, |a| + |n|) over the elements."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))))


def numeric_grad(f, u, eps=1e-6):
    """Central differences of the scalar function f() with respect to array u, perturbed in place."""
    g = np.zeros_like(u, dtype=np.float64)
    flat, gflat = u.reshape(-1), g.reshape(-1)
    assert np.shares_memory(flat, u), "numeric_grad needs a contiguous array"
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        lp = f()
        flat[i] = old - eps
        lm = f()
        flat[i] = old
        gflat[i] = (lp - lm) / (2 * eps)
    return g


def gradcheck(layer, *inputs, seed=0, eps=1e-6, train=True, input_names=None):
    """Check `layer.backward` against central differences on every input and parameter.

    layer:  a Layer whose parameters are float64; it must be deterministic for a fixed state
            (a stochastic layer must reuse its mask while `train` stays set; see Dropout).
    inputs: the float64 arrays passed to `layer.forward(*inputs, train=train)`.
    Returns a GradcheckResult with one error per input ("x", or `input_names`) and per
    parameter (its `named_parameters` name).
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"layer: expected a Layer, got {type(layer).__name__}")
    for i, x in enumerate(inputs):
        if not isinstance(x, np.ndarray) or x.dtype != np.float64:
            raise TypeError(f"inputs[{i}]: gradient checks run in float64, got "
                            f"{getattr(x, 'dtype', type(x).__name__)}")
    names = input_names or (["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))])
    inputs = [np.array(x, copy=True) for x in inputs]
    rng = np.random.default_rng(seed)
    y = layer.forward(*inputs, train=train)
    G = rng.standard_normal(np.shape(y))

    layer.zero_grad()
    dx = layer.backward(G.copy())
    dxs = dx if isinstance(dx, tuple) else (dx,)
    analytic = {n: d for n, d in zip(names, dxs)}
    analytic.update({n: p.grad.copy() for n, p in layer.named_parameters()})

    def loss():
        return float(np.sum(layer.forward(*inputs, train=train) * G))

    result = GradcheckResult()
    for n, x in zip(names, inputs):
        result.errors[n] = rel_error(analytic[n], numeric_grad(loss, x, eps))
    for n, p in layer.named_parameters():
        result.errors[n] = rel_error(analytic[n], numeric_grad(loss, p.value, eps))
    return result


def gradcheck_loss(loss, pred, target, *, eps=1e-6, **forward_kw):
    """Check `loss.backward()` (∂L/∂pred) against central differences of `loss.forward`."""
    pred = np.array(pred, dtype=np.float64, copy=True)
    loss.forward(pred, target, **forward_kw)
    analytic = loss.backward()
    numeric = numeric_grad(lambda: float(loss.forward(pred, target, **forward_kw)), pred, eps)
    return GradcheckResult({"pred": rel_error(analytic, numeric)})
