"""The foundation figures: each figure's "checks" column of FIGURES.md, tested on the
data its function returns (quick mode where that keeps the check meaningful)."""

import numpy as np
import pytest

from figures.registry import REGISTRY, load_all
from figtests import figure_data

FOUNDATION_IDS = [
    "linreg-fit", "linreg-loss-surface", "activations", "shallow-family", "shallow-flow",
    "shallow-multi-output", "polar-coordinates", "universal-approximation", "perceptron-2d",
    "random-mlp-2d", "losses", "softmax-temperature", "gd-learning-rates", "gabor-landscape",
    "saddle-point", "optimizers", "batch-size-variance", "backprop-toy", "zero-init-symmetry",
    "autoencoder-pca", "autoencoder-binary",
]


def test_all_foundation_figures_registered():
    load_all()
    missing = [fid for fid in FOUNDATION_IDS if fid not in REGISTRY]
    assert not missing


# ---- linear models ------------------------------------------------------------------------
def test_linreg_fit_closed_form_and_gd():
    d = figure_data("linreg-fit")
    x, y = d["x"][:, 0], d["y"][:, 0]
    X = np.column_stack([np.ones_like(x), x])
    ref = np.linalg.lstsq(X, y, rcond=None)[0]           # independent least-squares solver
    assert d["phi0"] == pytest.approx(ref[0], abs=1e-12)
    assert d["phi1"] == pytest.approx(ref[1], abs=1e-12)
    assert d["gd_phi0"] == pytest.approx(ref[0], abs=1e-6)   # GD converges to it
    assert d["gd_phi1"] == pytest.approx(ref[1], abs=1e-6)
    assert np.all(np.diff(d["gd_losses"]) <= 1e-15)          # and never goes up


def test_linreg_loss_surface_gradient_orthogonal_to_level_lines():
    d = figure_data("linreg-loss-surface")
    assert d["max_abs_cos"] < 1e-8
    i, j = np.unravel_index(np.argmin(d["loss"]), d["loss"].shape)
    step = d["phi0s"][1] - d["phi0s"][0]
    assert abs(d["phi0s"][j] - d["phi0"]) <= step and abs(d["phi1s"][i] - d["phi1"]) <= step
    assert d["gd_losses"][-1] < d["gd_losses"][0]


def test_activations_backward_equals_finite_differences():
    d = figure_data("activations")
    assert len(d["curves"]) == 8
    for name, err in d["fd_errors"].items():
        assert err < 1e-6, name
    _, dheav, _ = d["curves"]["Heaviside"]
    assert np.all(dheav == 0)
    z = d["z"]
    v, dv, _ = d["curves"]["ReLU"]
    np.testing.assert_array_equal(v, np.maximum(z, 0))


def test_polar_coordinates_accuracies():
    d = figure_data("polar-coordinates")
    assert d["acc_cartesian"] < 0.8
    assert d["acc_polar"] > 0.97


def test_perceptron_boundary_is_a_line():
    d = figure_data("perceptron-2d")
    assert set(np.unique(d["Z"])) == {0.0, 1.0}
    assert len(d["boundary_points"]) > 10
    assert d["line_residual"] < d["step"]


def test_random_mlp_2d_output_is_a_probability_map():
    d = figure_data("random-mlp-2d")
    assert np.all((d["z"] > 0) & (d["z"] < 1))
    assert d["out_max"] - d["out_min"] > 0.3


# ---- shallow networks ---------------------------------------------------------------------
def test_shallow_family_at_most_four_pieces():
    from figures.shallow import kink_positions
    d = figure_data("shallow-family")
    for y, pieces, curv in zip(d["ys"], d["pieces"], d["max_curvature_in_pieces"]):
        assert 1 <= pieces <= 4
        assert curv < 1e-12                                   # affine inside each piece
        assert len(kink_positions(d["x"], y)) == pieces - 1   # independent count from y alone


def test_shallow_flow_sum_equals_output():
    d = figure_data("shallow-flow")
    assert d["sum_error"] < 1e-12
    np.testing.assert_array_equal(d["activations"], np.maximum(d["preactivations"], 0))


def test_shallow_multi_output_joints_coincide():
    d = figure_data("shallow-multi-output")
    assert d["n_joints"] == 4
    assert len(d["kinks_y1"]) == len(d["kinks_y2"]) == d["n_joints"]
    np.testing.assert_array_equal(d["kinks_y1"], d["kinks_y2"])
    assert np.max(np.abs(d["kinks_y1"] - d["joints"])) <= 2 * d["grid_step"]


def test_universal_approximation_error_decreases_with_width():
    d = figure_data("universal-approximation")
    e = np.array(d["errors"])
    assert np.all(np.diff(e) < 0), e
    assert e[-1] < e[0] / 5


# ---- losses and optimization --------------------------------------------------------------
def test_losses_curves():
    d = figure_data("losses")
    m = d["margin"]
    np.testing.assert_allclose(d["hinge"], np.maximum(0, 1 - m), atol=1e-12)
    np.testing.assert_allclose(d["bce"], np.log1p(np.exp(-m)), rtol=1e-12)
    np.testing.assert_allclose(d["mse"], d["f"] ** 2, atol=1e-12)
    np.testing.assert_allclose(d["mae"], np.abs(d["f"]), atol=1e-12)
    np.testing.assert_allclose(d["cross_entropy"], -np.log(d["p_true"]), rtol=1e-9)
    assert d["nll_mse_gap"] < 1e-12


def test_softmax_temperature_limits():
    d = figure_data("softmax-temperature")
    assert d["max_sum_error"] < 1e-12
    assert np.argmax(d["p_low"]) == 0 and d["p_low_max"] > 0.999
    assert d["high_dev"] < 1e-3
    T1 = list(d["bar_temperatures"]).index(1.0)
    e = np.exp(d["eta"])
    np.testing.assert_allclose(d["bars"][T1], e / e.sum(), rtol=1e-12)


def test_gd_learning_rates_ordered_as_labelled():
    d = figure_data("gd-learning-rates")
    L = d["losses"]
    assert d["rates"]["too small"] < d["rates"]["good"] < d["rates"]["too large"] \
        < d["lr_limit"] < d["rates"]["diverging"]
    assert L["good"][-1] < L["too large"][-1] and L["good"][-1] < L["too small"][-1]
    assert np.all(np.diff(L["too small"]) < 0)              # slow but steady
    assert L["diverging"][-1] > 10 * L["diverging"][0]      # blows up
    assert np.all(np.diff(L["diverging"]) > 0)


def test_gabor_some_gd_runs_end_in_local_minimum():
    d = figure_data("gabor-landscape")
    assert np.all(d["final_grad_norms"] < 1e-3)              # all runs converged to a minimum
    assert d["n_local"] >= 1                                 # some of them local
    assert (~d["is_local"]).any()                            # and some reach the global one
    assert np.all(d["final_losses"] >= d["global_loss"] - 1e-9)


def test_saddle_momentum_escapes_faster():
    d = figure_data("saddle-point")
    assert d["steps_momentum"] < d["steps_gd"] < len(d["gd_path"])


def test_optimizers_sgd_slowest_in_the_ill_conditioned_valley_at_comparable_tuning():
    """The figure's message: every method gets the same learning-rate search, and in a valley
    of condition number >= 100 plain SGD ends far behind momentum and Adam."""
    d = figure_data("optimizers")
    assert d["condition"] >= 100
    vd, r = d["valley_dist"], d["neighbourhood"]
    for name in ("valley_lr", "rosen_lr"):
        grid = d["valley_lr_grid"] if name == "valley_lr" else d["rosen_lr_grid"]
        for method, lr in d[name].items():       # every method was tuned over the same grid
            assert lr in grid, (name, method)
        for method, scores in (d["valley_scores"] if name == "valley_lr" else d["rosen_scores"]).items():
            assert len(scores) == len(grid)
            assert np.nanmin(scores) == scores[list(grid).index(d[name][method])]
    assert vd["SGD"] > r > max(vd["momentum"], vd["Adam"], vd["Nesterov"])
    assert vd["SGD"] > 100 * max(vd["momentum"], vd["Adam"])
    # SGD's tuned rate is at most the stability limit 2/λ_max = 1 of the steep direction
    assert d["valley_lr"]["SGD"] <= 1.0
    for name, dist in d["rosen_dist"].items():               # the caption's two lists
        assert (dist < r) == (name in d["rosen_reached"].split(", ")), name
    for name in ("momentum", "Adam"):
        assert d["rosen_dist"][name] < r


def test_batch_size_variance_inverse_in_batch_size_for_mean_loss():
    d = figure_data("batch-size-variance")
    assert d["slope_mean"] == pytest.approx(-1.0, abs=0.1)
    assert d["slope_sum"] == pytest.approx(1.0, abs=0.1)
    ratio = np.array(d["var_mean"]) / d["theory_mean"]
    assert np.all(np.abs(ratio - 1) < 0.35), ratio


def test_backprop_toy_equals_closed_forms():
    d = figure_data("backprop-toy")
    t1, t2, x, y = d["theta1"], d["theta2"], d["x"], d["y"]
    c = t1 * t2 * x - y
    assert d["L"] == pytest.approx(c * c, abs=1e-12)
    assert d["dL_dtheta1"] == pytest.approx(2 * c * x * t2, abs=1e-12)
    assert d["dL_dtheta2"] == pytest.approx(2 * c * x * t1, abs=1e-12)
    assert d["max_gap"] < 1e-12


# ---- initialization and autoencoders ------------------------------------------------------
def test_zero_init_rows_stay_equal():
    d = figure_data("zero-init-symmetry")
    assert d["spread_constant"] < 1e-12 and d["spread_zero"] < 1e-12
    snaps = d["snapshots"]["constant"]
    assert np.ptp(snaps[:, 0, 0]) > 1e-3                    # the (shared) weights did move
    assert d["spread_random"] > 0.1
    assert d["acc_random"] > d["acc_constant"]
    # the caption's claim: zero init never moves a hidden weight and stays at chance
    assert np.all(d["snapshots"]["zero"] == 0.0)
    assert d["acc_zero"] < 0.6 < d["acc_constant"]


def test_autoencoder_pca_principal_angles_vanish():
    d = figure_data("autoencoder-pca")
    assert d["angle_max_deg"] < 1e-2
    assert d["ae_mse"] == pytest.approx(d["pca_mse"], rel=1e-4)


def test_autoencoder_binary_matches_two_means():
    d = figure_data("autoencoder-binary")
    assert d["centroid_gap"] < 1e-3
    assert set(np.unique(d["codes"])) == {0.0, 1.0}
    assert d["mses"][-1] == pytest.approx(d["kmeans_mse"], rel=1e-4)
