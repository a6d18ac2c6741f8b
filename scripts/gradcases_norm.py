"""Gradient-check cases for BatchNorm1d/2d, LayerNorm, Dropout and the skip containers
(run by scripts/check_gradients.py)."""
import numpy as np

from engine.core import Sequential
from layers.activations import ReLU, Tanh
from layers.containers import Residual, SkipConcat
from layers.conv import Conv2d
from layers.dropout import Dropout
from layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm


def _affine(layer, rng):
    for _, p in layer.named_parameters():
        p.value[...] = rng.uniform(0.5, 1.5, p.shape)
    return layer


def _bn(cls, C, shape, scale=2.0, **kw):
    def make(rng):
        return "layer", _affine(cls(C, **kw), rng), [scale * rng.standard_normal(shape) + 1]
    return make


def _ln(ns, shape, **kw):
    def make(rng):
        return "layer", _affine(LayerNorm(ns, **kw), rng), [2 * rng.standard_normal(shape) + 1]
    return make


def _dropout(rng):
    return "layer", Dropout(0.3, rng=rng, fix_mask=True), [rng.standard_normal((4, 6))]


def _resblock(rng):
    block = Sequential(Conv2d(2, 2, 3, padding=1, bias=False, rng=rng), BatchNorm2d(2), ReLU(),
                       Conv2d(2, 2, 3, padding=1, bias=False, rng=rng), BatchNorm2d(2))
    return "layer", Residual(block), [rng.standard_normal((2, 2, 4, 4))]


def _skipconcat(rng):
    return "layer", SkipConcat(Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), Tanh())), \
        [rng.standard_normal((2, 2, 4, 4))]


CASES = [
    ("BatchNorm1d (N, C)", _bn(BatchNorm1d, 3, (4, 3))),
    ("BatchNorm1d (N, C, L)", _bn(BatchNorm1d, 3, (2, 3, 5))),
    # two values per channel: inputs of scale √ε, else ∂ℓ/∂x = O(ε/σ²) is below finite-difference resolution
    ("BatchNorm1d batch 2", _bn(BatchNorm1d, 4, (2, 4), scale=0.003)),
    ("BatchNorm2d", _bn(BatchNorm2d, 3, (2, 3, 4, 5))),
    ("BatchNorm2d batch 2, 1x1", _bn(BatchNorm2d, 2, (2, 2, 1, 1), scale=0.003)),
    ("BatchNorm2d batch 1", _bn(BatchNorm2d, 2, (1, 2, 3, 3))),
    ("LayerNorm (D,)", _ln(5, (4, 5))),
    ("LayerNorm (3, 4)", _ln((3, 4), (2, 3, 4))),
    ("Dropout p=0.3 (fixed mask)", _dropout),
    ("Residual(conv-bn-relu-conv-bn)", _resblock),
    ("SkipConcat(conv-tanh)", _skipconcat),
]
