"""Gradient-check cases for Conv1d and Conv2d: the family's one table, read by
scripts/check_gradients.py, tests/test_gradient_cases.py (on the fast and the reference kernels)
and tests/test_conv.py (PyTorch and reference-versus-fast comparisons on the same geometries).

Every option: stride > 1 on sizes not divisible by it, dilation > 1, padding larger than the
kernel, groups > 1 (depthwise included), batch 1, 1×1 kernels, no bias, "same" with an even
kernel (asymmetric padding), "valid", all at once; and one layer used twice in one forward
(Sequential(conv, Tanh(), conv)), whose calls must each keep their own input.
"""
import numpy as np

from engine import Sequential
from layers.activations import Tanh
from layers.conv import Conv1d, Conv2d

#: name -> (N, C_in, H, W, C_out, kernel_size, options)
CONV2D = {
    "basic": (2, 3, 6, 5, 4, 3, dict(padding=1)),
    "stride2_odd": (2, 2, 7, 6, 3, 3, dict(stride=2, padding=1)),
    "stride3_rect": (1, 2, 8, 7, 2, (3, 2), dict(stride=(3, 2))),
    "dilation2": (2, 2, 7, 7, 3, 3, dict(dilation=2, padding=2)),
    "pad_gt_kernel": (2, 2, 4, 5, 3, 2, dict(padding=3)),
    "groups2": (2, 4, 5, 5, 6, 3, dict(groups=2, padding=1)),
    "depthwise": (2, 3, 5, 4, 3, 3, dict(groups=3)),
    "batch1_1x1": (1, 3, 4, 4, 5, 1, dict()),
    "no_bias": (2, 2, 5, 5, 3, 3, dict(bias=False, padding=(0, 1))),
    "same_even": (2, 2, 5, 6, 3, (2, 4), dict(padding="same", dilation=(1, 2))),
    "valid": (2, 2, 5, 6, 3, 3, dict(padding="valid")),
    "mixed": (2, 4, 9, 8, 2, (3, 2), dict(stride=(2, 3), padding=(4, 1), dilation=(2, 1), groups=2)),
}

#: name -> (N, C_in, L, C_out, kernel_size, options)
CONV1D = {
    "basic": (2, 3, 9, 4, 3, dict(padding=1)),
    "stride2_odd": (2, 2, 11, 3, 3, dict(stride=2)),
    "dilation2": (2, 2, 10, 3, 3, dict(dilation=2, padding=2)),
    "pad_gt_kernel": (1, 2, 5, 2, 2, dict(padding=4)),
    "groups2": (2, 4, 8, 6, 3, dict(groups=2)),
    "batch1_k1": (1, 3, 6, 2, 1, dict(bias=False)),
    "same_even": (2, 2, 7, 3, 4, dict(padding="same")),
    "mixed": (3, 4, 11, 6, 3, dict(stride=3, padding=5, dilation=2, groups=2)),
}



def make_conv(nd, name, rng, dtype=np.float64):
    """(layer, x) of the case `name` of CONV1D (nd = 1) or CONV2D (nd = 2), drawn from rng."""
    if nd == 1:
        N, C, L, Co, k, opts = CONV1D[name]
        return Conv1d(C, Co, k, dtype=dtype, rng=rng, **opts), rng.standard_normal((N, C, L)).astype(dtype)
    N, C, H, W, Co, k, opts = CONV2D[name]
    return Conv2d(C, Co, k, dtype=dtype, rng=rng, **opts), rng.standard_normal((N, C, H, W)).astype(dtype)


def make_reused(nd, rng, dtype=np.float64):
    """(conv, Sequential(conv, Tanh(), conv), x): one layer (C → C channels, padding 1) used
    twice in one forward (a smooth activation between, so no input is near a kink)."""
    shape = (2, 3, 7) if nd == 1 else (2, 3, 5, 4)
    conv = (Conv1d if nd == 1 else Conv2d)(3, 3, 3, padding=1, dtype=dtype, rng=rng)
    return conv, Sequential(conv, Tanh(), conv), rng.standard_normal(shape).astype(dtype)


def _case(nd, name):
    def make(rng):
        layer, x = make_conv(nd, name, rng)
        return "layer", layer, [x]
    return make


def _reused_case(nd):
    def make(rng):
        _, model, x = make_reused(nd, rng)
        return "layer", model, [x]
    return make


CASES = ([(f"Conv2d {name}", _case(2, name)) for name in CONV2D]
         + [(f"Conv1d {name}", _case(1, name)) for name in CONV1D]
         + [(f"Conv{nd}d reused: Sequential(c, Tanh(), c)", _reused_case(nd)) for nd in (2, 1)])
