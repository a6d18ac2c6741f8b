"""MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool2d, Flatten: finite differences, PyTorch float64,
overlapping windows, ties, errors."""
import numpy as np
import pytest

from engine import gradcheck
from layers.pooling import (AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d,
                            maxpool2d_backward, maxpool2d_forward, maxpool2x2_forward)
from torchcheck import run_both

# (class name, input shape, kwargs)
CASES = {
    "max2d_2x2": ("MaxPool2d", (2, 3, 6, 6), dict(kernel_size=2)),
    "max2d_overlap": ("MaxPool2d", (2, 2, 7, 6), dict(kernel_size=3, stride=2)),
    "max2d_overlap_s1": ("MaxPool2d", (1, 2, 5, 5), dict(kernel_size=2, stride=1)),
    "max2d_pad": ("MaxPool2d", (2, 2, 5, 7), dict(kernel_size=3, stride=2, padding=1)),
    "max2d_dilation": ("MaxPool2d", (1, 2, 7, 7), dict(kernel_size=2, stride=1, dilation=2)),
    "max2d_rect": ("MaxPool2d", (2, 1, 7, 8), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0))),
    "max2d_batch1_notdiv": ("MaxPool2d", (1, 2, 5, 5), dict(kernel_size=2)),
    "max1d": ("MaxPool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    "max1d_overlap_dil": ("MaxPool1d", (2, 2, 10), dict(kernel_size=2, stride=1, dilation=3)),
    "avg2d_2x2": ("AvgPool2d", (2, 3, 6, 6), dict(kernel_size=2)),
    "avg2d_overlap": ("AvgPool2d", (2, 2, 7, 6), dict(kernel_size=3, stride=2)),
    "avg2d_pad": ("AvgPool2d", (2, 2, 5, 7), dict(kernel_size=3, stride=2, padding=1)),
    "avg2d_pad_exclude": ("AvgPool2d", (2, 2, 5, 7), dict(kernel_size=3, stride=1, padding=1,
                                                          count_include_pad=False)),
    "avg2d_rect": ("AvgPool2d", (1, 2, 7, 8), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0))),
    "avg1d": ("AvgPool1d", (2, 3, 9), dict(kernel_size=3, stride=2, padding=1)),
    "avg1d_exclude": ("AvgPool1d", (1, 2, 8), dict(kernel_size=4, stride=3, padding=2, count_include_pad=False)),
    "gap": ("AdaptiveAvgPool2d", (2, 3, 5, 4), dict(output_size=(1, 1))),
    "adaptive_2x3": ("AdaptiveAvgPool2d", (2, 2, 5, 7), dict(output_size=(2, 3))),
    "flatten": ("Flatten", (2, 3, 4, 2), dict()),
    "flatten_mid": ("Flatten", (2, 3, 4, 2), dict(start_dim=1, end_dim=2)),
}
CLASSES = dict(MaxPool1d=MaxPool1d, MaxPool2d=MaxPool2d, AvgPool1d=AvgPool1d, AvgPool2d=AvgPool2d,
               AdaptiveAvgPool2d=AdaptiveAvgPool2d, Flatten=Flatten)


def make(case, dtype=np.float64, seed=0):
    name, shape, kw = CASES[case]
    rng = np.random.default_rng(seed)
    # distinct values, well separated: no max-pool ties within finite-difference reach
    x = rng.permutation(np.prod(shape)).reshape(shape) * 0.01 + 0.003 * rng.standard_normal(shape)
    return CLASSES[name](**kw), x.astype(dtype)


@pytest.mark.parametrize("case", CASES)
def test_gradcheck(case):
    layer, x = make(case)
    res = gradcheck(layer, x)
    assert res.max_error < 1e-6, str(res)


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_float64(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: cross-checks skipped")
    name, shape, kw = CASES[case]
    layer, x = make(case)
    tm = getattr(torch.nn, name)(**kw)
    y, dx, yt, dxt = run_both(layer, tm, x)
    assert y.shape == yt.shape
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-13)
    np.testing.assert_allclose(dx, dxt, rtol=0, atol=1e-13)


def test_max_ties_first_maximum_like_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: cross-checks skipped")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(2, 2, 7, 7)).astype(np.float64)    # many ties
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=1), dict(kernel_size=3, stride=2, padding=1)):
        layer, tm = MaxPool2d(**kw), torch.nn.MaxPool2d(**kw)
        y = layer.forward(x)
        G = rng.standard_normal(y.shape)
        dx = layer.backward(G)
        xt = torch.tensor(x, requires_grad=True)
        tm(xt).backward(torch.tensor(G))
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-14)
    # and the rule itself: the first maximum in row-major window order gets the gradient
    x = np.ones((1, 1, 2, 2))
    m = MaxPool2d(2)
    m.forward(x)
    np.testing.assert_array_equal(m.backward(np.ones((1, 1, 1, 1))), [[[[1, 0], [0, 0]]]])


def test_overlapping_windows_accumulate():
    x = np.zeros((1, 1, 1, 5))
    x[0, 0, 0, 2] = 1.0                           # the max of all three windows of size 3, stride 1
    m = MaxPool2d((1, 3), stride=1)
    assert m.forward(x).shape == (1, 1, 1, 3)
    dx = m.backward(np.array([[[[1.0, 2.0, 4.0]]]]))
    np.testing.assert_array_equal(dx[0, 0, 0], [0, 0, 7, 0, 0])


def test_parallel_kernel_matches_reference():
    # maxpool kernel vs a NumPy reference on a non-divisible size
    x = np.random.default_rng(0).standard_normal((3, 7, 9))
    y, idx = maxpool2d_forward(x, 2, 2, 2, 2, 0, 0, 1, 1, 3, 4)
    ref = x[:, :6, :8].reshape(3, 3, 2, 4, 2).max(axis=(2, 4))
    np.testing.assert_array_equal(y, ref)
    dx = maxpool2d_backward(np.ones_like(y), idx, 7, 9)
    assert dx.sum() == y.size and dx[:, 6].sum() == 0 and dx[:, :, 8].sum() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,s", [((4, 8, 8), (2, 2)), ((3, 7, 9), (2, 2)), ((2, 5, 6), (1, 1)),
                                     ((2, 9, 8), (3, 2)), ((1, 2, 2), (2, 2))])
def test_2x2_kernel_equals_general_kernel(shape, s, dtype):
    # values and arg-max indices, on data with many ties (the first maximum must win in both)
    x = np.random.default_rng(1).integers(0, 3, size=shape).astype(dtype)
    OH, OW = (shape[1] - 2) // s[0] + 1, (shape[2] - 2) // s[1] + 1
    y, idx = maxpool2d_forward(x, 2, 2, *s, 0, 0, 1, 1, OH, OW)
    y2, idx2 = maxpool2x2_forward(x, *s, OH, OW)
    np.testing.assert_array_equal(y2, y)
    np.testing.assert_array_equal(idx2, idx)


@pytest.mark.parametrize("case", ["max2d_overlap", "avg2d_pad", "max1d", "gap", "flatten"])
def test_float32(case):
    l64, x64 = make(case)
    l32, _ = make(case)
    y64, y32 = l64.forward(x64), l32.forward(x64.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    dx32 = l32.backward(np.ones_like(y32))
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, l64.backward(np.ones_like(y64)), rtol=1e-5, atol=1e-6)


def test_unbatched_input():
    x = np.random.default_rng(0).standard_normal((3, 6, 6))
    assert MaxPool2d(2).forward(x).shape == (3, 3, 3)
    assert AvgPool1d(2).forward(x).shape == (3, 6, 3)


def test_errors():
    with pytest.raises(ValueError, match="padding"):
        MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="stride"):
        MaxPool2d(2, stride=0)
    with pytest.raises(ValueError, match="kernel_size"):
        AvgPool1d(0)
    with pytest.raises(ValueError, match="ceil_mode"):
        MaxPool2d(2, ceil_mode=True)
    with pytest.raises(ValueError, match="x: .*smaller than the pooling window"):
        MaxPool2d(3).forward(np.zeros((1, 1, 2, 5)))
    with pytest.raises(ValueError, match="x: expected a 3 or 4-dimensional"):
        MaxPool2d(2).forward(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="x: expected a 2 or 3-dimensional"):
        MaxPool1d(2).forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="x: expected a float32 or float64"):
        MaxPool2d(2).forward(np.zeros((1, 1, 4, 4), np.int64))
    with pytest.raises(ValueError, match="output_size"):
        AdaptiveAvgPool2d(0)
    m = AvgPool2d(2)
    m.forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="dy: expected dtype float64"):
        m.backward(np.zeros((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="dy"):
        m.backward(np.zeros((1, 1, 3, 2)))
    with pytest.raises(ValueError, match="start_dim"):
        Flatten(2, 1).forward(np.zeros((2, 3, 4)))
