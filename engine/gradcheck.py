"""Finite-difference gradient checking (DESIGN.md).

For a layer y = F(x; θ) we check the scalar L = Σ y ⊙ G with a random upstream gradient G
(never all ones: that hides normalisation and softmax bugs); a layer with several outputs gets
one random G per output array. The analytic gradients come from one `backward(G)`; the numeric
ones from central differences
    ∂L/∂u ≈ (L(u + ε) − L(u − ε)) / 2ε
on every element of every floating input and every parameter, in float64 (integer and boolean
inputs such as token ids and masks are not perturbed: their gradient is None).

The error of an array is element-wise and relative, with a floor scaled to the array's largest
gradient, so that the verdict does not depend on which element happens to be tiny for a seed:
    err = max_i |a_i − n_i| / max(|a_i| + |n_i|,  FLOOR · max_j (|a_j| + |n_j|),  1e-12)
An element far below the array's largest gradient is judged by its absolute error against that
scale, where central differences' round-off lives. Both numbers are reported: the error and the
scale max_j |n_j| it was measured against.
"""
from dataclasses import dataclass, field

import numpy as np

from .core import Layer, leaves, no_grad, rebuild

FLOOR = 1e-2


@dataclass
class GradcheckResult:
    errors: dict = field(default_factory=dict)   # array name -> element-wise relative error (floored)
    scales: dict = field(default_factory=dict)   # array name -> largest |numeric gradient| of the array

    @property
    def max_error(self):
        return max(self.errors.values()) if self.errors else 0.0

    def passed(self, tol=1e-6):
        return self.max_error <= tol

    def __str__(self):
        return ", ".join(f"{k}: {v:.1e} (|g| ≤ {self.scales.get(k, 0.0):.1e})" for k, v in self.errors.items())


def rel_error(a, n):
    """max_i |a_i − n_i| / max(|a_i| + |n_i|, FLOOR · max_j (|a_j| + |n_j|), 1e-12)."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    if a.shape != n.shape:
        raise ValueError(f"analytic gradient: expected shape {n.shape}, got {a.shape}")
    if a.size == 0:
        return 0.0
    mag = np.abs(a) + np.abs(n)
    floor = max(FLOOR * float(mag.max()), 1e-12)
    return float(np.max(np.abs(a - n) / np.maximum(mag, floor)))


def numeric_grad(f, u, eps=1e-6):
    """Central differences of the scalar function f() with respect to array u, perturbed in place."""
    g = np.zeros_like(u, dtype=np.float64)
    flat, gflat = u.reshape(-1), g.reshape(-1)
    if not np.shares_memory(flat, u):
        raise ValueError("u: numeric_grad perturbs in place and needs a contiguous array")
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        lp = f()
        flat[i] = old - eps
        lm = f()
        flat[i] = old
        gflat[i] = (lp - lm) / (2 * eps)
    return g


def _is_float(a):
    return isinstance(a, np.ndarray) and np.issubdtype(a.dtype, np.floating)


def gradcheck(layer, *inputs, seed=0, eps=1e-6, train=True, input_names=None, skip_outputs=()):
    """Check `layer.backward` against central differences on every floating input and parameter.

    layer:  a Layer whose parameters are float64; it must be deterministic for a fixed state
            (a stochastic layer must reuse its mask while `train` stays set; see Dropout).
    inputs: the arrays passed to `layer.forward(*inputs, train=train)`: float64 arrays are
            checked, integer and boolean arrays (token ids, masks) are passed as they are.
    skip_outputs: indices of output arrays (in depth-first order of a nested output) given the
            upstream gradient None instead of a random one (e.g. gradients through a final state only).
    Returns a GradcheckResult with one error per floating input ("x", or `input_names`) and per
    parameter (its `named_parameters` name; a shared parameter once).
    """
    if not isinstance(layer, Layer):
        raise TypeError(f"layer: expected a Layer, got {type(layer).__name__}")
    for i, x in enumerate(inputs):
        if not isinstance(x, np.ndarray):
            raise TypeError(f"inputs[{i}]: expected a numpy.ndarray, got {type(x).__name__}")
        if _is_float(x) and x.dtype != np.float64:
            raise TypeError(f"inputs[{i}]: gradient checks run in float64, got {x.dtype}")
    names = list(input_names or (["x"] if len(inputs) == 1 else [f"x{i}" for i in range(len(inputs))]))
    if len(names) != len(inputs):
        raise ValueError(f"input_names: expected {len(inputs)} names, got {len(names)}")
    inputs = [np.array(x, copy=True) for x in inputs]
    rng = np.random.default_rng(seed)

    layer.zero_grad()
    y = layer.forward(*inputs, train=train)
    ys = leaves(y)
    Gs = [None if (k in skip_outputs or not _is_float(a)) else rng.standard_normal(a.shape)
          for k, a in enumerate(ys)]
    G = rebuild(y, iter(Gs))
    grads = layer.backward(*G) if isinstance(y, tuple) else layer.backward(G)
    dxs = grads if len(inputs) > 1 else (grads,)
    analytic = dict(zip(names, dxs))
    analytic.update({n: p.grad.copy() for n, p in layer.named_parameters()})

    def loss():
        with no_grad():
            out = leaves(layer.forward(*inputs, train=train))
        return float(sum(np.sum(a * g) for a, g in zip(out, Gs) if g is not None))

    result = GradcheckResult()
    targets = [(n, x) for n, x in zip(names, inputs) if _is_float(x)]
    targets += [(n, p.value) for n, p in layer.named_parameters()]
    for n, u in targets:
        if analytic[n] is None:
            raise ValueError(f"{type(layer).__name__}.backward returned no gradient for the floating input {n!r}")
        num = numeric_grad(loss, u, eps)
        result.errors[n] = rel_error(analytic[n], num)
        result.scales[n] = float(np.abs(num).max()) if num.size else 0.0
    for n, x in zip(names, inputs):
        if not _is_float(x) and analytic.get(n) is not None:
            raise ValueError(f"{type(layer).__name__}.backward: expected None as the gradient of the "
                             f"non-floating input {n!r}")
    return result


def gradcheck_loss(loss, pred, target, *, eps=1e-6, **forward_kw):
    """Check `loss.backward()` (∂L/∂pred) against central differences of `loss.forward`."""
    pred = np.array(pred, dtype=np.float64, copy=True)
    loss.forward(pred, target, **forward_kw)
    analytic = loss.backward()
    numeric = numeric_grad(lambda: float(loss.forward(pred, target, **forward_kw)), pred, eps)
    return GradcheckResult({"pred": rel_error(analytic, numeric)}, {"pred": float(np.abs(numeric).max())})
