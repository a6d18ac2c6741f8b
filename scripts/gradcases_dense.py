"""Gradient-check cases for the dense family (Linear, Bilinear, the activations, Softmax, MLP, the
containers over dense layers, shared weights): the one table read by tests/test_gradient_cases.py
(on both kernel paths) and by the gradient-check report (scripts/check_gradients.py).

`CASES` is a list of `(name, make)`; `make(rng)` returns ("layer", layer, [inputs]) with float64
inputs, and the report runs `engine.gradcheck(layer, *inputs)` (random upstream gradient, every
input and parameter). Inputs are kept away from kinks: |x − kink| > 1e-3 for ReLU, LeakyReLU and
Heaviside (kink 0) and Softplus (kink threshold/β, where it switches to the identity). An MLP is
built once, deterministically: a hidden unit whose preactivation column comes within 1e-3 of the
kink gets its bias β shifted until the whole column clears it (`clear_kinks`; nothing is
redrawn). Softmax logits are drawn as T·N(0, 1), so x/T is standard normal: a saturated softmax
has gradient entries ~1e-8 whose relative error measures only the central differences' round-off.

Shared weights (a layer or a Parameter used several times in one forward) get their own cases:
a Linear reused in Sequential(l, Tanh(), l), two Linear layers sharing one weight Parameter, a
Residual whose block reuses a layer, a Residual block used twice, an MLP used twice.

    python scripts/gradcases_dense.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine import Sequential, no_grad  # noqa: E402
from layers import (GELU, MLP, Bilinear, Concat, Heaviside, Identity, LeakyReLU, Linear, ReLU,  # noqa: E402
                    Residual, Sigmoid, Softmax, Softplus, Tanh)

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


# ---- Bilinear: two inputs ---------------------------------------------------------------
def bilinear_case(N, in1, in2, out, bias):
    def make(rng):
        layer = Bilinear(in1, in2, out, bias=bias, rng=rng)
        return "layer", layer, [rng.standard_normal((N, in1)), rng.standard_normal((N, in2))]
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


def _clear_column(c, margin):
    """The shift δ of smallest magnitude with |c_n + δ| ≥ 2·margin for every n (0 if c already
    clears it): the candidates are 0 and the ends of every forbidden interval."""
    cands = sorted([0.0] + [s * 2 * margin - v for v in c for s in (-1.0, 1.0)], key=abs)
    for d in cands:
        if np.all(np.abs(c + d) >= 2 * margin * (1 - 1e-9)):
            return d
    raise ValueError("no bias shift clears the kink")      # cannot happen: the extreme candidates clear it


def clear_kinks(m, x, kink, margin=MARGIN):
    """Shift the biases β_k of `m`'s hidden units, layer by layer, so that every hidden
    preactivation f_k[n, j] (k < K) is at least `margin` from `kink`: a column that comes closer
    moves as a whole by the smallest shift that leaves it 2·margin clear. Deterministic (nothing
    is redrawn); returns the number of units shifted. No-op for smooth activations (kink None)."""
    if kink is None:
        return 0
    shifted = 0
    for k in range(m.K):
        with no_grad():
            m.forward(x)
        f = m.preactivations[k] - kink
        for j in range(f.shape[1]):
            if np.abs(f[:, j]).min() <= margin:
                m.biases[k][j] += _clear_column(f[:, j], margin)
                shifted += 1
    with no_grad():
        m.forward(x)
    if any(np.abs(f - kink).min() <= margin for f in m.preactivations[:-1]):
        raise ValueError(f"clear_kinks: a hidden preactivation stays within {margin} of the kink {kink}")
    return shifted


def mlp_case(widths, activation, N):
    def make(rng):
        m = MLP(widths, activation=activation, rng=rng, **MLP_OPTS)
        x = rng.standard_normal((N, widths[0]))
        clear_kinks(m, x, MLP_KINKS.get(activation))
        return "layer", m, [x]
    return make


# ---- containers over dense layers, shared weights ------------------------------------------
def residual_case(rng):
    block = Sequential(Linear(4, 5, rng=rng), Tanh(), Linear(5, 4, rng=rng))
    return "layer", Residual(block), [rng.standard_normal((3, 4))]


def concat_case(rng):
    return "layer", Concat(Linear(3, 2, rng=rng), Linear(3, 4, rng=rng), dim=-1), [rng.standard_normal((2, 3))]


def reused_linear(rng, act=Tanh):
    """One Linear used twice in one forward: its weight and bias get both uses' gradients."""
    lin = Linear(3, 3, rng=rng)
    return Sequential(lin, act(), lin)


def tied_linears(rng):
    """Two Linear layers sharing one weight Parameter (tied weights), each with its own bias."""
    l1, l2 = Linear(3, 3, rng=rng), Linear(3, 3, rng=rng)
    l2.weight = l1.weight
    return Sequential(l1, Tanh(), l2)


def residual_reusing_a_layer(rng):
    """A Residual whose block uses one Linear twice."""
    return Residual(reused_linear(rng))


def residual_used_twice(rng):
    """One Residual block (Linear, Tanh) applied twice in a row."""
    r = Residual(Sequential(Linear(3, 3, rng=rng), Tanh()))
    return Sequential(r, Tanh(), r)


def mlp_used_twice(rng):
    """One MLP (equal input and output widths) applied twice: Sequential(m, m)."""
    m = MLP([3, 4, 3], activation="tanh", rng=rng)
    return Sequential(m, m)


SHARED = [("shared: Sequential(l, Tanh(), l), one Linear used twice", reused_linear),
          ("shared: two Linear layers tied by one weight Parameter", tied_linears),
          ("shared: Residual whose block uses one Linear twice", residual_reusing_a_layer),
          ("shared: Sequential(r, Tanh(), r), one Residual block used twice", residual_used_twice),
          ("shared: Sequential(m, m), one MLP used twice", mlp_used_twice)]


def model_case(build, N=4, d=3):
    def make(rng):
        model = build(rng)
        return "layer", model, [rng.standard_normal((N, d))]
    return make


MLP_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "softplus",
                   "identity", "heaviside"]

CASES = (
    [(f"linear({N},{i},{o},bias={b})", linear_case(N, i, o, b))
     for N, i, o, b in [(4, 3, 2, True), (4, 3, 2, False), (1, 5, 1, True), (2, 1, 3, False)]]
    + [(f"bilinear({N},{i},{j},{o},bias={b})", bilinear_case(N, i, j, o, b))
       for N, i, j, o, b in [(4, 3, 2, 5, True), (4, 3, 2, 5, False), (1, 2, 4, 3, True), (1, 1, 1, 1, False)]]
    + [(name, act_case(f, kinks)) for name, f, kinks in ACTIVATION_CASES]
    + [("relu(batch 1, 3-d)", act_case(ReLU, (0.0,), shape=(1, 2, 3)))]
    + [(f"softmax(dim={d},T={t},{s})", softmax_case(s, d, t))
       for s, d, t in [((3, 5), -1, 1.0), ((3, 5), 0, 1.0), ((2, 3, 4), 1, 0.5), ((2, 3, 4), 0, 2.0),
                       ((2, 3, 4), -1, 0.1), ((1, 4), -1, 5.0), ((4,), 0, 1.0), ((3, 4, 2), -2, 0.2)]]
    + [(f"mlp({a})", mlp_case([3, 4, 3, 2], a, 3)) for a in MLP_ACTIVATIONS]
    + [("mlp(tanh, batch 1, no hidden)", mlp_case([4, 2], "tanh", 1)),
       ("mlp(relu, batch 1)", mlp_case([2, 5, 1], "relu", 1)),
       ("mlp(softplus, batch 1, K=2)", mlp_case([2, 3, 3, 1], "softplus", 1))]
    + [("residual(linear-tanh-linear)", residual_case), ("concat(linear, linear, dim=-1)", concat_case)]
    + [(name, model_case(build)) for name, build in SHARED]
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
