"""Gradient-check cases for Conv1d and Conv2d (run by scripts/check_gradients.py).

Every option of item 5 of the conv issue: stride > 1 on sizes not divisible by it, dilation > 1,
padding larger than the kernel, groups > 1, batch 1, 1×1 kernels, "same" with an even kernel.
"""
from layers.conv import Conv1d, Conv2d


def _conv2d(N, C, H, W, Co, k, **kw):
    def make(rng):
        return "layer", Conv2d(C, Co, k, rng=rng, **kw), [rng.standard_normal((N, C, H, W))]
    return make


def _conv1d(N, C, L, Co, k, **kw):
    def make(rng):
        return "layer", Conv1d(C, Co, k, rng=rng, **kw), [rng.standard_normal((N, C, L))]
    return make


CASES = [
    ("Conv2d 3x3 pad 1", _conv2d(2, 3, 6, 5, 4, 3, padding=1)),
    ("Conv2d stride 2, odd size", _conv2d(2, 2, 7, 6, 3, 3, stride=2, padding=1)),
    ("Conv2d stride (3,2), kernel (3,2)", _conv2d(1, 2, 8, 7, 2, (3, 2), stride=(3, 2))),
    ("Conv2d dilation 2", _conv2d(2, 2, 7, 7, 3, 3, dilation=2, padding=2)),
    ("Conv2d padding 3 > kernel 2", _conv2d(2, 2, 4, 5, 3, 2, padding=3)),
    ("Conv2d groups 2", _conv2d(2, 4, 5, 5, 6, 3, groups=2, padding=1)),
    ("Conv2d depthwise", _conv2d(2, 3, 5, 4, 3, 3, groups=3)),
    ("Conv2d batch 1, 1x1", _conv2d(1, 3, 4, 4, 5, 1)),
    ("Conv2d no bias", _conv2d(2, 2, 5, 5, 3, 3, bias=False)),
    ("Conv2d 'same', even kernel", _conv2d(2, 2, 5, 6, 3, (2, 4), padding="same", dilation=(1, 2))),
    ("Conv2d all options", _conv2d(2, 4, 9, 8, 2, (3, 2), stride=(2, 3), padding=(4, 1), dilation=(2, 1), groups=2)),
    ("Conv1d k3 pad 1", _conv1d(2, 3, 9, 4, 3, padding=1)),
    ("Conv1d stride 2, odd length", _conv1d(2, 2, 11, 3, 3, stride=2)),
    ("Conv1d dilation 2", _conv1d(2, 2, 10, 3, 3, dilation=2, padding=2)),
    ("Conv1d padding 4 > kernel 2", _conv1d(1, 2, 5, 2, 2, padding=4)),
    ("Conv1d groups 2", _conv1d(2, 4, 8, 6, 3, groups=2)),
    ("Conv1d batch 1, k1", _conv1d(1, 3, 6, 2, 1, bias=False)),
    ("Conv1d all options", _conv1d(3, 4, 11, 6, 3, stride=3, padding=5, dilation=2, groups=2)),
]
