"""MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool2d, Flatten: PyTorch float64, reference versus fast
kernels, ties, overlapping windows, float32 on several threads, per-call state, errors.

The finite-difference checks of every case (and of a pool used twice in one forward) run from
the family's case table, scripts/gradcases_pooling.py, in tests/test_gradient_cases.py; the
tests here build on the same table (SPECS)."""
import numpy as np
import pytest

import engine
from engine.threads import chunks_for
from gradcases_pooling import SPECS, distinct, make
from layers.pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d
from crosscheck import crosscheck


def forward_backward(layer, x, G, reference):
    """y and ∂ℓ/∂x of one forward and one backward with upstream gradient G, on one kernel path."""
    with engine.reference_kernels(reference):
        y = layer.forward(x)
        return y, layer.backward(G)


def random_like(rng, a):
    return rng.standard_normal(a.shape).astype(a.dtype)


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("case", SPECS)
def test_matches_torch_float64(case, reference, torch):
    layer, x = make(case, np.random.default_rng(0))
    cls, _, kw = SPECS[case]
    with engine.reference_kernels(reference):
        crosscheck(layer, getattr(torch.nn, cls.__name__)(**kw), x, rtol=0, atol=1e-13)


@pytest.mark.parametrize("case", SPECS)
def test_reference_and_fast_kernels_agree(case):
    rng = np.random.default_rng(1)
    layer, x = make(case, rng)
    G = random_like(rng, layer.forward(x))
    layer.zero_grad()
    y_fast, dx_fast = forward_backward(layer, x, G, reference=False)
    y_ref, dx_ref = forward_backward(layer, x, G, reference=True)
    np.testing.assert_allclose(y_fast, y_ref, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx_fast, dx_ref, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("reference", [False, True])
def test_max_ties_first_maximum_like_torch(reference, torch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 3, size=(2, 2, 7, 7)).astype(np.float64)    # many ties
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=1), dict(kernel_size=3, stride=2, padding=1)):
        layer, tm = MaxPool2d(**kw), torch.nn.MaxPool2d(**kw)
        G = rng.standard_normal(tm(torch.tensor(x)).shape)
        _, dx = forward_backward(layer, x, G, reference)
        xt = torch.tensor(x, requires_grad=True)
        tm(xt).backward(torch.tensor(G))
        np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-14)
    # and the rule itself: the first maximum in row-major window order gets the gradient
    _, dx = forward_backward(MaxPool2d(2), np.ones((1, 1, 2, 2)), np.full((1, 1, 1, 1), 0.7), reference)
    np.testing.assert_array_equal(dx, [[[[0.7, 0], [0, 0]]]])


@pytest.mark.parametrize("reference", [False, True])
def test_overlapping_windows_accumulate(reference):
    x = np.zeros((1, 1, 1, 5))
    x[0, 0, 0, 2] = 1.0                           # the max of all three windows of size 3, stride 1
    y, dx = forward_backward(MaxPool2d((1, 3), stride=1), x, np.array([[[[1.0, 2.0, 4.0]]]]), reference)
    assert y.shape == (1, 1, 1, 3)
    np.testing.assert_array_equal(dx[0, 0, 0], [0, 0, 7, 0, 0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,stride", [((4, 1, 8, 8), 2), ((3, 1, 7, 9), 2), ((2, 1, 5, 6), 1),
                                          ((2, 1, 9, 8), (3, 2)), ((1, 1, 2, 2), 2)])
def test_2x2_kernel_picks_the_reference_arg_max_on_ties(shape, stride, dtype):
    # the fast path's 2×2 kernel against the reference loops on data with many ties: the same
    # values and, since the upstream gradient is random, the same arg-max (the first maximum)
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=shape).astype(dtype)
    layer = MaxPool2d(2, stride=stride)
    G = random_like(rng, layer.forward(x))
    layer.zero_grad()
    y, dx = forward_backward(layer, x, G, reference=False)
    y_ref, dx_ref = forward_backward(layer, x, G, reference=True)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)


# float32 inputs large enough that the engine splits them over 2 threads (> 2^17 values)
BIG = {
    "MaxPool2d 2x2": (MaxPool2d, (4, 16, 46, 46), dict(kernel_size=2)),
    "MaxPool2d 3x3 s2 p1": (MaxPool2d, (4, 16, 45, 46), dict(kernel_size=3, stride=2, padding=1)),
    "AvgPool2d 3x3 s2 p1 exclude pad": (AvgPool2d, (4, 16, 45, 46),
                                        dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
    "AvgPool1d 4 s3": (AvgPool1d, (8, 16, 1100), dict(kernel_size=4, stride=3)),
    "AdaptiveAvgPool2d (3,5)": (AdaptiveAvgPool2d, (4, 16, 45, 46), dict(output_size=(3, 5))),
}


@pytest.mark.parametrize("case", BIG)
def test_float32_on_two_threads_matches_reference_and_float64(case, with_threads):
    cls, shape, kw = BIG[case]
    rng = np.random.default_rng(2)
    x32 = rng.standard_normal(shape).astype(np.float32)
    x64 = x32.astype(np.float64)                       # the same values (and max-pool ties)
    G32 = random_like(rng, cls(**kw).forward(x32))
    G64 = G32.astype(np.float64)
    assert with_threads(2, chunks_for, x32.size, row_cost=1) == 2
    y, dx = with_threads(2, forward_backward, cls(**kw), x32, G32, False)
    assert y.dtype == dx.dtype == np.float32
    y_ref, dx_ref = forward_backward(cls(**kw), x32, G32, True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-5, atol=1e-6)
    y_serial, dx_serial = with_threads(1, forward_backward, cls(**kw), x32, G32, False)
    np.testing.assert_array_equal(y, y_serial)
    np.testing.assert_array_equal(dx, dx_serial)
    y64, dx64 = forward_backward(cls(**kw), x64, G64, False)
    np.testing.assert_allclose(y, y64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, dx64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["MaxPool2d 3x3 stride 2 (overlapping)", "AvgPool2d padding 1",
                                  "MaxPool1d k3 s2 p1", "AdaptiveAvgPool2d (1,1)", "Flatten"])
def test_float32_small(case):
    rng = np.random.default_rng(3)
    l64, x64 = make(case, rng)
    l32 = make(case, rng)[0]
    y64 = l64.forward(x64)
    y32 = l32.forward(x64.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    G = random_like(rng, y64)
    dx32 = l32.backward(G.astype(np.float32))
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, l64.backward(G), rtol=1e-5, atol=1e-6)


# ---- per-call state ----------------------------------------------------------------------------
@pytest.mark.parametrize("case", SPECS)
def test_no_grad_saves_nothing_and_backward_consumes_its_call(case):
    layer, x = make(case, np.random.default_rng(4))
    with engine.no_grad():
        y = layer.forward(x)
    assert layer.pending_calls() == 0
    with pytest.raises(RuntimeError, match="no forward call waits"):
        layer.backward(y)
    layer.forward(x)
    assert layer.pending_calls() == 1
    assert layer.backward(y, input_grad=False) is None
    assert layer.pending_calls() == 0


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("cls,kw", [(MaxPool2d, dict(kernel_size=2)), (AvgPool2d, dict(kernel_size=3, padding=1)),
                                    (AdaptiveAvgPool2d, dict(output_size=2)), (Flatten, {})])
def test_two_calls_each_backward_gets_its_own_state(cls, kw, reference):
    # calls of different shapes stacked: each backward (newest first) gets its own call's answer
    rng = np.random.default_rng(5)
    xs = [distinct(rng, (2, 3, 6, 8)), distinct(rng, (1, 2, 4, 4))]
    Gs = [random_like(rng, cls(**kw).forward(x)) for x in xs]
    expected = [forward_backward(cls(**kw), x, G, reference)[1] for x, G in zip(xs, Gs)]
    layer = cls(**kw)
    with engine.reference_kernels(reference):
        for x in xs:
            layer.forward(x)
        assert layer.pending_calls() == 2
        np.testing.assert_array_equal(layer.backward(Gs[1]), expected[1])
        np.testing.assert_array_equal(layer.backward(Gs[0]), expected[0])


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
    with pytest.raises(ValueError, match="kernel_size"):
        MaxPool2d((2, 2, 2))
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
    assert m.pending_calls() == 1                  # a refused backward leaves the call waiting
    with pytest.raises(ValueError, match="start_dim"):
        Flatten(2, 1).forward(np.zeros((2, 3, 4)))
    f = Flatten()
    f.forward(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 12\), got \(2, 11\)"):
        f.backward(np.zeros((2, 11)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 12\), got \(3, 8\)"):
        f.backward(np.zeros((3, 8)))                # the output's shape, not just its size (was accepted)
    assert f.pending_calls() == 1


@pytest.mark.parametrize("kw,name,on_rank_6", [(dict(start_dim=5), "start_dim", (2, 3, 4, 5, 6, 7)),
                                               (dict(start_dim=-3), "start_dim", (2, 3, 4, 210)),
                                               (dict(end_dim=2), "end_dim", (2, 12, 5, 6, 7)),
                                               (dict(end_dim=-3), "end_dim", (2, 60, 6, 7))])
def test_flatten_dims_outside_the_input_are_refused_not_wrapped(kw, name, on_rank_6):
    """Flatten(start_dim=5) on a 2-D input was read as 5 % 2 = 1 and flattened nothing (issue 11,
    item 10): every axis goes through engine.checks.check_dim against the input's rank."""
    f = Flatten(**kw)
    with pytest.raises(ValueError, match=rf"{name}: expected an axis in \[-2, 1\] .*got {kw[name]} \(x of shape \(2, 3\)\)"):
        f.forward(np.zeros((2, 3)))
    assert f.pending_calls() == 0
    assert Flatten(**kw).forward(np.zeros((2, 3, 4, 5, 6, 7))).shape == on_rank_6     # valid for a larger rank


def test_0d_input_is_refused_by_name():
    for layer in (Flatten(), Flatten(0, -1), MaxPool2d(1), AvgPool1d(1), AdaptiveAvgPool2d(1)):
        with pytest.raises(ValueError, match="x: expected"):
            layer.forward(np.array(1.0))
        assert layer.pending_calls() == 0


@pytest.mark.parametrize("make,name,bad", [
    (lambda v: AvgPool2d(2, count_include_pad=v), "count_include_pad", ["False", 0, None]),
    (lambda v: AvgPool1d(2, ceil_mode=v), "ceil_mode", ["False", 0, None]),       # "False" was read as True
    (lambda v: MaxPool2d(2, ceil_mode=v), "ceil_mode", ["False", 0, None]),       # 0 and None were accepted
    (lambda v: Flatten(start_dim=v), "start_dim", [True, 1.0, "1"]),
])
def test_options_refused_by_name(make, name, bad):
    for v in bad:
        with pytest.raises(TypeError, match=f"{name}: expected"):
            make(v)


@pytest.mark.parametrize("layer,x", [(MaxPool2d(2), np.zeros((1, 1, 4, 4))), (AvgPool1d(2), np.zeros((1, 2, 4))),
                                     (Flatten(), np.zeros((2, 3, 4)))])
def test_train_and_input_grad_are_booleans(layer, x):
    for v in ("False", 0, None):
        with pytest.raises(TypeError, match="train: expected True or False"):
            layer.forward(x, train=v)
    assert layer.pending_calls() == 0
    y = layer.forward(x)
    with pytest.raises(TypeError, match="input_grad: expected True or False"):
        layer.backward(np.ones_like(y), input_grad="False")
    assert layer.pending_calls() == 1
    assert layer.backward(np.ones_like(y), input_grad=False) is None
