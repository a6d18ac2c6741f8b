"""BatchNorm1d/2d, LayerNorm, Dropout: finite differences, PyTorch float64 (outputs, gradients,
running statistics over several steps), train/eval, errors."""
import numpy as np
import pytest

from engine import gradcheck
from layers.dropout import Dropout
from layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from torchcheck import run_both

BN_CASES = {
    "bn1d_NC": (BatchNorm1d, 3, (4, 3), {}),
    "bn1d_NCL": (BatchNorm1d, 3, (2, 3, 5), {}),
    "bn1d_batch2": (BatchNorm1d, 4, (2, 4), {}),
    "bn2d": (BatchNorm2d, 3, (2, 3, 4, 5), {}),
    "bn2d_batch2_1x1": (BatchNorm2d, 2, (2, 2, 1, 1), {}),
    "bn2d_batch1": (BatchNorm2d, 2, (1, 2, 3, 3), {}),
    "bn2d_no_affine": (BatchNorm2d, 3, (2, 3, 3, 2), dict(affine=False)),
    "bn2d_no_track": (BatchNorm2d, 2, (3, 2, 2, 2), dict(track_running_stats=False)),
    "bn2d_momentum_none": (BatchNorm2d, 2, (3, 2, 2, 3), dict(momentum=None, eps=1e-3)),
}


def make_bn(case, dtype=np.float64, seed=0):
    cls, C, shape, kw = BN_CASES[case]
    rng = np.random.default_rng(seed)
    layer = cls(C, dtype=dtype, **kw)
    if layer.affine:        # non-trivial γ, β so their gradients are tested
        layer.weight.value[:] = rng.uniform(0.5, 1.5, C)
        layer.bias.value[:] = rng.standard_normal(C)
    return layer, (2 * rng.standard_normal(shape) + 1).astype(dtype)


@pytest.mark.parametrize("case", BN_CASES)
@pytest.mark.parametrize("train", [True, False])
def test_bn_gradcheck(case, train):
    layer, x = make_bn(case)
    if not train and layer.track_running_stats:
        layer.forward(x + 0.5)        # non-trivial running statistics
    if "batch2" in case:
        # with two values per channel x̂ = ±σ/√(σ² + ε) ≈ ±1: the output hardly depends on x and
        # ∂ℓ/∂x is O(ε/σ²), below what relative errors of finite differences resolve. Inputs of
        # scale √ε make the ε term, and so the gradient, of order one.
        x = x * 0.003
    # G seed 1 for the no-affine case: with seed 0 one element of ∂ℓ/∂x is 2e-7 by chance, where
    # finite differences' rounding shows as a relative error of 7e-3 (PyTorch agrees to 1e-12 below).
    res = gradcheck(layer, x, train=train, seed=1 if "no_affine" in case else 0)
    assert res.max_error < 1e-6, str(res)


@pytest.mark.parametrize("case", BN_CASES)
def test_bn_matches_torch_float64(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: cross-checks skipped")
    cls, C, shape, kw = BN_CASES[case]
    layer, x = make_bn(case)
    tm = getattr(torch.nn, cls.__name__)(C, **kw).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    rng = np.random.default_rng(1)
    for step in range(3):                          # train steps: running stats follow torch's
        xs = x * (step + 1) + step
        tm.train()
        y = layer.forward(xs, train=True)
        G = rng.standard_normal(y.shape)
        dx = layer.backward(G)
        xt = torch.tensor(xs, requires_grad=True)
        tm.zero_grad()
        yt = tm(xt)
        yt.backward(torch.tensor(G))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-12)
        if layer.affine:
            np.testing.assert_allclose(layer.weight.grad, tm.weight.grad.numpy(), rtol=0, atol=1e-11)
            np.testing.assert_allclose(layer.bias.grad, tm.bias.grad.numpy(), rtol=0, atol=1e-11)
            layer.zero_grad()
    sd = layer.state_dict()
    tsd = tm.state_dict()
    assert set(sd) == set(tsd)
    for k in sd:
        np.testing.assert_allclose(sd[k], tsd[k].numpy(), rtol=1e-13, atol=1e-14)
    # eval mode
    tm.eval()
    y, dx, yt, dxt = run_both(layer, tm, x, G=rng.standard_normal(x.shape), train=False)
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, dxt, rtol=0, atol=1e-12)


def test_bn_state_dict_names_and_load_from_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: cross-checks skipped")
    tm = torch.nn.BatchNorm2d(3)
    tm(torch.randn(4, 3, 2, 2))
    layer = BatchNorm2d(3)
    layer.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    assert int(layer.num_batches_tracked) == 1
    np.testing.assert_allclose(layer.running_var, tm.running_var.numpy(), rtol=1e-6)
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def test_bn_train_false_does_not_update_running_stats():
    layer, x = make_bn("bn2d")
    layer.forward(x, train=False)
    np.testing.assert_array_equal(layer.running_mean, 0)
    assert int(layer.num_batches_tracked) == 0


def test_bn_backward_twice_and_float32():
    layer, x = make_bn("bn2d")
    y = layer.forward(x)
    G = np.random.default_rng(0).standard_normal(y.shape)
    layer.backward(G)
    g = layer.weight.grad.copy()
    layer.backward(G)
    np.testing.assert_allclose(layer.weight.grad, 2 * g)
    l32, _ = make_bn("bn2d", dtype=np.float32)
    y32 = l32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y, rtol=1e-4, atol=1e-5)
    dx32 = l32.backward(G.astype(np.float32))
    assert dx32.dtype == np.float32 and l32.weight.grad.dtype == np.float32


def test_bn_errors():
    with pytest.raises(ValueError, match="x: expected more than 1 value per channel"):
        BatchNorm1d(3).forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="x: expected 3 channels"):
        BatchNorm2d(3).forward(np.zeros((2, 4, 2, 2)))
    with pytest.raises(ValueError, match="x: expected a 4-dimensional"):
        BatchNorm2d(3).forward(np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="x: expected a 2 or 3-dimensional"):
        BatchNorm1d(3).forward(np.zeros((2, 3, 2, 2)))
    with pytest.raises(TypeError, match="x: expected dtype float64"):
        BatchNorm1d(3).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm1d(3, eps=0)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2d(0)


# ---- LayerNorm ---------------------------------------------------------------------------------
LN_CASES = {
    "2d": ((4, 5), 5, {}),
    "3d": ((2, 3, 6), 6, {}),
    "multi": ((2, 3, 4), (3, 4), {}),
    "no_affine": ((3, 4), 4, dict(elementwise_affine=False)),
    "no_bias": ((3, 4), 4, dict(bias=False)),
    "batch1": ((1, 7), 7, dict(eps=1e-3)),
}


def make_ln(case, dtype=np.float64, seed=0):
    shape, ns, kw = LN_CASES[case]
    rng = np.random.default_rng(seed)
    layer = LayerNorm(ns, dtype=dtype, **kw)
    for _, p in layer.named_parameters():
        p.value[...] = rng.uniform(0.5, 1.5, p.shape)
    return layer, (2 * rng.standard_normal(shape) + 1).astype(dtype)


@pytest.mark.parametrize("case", LN_CASES)
def test_ln_gradcheck(case):
    layer, x = make_ln(case)
    # G seed 2 for "no_affine": seeds 0 and 1 give ∂ℓ/∂x elements of ~1e-7 by chance, where the rounding
    # of finite differences shows as relative errors of 4e-4 and 1e-6 (PyTorch agrees to 1e-12 below)
    res = gradcheck(layer, x, seed=2 if case == "no_affine" else 0)
    assert res.max_error < 1e-6, str(res)


@pytest.mark.parametrize("case", LN_CASES)
def test_ln_matches_torch_float64(case):
    torch = pytest.importorskip("torch", reason="PyTorch not installed: cross-checks skipped")
    shape, ns, kw = LN_CASES[case]
    layer, x = make_ln(case)
    tm = torch.nn.LayerNorm(ns, **kw).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    y, dx, yt, dxt = run_both(layer, tm, x)
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, dxt, rtol=0, atol=1e-12)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad, dict(tm.named_parameters())[n].grad.numpy(), rtol=0, atol=1e-12)


def test_ln_parallel_equals_serial_and_float32():
    from layers.norm import layernorm_backward, layernorm_forward
    rng = np.random.default_rng(0)
    x, g, b, G = rng.standard_normal((7, 5)), rng.standard_normal(5), rng.standard_normal(5), rng.standard_normal((7, 5))
    outs = []
    for nt in (1, 3):
        y, m, r = layernorm_forward(x, g, b, 1e-5, nt)
        dg, db = np.zeros(5), np.zeros(5)
        dx = layernorm_backward(G, x, m, r, g, dg, db, nt)
        outs.append((y, dx, dg, db))
    for a, c in zip(*outs):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-13)
    l32, x32 = make_ln("3d", dtype=np.float32)
    l64, x64 = make_ln("3d")
    np.testing.assert_allclose(l32.forward(x32), l64.forward(x64), rtol=1e-4, atol=1e-5)


def test_ln_errors():
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 4\)"):
        LayerNorm(4).forward(np.zeros((2, 5)))
    with pytest.raises(TypeError, match="normalized_shape"):
        LayerNorm("4")
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm((4, 0))


# ---- Dropout -----------------------------------------------------------------------------------
def test_dropout_gradcheck_with_fixed_mask():
    layer = Dropout(0.3, rng=0, fix_mask=True)
    x = np.random.default_rng(0).standard_normal((4, 6))
    res = gradcheck(layer, x)
    assert res.max_error < 1e-6, str(res)
    assert 0 < (layer.mask == 0).sum() < x.size


def test_dropout_statistics_seed_and_eval():
    x = np.ones((200, 100))
    d = Dropout(0.25, rng=1)
    y = d.forward(x)
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_allclose(np.unique(y), [0, 1 / 0.75])
    np.testing.assert_array_equal(Dropout(0.25, rng=1).forward(x), y)          # seeded
    assert not np.array_equal(d.forward(x), y)                                  # redrawn per forward
    np.testing.assert_array_equal(d.backward(np.full_like(x, 2.0)), 2 * d.mask)
    np.testing.assert_array_equal(d.forward(x, train=False), x)                 # identity in eval
    np.testing.assert_array_equal(d.backward(x), x)
    f = Dropout(0.5, rng=2, fix_mask=True)
    m1 = f.forward(x) is not None and f.mask.copy()
    f.forward(x)
    np.testing.assert_array_equal(f.mask, m1)
    f.resample()
    f.forward(x)
    assert not np.array_equal(f.mask, m1)
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)
    np.testing.assert_array_equal(Dropout(1.0).forward(x), 0)
    assert Dropout(0.5).forward(x.astype(np.float32)).dtype == np.float32


def test_dropout_errors():
    with pytest.raises(ValueError, match="p"):
        Dropout(1.5)
    with pytest.raises(TypeError, match="x"):
        Dropout().forward([1.0, 2.0])
