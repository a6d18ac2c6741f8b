"""Gradient-check cases for pooling and Flatten: the one table of the family.
tests/test_gradient_cases.py and scripts/check_gradients.py run CASES (on both kernel paths);
tests/test_pooling.py builds its PyTorch and reference-versus-fast comparisons from the same SPECS.

SPECS maps a case name to (class, input shape, keyword arguments); the class name and the
arguments are torch.nn's. Inputs are distinct values 0.01 apart (plus small noise), so no
max-pool tie lies within the finite-difference step, centred on 0 (a pool used twice around a
Tanh stays in its steep part, where the gradient is not small against central differences'
round-off).
"""
import numpy as np

from engine.core import Sequential
from layers.activations import Tanh
from layers.pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d

SPECS = {
    "MaxPool2d 2x2": (MaxPool2d, (2, 3, 6, 6), dict(kernel_size=2)),
    "MaxPool2d 3x3 stride 2 (overlapping)": (MaxPool2d, (2, 2, 7, 6), dict(kernel_size=3, stride=2)),
    "MaxPool2d 2x2 stride 1 (overlapping)": (MaxPool2d, (1, 2, 5, 5), dict(kernel_size=2, stride=1)),
    "MaxPool2d padding 1": (MaxPool2d, (2, 2, 5, 7), dict(kernel_size=3, stride=2, padding=1)),
    "MaxPool2d dilation 2": (MaxPool2d, (1, 2, 7, 7), dict(kernel_size=2, stride=1, dilation=2)),
    "MaxPool2d rectangular": (MaxPool2d, (2, 1, 7, 8), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0))),
    "MaxPool2d batch 1, size 5 / 2": (MaxPool2d, (1, 2, 5, 5), dict(kernel_size=2)),
    "MaxPool1d k3 s2 p1": (MaxPool1d, (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    "MaxPool1d overlapping, dilation 3": (MaxPool1d, (2, 2, 10), dict(kernel_size=2, stride=1, dilation=3)),
    "AvgPool2d 2x2": (AvgPool2d, (2, 3, 6, 6), dict(kernel_size=2)),
    "AvgPool2d 3x3 stride 2 (overlapping)": (AvgPool2d, (2, 2, 7, 6), dict(kernel_size=3, stride=2)),
    "AvgPool2d padding 1": (AvgPool2d, (2, 2, 5, 7), dict(kernel_size=3, stride=2, padding=1)),
    "AvgPool2d padding, count_include_pad=False":
        (AvgPool2d, (2, 2, 5, 7), dict(kernel_size=3, stride=1, padding=1, count_include_pad=False)),
    "AvgPool2d rectangular": (AvgPool2d, (1, 2, 7, 8), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0))),
    "AvgPool1d k3 s2 p1": (AvgPool1d, (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    "AvgPool1d padding, count_include_pad=False":
        (AvgPool1d, (1, 2, 8), dict(kernel_size=4, stride=3, padding=2, count_include_pad=False)),
    "AdaptiveAvgPool2d (1,1)": (AdaptiveAvgPool2d, (2, 3, 5, 4), dict(output_size=(1, 1))),
    "AdaptiveAvgPool2d (2,3)": (AdaptiveAvgPool2d, (2, 2, 5, 7), dict(output_size=(2, 3))),
    "Flatten": (Flatten, (2, 3, 4, 2), dict()),
    "Flatten dims 1..2": (Flatten, (2, 3, 4, 2), dict(start_dim=1, end_dim=2)),
}


def distinct(rng, shape, dtype=np.float64):
    """Distinct values 0.01 apart in random order around 0, plus noise of 0.003: no ties within reach."""
    n = int(np.prod(shape))
    x = (rng.permutation(n).reshape(shape) - n / 2) * 0.01 + 0.003 * rng.standard_normal(shape)
    return x.astype(dtype)


def make(name, rng, dtype=np.float64):
    """The layer and an input of case `name`."""
    cls, shape, kw = SPECS[name]
    return cls(**kw), distinct(rng, shape, dtype)


def _case(name):
    def case(rng):
        layer, x = make(name, rng)
        return "layer", layer, [x]
    return case


def _twice(cls, shape, **kw):
    """One pool used twice in one forward, Sequential(pool, Tanh(), pool)."""
    def case(rng):
        pool = cls(**kw)
        return "layer", Sequential(pool, Tanh(), pool), [distinct(rng, shape)]
    return case


CASES = [(name, _case(name)) for name in SPECS] + [
    ("MaxPool2d used twice: Sequential(pool, Tanh(), pool)", _twice(MaxPool2d, (2, 2, 8, 8), kernel_size=2)),
    ("AvgPool2d used twice: Sequential(pool, Tanh(), pool)",
     _twice(AvgPool2d, (1, 2, 9, 9), kernel_size=3, stride=2, padding=1)),
]
