"""engine.fit on token streams (issue 12, item 6): the recurrent state carried across batches with
its gradient cut, against a hand-written truncated-BPTT loop; seeding; refusals that change
nothing; and the options every path shares: a scheduler stepped per step, gradient clipping,
max_steps, time_budget and the validation curve."""
import numpy as np
import pytest

from engine.data.text import bptt_batches
from engine.losses import CrossEntropyLoss, MSELoss
from engine.optim import SGD, Adam, clip_grad_norm
from engine.schedules import CosineAnnealingLR, StepLR
from engine.train import TrainingDiverged, evaluate_stream, fit
from layers import Linear, Tanh
from engine import Sequential
from layers.language_models import RecurrentLM
from layers.recurrent import detach_state

V = 7


def ids(n=200, seed=0):
    """A token stream with structure to learn: mostly t -> t + 1 (mod V), some noise."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.choice([1, 1, 1, 2], size=n)) % V
    return x.astype(np.int64)


def model(mode="LSTM", seed=0, **kw):
    return RecurrentLM(V, 3, 5, mode=mode, rng=seed, **kw)


def manual_tbptt(m, opt, stream, epochs, clip=None, scheduler=None):
    """The loop fit must equal: state None at each epoch start, carried and detached."""
    loss = CrossEntropyLoss()
    for _ in range(epochs):
        state = None
        for x, y in stream:
            m.zero_grad()
            out, new = m.forward(x, state)
            loss.forward(out.reshape(-1, V), y.reshape(-1))
            m.backward(loss.backward().reshape(out.shape), None, input_grad=False)
            state = detach_state(new)
            if clip is not None:
                clip_grad_norm(m.parameters(), clip)
            opt.step()
            if scheduler is not None:
                scheduler.step()


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_stream_fit_equals_manual_truncated_bptt(mode):
    stream = bptt_batches(ids(), 3, 8)              # 66 steps per stream: 9 batches, the last of 2 steps
    a, b = model(mode), model(mode)
    h = fit(a, CrossEntropyLoss(), SGD(a.parameters(), lr=0.3), stream, epochs=2, progress=False)
    manual_tbptt(b, SGD(b.parameters(), lr=0.3), stream, epochs=2)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.value, q.value, err_msg=n)
    assert h.steps == 2 * len(stream) == 18 and len(h["loss"]) == 2 and h.stopped == "epochs"
    assert h["loss"][1] < h["loss"][0]
    assert a.pending_calls() == 0 and a.rnn.pending_calls() == 0


def test_carried_state_differs_from_restarting_each_batch():
    """The state is really carried: restarting every batch from zero gives other weights."""
    stream = bptt_batches(ids(), 3, 8)
    a, b = model(), model()
    fit(a, CrossEntropyLoss(), SGD(a.parameters(), lr=0.3), stream, epochs=1, progress=False)
    opt, loss = SGD(b.parameters(), lr=0.3), CrossEntropyLoss()
    for x, y in stream:
        b.zero_grad()
        out, _ = b.forward(x)
        loss.forward(out.reshape(-1, V), y.reshape(-1))
        b.backward(loss.backward().reshape(out.shape))
        opt.step()
    assert not np.array_equal(a.decoder.weight.value, b.decoder.weight.value)


def test_validation_loss_per_epoch_and_curve():
    train, valid = bptt_batches(ids(), 3, 8), bptt_batches(ids(90, seed=1), 2, 5)
    m = model()
    h = fit(m, CrossEntropyLoss(), Adam(m.parameters(), lr=0.05), train, epochs=2, validation_data=valid,
            val_every=4, metrics=["accuracy"], progress=False)
    assert len(h["val_loss"]) == len(h["val_accuracy"]) == 2
    assert h["curve_step"] == [4, 8, 12, 16, 18]                  # every 4 steps and the last
    assert np.all(np.diff(h["curve_seconds"]) >= 0) and h["curve_seconds"][-1] == h.train_seconds
    final, metrics = evaluate_stream(m, CrossEntropyLoss(), valid, ["accuracy"])
    assert h["val_loss"][-1] == final == h["curve_val_loss"][-1]
    assert h["val_accuracy"][-1] == metrics["accuracy"]
    assert h["val_loss"][-1] < np.log(V)                          # learned something


def test_same_seed_bit_identical_with_dropout():
    stream = bptt_batches(ids(), 3, 8)
    runs = []
    for seed in (5, 5, 6):
        m = model(num_layers=2, dropout=0.5)
        fit(m, CrossEntropyLoss(), Adam(m.parameters(), lr=0.01), stream, epochs=1, seed=seed, progress=False)
        runs.append(m.state_dict())
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])
    assert not all(np.array_equal(runs[0][k], runs[2][k]) for k in runs[0])


def test_scheduler_and_clipping_as_the_manual_loop():
    stream = bptt_batches(ids(), 3, 8)
    a, b = model(), model()
    oa, ob = Adam(a.parameters(), lr=0.05), Adam(b.parameters(), lr=0.05)
    sa, sb = CosineAnnealingLR(oa, T_max=18), CosineAnnealingLR(ob, T_max=18)
    norms = []
    fit(a, CrossEntropyLoss(), oa, stream, epochs=2, scheduler=sa, clip_grad_norm=0.05, progress=False,
        callbacks=[lambda info: norms.append(info["grad_norm"])])
    manual_tbptt(b, ob, stream, epochs=2, clip=0.05, scheduler=sb)
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(p.value, q.value, err_msg=n)
    assert sa.last_epoch == 18 and oa.lr == ob.lr < 1e-3           # stepped per optimizer step
    assert len(norms) == 18 and min(norms) > 0.05                  # every step was clipped


def test_scheduler_and_clipping_on_arrays():
    """The ordinary (X, y) path: one full batch per step, so the order of rows does not matter
    beyond rounding: StepLR per step and clipping as the manual loop."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 2))

    def net():
        return Sequential(Linear(3, 4, rng=1), Tanh(), Linear(4, 2, rng=2))
    a, b = net(), net()
    oa, ob = SGD(a.parameters(), lr=0.5), SGD(b.parameters(), lr=0.5)
    sa, sb = StepLR(oa, step_size=2, gamma=0.5), StepLR(ob, step_size=2, gamma=0.5)
    lrs = []
    fit(a, MSELoss(), oa, X, y, epochs=5, batch_size=16, scheduler=sa, clip_grad_norm=0.1, seed=0,
        progress=False, callbacks=[lambda info: lrs.append(info["lr"])])
    loss = MSELoss()
    for _ in range(5):
        b.zero_grad()
        loss.forward(b.forward(X), y)
        b.backward(loss.backward())
        clip_grad_norm(b.parameters(), 0.1)
        ob.step()
        sb.step()
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-12, atol=1e-14, err_msg=n)
    assert lrs == [0.5, 0.25, 0.25, 0.125, 0.125]


def test_max_steps_and_time_budget_stop_early():
    stream = bptt_batches(ids(), 3, 8)
    m = model()
    h = fit(m, CrossEntropyLoss(), Adam(m.parameters()), stream, epochs=None, max_steps=13, progress=False)
    assert h.steps == 13 and h.stopped == "max_steps" and len(h["loss"]) == 2    # 9 + 4 steps
    h = fit(m, CrossEntropyLoss(), Adam(m.parameters()), stream, epochs=3, time_budget=1e-9, progress=False)
    assert h.steps == 1 and h.stopped == "time_budget" and len(h["loss"]) == 1


def test_stream_divergence_names_epoch_and_step():
    stream = bptt_batches(ids(), 3, 8)
    m = model(mode="RNN", nonlinearity="relu")
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, step \d+"):
        fit(m, CrossEntropyLoss(), SGD(m.parameters(), lr=1e200), stream, epochs=3, progress=False)


def _snapshot(m, opt):
    return {k: v.copy() for k, v in m.state_dict().items()}, [p.grad.copy() for p in m.parameters()], \
        repr(opt.state_dict())


@pytest.mark.parametrize("kw, match", [
    (dict(y=np.zeros(3, np.int64)), "y: expected None"),
    (dict(batch_size=4), "batch_size: expected None"),
    (dict(X=bptt_batches(np.arange(40) % (V + 1), 2, 4)), r"X: the model refuses"),
    (dict(validation_data=(np.zeros((2, 3), np.int64), np.zeros((2, 3), np.int64))), "validation_data"),
    (dict(validation_data=bptt_batches(np.arange(40) % (V + 2), 2, 4)), "validation_data"),
    (dict(clip_grad_norm=0.0), "clip_grad_norm"), (dict(max_steps=0), "max_steps"),
    (dict(time_budget=-1.0), "time_budget"), (dict(val_every=3), "val_every"),
    (dict(epochs=None), "epochs"), (dict(scheduler="cosine"), "scheduler"),
    (dict(scheduler="other optimizer"), "scheduler: it schedules another optimizer"),
])
def test_bad_arguments_refused_before_anything_changes(kw, match):
    m = model(num_layers=2, dropout=0.3)
    opt = Adam(m.parameters(), lr=0.1)
    if kw.get("scheduler") == "other optimizer":
        kw = dict(scheduler=StepLR(SGD(m.parameters(), lr=0.1), 1))
    args = dict(X=bptt_batches(ids(), 3, 8), epochs=1, progress=False, seed=0)
    args.update(kw)
    opt_lr = opt.lr
    before = _snapshot(m, opt)
    gen = m.rnn.generator.bit_generator.state
    with pytest.raises((ValueError, TypeError), match=match):
        fit(m, CrossEntropyLoss(), opt, **args)
    after = _snapshot(m, opt)
    assert all(np.array_equal(before[0][k], after[0][k]) for k in before[0])
    assert all(np.array_equal(g0, g1) for g0, g1 in zip(before[1], after[1])) and before[2] == after[2]
    assert opt.lr == opt_lr and m.rnn.generator.bit_generator.state == gen and m.pending_calls() == 0


def test_a_stateless_model_is_refused_on_a_stream():
    m = Sequential(Linear(3, 2, rng=0))
    with pytest.raises(TypeError, match="X: the model refuses|model"):
        fit(m, CrossEntropyLoss(), SGD(m.parameters(), lr=0.1), bptt_batches(ids(), 3, 8), epochs=1,
            progress=False)
