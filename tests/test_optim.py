"""Optimizers, gradient clipping and lr schedules: agreement with torch.optim, float32, bad args."""
import math

import numpy as np
import pytest

from crosscheck import step_both

from engine import Parameter
from engine.optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm
from engine.schedules import CosineAnnealingLR, ExponentialLR, StepLR

SHAPES = [(3, 4), (5,), (2, 1, 3)]

# (our class, torch class name, options): every optimizer and every option
CASES = [
    (SGD, "SGD", dict(lr=0.1)),
    (SGD, "SGD", dict(lr=0.1, weight_decay=0.05)),
    (SGD, "SGD", dict(lr=0.1, momentum=0.9)),
    (SGD, "SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    (SGD, "SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    (SGD, "SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (Adagrad, "Adagrad", dict()),
    (Adagrad, "Adagrad", dict(lr=0.1, lr_decay=0.05)),
    (Adagrad, "Adagrad", dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.3, eps=1e-6)),
    (RMSprop, "RMSprop", dict()),
    (RMSprop, "RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1)),
    (RMSprop, "RMSprop", dict(lr=0.01, momentum=0.9)),
    (RMSprop, "RMSprop", dict(lr=0.01, centered=True)),
    (RMSprop, "RMSprop", dict(lr=0.01, momentum=0.5, centered=True, eps=1e-4)),
    (Adam, "Adam", dict()),
    (Adam, "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    (Adam, "Adam", dict(lr=0.01, weight_decay=0.1)),
    (Adam, "Adam", dict(lr=0.01, amsgrad=True)),
    (Adam, "Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    (AdamW, "AdamW", dict()),
    (AdamW, "AdamW", dict(lr=0.01, weight_decay=0.2)),
    (AdamW, "AdamW", dict(lr=0.01, amsgrad=True, betas=(0.5, 0.9))),
    (SGD, "SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.1, maximize=True)),
    (Adagrad, "Adagrad", dict(lr=0.1, weight_decay=0.1, maximize=True)),
    (RMSprop, "RMSprop", dict(lr=0.01, momentum=0.5, weight_decay=0.1, maximize=True)),
    (Adam, "Adam", dict(lr=0.01, weight_decay=0.1, maximize=True)),
    (AdamW, "AdamW", dict(lr=0.01, maximize=True)),
]
IDS = [f"{c[1]}-" + ",".join(f"{k}={v}" for k, v in c[2].items()) for c in CASES]


def make_params(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [Parameter(rng.standard_normal(s).astype(dtype)) for s in SHAPES]


def grad_stream(seed, steps):
    """The shared random gradient stream: one list of arrays per step."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in SHAPES] for _ in range(steps)]


@pytest.mark.parametrize("ours, theirs, kw", CASES, ids=IDS)
def test_matches_torch_over_20_steps(ours, theirs, kw):
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    params = make_params(0)
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    opt, topt = ours(params, **kw), getattr(torch.optim, theirs)(tparams, **kw)
    views = [p.value.reshape(-1) for p in params]     # views must see every update
    for grads in grad_stream(1, 20):
        step_both(torch, opt, topt, params, tparams, grads)
    for v, p in zip(views, params):
        assert np.shares_memory(v, p.value)


@pytest.mark.parametrize("ours, theirs, kw", CASES, ids=IDS)
def test_float32_runs_and_tracks_float64(ours, theirs, kw):
    p32, p64 = make_params(0, np.float32), make_params(0)
    o32, o64 = ours(p32, **kw), ours(p64, **kw)
    for grads in grad_stream(1, 5):
        for a, b, g in zip(p32, p64, grads):
            a.grad[...] = g
            b.grad[...] = g
        o32.step()
        o64.step()
    for a, b in zip(p32, p64):
        assert a.value.dtype == np.float32 and np.isfinite(a.value).all()
        np.testing.assert_allclose(a.value, b.value, rtol=1e-4, atol=1e-4)


def test_lr_is_settable_and_used():
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    params = make_params(0)
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    opt, topt = Adam(params, lr=0.1), torch.optim.Adam(tparams, lr=0.1)
    for k, grads in enumerate(grad_stream(2, 6)):
        opt.lr = topt.param_groups[0]["lr"] = 0.1 / (k + 1)
        step_both(torch, opt, topt, params, tparams, grads)


def test_sgd_momentum_equals_notes_heavy_ball():
    """004 §3.4.4: v ← γv − εg, θ ← θ + v gives the same iterates as PyTorch's form."""
    p = Parameter(np.array([1.0, -2.0, 0.5]))
    opt = SGD([p], lr=0.1, momentum=0.9)
    theta, v = p.value.copy(), np.zeros(3)
    for grads in grad_stream(3, 10):
        g = grads[1][:3]
        p.grad[...] = g
        opt.step()
        v = 0.9 * v - 0.1 * g
        theta = theta + v
        np.testing.assert_allclose(p.value, theta, rtol=1e-12)


def test_zero_grad_and_grad_untouched():
    params = make_params(0)
    opt = SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1)
    for p in params:
        p.grad[...] = 1.0
    opt.step()
    assert all((p.grad == 1.0).all() for p in params)      # weight decay does not write grad
    opt.zero_grad()
    assert all((p.grad == 0).all() for p in params)


# ---- clip_grad_norm ---------------------------------------------------------------------------
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    params = make_params(0)
    tparams = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    for p, tp, g in zip(params, tparams, grad_stream(4, 1)[0]):
        p.grad[...] = g
        tp.grad = torch.tensor(g)
    total = clip_grad_norm(params, max_norm, norm_type)
    t_total = torch.nn.utils.clip_grad_norm_(tparams, max_norm, norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, t_total.item(), rtol=1e-12)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clip_grad_norm_float32_and_single_parameter():
    p = Parameter(np.ones(4, np.float32))
    p.grad[...] = 3.0
    assert clip_grad_norm(p, 1.0) == pytest.approx(6.0)
    assert p.grad.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(p.grad), 1.0, rtol=1e-5)


def test_clip_grad_norm_nonfinite():
    p = Parameter(np.ones(3))
    p.grad[0] = np.inf
    with pytest.raises(RuntimeError, match="norm"):
        clip_grad_norm([p], 1.0, error_if_nonfinite=True)


# ---- schedules ----------------------------------------------------------------------------------
SCHEDULES = [
    (StepLR, dict(step_size=3, gamma=0.5)),
    (StepLR, dict(step_size=1)),
    (ExponentialLR, dict(gamma=0.9)),
    (CosineAnnealingLR, dict(T_max=7)),
    (CosineAnnealingLR, dict(T_max=5, eta_min=0.01)),
]


@pytest.mark.parametrize("sched, kw", SCHEDULES, ids=[f"{s.__name__}-{kw}" for s, kw in SCHEDULES])
def test_schedule_matches_torch(sched, kw):
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    opt = SGD(make_params(0), lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s, ts = sched(opt, **kw), getattr(torch.optim.lr_scheduler, sched.__name__)(topt, **kw)
    assert s.get_last_lr() == ts.get_last_lr()
    for _ in range(25):               # past T_max: the cosine rises again, as torch's does
        s.step()
        topt.step()                   # (no gradients: only keeps torch from warning)
        ts.step()
        np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-12, atol=1e-17)
        assert opt.lr == s.get_last_lr()[0]


# ---- bad arguments ----------------------------------------------------------------------------
def _p():
    return [Parameter(np.zeros(2))]


BAD = [
    (lambda: SGD(_p(), lr=-0.1), ValueError, "lr"),
    (lambda: SGD([], lr=0.1), ValueError, "params"),
    (lambda: SGD([np.zeros(2)], lr=0.1), TypeError, r"params\[0\]"),
    (lambda: SGD(5, lr=0.1), TypeError, "params"),
    (lambda: SGD(_p() * 2, lr=0.1), ValueError, "params"),
    (lambda: SGD(_p(), lr=0.1, momentum=-1), ValueError, "momentum"),
    (lambda: SGD(_p(), lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda: SGD(_p(), lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
    (lambda: Adagrad(_p(), eps=-1), ValueError, "eps"),
    (lambda: Adagrad(_p(), lr_decay=-1), ValueError, "lr_decay"),
    (lambda: Adagrad(_p(), initial_accumulator_value=-1), ValueError, "initial_accumulator_value"),
    (lambda: RMSprop(_p(), alpha=-0.5), ValueError, "alpha"),
    (lambda: RMSprop(_p(), eps=-1e-8), ValueError, "eps"),
    (lambda: RMSprop(_p(), centered=1), TypeError, "centered"),
    (lambda: Adam(_p(), betas=(1.0, 0.999)), ValueError, r"betas\[0\]"),
    (lambda: Adam(_p(), betas=(0.9, -0.1)), ValueError, r"betas\[1\]"),
    (lambda: Adam(_p(), betas=0.9), TypeError, "betas"),
    (lambda: Adam(_p(), eps=-1.0), ValueError, "eps"),
    (lambda: Adam(_p(), lr=float("nan")), TypeError, "lr"),
    (lambda: AdamW(_p(), weight_decay=-0.1), ValueError, "weight_decay"),
    (lambda: AdamW(_p(), maximize=None), TypeError, "maximize"),
    (lambda: clip_grad_norm(_p(), -1.0), ValueError, "max_norm"),
    (lambda: clip_grad_norm(_p(), 1.0, norm_type=0), ValueError, "norm_type"),
    (lambda: clip_grad_norm([1.0], 1.0), TypeError, r"params\[0\]"),
    (lambda: StepLR(SGD(_p(), lr=0.1), step_size=0), ValueError, "step_size"),
    (lambda: ExponentialLR(SGD(_p(), lr=0.1), gamma=-1), ValueError, "gamma"),
    (lambda: CosineAnnealingLR(SGD(_p(), lr=0.1), T_max=0), ValueError, "T_max"),
    (lambda: CosineAnnealingLR(object(), T_max=3), TypeError, "optimizer"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}"):
        call()


def test_step_refuses_rebound_value_before_updating_anything():
    params = make_params(0)
    opt = SGD(params, lr=0.1)
    before = [p.value.copy() for p in params]
    for p in params:
        p.grad[...] = 1.0
    params[2].grad = np.zeros(3)                          # wrong shape
    with pytest.raises(ValueError, match=r"params\[2\]\.grad: expected .* shape \(2, 1, 3\)"):
        opt.step()
    assert all((p.value == b).all() for p, b in zip(params, before))
