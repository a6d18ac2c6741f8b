"""Figures of the recurrent group (FIGURES.md "Embeddings and sequences"): rnn-sensitivity,
lstm-gates, rnn-types. Each test runs the figure in quick mode and checks the catalogue's "checks"
column on the numbers behind it."""
import numpy as np
import pytest

import figures.recurrent as rec
from figtests import figure_data as run


def test_rnn_sensitivity_slope_is_log_rho():
    d = run("rnn-sensitivity")
    for rho in rec.RHOS:
        k = rec._key(rho)
        assert d[f"slope_{k}"] == pytest.approx(np.log(rho), abs=1e-4)      # 004 §5.1.3, W = ρQ
        assert d[f"rnn_{k}"][-1] == pytest.approx(1.0)                     # relative to t = T
        assert np.all(np.isfinite(d[f"rnn_{k}"])) and np.all(d[f"rnn_{k}"] > 0)
    assert d["max_slope_error"] < 1e-4
    assert list(d["lag"]) == list(range(d["T"] - 1, -1, -1))
    # unit-scale inputs: saturation makes the ρ = 1 RNN forget; an LSTM with open forget gates does not
    assert d["slope_rnn_q_unit"] < -0.05
    assert d["slope_lstm_forget3"] > -0.05 > d["slope_lstm_default"]
    assert d["slope_lstm_forget3"] > d["slope_rnn_default"] + 0.3
    assert d["mean_forget_lstm_forget3"] > 0.9 > 0.6 > d["mean_forget_lstm_default"] > 0.4


def test_lstm_gates_in_open_unit_interval_and_from_the_trained_layer():
    d = run("lstm-gates")
    for k in ("forget", "input", "output"):
        g = d[k]
        assert g.shape == (d["H"], len(d["line"]))
        assert np.all((g > 0) & (g < 1))
    assert 0 < d["gate_min"] and d["gate_max"] < 1 and d["gate_gap"] == pytest.approx(1 - d["gate_max"])
    assert d["h_error"] < 1e-12              # recomputed h_t equal the layer's outputs
    losses = d["train_loss"]
    assert losses.shape == (d["steps"],) and losses[-5:].mean() < losses[:5].mean()
    assert d["val_loss"] < d["unigram_entropy"]
    assert "$" not in d["line"] and sorted(d["order"]) == list(range(d["H"]))


def test_rnn_types_each_above_chance():
    d = run("rnn-types")
    for wiring in rec.TASKS:
        key = wiring.replace("-", "_")
        r = d["results"][wiring]
        assert d[f"acc_{key}"] > d[f"chance_{key}"] + 0.05, wiring
        per = d[f"per_step_{key}"]
        assert np.nanmax(per) > 0.6
    assert len(d["per_step_many_to_one"]) == 1
    assert np.isnan(d["per_step_many_to_many"][:2]).all()            # no target before step 3
    assert d["per_step_one_to_many"][0] > 0.9                         # the first bit is a threshold


def test_tasks_are_what_the_captions_say():
    rng = np.random.default_rng(0)
    x, y = rec.make_task("one-to-many", 50, rng)
    a = (x[:, 0, 0] + 1) / 2
    np.testing.assert_array_equal(x[:, 1:], 0)
    assert np.allclose((y * 2.0 ** -np.arange(1, 7)).sum(axis=1), a, atol=2 ** -6)
    x, y = rec.make_task("many-to-one", 50, rng)
    np.testing.assert_array_equal(y, x.sum(axis=(1, 2)) > 0)
    x, y = rec.make_task("many-to-many", 50, rng)
    np.testing.assert_array_equal(y[:, 2:], (x[:, :-2, 0] > 0))
    assert np.all(y[:, :2] == rec.IGNORE)


def test_seqnet_backward_matches_finite_differences():
    """The figure's model wrapper (GRU + Linear, both wirings of its readout) passes gradients right."""
    from engine.gradcheck import gradcheck
    rng = np.random.default_rng(1)
    for wiring in ("many-to-one", "many-to-many"):
        net = rec.SeqNet(wiring, 1, 3, 2, rng=0)
        report = gradcheck(net, rng.normal(size=(2, 4, 1)), seed=2)
        assert report.passed(1e-6), f"{wiring}: {report}"
