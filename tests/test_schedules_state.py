"""Checkpoints (issue 12, item 6): optimizer and lr-schedule state_dict/load_state_dict.

A run stopped at a checkpoint (model + optimizer + schedule state dicts, pickled to a file),
restored into fresh objects and resumed ends bit-identical to the uninterrupted run, for every
optimizer; Adam's state dict has torch.optim's structure and values; bad dicts are refused by
name before anything is written."""
import copy
import pickle

import numpy as np
import pytest

from crosscheck import step_both

from engine import Parameter, Sequential
from engine.losses import CrossEntropyLoss
from engine.optim import SGD, Adagrad, Adam, AdamW, RMSprop, clip_grad_norm
from engine.schedules import CosineAnnealingLR, ExponentialLR, StepLR
from layers.activations import Tanh
from layers.dense import Linear

# every optimizer, with options that use every state array
RUNS = [
    (SGD, dict(lr=0.1), StepLR, dict(step_size=3, gamma=0.5)),
    (SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), CosineAnnealingLR,
     dict(T_max=5, eta_min=0.01)),
    (Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1), ExponentialLR,
     dict(gamma=0.9)),
    (RMSprop, dict(lr=0.01, momentum=0.5, centered=True), StepLR, dict(step_size=2)),
    (Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.01), CosineAnnealingLR, dict(T_max=4)),
    (AdamW, dict(lr=0.01, betas=(0.8, 0.99)), ExponentialLR, dict(gamma=0.95)),
]
RUN_IDS = [f"{o.__name__}-{s.__name__}-{i}" for i, (o, _, s, _) in enumerate(RUNS)]
STEPS, STOP = 12, 5


def model(seed):
    return Sequential(Linear(4, 6, rng=seed), Tanh(), Linear(6, 3, rng=seed + 1))


def batches():
    rng = np.random.default_rng(7)
    return [(rng.standard_normal((5, 4)), rng.integers(0, 3, 5)) for _ in range(STEPS)]


def train(net, opt, sched, data):
    loss = CrossEntropyLoss()
    for x, y in data:
        opt.zero_grad()
        loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        clip_grad_norm(net.parameters(), 1.0)
        opt.step()
        sched.step()


@pytest.mark.parametrize("ocls, okw, scls, skw", RUNS, ids=RUN_IDS)
def test_resumed_run_is_bit_identical(ocls, okw, scls, skw, tmp_path):
    data = batches()
    net = model(0)
    opt = ocls(net.parameters(), **okw)
    sched = scls(opt, **skw)
    train(net, opt, sched, data)
    whole = net.state_dict()

    net = model(0)
    opt = ocls(net.parameters(), **okw)
    sched = scls(opt, **skw)
    train(net, opt, sched, data[:STOP])
    path = tmp_path / "checkpoint.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": net.state_dict(), "optimizer": opt.state_dict(),
                     "scheduler": sched.state_dict()}, f)
    del net, opt, sched

    with open(path, "rb") as f:
        ck = pickle.load(f)
    net = model(100)                             # other weights, default hyper-parameters:
    opt = ocls(net.parameters())                 # the checkpoint restores them all
    sched = scls(opt, **skw)
    net.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    sched.load_state_dict(ck["scheduler"])
    assert opt.t == STOP and sched.last_epoch == STOP
    assert opt.lr == ck["optimizer"]["param_groups"][0]["lr"]
    train(net, opt, sched, data[STOP:])
    resumed = net.state_dict()
    assert whole.keys() == resumed.keys()
    for k in whole:
        assert np.array_equal(whole[k], resumed[k]), k


@pytest.mark.parametrize("ocls, okw, scls, skw", RUNS, ids=RUN_IDS)
def test_state_dict_is_a_copy_and_round_trips(ocls, okw, scls, skw):
    net = model(0)
    opt = ocls(net.parameters(), **okw)
    sched = scls(opt, **skw)
    train(net, opt, sched, batches()[:3])
    sd, ssd = opt.state_dict(), sched.state_dict()
    snap = copy.deepcopy(sd)
    for entry in sd["state"].values():            # mutating the dict does not reach the optimizer
        for k, v in entry.items():
            if isinstance(v, np.ndarray):
                v += 1.0
    sd2 = opt.state_dict()
    for i, entry in snap["state"].items():
        assert entry.keys() == sd2["state"][i].keys()
        for k, v in entry.items():
            assert np.array_equal(v, sd2["state"][i][k])
    other = ocls(model(3).parameters())
    other.load_state_dict(snap)
    assert _same(other.state_dict(), snap)
    other_s = scls(other, **skw)
    other_s.load_state_dict(ssd)
    assert other_s.state_dict() == ssd


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    return a == b


def test_state_keys_follow_the_options():
    p = [Parameter(np.zeros((2, 3)))]
    keys = lambda o: set(o.state_dict()["state"][0])   # noqa: E731
    assert keys(SGD(p, lr=0.1)) == {"step"}
    assert keys(SGD(p, lr=0.1, momentum=0.9)) == {"step", "momentum_buffer"}
    assert keys(Adagrad(p)) == {"step", "sum"}
    assert keys(RMSprop(p)) == {"step", "square_avg"}
    assert keys(RMSprop(p, centered=True, momentum=0.1)) == {"step", "square_avg", "grad_avg",
                                                             "momentum_buffer"}
    assert keys(Adam(p)) == {"step", "exp_avg", "exp_avg_sq"}
    assert keys(AdamW(p, amsgrad=True)) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    g = Adam(p, lr=0.5).state_dict()["param_groups"][0]
    assert g == dict(lr=0.5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                     maximize=False, decoupled_weight_decay=False, params=[0])


# ---- torch.optim's structure -------------------------------------------------------------------
def _np(sd):
    """A torch.optim state dict with its tensors as NumPy arrays."""
    import torch
    return {"state": {i: {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                      for i, s in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


def _torch(sd):
    import torch
    return {"state": {i: {k: torch.tensor(v) if isinstance(v, np.ndarray) else
                          torch.tensor(float(v)) for k, v in s.items()}
                      for i, s in sd["state"].items()},
            "param_groups": copy.deepcopy(sd["param_groups"])}


@pytest.mark.parametrize("cls, kw", [("Adam", dict(lr=0.01)),
                                     ("Adam", dict(lr=0.02, amsgrad=True, weight_decay=0.1)),
                                     ("AdamW", dict(lr=0.01, amsgrad=True))])
def test_adam_state_dict_matches_torch(cls, kw):
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,), (2, 1, 3)]
    tparams = [torch.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    topt = getattr(torch.optim, cls)(tparams, **kw)
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(8)]

    def tstep(g):
        for tp, gi in zip(tparams, g):
            tp.grad = torch.tensor(gi)
        topt.step()

    for g in grads[:3]:
        tstep(g)
    # torch's state copied in (default hyper-parameters here: the dict brings torch's)
    params = [Parameter(tp.detach().numpy().copy()) for tp in tparams]
    opt = {"Adam": Adam, "AdamW": AdamW}[cls](params)
    opt.load_state_dict(_np(topt.state_dict()))
    assert opt.t == 3
    for g in grads[3:]:
        tstep(g)
        for p, gi in zip(params, g):
            p.grad[...] = gi
        opt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.value, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
    ours, theirs = opt.state_dict(), _np(topt.state_dict())
    assert ours["state"].keys() == theirs["state"].keys()
    for i in ours["state"]:
        assert ours["state"][i].keys() == theirs["state"][i].keys()
        assert ours["state"][i]["step"] == theirs["state"][i]["step"] == 8
        for k, v in ours["state"][i].items():
            if k != "step":
                assert v.dtype == theirs["state"][i][k].dtype and v.shape == tparams[i].shape
                np.testing.assert_allclose(v, theirs["state"][i][k], rtol=1e-12, atol=1e-300)
    (g,), (tg,) = ours["param_groups"], theirs["param_groups"]
    assert set(g) <= set(tg)
    assert {k: tg[k] for k in g} == g
    # and back: ours loaded into a fresh torch optimizer steps as ours does
    t2 = [torch.tensor(p.value.copy(), requires_grad=True) for p in params]
    topt2 = getattr(torch.optim, cls)(t2)
    topt2.load_state_dict(_torch(ours))
    step_both(torch, opt, topt2, params, t2, grads[0])


TORCH_RUNS = [(o.__name__, kw) for o, kw, _, _ in RUNS] + [("SGD", dict(lr=0.1, momentum=0.9))]


@pytest.mark.parametrize("cls, kw", TORCH_RUNS,
                         ids=[f"{c}-{i}" for i, (c, _) in enumerate(TORCH_RUNS)])
def test_every_optimizer_continues_a_torch_run(cls, kw):
    """torch's state dict of every optimizer, loaded into a default-constructed one of ours, steps
    on as torch does; the state keys are torch's (SGD adds "step", which torch's SGD lacks)."""
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    import engine.optim as optim
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (5,)]
    tparams = [torch.tensor(rng.standard_normal(s), requires_grad=True) for s in shapes]
    topt = getattr(torch.optim, cls)(tparams, **kw)
    grads = [[rng.standard_normal(s) for s in shapes] for _ in range(7)]
    for g in grads[:3]:
        for tp, gi in zip(tparams, g):
            tp.grad = torch.tensor(gi)
        topt.step()
    params = [Parameter(tp.detach().numpy().copy()) for tp in tparams]
    opt = getattr(optim, cls)(params)
    opt.load_state_dict(_np(topt.state_dict()))
    for g in grads[3:]:
        step_both(torch, opt, topt, params, tparams, g)
    ours, theirs = opt.state_dict(), _np(topt.state_dict())
    for i, entry in theirs["state"].items():
        assert set(ours["state"][i]) - set(entry) <= {"step"}
        assert set(entry) <= set(ours["state"][i])
        for k, v in entry.items():
            np.testing.assert_allclose(ours["state"][i][k], v, rtol=1e-12, atol=1e-300)
    (g,), (tg,) = ours["param_groups"], theirs["param_groups"]
    assert set(g) <= set(tg) and {k: tg[k] for k in g} == g


def test_fresh_torch_state_means_step_zero():
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    p = Parameter(np.ones(3))
    opt = Adam([p], lr=0.1)
    p.grad[...] = 1.0
    opt.step()
    opt.load_state_dict(_np(torch.optim.Adam([torch.zeros(3, dtype=torch.float64)],
                                             lr=0.3).state_dict()))
    assert opt.t == 0 and opt.lr == 0.3
    assert all((a == 0).all() for a in opt.state[0])


# ---- bad dicts: named, and nothing written -----------------------------------------------------
def _adam_dict():
    params = [Parameter(np.ones((2, 3))), Parameter(np.ones(4))]
    opt = Adam(params, lr=0.1, amsgrad=True)
    for p in params:
        p.grad[...] = 0.5
    opt.step()
    return opt.state_dict()


def _spoil(f):
    def make():
        sd = _adam_dict()
        f(sd)
        return sd
    return make


def _set(path, value):
    def f(sd):
        d = sd
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
    return f


def _delete(path):
    def f(sd):
        d = sd
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
    return f


BAD_OPT = [
    (lambda: [1], TypeError, r"state_dict: expected a dict"),
    (_spoil(_delete(["state"])), ValueError, r"state_dict: expected the keys"),
    (_spoil(_set(["param_groups"], [])), ValueError, r"state_dict\['param_groups'\]"),
    (_spoil(_set(["param_groups", 0, "params"], [0])), ValueError,
     r"\['params'\]: .* 2 parameters"),
    (_spoil(_set(["param_groups", 0, "lr"], -1.0)), ValueError, r"\['param_groups'\]\[0\]: lr"),
    (_spoil(_set(["param_groups", 0, "betas"], (1.5, 0.9))), ValueError, r"betas\[0\]"),
    (_spoil(_set(["param_groups", 0, "amsgrad"], "yes")), TypeError, "amsgrad"),
    (_spoil(_set(["param_groups", 0, "momentum"], 0.9)), ValueError, "unexpected keys"),
    (_spoil(_delete(["param_groups", 0, "eps"])), ValueError, r"missing keys \['eps'\]"),
    (_spoil(_set(["param_groups", 0, "decoupled_weight_decay"], True)), ValueError,
     "decoupled_weight_decay"),
    (_spoil(_set(["param_groups", 0, "amsgrad"], False)), ValueError,
     r"\['state'\]\[0\]: expected the keys"),
    (_spoil(_delete(["state", 1])), ValueError, r"\['state'\]: expected the keys 0..1"),
    (_spoil(_set(["state", 0], None)), TypeError, r"\['state'\]\[0\]: expected a dict"),
    (_spoil(_delete(["state", 1, "exp_avg"])), ValueError, r"\['state'\]\[1\]: expected the keys"),
    (_spoil(_set(["state", 1, "exp_avg"], np.ones(5))), ValueError,
     r"\['exp_avg'\]: expected shape \(4,\)"),
    (_spoil(_set(["state", 1, "exp_avg"], np.ones(4, np.float32))), TypeError,
     r"\['exp_avg'\]: expected dtype float64"),
    (_spoil(_set(["state", 1, "exp_avg"], [1.0] * 4)), TypeError,
     r"\['exp_avg'\]: expected a numpy"),
    (_spoil(_set(["state", 0, "exp_avg"], np.full((2, 3), np.nan))), ValueError,
     r"\['exp_avg'\]: expected finite"),
    (_spoil(_set(["state", 0, "exp_avg_sq"], np.full((2, 3), -1.0))), ValueError,
     r"\['exp_avg_sq'\]: expected values >= 0"),
    (_spoil(_set(["state", 1, "step"], 2)), ValueError, r"\[1\]\['step'\]: expected the same step"),
    (_spoil(_set(["state", 0, "step"], -1)), ValueError, r"\[0\]\['step'\]"),
    (_spoil(_set(["state", 0, "step"], 1.5)), ValueError, r"\[0\]\['step'\]"),
    (_spoil(_set(["state", 0, "step"], "1")), TypeError, r"\[0\]\['step'\]"),
]


@pytest.mark.parametrize("make, exc, msg", BAD_OPT, ids=[str(i) for i in range(len(BAD_OPT))])
def test_optimizer_load_refuses_bad_dicts_and_writes_nothing(make, exc, msg):
    params = [Parameter(np.ones((2, 3))), Parameter(np.ones(4))]
    opt = Adam(params, lr=0.1, amsgrad=True)
    for p in params:
        p.grad[...] = 0.25
    opt.step()
    opt.step()
    before = copy.deepcopy(opt.state_dict())
    with pytest.raises(exc, match=msg):
        opt.load_state_dict(make())
    assert _same(opt.state_dict(), before)


def _sched():
    opt = SGD([Parameter(np.zeros(2))], lr=0.1)
    s = StepLR(opt, step_size=2, gamma=0.5)
    s.step()
    return s


def _with(**kw):
    return lambda sd: {**sd, **kw}


BAD_SCHED = [
    (lambda sd: None, TypeError, "state_dict: expected a dict"),
    (lambda sd: {k: v for k, v in sd.items() if k != "gamma"}, ValueError,
     r"missing keys \['gamma'\]"),
    (_with(T_max=3), ValueError, r"unexpected keys \['T_max'\]"),
    (_with(last_epoch=-1), ValueError, r"state_dict\['last_epoch'\]"),
    (_with(last_epoch=1.0), TypeError, r"state_dict\['last_epoch'\]"),
    (_with(base_lrs=[0.1, 0.2]), ValueError, r"state_dict\['base_lrs'\]"),
    (_with(_last_lr=[float("nan")]), TypeError, r"state_dict\['_last_lr'\]\[0\]"),
    (_with(step_size=0), ValueError, "state_dict: step_size"),
    (_with(gamma=-0.5), ValueError, "state_dict: gamma"),
]


@pytest.mark.parametrize("spoil, exc, msg", BAD_SCHED, ids=[str(i) for i in range(len(BAD_SCHED))])
def test_schedule_load_refuses_bad_dicts_and_writes_nothing(spoil, exc, msg):
    s = _sched()
    before = s.state_dict()
    with pytest.raises(exc, match=msg):
        s.load_state_dict(spoil(s.state_dict()))
    assert s.state_dict() == before and s.optimizer.lr == 0.1


@pytest.mark.parametrize("ocls, okw, scls, skw", RUNS, ids=RUN_IDS)
def test_float32_parameters_resume_bit_identical(ocls, okw, scls, skw):
    """Optimizer + schedule alone, float32 parameters: the state arrays keep float32 through the
    dict, and the resumed steps equal the uninterrupted ones bit for bit."""
    rng = np.random.default_rng(3)
    shapes = [(3, 4), (5,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in shapes] for _ in range(9)]

    def run(params, opt, sched, gs):
        for g in gs:
            for p, gi in zip(params, g):
                p.grad[...] = gi
            opt.step()
            sched.step()

    a = [Parameter(v.copy()) for v in init]
    oa = ocls(a, **okw)
    run(a, oa, scls(oa, **skw), grads)
    b = [Parameter(v.copy()) for v in init]
    ob = ocls(b, **okw)
    sb = scls(ob, **skw)
    run(b, ob, sb, grads[:4])
    sd, ssd = pickle.loads(pickle.dumps((ob.state_dict(), sb.state_dict())))
    assert all(v.dtype == np.float32 for e in sd["state"].values() for v in e.values()
               if isinstance(v, np.ndarray))
    c = [Parameter(p.value.copy()) for p in b]
    oc = ocls(c)
    sc = scls(oc, **skw)
    oc.load_state_dict(sd)
    sc.load_state_dict(ssd)
    run(c, oc, sc, grads[4:])
    for p, q in zip(a, c):
        assert q.value.dtype == np.float32 and np.array_equal(p.value, q.value)


@pytest.mark.parametrize("scls, skw", [(s, kw) for _, _, s, kw in RUNS[:4]],
                         ids=[s.__name__ for _, _, s, _ in RUNS[:4]])
def test_schedule_state_dict_values_are_torchs(scls, skw):
    torch = pytest.importorskip("torch", reason="PyTorch cross-checks need torch")
    opt = SGD([Parameter(np.zeros(2))], lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    s, ts = scls(opt, **skw), getattr(torch.optim.lr_scheduler, scls.__name__)(topt, **skw)
    for _ in range(7):
        s.step()
        topt.step()
        ts.step()
    ours, theirs = s.state_dict(), ts.state_dict()
    assert set(ours) <= set(theirs)
    for k, v in ours.items():
        np.testing.assert_allclose(v, theirs[k], rtol=1e-12, atol=0, err_msg=k)
