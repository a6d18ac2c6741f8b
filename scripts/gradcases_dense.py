"""Gradient-check cases for the dense family (Linear, the activations, Softmax, MLP), for the
gradient-check report (scripts/check_gradients.py).

`CASES` is a list of `(name, make)`; `make(rng)` returns ("layer", layer, [x]) with x float64,
and the report runs `engine.gradcheck(layer, x)` (random upstream gradient, every input and
parameter). Inputs are kept away from kinks: |x − kink| > 1e-3 for ReLU, LeakyReLU and Heaviside
(kink 0) and Softplus (kink threshold/β, where it switches to the identity); MLPs are redrawn
until every hidden preactivation is that far from the kink. Softmax logits are drawn as T·N(0, 1),
so x/T is standard normal: a saturated softmax has gradient entries ~1e-8 whose relative error
measures only the central differences' round-off.

    python scripts/gradcases_dense.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from layers import (GELU, MLP, Heaviside, Identity, LeakyReLU, Linear, ReLU, Sigmoid,  # noqa: E402
                    Softmax, Softplus, Tanh)

MARGIN = 1e-3


def away_from(rng, shape, kinks=(), scale=1.5):
    """N(0, scale²) draws moved at least MARGIN away from every kink."""
    x = rng.standard_normal(shape) * scale
    for k in kinks:
        near = np.abs(x - k) < MARGIN
        x = np.where(near, k + np.where(x >= k, 1.0, -1.0) * (MARGIN + 0.25), x)
    return x


# ---- Linear ------------------------------------------------------------------------------
def linear_case(N, d_in, d_out, bias):
    def make(rng):
        return "layer", Linear(d_in, d_out, bias=bias, rng=rng), [rng.standard_normal((N, d_in))]
    return make


# ---- elementwise activations -------------------------------------------------------------
def act_case(factory, kinks=(), shape=(3, 4), scale=1.5):
    def make(rng):
        return "layer", factory(), [away_from(rng, shape, kinks, scale)]
    return make


ACTIVATION_CASES = [
    ("identity", Identity, ()),
    ("relu", ReLU, (0.0,)),
    ("leaky_relu(0.01)", LeakyReLU, (0.0,)),
    ("leaky_relu(0.2)", lambda: LeakyReLU(0.2), (0.0,)),
    ("leaky_relu(-0.5)", lambda: LeakyReLU(-0.5), (0.0,)),
    ("sigmoid", Sigmoid, ()),
    ("tanh", Tanh, ()),
    ("gelu(none)", GELU, ()),
    ("gelu(tanh)", lambda: GELU("tanh"), ()),
    ("softplus(1,20)", Softplus, (20.0,)),
    ("softplus(2,1)", lambda: Softplus(2.0, 1.0), (0.5,)),
    ("softplus(0.5,-1)", lambda: Softplus(0.5, -1.0), (-2.0,)),
    ("heaviside", Heaviside, (0.0,)),
]


# ---- softmax -----------------------------------------------------------------------------
def softmax_case(shape, dim, temperature):
    def make(rng):
        return "layer", Softmax(dim, temperature), [rng.standard_normal(shape) * temperature]
    return make


# ---- MLP ---------------------------------------------------------------------------------
MLP_OPTS = {"negative_slope": 0.2, "beta": 2.0, "threshold": 1.0}
MLP_KINKS = {"relu": 0.0, "leaky_relu": 0.0, "heaviside": 0.0,
             "softplus": MLP_OPTS["threshold"] / MLP_OPTS["beta"]}


def mlp_case(widths, activation, N):
    def make(rng):
        for _ in range(200):
            m = MLP(widths, activation=activation, rng=rng, **MLP_OPTS)
            x = rng.standard_normal((N, widths[0]))
            m.forward(x)
            k = MLP_KINKS.get(activation)
            if k is None or all(np.abs(f - k).min() > MARGIN for f in m.preactivations[:-1]):
                return "layer", m, [x]
        raise RuntimeError(f"no MLP draw with preactivations {MARGIN} away from the kink")
    return make


MLP_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "softplus",
                   "identity", "heaviside"]

CASES = (
    [(f"linear({N},{i},{o},bias={b})", linear_case(N, i, o, b))
     for N, i, o, b in [(4, 3, 2, True), (4, 3, 2, False), (1, 5, 1, True), (2, 1, 3, False)]]
    + [(name, act_case(f, kinks)) for name, f, kinks in ACTIVATION_CASES]
    + [("relu(batch 1, 3-d)", act_case(ReLU, (0.0,), shape=(1, 2, 3)))]
    + [(f"softmax(dim={d},T={t},{s})", softmax_case(s, d, t))
       for s, d, t in [((3, 5), -1, 1.0), ((3, 5), 0, 1.0), ((2, 3, 4), 1, 0.5), ((2, 3, 4), 0, 2.0),
                       ((2, 3, 4), -1, 0.1), ((1, 4), -1, 5.0), ((4,), 0, 1.0)]]
    + [(f"mlp({a})", mlp_case([3, 4, 3, 2], a, 3)) for a in MLP_ACTIVATIONS]
    + [("mlp(tanh, batch 1, no hidden)", mlp_case([4, 2], "tanh", 1)),
       ("mlp(relu, batch 1)", mlp_case([2, 5, 1], "relu", 1))]
)


if __name__ == "__main__":
    from engine import gradcheck
    worst = 0.0
    for name, make in CASES:
        _, layer, inputs = make(np.random.default_rng(0))
        r = gradcheck(layer, *inputs)
        worst = max(worst, r.max_error)
        print(f"{'PASS' if r.passed() else 'FAIL'}  {name:34s} {r}")
    print(f"largest relative error {worst:.1e}")
