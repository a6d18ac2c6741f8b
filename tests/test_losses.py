"""Losses: finite-difference gradients, agreement with torch.nn, extreme logits, float32, bad input."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import gradcheck_loss
from engine.gradcheck import numeric_grad, rel_error
from engine.losses import (BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, L1Loss,
                           MSELoss, MultiMarginLoss)
from gradcases_losses import away_from_zero, margin_logits

REDUCTIONS = ["mean", "sum"]
# (loss name, target kind / option) pairs: every loss x target kind
KINDS = [("mse", "-"), ("l1", "-"),
         ("bce", "binary"), ("bce", "soft"), ("bce", "pos_weight"), ("bce", "weights"),
         ("ce", "labels"), ("ce", "labels_smooth"), ("ce", "probs"), ("ce", "probs_smooth"),
         ("ce", "labels_weight_ignore"), ("ce", "probs_weight"),
         ("mm", "p1"), ("mm", "p2"), ("mm", "weight"),
         ("gnll", "full_var"), ("gnll", "per_row"), ("gnll", "shared_axis0"), ("gnll", "const")]


def _t(a):
    """A torch tensor of a (weights for the torch losses), or None."""
    if a is None:
        return None
    import torch
    return torch.tensor(a)


def build(name, kind, reduction, rng, N=4, C=3):
    """(our loss, pred, target, forward kwargs, torch loss factory) for one case, float64,
    inputs away from kinks (gradient checks perturb pred by 1e-6): |pred − target| ≥ 0.1 for
    MSE and L1, hinge terms ≥ 0.1 from 0 for MultiMargin. Drawn once from `rng`, never redrawn:
    entries of the gradient that are nearly zero (p_c ≈ t_c in cross-entropy, σ(z) ≈ y) are
    judged by engine.gradcheck against a floor at 1% of the largest gradient, where the
    central differences' rounding noise lives.
    """
    pred = rng.standard_normal((N, C))
    kw = {}
    if name == "mse":
        target = pred + away_from_zero(rng, (N, C))
        return MSELoss(reduction), pred, target, kw, lambda nn: nn.MSELoss(reduction=reduction)
    if name == "l1":
        target = pred + away_from_zero(rng, (N, C))
        return L1Loss(reduction), pred, target, kw, lambda nn: nn.L1Loss(reduction=reduction)
    if name == "bce":
        target = rng.uniform(0, 1, (N, C)) if kind == "soft" else rng.integers(0, 2, (N, C)) * 1.0
        pw = rng.uniform(0.5, 3.0, C) if kind in ("pos_weight", "weights") else None
        w = rng.uniform(0.5, 2.0, (N, 1)) if kind == "weights" else None   # broadcast over C

        def torch_loss(nn):
            return nn.BCEWithLogitsLoss(reduction=reduction, weight=_t(w), pos_weight=_t(pw))
        return BCEWithLogitsLoss(reduction, pos_weight=pw, weight=w), pred, target, kw, torch_loss
    if name == "ce":
        target = rng.dirichlet(np.ones(C), N) if kind.startswith("probs") else rng.integers(0, C, N)
        ls = 0.1 if "smooth" in kind or "weight" in kind else 0.0
        w = rng.uniform(0.5, 2.0, C) if "weight" in kind else None
        if kind == "labels_weight_ignore" and N > 1:
            target[0] = -1
        ii = -1 if kind == "labels_weight_ignore" else -100

        def torch_loss(nn):
            return nn.CrossEntropyLoss(reduction=reduction, label_smoothing=ls, weight=_t(w),
                                       ignore_index=ii)
        return (CrossEntropyLoss(reduction, label_smoothing=ls, weight=w, ignore_index=ii),
                pred, target, kw, torch_loss)
    if name == "mm":
        p = 1 if kind == "p1" else 2
        w = rng.uniform(0.5, 2.0, C) if kind == "weight" else None
        target = rng.integers(0, C, N)
        pred = margin_logits(rng, target, 0.8, C)
        return (MultiMarginLoss(p=p, margin=0.8, weight=w, reduction=reduction), pred, target, kw,
                lambda nn: nn.MultiMarginLoss(p=p, margin=0.8, weight=_t(w), reduction=reduction))
    if name == "gnll":
        target = rng.standard_normal((N, C))
        var_shape = {"full_var": (N, C), "per_row": (N,), "shared_axis0": (1, C)}.get(kind)
        kw["var"] = 1.3 if kind == "const" else rng.uniform(0.5, 2.0, var_shape)
        full = kind == "per_row"
        return (GaussianNLLLoss(full=full, reduction=reduction), pred, target, kw,
                lambda nn: nn.GaussianNLLLoss(full=full, reduction=reduction))
    raise AssertionError(name)


# ---- gradient checks --------------------------------------------------------------------------
@settings(max_examples=15, deadline=None)
@given(case=st.sampled_from(KINDS), reduction=st.sampled_from(REDUCTIONS),
       N=st.integers(1, 5), C=st.integers(2, 5), seed=st.integers(0, 2**31))
def test_gradcheck(case, reduction, N, C, seed):
    loss, pred, target, kw, _ = build(*case, reduction, np.random.default_rng(seed), N, C)
    result = gradcheck_loss(loss, pred, target, **kw)
    assert result.passed(1e-6), (case, reduction, str(result))


@pytest.mark.parametrize("case", KINDS, ids=["-".join(k) for k in KINDS])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_every_case(case, reduction):
    loss, pred, target, kw, _ = build(*case, reduction, np.random.default_rng(1))
    assert gradcheck_loss(loss, pred, target, **kw).passed(1e-6)


@pytest.mark.parametrize("var_shape", [(4, 3), (4,), (4, 1), (1, 3)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gaussian_nll_dvar(var_shape, reduction):
    rng = np.random.default_rng(2)
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    var = rng.uniform(0.5, 2.0, var_shape)
    loss = GaussianNLLLoss(full=True, reduction=reduction)
    loss.forward(pred, target, var)
    loss.backward()
    dvar = loss.dvar
    assert dvar.shape == var_shape
    numeric = numeric_grad(lambda: loss.forward(pred, target, var), var)
    assert rel_error(dvar, numeric) < 1e-6


# ---- agreement with PyTorch -------------------------------------------------------------------
def torch_value_and_grads(torch_loss_factory, pred, target, kw):
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    tp = torch.tensor(pred, requires_grad=True)
    tt = torch.tensor(target)
    args = [tp, tt]
    tvar = None
    if "var" in kw:
        var = kw["var"]
        tvar = var if isinstance(var, float) else torch.tensor(var, requires_grad=True)
        args.append(tvar)
    value = torch_loss_factory(torch.nn)(*args)
    value.backward()
    dvar = None if tvar is None or isinstance(tvar, float) else tvar.grad.numpy()
    return value.item(), tp.grad.numpy(), dvar


def assert_matches_torch(loss, pred, target, kw, factory, rtol=1e-12):
    value = loss.forward(pred, target, **kw)
    dpred = loss.backward()
    t_value, t_dpred, t_dvar = torch_value_and_grads(factory, pred, target, kw)
    np.testing.assert_allclose(value, t_value, rtol=rtol, atol=1e-300)
    np.testing.assert_allclose(dpred, t_dpred, rtol=rtol, atol=1e-15 * np.abs(t_dpred).max())
    if t_dvar is not None:
        np.testing.assert_allclose(loss.dvar, t_dvar, rtol=rtol, atol=1e-15 * np.abs(t_dvar).max())


@pytest.mark.parametrize("case", KINDS, ids=["-".join(k) for k in KINDS])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_matches_torch(case, reduction):
    loss, pred, target, kw, factory = build(*case, reduction, np.random.default_rng(3), 6, 4)
    assert_matches_torch(loss, pred, target, kw, factory)


@pytest.mark.parametrize("case", KINDS, ids=["-".join(k) for k in KINDS])
def test_extreme_logits_finite_and_match_torch(case):
    rng = np.random.default_rng(4)
    loss, pred, target, kw, factory = build(*case, "mean", rng, 6, 4)
    pred = rng.choice([-1e4, 1e4], pred.shape) + rng.uniform(-1, 1, pred.shape)
    value = loss.forward(pred, target, **kw)
    dpred = loss.backward()
    assert np.isfinite(value) and np.isfinite(dpred).all()
    # Logit differences computed from numbers of size 1e4 carry absolute rounding ~1e4 * 2^-52,
    # so softmax probabilities are only determined to ~1e-12 relative: compare to 1e-10.
    assert_matches_torch(loss, pred, target, kw, factory, rtol=1e-10)


@pytest.mark.parametrize("case", KINDS, ids=["-".join(k) for k in KINDS])
def test_logits_at_the_float_limit_never_nan(case):
    """pred = ±1e308: no NaN from 0·∞ in the value (a mathematically infinite value may be inf),
    and a finite gradient (every loss here has a finite gradient there for "mean" over 24
    elements). Before: cross-entropy NaN (the smoothing term 0·(−∞) at ε = 0), and MSE,
    GaussianNLL and the squared hinge inf gradients from f − y overflowing."""
    rng = np.random.default_rng(11)
    loss, pred, target, kw, _ = build(*case, "mean", rng, 6, 4)
    pred = rng.choice([-1e308, 1e308], pred.shape)
    value = loss.forward(pred, target, **kw)
    dpred = loss.backward()
    assert not np.isnan(value)
    assert np.isfinite(dpred).all()
    if getattr(loss, "dvar", None) is not None:
        assert not np.isnan(loss.dvar).any()


B = 1e308
F = np.array([[B, -B, -B], [-B, B, -B]])
F_RIGHT, F_WRONG = np.array([0, 1]), np.array([1, 0])
ONE_HOT = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.mark.parametrize("target", [F_RIGHT, ONE_HOT], ids=["labels", "probs"])
@pytest.mark.parametrize("weight", [None, np.array([1.0, 2.0, 3.0])], ids=["-", "weight"])
def test_cross_entropy_right_class_at_1e308_is_zero(target, weight):
    """ε = 0, the right class at +1e308 and the others at −1e308: ℓ = 0, ∂ℓ/∂f = p − t = 0
    (before: NaN from 0·log 0 = 0·(−∞) in the smoothing term)."""
    loss = CrossEntropyLoss(label_smoothing=0.0, weight=weight)
    assert loss.forward(F, target) == 0.0
    np.testing.assert_array_equal(loss.backward(), 0.0)


def test_cross_entropy_at_1e308_gives_the_representable_values(torch):
    """ε = 0.1: ℓ_n = Σ_{c≠y} (ε/C)(lse − f_c) = 2·(0.1/3)·2e308 = 1.33e307, finite although
    lse − f_c = 2e308 overflows (PyTorch: inf); a wrong label costs 2e308: inf for real."""
    loss = CrossEntropyLoss(label_smoothing=0.1)
    assert loss.forward(F, F_RIGHT) == pytest.approx(2 * (0.1 / 3) * 2 * B, rel=1e-12)
    g = loss.backward()
    t = torch.nn.functional.cross_entropy(torch.tensor(F, requires_grad=True), torch.tensor(F_RIGHT),
                                          label_smoothing=0.1)
    assert np.isinf(t.item())                          # where PyTorch overflows
    np.testing.assert_allclose(g, [[1 / 30, -1 / 60, -1 / 60], [-1 / 60, 1 / 30, -1 / 60]], rtol=1e-12)
    plain = CrossEntropyLoss()
    assert plain.forward(F, F_WRONG) == np.inf
    np.testing.assert_allclose(plain.backward(), [[0.5, -0.5, 0.0], [-0.5, 0.5, 0.0]], rtol=1e-15)


def test_other_losses_at_1e308_give_the_representable_values():
    """Means of terms near the float range: each term scaled before it is summed, f − y taken in
    halves when it overflows (before: inf where the mean is finite)."""
    Fb = np.array([[B, -B], [-B, B]])
    flipped = np.array([[0.0, 1.0], [1.0, 0.0]])
    bce = BCEWithLogitsLoss()
    assert bce.forward(Fb, 1.0 - flipped) == 0.0
    assert bce.forward(Fb, flipped) == pytest.approx(1e308, rel=1e-12)     # mean of four 1e308
    np.testing.assert_allclose(bce.backward(), [[0.25, -0.25], [-0.25, 0.25]], rtol=1e-15)
    mm = MultiMarginLoss()
    # row 0 (label 1): h = 1 + 2e308 for class 0 and h = 1 for class 2, weight 1/C, mean over 2 rows
    assert mm.forward(F, F_WRONG) == pytest.approx(2 / 3 * B, rel=1e-12)
    mm2 = MultiMarginLoss(p=2)
    assert mm2.forward(F, F_WRONG) == np.inf                                # (2e308)² for real
    big = 2 * 2 / 3 / 2 * B                                                  # 2 h w/(C N), h = 2e308
    np.testing.assert_allclose(mm2.backward()[0], [big, -big - 1 / 3, 1 / 3], rtol=1e-12)
    mse = MSELoss()
    assert mse.forward(Fb, -Fb) == np.inf                                   # (2e308)² for real
    np.testing.assert_allclose(mse.backward(), Fb, rtol=1e-15)              # 2·2e308/4 = 1e308
    one_big = np.zeros(100)
    one_big[0] = 1e155                                  # (1e155)² = 1e310 overflows, its mean 1e308 not
    assert MSELoss().forward(one_big, np.zeros(100)) == pytest.approx(1e308, rel=1e-12)
    gnll = GaussianNLLLoss()
    gnll.forward(Fb, -Fb, 1.0)
    np.testing.assert_allclose(gnll.backward(), Fb / 2, rtol=1e-15)         # 2e308/4


def test_gaussian_nll_zero_variance_with_zero_eps_is_refused():
    """eps = 0 lets v = max(var, eps) be 0, a division by zero (before: ZeroDivisionError from
    the kernel)."""
    with pytest.raises(ValueError, match="^var: expected positive variances with eps=0"):
        GaussianNLLLoss(eps=0.0).forward(np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="^var: "):
        GaussianNLLLoss(eps=0.0).forward(np.zeros((2, 2)), np.ones((2, 2)), 0.0)
    assert np.isfinite(GaussianNLLLoss(eps=0.0).forward(np.zeros((2, 2)), np.ones((2, 2)), 0.5))


def test_bce_gradient_uses_the_overflow_free_sigmoid():
    """∂ℓ/∂z = σ(z) − y: at z = −720, σ(z) ≈ 1e-313 > 0, where the naive 1/(1 + e^{−z}) gives 0."""
    loss = BCEWithLogitsLoss(reduction="sum")
    z = np.array([[-720.0, 720.0]])
    value = loss.forward(z, np.array([[0.0, 1.0]]))
    assert 0.0 < value < 1e-300                       # log1p(e^{−720}) twice, no log(0)
    d = loss.backward()
    assert 0.0 < d[0, 0] < 1e-300 and d[0, 1] == 0.0   # σ(720) − 1 rounds to 0
    assert loss.forward(z, np.array([[1.0, 0.0]])) == 1440.0


def test_gaussian_nll_var_clamped_like_torch():
    """var below eps is clamped in the value, and (as torch) still receives a gradient."""
    rng = np.random.default_rng(5)
    pred, target = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    var = rng.uniform(0.5, 2.0, (3, 2))
    var[0, 0], var[1, 1] = 1e-9, 0.0
    assert_matches_torch(GaussianNLLLoss(eps=1e-3), pred, target, {"var": var},
                         lambda nn: nn.GaussianNLLLoss(eps=1e-3))


def test_cross_entropy_all_ignored_is_nan_like_torch():
    loss = CrossEntropyLoss()
    pred = np.random.default_rng(9).standard_normal((2, 3))
    assert np.isnan(loss.forward(pred, np.array([-100, -100])))
    assert (loss.backward() == 0).all()
    assert loss.forward(pred, np.array([-100, 2])) == pytest.approx(
        CrossEntropyLoss().forward(pred[1:], np.array([2])))


# ---- dtype, fresh gradients, bad input ----------------------------------------------------------
@pytest.mark.parametrize("case", KINDS, ids=["-".join(k) for k in KINDS])
def test_float32(case):
    loss, pred, target, kw, _ = build(*case, "mean", np.random.default_rng(6))
    v64, d64 = loss.forward(pred, target, **kw), loss.backward()
    as32 = (lambda a: a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a)
    v32 = loss.forward(as32(pred), as32(target), **{k: as32(v) for k, v in kw.items()})
    d32 = loss.backward()
    assert isinstance(v32, float) and d32.dtype == np.float32 and d32.shape == pred.shape
    np.testing.assert_allclose(v32, v64, rtol=1e-5)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-6)


def test_backward_returns_fresh_arrays_and_needs_forward():
    loss = CrossEntropyLoss()
    with pytest.raises(RuntimeError, match="before forward"):
        loss.backward()
    pred = np.random.default_rng(7).standard_normal((3, 4))
    loss.forward(pred, np.array([0, 1, 3]))
    d1 = loss.backward()
    d1[...] = 0
    assert np.abs(loss.backward()).sum() > 0


def test_call_is_forward_and_repr():
    loss = MultiMarginLoss(p=2, margin=0.5, reduction="sum")
    pred = np.random.default_rng(8).standard_normal((3, 4))
    assert loss(pred, np.array([0, 1, 2])) == loss.forward(pred, np.array([0, 1, 2]))
    assert "margin=0.5" in repr(loss)


f64 = np.zeros((3, 4))
BAD = [
    (lambda: MSELoss()(f64, np.zeros((3, 5))), ValueError, "target"),
    (lambda: MSELoss()(f64, np.zeros((3, 4), np.float32)), TypeError, "target"),
    (lambda: MSELoss()(f64.astype(int), f64), TypeError, "pred"),
    (lambda: L1Loss()(np.full((3, 4), np.nan), f64), ValueError, "pred"),
    (lambda: L1Loss()(f64, np.full((3, 4), np.inf)), ValueError, "target"),
    (lambda: L1Loss()([[0.0]], [[0.0]]), TypeError, "pred"),
    (lambda: MSELoss(reduction="none"), ValueError, "reduction"),
    (lambda: BCEWithLogitsLoss(pos_weight=np.ones(5))(f64, f64), ValueError, "pos_weight"),
    (lambda: CrossEntropyLoss()(f64, np.array([0, 1, 4])), ValueError, "target"),
    (lambda: CrossEntropyLoss()(f64, np.array([0, -1, 2])), ValueError, "target"),
    (lambda: CrossEntropyLoss()(f64, np.array([0, 1])), ValueError, "target"),
    (lambda: CrossEntropyLoss()(f64, np.zeros((3, 5))), ValueError, "target"),
    (lambda: CrossEntropyLoss()(f64, np.zeros((3, 4), np.float32)), TypeError, "target"),
    (lambda: CrossEntropyLoss()(np.zeros(4), np.array([0])), ValueError, "pred"),
    (lambda: CrossEntropyLoss(label_smoothing=1.5), ValueError, "label_smoothing"),
    (lambda: CrossEntropyLoss(weight=np.ones(3))(f64, np.array([0, 1, 2])), ValueError, "weight"),
    (lambda: CrossEntropyLoss(weight=np.ones((2, 2))), ValueError, "weight"),
    (lambda: CrossEntropyLoss(ignore_index=1.0), TypeError, "ignore_index"),
    (lambda: CrossEntropyLoss(ignore_index=-1)(f64, np.array([0, -2, 1])), ValueError, "target"),
    (lambda: BCEWithLogitsLoss(weight=np.ones(3))(f64, f64), ValueError, "weight"),
    (lambda: MultiMarginLoss(weight=np.ones(5))(f64, np.array([0, 1, 2])), ValueError, "weight"),
    (lambda: MultiMarginLoss()(f64, np.array([0.0, 1.0, 2.0])), TypeError, "target"),
    (lambda: MultiMarginLoss()(f64, np.array([0, 1, 7])), ValueError, "target"),
    (lambda: MultiMarginLoss(p=3), ValueError, "p"),
    (lambda: GaussianNLLLoss()(f64, f64, np.ones((3, 5))), ValueError, "var"),
    (lambda: GaussianNLLLoss()(f64, f64, np.ones((2, 2))), ValueError, "var"),
    (lambda: GaussianNLLLoss()(f64, f64, -np.ones((3, 4))), ValueError, "var"),
    (lambda: GaussianNLLLoss()(f64, f64, -1.0), ValueError, "var"),
    (lambda: GaussianNLLLoss()(f64, f64, np.ones((3, 4), np.float32)), TypeError, "var"),
    (lambda: GaussianNLLLoss(eps=-1.0), ValueError, "eps"),
    (lambda: GaussianNLLLoss(full=1), TypeError, "full"),
    (lambda: GaussianNLLLoss(full="False"), TypeError, "full"),
    (lambda: MultiMarginLoss(p=1.0), TypeError, "p"),
    (lambda: MultiMarginLoss(p=True), TypeError, "p"),
    (lambda: CrossEntropyLoss(label_smoothing="0.1"), TypeError, "label_smoothing"),
    (lambda: CrossEntropyLoss(weight=np.ones(4, complex)), TypeError, "weight"),
    (lambda: CrossEntropyLoss(reduction=None), ValueError, "reduction"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_input_names_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}\b"):
        call()
