"""CrossEntropyLoss on (N, C, d₁, …) logits (issue 12, item 2): against PyTorch in float64 (value
and gradient, labels and probabilities, class weights, label smoothing, ignore_index, both
reductions), and the named refusals. Gradient checks: scripts/gradcases_losses.py."""
import math

import numpy as np
import pytest

from engine.losses import CrossEntropyLoss

SHAPES = [(3, 4, 5), (2, 3, 2, 4), (1, 5, 1), (4, 3)]


def _torch_ce(torch, f, target, **kw):
    w = kw.pop("weight", None)
    tf = torch.tensor(f, requires_grad=True)
    loss = torch.nn.CrossEntropyLoss(weight=None if w is None else torch.tensor(w), **kw)
    v = loss(tf, torch.tensor(target))
    v.backward()
    return v.item(), tf.grad.numpy()


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("smoothing,weighted,ignore", [(0.0, False, False), (0.1, True, True),
                                                       (0.0, True, False), (0.2, False, True)])
def test_labels_against_pytorch_float64(torch, shape, reduction, smoothing, weighted, ignore):
    rng = np.random.default_rng(sum(shape))
    N, C = shape[:2]
    f = 3 * rng.standard_normal(shape)
    y = rng.integers(0, C, (N,) + shape[2:])
    ii = -100
    if ignore:
        ii = 7
        y.flat[1::3] = ii
    w = rng.uniform(0.2, 3.0, C) if weighted else None
    loss = CrossEntropyLoss(reduction, label_smoothing=smoothing, weight=w, ignore_index=ii)
    v, g = loss.forward(f, y), loss.backward()
    tv, tg = _torch_ce(torch, f, y, reduction=reduction, label_smoothing=smoothing, weight=w, ignore_index=ii)
    assert g.shape == shape and g.flags.c_contiguous
    assert v == pytest.approx(tv, rel=1e-13, abs=0)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-16)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=str)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_probabilities_against_pytorch_float64(torch, shape, reduction):
    rng = np.random.default_rng(1)
    N, C = shape[:2]
    f = rng.standard_normal(shape)
    t = np.moveaxis(rng.dirichlet(np.ones(C), (N,) + shape[2:]), -1, 1).copy()
    w = rng.uniform(0.5, 2.0, C)
    loss = CrossEntropyLoss(reduction, label_smoothing=0.1, weight=w)
    v, g = loss.forward(f, t), loss.backward()
    tv, tg = _torch_ce(torch, f, t, reduction=reduction, label_smoothing=0.1, weight=w)
    assert v == pytest.approx(tv, rel=1e-13, abs=0)
    np.testing.assert_allclose(g, tg, rtol=1e-12, atol=1e-16)


def test_same_as_the_flattened_rows_and_float32():
    """(N, C, T) equals the (N·T, C) rows with the class axis moved last, bit for bit."""
    rng = np.random.default_rng(2)
    for dtype in (np.float64, np.float32):
        f = rng.standard_normal((3, 6, 4)).astype(dtype)
        y = rng.integers(0, 6, (3, 4))
        a, b = CrossEntropyLoss(), CrossEntropyLoss()
        va = a.forward(f, y)
        vb = b.forward(np.ascontiguousarray(np.moveaxis(f, 1, -1)).reshape(-1, 6), y.reshape(-1))
        assert va == vb
        ga, gb = a.backward(), b.backward()
        assert ga.dtype == dtype and np.array_equal(np.moveaxis(ga, 1, -1).reshape(-1, 6), gb)


def test_everything_ignored_is_nan_as_pytorch(torch):
    f = np.random.default_rng(3).standard_normal((2, 3, 4))
    y = np.full((2, 4), -100)
    loss = CrossEntropyLoss()
    assert math.isnan(loss.forward(f, y))
    tv, _ = _torch_ce(torch, f, y)
    assert math.isnan(tv)
    assert CrossEntropyLoss("sum").forward(f, y) == 0.0


@pytest.mark.parametrize("pred,target,err,what", [
    (np.zeros((2, 3, 4)), np.zeros((2, 3), np.int64), ValueError, r"target: expected integer labels of shape \(2, 4\)"),
    (np.zeros((2, 3, 4)), np.zeros((2, 4, 1), np.int64), ValueError, "target"),
    (np.zeros((2, 3, 4)), np.full((2, 4), 3), ValueError, r"target: expected labels in \[0, 2\]"),
    (np.zeros((2, 3, 4)), np.full((2, 4), -1), ValueError, "target"),
    (np.zeros((2, 3, 4)), np.zeros((2, 4)), ValueError, "target"),
    (np.zeros((2, 3, 4)), np.zeros((2, 3, 4), np.float32), TypeError, "target"),
    (np.zeros((2, 3, 4)), np.zeros((2, 4), bool), ValueError, "target"),
    (np.zeros(3), np.array(1), ValueError, "pred"),
    (np.zeros((2, 3, 0)), np.zeros((2, 0), np.int64), ValueError, "pred"),
])
def test_bad_targets_named(pred, target, err, what):
    loss = CrossEntropyLoss()
    good = np.random.default_rng(0).standard_normal((2, 3, 4))
    loss.forward(good, np.zeros((2, 4), np.int64))
    want = loss.backward()
    with pytest.raises(err, match=what):
        loss.forward(pred, target)
    assert np.array_equal(loss.backward(), want)      # the last valid call is kept
