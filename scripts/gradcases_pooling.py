"""Gradient-check cases for pooling and Flatten (run by scripts/check_gradients.py).
Inputs are distinct values 0.01 apart (plus small noise), so no max-pool tie lies within the
finite-difference step."""
import numpy as np

from layers.pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d


def _case(cls, shape, **kw):
    def make(rng):
        x = rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 + 0.003 * rng.standard_normal(shape)
        return "layer", cls(**kw), [x]
    return make


CASES = [
    ("MaxPool2d 2x2", _case(MaxPool2d, (2, 3, 6, 6), kernel_size=2)),
    ("MaxPool2d 3x3 stride 2 (overlapping)", _case(MaxPool2d, (2, 2, 7, 6), kernel_size=3, stride=2)),
    ("MaxPool2d 2x2 stride 1 (overlapping)", _case(MaxPool2d, (1, 2, 5, 5), kernel_size=2, stride=1)),
    ("MaxPool2d padding 1", _case(MaxPool2d, (2, 2, 5, 7), kernel_size=3, stride=2, padding=1)),
    ("MaxPool2d dilation 2", _case(MaxPool2d, (1, 2, 7, 7), kernel_size=2, stride=1, dilation=2)),
    ("MaxPool2d batch 1, size 5 / 2", _case(MaxPool2d, (1, 2, 5, 5), kernel_size=2)),
    ("MaxPool1d k3 s2 p1", _case(MaxPool1d, (2, 3, 9), kernel_size=3, stride=2, padding=1)),
    ("AvgPool2d 2x2", _case(AvgPool2d, (2, 3, 6, 6), kernel_size=2)),
    ("AvgPool2d 3x3 stride 2 (overlapping)", _case(AvgPool2d, (2, 2, 7, 6), kernel_size=3, stride=2)),
    ("AvgPool2d padding 1", _case(AvgPool2d, (2, 2, 5, 7), kernel_size=3, stride=2, padding=1)),
    ("AvgPool2d padding, count_include_pad=False",
     _case(AvgPool2d, (2, 2, 5, 7), kernel_size=3, stride=1, padding=1, count_include_pad=False)),
    ("AvgPool1d k3 s2 p1", _case(AvgPool1d, (2, 3, 9), kernel_size=3, stride=2, padding=1)),
    ("AdaptiveAvgPool2d (1,1)", _case(AdaptiveAvgPool2d, (2, 3, 5, 4), output_size=(1, 1))),
    ("AdaptiveAvgPool2d (2,3)", _case(AdaptiveAvgPool2d, (2, 2, 5, 7), output_size=(2, 3))),
    ("Flatten", _case(Flatten, (2, 3, 4, 2))),
]
