"""Gradient-check cases for BatchNorm1d/2d, LayerNorm, Dropout and the skip containers: the one
table of the family. tests/test_gradient_cases.py and scripts/check_gradients.py run CASES (on
both kernel paths); tests/test_norm.py builds its PyTorch and reference-versus-fast comparisons
from the same BN_SPECS and LN_SPECS through make_bn and make_ln. Batch norm is checked in train
and eval mode (running statistics moved away from 0 and 1 first), and each family once as a
layer used twice in one forward, Sequential(layer, Tanh(), layer).

γ and β are drawn away from their initial 1 and 0 so that their gradients are tested. Batch-norm
cases with two values per channel take inputs of scale √ε (`scale` 0.003): there x̂ = ±σ/√(σ² + ε)
≈ ±1 hardly depends on x and ∂ℓ/∂x = O(ε/σ²), below what finite differences resolve unless the ε
term is of order one.

γ and β are drawn before x even when the layer has none: scripts/check_gradients.py and the tests
draw the upstream gradient G from a generator of the same seed as the case's, and an x drawn
first would be x = 2G + 1, for which a norm without affine has ∂ℓ/∂x = 0 exactly (G lies in the
span of 1 and x̂).
"""
import numpy as np

from engine.core import Sequential, no_grad
from layers.activations import ReLU, Tanh
from layers.containers import Residual, SkipConcat
from layers.conv import Conv2d
from layers.dropout import Dropout
from layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm

# name -> (class, num_features, input shape, input scale, keyword arguments)
BN_SPECS = {
    "BatchNorm1d (N, C)": (BatchNorm1d, 3, (4, 3), 2.0, {}),
    "BatchNorm1d (N, C, L)": (BatchNorm1d, 3, (2, 3, 5), 2.0, {}),
    "BatchNorm1d batch 2": (BatchNorm1d, 4, (2, 4), 0.003, {}),
    "BatchNorm2d": (BatchNorm2d, 3, (2, 3, 4, 5), 2.0, {}),
    "BatchNorm2d batch 2, 1x1": (BatchNorm2d, 2, (2, 2, 1, 1), 0.003, {}),
    "BatchNorm2d batch 1": (BatchNorm2d, 2, (1, 2, 3, 3), 2.0, {}),
    "BatchNorm2d affine=False": (BatchNorm2d, 3, (2, 3, 3, 2), 2.0, dict(affine=False)),
    "BatchNorm2d track_running_stats=False": (BatchNorm2d, 2, (3, 2, 2, 2), 2.0, dict(track_running_stats=False)),
    "BatchNorm2d momentum=None, eps=1e-3": (BatchNorm2d, 2, (3, 2, 2, 3), 2.0, dict(momentum=None, eps=1e-3)),
}

# name -> (normalized_shape, input shape, keyword arguments)
LN_SPECS = {
    "LayerNorm (D,)": (5, (4, 5), {}),
    "LayerNorm (D,) on (N, T, D)": (6, (2, 3, 6), {}),
    "LayerNorm (3, 4)": ((3, 4), (2, 3, 4), {}),
    "LayerNorm elementwise_affine=False": (4, (3, 4), dict(elementwise_affine=False)),
    "LayerNorm bias=False": (4, (3, 4), dict(bias=False)),
    "LayerNorm batch 1, eps=1e-3": (7, (1, 7), dict(eps=1e-3)),
}


def make_bn(name, rng, dtype=np.float64):
    """The batch-norm layer (γ ~ U(0.5, 1.5), β ~ N(0, 1)) and an input of case `name`."""
    cls, C, shape, scale, kw = BN_SPECS[name]
    layer = cls(C, dtype=dtype, **kw)
    gamma, beta = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    if layer.affine:
        layer.weight.value[:] = gamma
        layer.bias.value[:] = beta
    return layer, (scale * rng.standard_normal(shape) + 1).astype(dtype)


def make_ln(name, rng, dtype=np.float64):
    """The layer-norm layer (γ, β ~ U(0.5, 1.5)) and an input of case `name`."""
    ns, shape, kw = LN_SPECS[name]
    layer = LayerNorm(ns, dtype=dtype, **kw)
    gamma, beta = rng.uniform(0.5, 1.5, (2,) + layer.normalized_shape)
    for name, p in layer.named_parameters():
        p.value[...] = gamma if name == "weight" else beta
    return layer, (2 * rng.standard_normal(shape) + 1).astype(dtype)


def _from(make, name):
    def case(rng):
        layer, x = make(name, rng)
        return "layer", layer, [x]
    return case


def _bn_eval(name):
    def case(rng):
        layer, x = make_bn(name, rng)
        with no_grad():
            layer.forward(x + 0.5)          # running statistics away from their initial 0 and 1
        return "layer", layer, [x], {"train": False}
    return case


def _twice(make, name):
    """The case's layer used twice in one forward, Sequential(layer, Tanh(), layer)."""
    def case(rng):
        layer, x = make(name, rng)
        return "layer", Sequential(layer, Tanh(), layer), [x]
    return case


def _dropout(rng):
    return "layer", Dropout(0.3, rng=rng, fix_mask=True), [rng.standard_normal((4, 6))]


def _dropout_twice(rng):
    d = Dropout(0.3, rng=rng, fix_mask=True)
    return "layer", Sequential(d, Tanh(), d), [rng.standard_normal((4, 6))]


def _resblock(rng):
    block = Sequential(Conv2d(2, 2, 3, padding=1, bias=False, rng=rng), BatchNorm2d(2), ReLU(),
                       Conv2d(2, 2, 3, padding=1, bias=False, rng=rng), BatchNorm2d(2))
    return "layer", Residual(block), [rng.standard_normal((2, 2, 4, 4))]


def _skipconcat(rng):
    return "layer", SkipConcat(Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), Tanh())), \
        [rng.standard_normal((2, 2, 4, 4))]


CASES = ([(name, _from(make_bn, name)) for name in BN_SPECS]
         + [(name + ", eval mode", _bn_eval(name)) for name in BN_SPECS]
         + [("BatchNorm1d used twice: Sequential(bn, Tanh(), bn)", _twice(make_bn, "BatchNorm1d (N, C)")),
            ("BatchNorm2d used twice: Sequential(bn, Tanh(), bn)", _twice(make_bn, "BatchNorm2d"))]
         + [(name, _from(make_ln, name)) for name in LN_SPECS]
         + [("LayerNorm used twice: Sequential(ln, Tanh(), ln)", _twice(make_ln, "LayerNorm (3, 4)")),
            ("Dropout p=0.3 (fixed mask)", _dropout),
            ("Dropout used twice (fixed mask)", _dropout_twice),
            ("Residual(conv-bn-relu-conv-bn)", _resblock),
            ("SkipConcat(conv-tanh)", _skipconcat)])
