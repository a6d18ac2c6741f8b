"""engine.fit: history, determinism, divergence, validation, callbacks, progress; train_digits."""
import numpy as np
import pytest

from engine import Sequential, fit, is_grad_enabled, no_grad
from engine.data import xor
from engine.losses import CrossEntropyLoss, MSELoss
from engine.optim import SGD, Adam
from engine.train import TrainingDiverged, evaluate, predict
from layers import MLP, Linear, Tanh


def small_problem(seed=0):
    X, y = xor(n=128, noise=0.1, seed=seed)
    return X, y, MLP([2, 16, 2], activation="tanh", rng=seed)


def test_history_has_per_epoch_loss_and_metrics():
    X, y, m = small_problem()
    h = fit(m, CrossEntropyLoss(), Adam(m.parameters(), lr=0.05), X, y, epochs=5, batch_size=32,
            validation_data=(X, y), metrics=["accuracy"], seed=0, progress=False)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(h[key]) == 5
    assert h["loss"][-1] < h["loss"][0]
    assert h["val_accuracy"][-1] > 0.9


def test_same_seed_bit_identical_and_other_seed_differs():
    runs = []
    for seed in (3, 3, 4):
        X, y, m = small_problem()
        fit(m, CrossEntropyLoss(), SGD(m.parameters(), lr=0.1, momentum=0.9), X, y, epochs=3,
            batch_size=10, seed=seed, progress=False)
        runs.append(m.theta.copy())
    assert np.array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])


def test_every_sample_seen_once_per_epoch():
    X = np.arange(10, dtype=np.float64).reshape(10, 1)
    y = np.zeros((10, 1))
    seen = []

    class Spy(Linear):
        def forward(self, x, train=True):
            if train and is_grad_enabled():        # not fit's argument probes (under no_grad)
                seen.extend(x[:, 0].tolist())
            return super().forward(x, train)

    m = Spy(1, 1)
    fit(m, MSELoss(), SGD(m.parameters(), lr=0.0), X, y, epochs=2, batch_size=3, seed=1, progress=False)
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    assert seen[:10] != seen[10:]          # reshuffled each epoch


def test_divergence_stops_with_epoch_and_step():
    X, y, _ = small_problem()
    Y = np.eye(2)[y] * 1e3
    m = Sequential(Linear(2, 2, rng=0))
    with pytest.raises(TrainingDiverged, match=r"epoch \d+, step \d+"):
        fit(m, MSELoss(), SGD(m.parameters(), lr=10.0), X, Y, epochs=50, batch_size=16, seed=0, progress=False)


def test_nan_output_is_reported_as_divergence():
    X, y, m = small_problem()
    m.theta[0] = np.nan
    with pytest.raises(TrainingDiverged, match="epoch 1, step 1: the model's output"):
        fit(m, CrossEntropyLoss(), SGD(m.parameters(), lr=0.1), X, y, epochs=1, batch_size=16, progress=False)


def test_callbacks_see_gradients_after_each_step():
    X, y, m = small_problem()
    calls = []
    cb = lambda info: calls.append((info["epoch"], info["step"], float(np.abs(info["model"].preactivation_grads[0]).sum())))
    fit(m, CrossEntropyLoss(), Adam(m.parameters()), X, y, epochs=2, batch_size=64, seed=0,
        progress=False, callbacks=[cb])
    assert [(e, s) for e, s, _ in calls] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(g > 0 for _, _, g in calls)


def test_progress_bar_only_when_asked(capsys, monkeypatch):
    X, y, m = small_problem()
    monkeypatch.setenv("CI", "true")
    fit(m, CrossEntropyLoss(), Adam(m.parameters()), X, y, epochs=1, batch_size=64, seed=0, progress="auto")
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""
    fit(m, CrossEntropyLoss(), Adam(m.parameters()), X, y, epochs=1, batch_size=64, seed=0, progress=True)
    shown = capsys.readouterr()
    assert "epoch 1/1" in shown.out + shown.err and "2/2" in shown.err     # an epoch line and the bar


def test_predict_and_evaluate_use_eval_mode_in_batches():
    X, y, m = small_problem()
    with no_grad():
        full = m.forward(X, train=False)
    assert np.allclose(predict(m, X, batch_size=7), full)
    loss, metrics = evaluate(m, CrossEntropyLoss(), X, y, metrics=["accuracy"])
    assert np.isfinite(loss) and 0 <= metrics["accuracy"] <= 1
    assert m.pending_calls() == 0                             # evaluation records nothing for a backward


def test_fit_leaves_no_saved_calls_and_ignores_a_stray_forward():
    """A forward whose backward never came (an evaluation pass in train mode) before fit neither
    stays saved nor misaligns fit's backwards: the run is bit-identical to one without it."""
    runs = []
    for stray in (False, True):
        X, y, _ = small_problem()
        m = Sequential(Linear(2, 8, rng=0), Tanh(), Linear(8, 2, rng=1))
        if stray:
            m.forward(X[:5])
            assert m[0].pending_calls() == 1
        fit(m, CrossEntropyLoss(), SGD(m.parameters(), lr=0.1), X, y, epochs=2, batch_size=32, seed=0,
            validation_data=(X, y), progress=False)
        assert all(layer.pending_calls() == 0 for layer in m)
        runs.append(np.concatenate([p.value.ravel() for p in m.parameters()]))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_fit_updates_a_tied_parameter_once_per_step():
    """Two Linear layers sharing one weight: the optimizer sees it once, and fit's result equals
    a hand-written loop of zero_grad, forward, backward, step."""
    def tied():
        l1, l2 = Linear(2, 2, rng=0), Linear(2, 2, rng=1)
        l2.weight = l1.weight
        return Sequential(l1, Tanh(), l2)

    X, y, _ = small_problem()
    m = tied()
    assert len(m.parameters()) == 3
    fit(m, CrossEntropyLoss(), SGD(m.parameters(), lr=0.1), X, y, epochs=1, batch_size=len(X), seed=0,
        progress=False)
    ref = tied()
    opt, loss = SGD(ref.parameters(), lr=0.1), CrossEntropyLoss()
    ref.zero_grad()
    loss.forward(ref.forward(X), y)
    ref.backward(loss.backward())
    opt.step()
    for (n, p), (_, q) in zip(m.named_parameters(), ref.named_parameters()):
        np.testing.assert_allclose(p.value, q.value, rtol=1e-13, atol=1e-15, err_msg=n)


@pytest.mark.parametrize("kw, match", [
    (dict(epochs=0), "epochs"), (dict(batch_size=0), "batch_size"), (dict(metrics=["f1"]), "metrics"),
    (dict(validation_data=[1]), "validation_data"), (dict(y=np.zeros(3, np.int64)), "y"),
])
def test_bad_arguments(kw, match):
    X, y, m = small_problem()
    args = dict(model=m, loss=CrossEntropyLoss(), optimizer=SGD(m.parameters(), lr=0.1), X=X, y=y,
                epochs=1, batch_size=8, progress=False)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        fit(**args)


def test_bad_model_loss_optimizer():
    X, y, m = small_problem()
    with pytest.raises(TypeError, match="model"):
        fit(object(), CrossEntropyLoss(), SGD(m.parameters(), lr=0.1), X, y, 1, 8)
    with pytest.raises(TypeError, match="loss"):
        fit(m, object(), SGD(m.parameters(), lr=0.1), X, y, 1, 8)
    with pytest.raises(TypeError, match="optimizer"):
        fit(m, CrossEntropyLoss(), object(), X, y, 1, 8)


def test_sequential_trains_too():
    X, y, _ = small_problem()
    m = Sequential(Linear(2, 16, rng=0), Tanh(), Linear(16, 2, rng=1))
    h = fit(m, CrossEntropyLoss(), Adam(m.parameters(), lr=0.05), X, y, epochs=20, batch_size=32,
            metrics=["accuracy"], seed=0, progress=False)
    assert h["accuracy"][-1] > 0.9


def test_train_digits_reaches_97_percent():
    import train_digits
    _, _, acc, seconds = train_digits.train(progress=False)
    assert acc >= 0.97


def test_fit_trains_a_model_of_several_inputs():
    """X as a tuple feeds forward(*X): a Bilinear layer learns y = x1[0]·x2[0]."""
    from engine.losses import MSELoss
    from layers import Bilinear
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((64, 3)), rng.standard_normal((64, 2))
    y = x1[:, :1] * x2[:, :1]
    m = Bilinear(3, 2, 1, rng=0)
    h = fit(m, MSELoss(), Adam(m.parameters(), lr=0.05), (x1, x2), y, epochs=30, batch_size=16, seed=0,
            validation_data=((x1, x2), y), progress=False)
    assert h["loss"][-1] < 1e-3 * h["loss"][0] and h["val_loss"][-1] < 1e-3
    with pytest.raises(ValueError, match=r"X\[1\]: expected 64 rows like X\[0\], got 10"):
        fit(m, MSELoss(), Adam(m.parameters()), (x1, x2[:10]), y, epochs=1, batch_size=16, progress=False)


def test_probe_checks_every_target_in_small_chunks(monkeypatch):
    # fit's argument probe hands the loss a zero prediction of at most PROBE_VALUES values at a
    # time (not one of the whole training output: 522 MB for a GPT run), yet every target row,
    # once, in order: a bad label in the last chunk is still refused before the first step.
    import engine.train as T
    monkeypatch.setattr(T, "PROBE_VALUES", 7)           # 3 classes: 2 rows per chunk
    rng = np.random.default_rng(0)
    X = rng.standard_normal((9, 4))
    y = rng.integers(0, 3, 9)
    calls = []

    class Spy(CrossEntropyLoss):
        def forward(self, pred, target):
            calls.append((pred.shape, np.all(pred == 0), target.copy()))
            return super().forward(pred, target)

    m = Linear(4, 3)
    before = {k: v.copy() for k, v in m.state_dict().items()}
    loss = Spy()
    fit(m, loss, SGD(m.parameters(), lr=0.0), X, y, epochs=1, batch_size=9, progress=False, max_steps=1)
    probe, step = calls[:5], calls[5:]                  # then the one training step, on all 9 rows
    assert [c[0] for c in probe] == [(2, 3)] * 4 + [(1, 3)] and all(c[1] for c in probe)
    np.testing.assert_array_equal(np.concatenate([c[2] for c in probe]), y)
    assert [c[0] for c in step] == [(9, 3)]
    bad = y.copy()
    bad[8] = 3
    with pytest.raises(ValueError, match="^y: the loss refuses it"):
        fit(m, Spy(), SGD(m.parameters(), lr=0.1), X, bad, epochs=1, batch_size=4, progress=False)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
