"""Figures of the analysis group: regions, signal propagation, gradient norms, curse, double descent.
Each test runs the figure in quick mode and checks FIGURES.md's "checks" column on its data."""
import numpy as np
import pytest

import figures.curse  # noqa: F401  (registers)
import figures.double_descent  # noqa: F401
import figures.regions  # noqa: F401
import figures.signal  # noqa: F401
from analysis import bounds
from figtests import figure_data as run


def test_shallow_2d_regions_has_7():
    d = run("shallow-2d-regions")
    assert d["n_regions"] == 7 == d["bound"] == d["n_linear_regions"]


def test_regions_vs_width_within_bound_and_1d_reaches_D_plus_1():
    d = run("regions-vs-width")
    for D_i in (1, 2):
        assert np.all(d[f"generic_{D_i}d"] <= d[f"bound_{D_i}d"])
        assert np.all(d[f"default_{D_i}d"] <= d[f"bound_{D_i}d"])
    assert np.all(d["generic_1d"] == d["widths"] + 1)
    assert np.all(d["generic_2d"] == d["bound_2d"])
    assert d["pictured"][0] == d["pictured"][1]


def test_composition_product_rule():
    d = run("composition-folding")
    assert (d["n1"], d["n2"], d["n_comp"]) == (3, 3, 9)
    assert d["n_comp"] == d["n1"] * d["n2"]
    assert d["composition_error"] < 1e-12


def test_deep_vs_shallow_within_bounds_and_tent():
    d = run("deep-vs-shallow-regions")
    for r in d["rows"]:
        assert r["max_2d"] <= r["serra_2d"] <= r["two_h"]
        assert r["max_1d"] <= r["serra_1d"]
        if r["kind"] == "shallow":
            assert r["max_2d"] <= r["zaslavsky"]
    for L, params, n in d["tent"]:
        assert n == 2 ** L
    assert set(d["pictured"]) == {"shallow", "deep", "folded"}


def test_constructed_deep_net_beats_shallow_at_equal_parameters():
    """The figure's message: a deep net built by folding reaches Montúfar et al.'s attainable
    count 4^(L-1)·11 exactly, which from 3 layers on exceeds the most any shallow net with as many
    parameters can have, and exceeds what random nets of either kind reach."""
    d = run("deep-vs-shallow-regions")
    for f in d["folded"]:
        assert f["count_2d"] == f["activation_regions"] == f["montufar"] == 4 ** (f["L"] - 1) * 11
        assert f["montufar"] <= f["serra_2d"]
        assert f["shallow_params"] <= f["params"] == 20 * f["L"] - 3
        if f["L"] >= 3:
            assert f["count_2d"] > f["shallow_max"]
        random_same = [r for r in d["rows"] if r["params"] <= f["params"]]
        assert f["count_2d"] >= max(r["max_2d"] for r in random_same)
    assert d["pic_folded"] > bounds.zaslavsky(2, (d["pic_params"] - 1) // 4) >= d["pic_shallow"]


def test_curse_mode():
    d = run("curse-of-dimensionality")
    for D, m, nm, hp in zip(d["dims"], d["modes"], d["numeric_modes"], d["histogram_peaks"]):
        assert m == pytest.approx(d["sigma"] * np.sqrt(D - 1))
        assert abs(nm - m) < 0.01
        assert abs(hp - m) < 0.5


def test_init_variance_he_flat_xavier_halves():
    d = run("init-variance")
    for act in ("relu", "tanh"):
        for init in ("normal", "small", "xavier", "he"):
            m, p, sem = (d[f"{act}_{init}_{k}"] for k in ("measured", "predicted", "sem"))
            # within sampling error (4 seeds in quick mode: sem itself is rough, hence the 10 % floor)
            assert np.all(np.abs(m - p) <= 5 * sem + 0.1 * p)
    assert d["xavier_relu_ratio"] == pytest.approx(0.5, abs=0.05)
    np.testing.assert_allclose(d["relu_he_predicted"], d["relu_he_predicted"][0])
    np.testing.assert_allclose(d["relu_xavier_predicted"][1:] / d["relu_xavier_predicted"][:-1], 0.5)
    # the zoomed panel's message: on the ratio Var f_k / Var f_0, He + ReLU stays within a factor
    # 2^±0.5 of 1 at every layer while Xavier + ReLU ends near 2^-depth
    he, xa = d["relu_he_ratio"], d["relu_xavier_ratio"]
    assert he[0] == xa[0] == 1.0
    assert np.all(np.abs(np.log2(he)) < 0.5)
    assert abs(np.log2(xa[-1]) + d["depth"]) < 1.0
    assert d["xavier_relu_last"] == xa[-1]


def test_activation_histograms_data():
    d = run("activation-histograms")
    assert np.all(np.diff(d["standard_std"]) < 0)           # shrinks layer after layer
    assert d["normalized_last"] > 3 * d["standard_last"]


def test_vanishing_gradients_sigmoid_exponential():
    d = run("vanishing-gradients-depth")
    s = d["sigmoid_default"]
    logs = np.log(s[:-1])
    fit = np.polyfit(np.arange(len(logs)), logs, 1)
    assert fit[0] > 0.5                                     # exponential decay toward the input
    assert np.corrcoef(np.arange(len(logs)), logs)[0, 1] > 0.99
    assert d["sigmoid_rate"] < 0.6


def test_gradient_norms_training_shapes():
    d = run("gradient-norms-training")
    for act in ("sigmoid", "relu"):
        w = d[f"{act}_weight_norms"]
        assert w.shape[1] == 7 and w.shape[0] == len(d[f"{act}_steps"])
        assert np.isfinite(w).all()


def test_double_descent_peak_near_threshold():
    d = run("double-descent")
    assert 0.7 * d["n_train"] <= d["peak_P"] <= 1.4 * d["n_train"]
