"""The convolution, residual and normalization figures: each figure's "checks" column of
FIGURES.md, tested on the data its function returns (quick mode)."""

import numpy as np
import pytest

from analysis import theory
from figures.registry import REGISTRY, load_all
from figtests import figure_data

CONV_IDS = ["image-kernels", "conv1d-padding", "conv-stride-dilation", "fc-vs-conv-matrix", "conv-channels",
            "receptive-field", "equivariance", "learned-filters", "param-counts", "residual-gradients",
            "residual-variance", "norm-invariances"]


def correlate1d_same(x, w, p):
    """Reference z_i = Σ_j w_j x_{i−p+j} with zeros outside x (written directly, not via the engine)."""
    L, K = len(x), len(w)
    xp = np.concatenate([np.zeros(p), x, np.zeros(p)])
    return np.array([xp[i:i + K] @ w for i in range(L + 2 * p - K + 1)])


def test_all_conv_figures_registered():
    load_all()
    missing = [fid for fid in CONV_IDS if fid not in REGISTRY]
    assert not missing


def test_image_kernels_equal_2d_cross_correlation():
    from scipy.signal import correlate2d
    d = figure_data("image-kernels")
    for k, out in zip(d["kernels"], d["outputs"]):
        ref = correlate2d(d["image"], k, mode="same", boundary="fill")
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
    # blur keeps the mean brightness in the interior; the edge kernels sum to zero
    assert np.isclose(d["kernels"][0].sum(), 1.0)
    assert all(np.isclose(k.sum(), 0.0) for k, n in zip(d["kernels"], d["kernel_names"]) if "edge" in n)


def test_conv1d_padding_output_lengths():
    d = figure_data("conv1d-padding")
    assert d["L_same"] == d["L_same_formula"] == d["L"] == 8
    assert d["L_valid"] == d["L_valid_formula"] == d["L"] - 2
    np.testing.assert_allclose(d["z_same"], correlate1d_same(d["x"], d["w"], 1), atol=1e-14)
    np.testing.assert_allclose(d["z_valid"], correlate1d_same(d["x"], d["w"], 0), atol=1e-14)
    np.testing.assert_allclose(d["z_valid"], d["z_same"][1:-1], atol=1e-14)


def test_conv_stride_dilation_lengths_follow_formula():
    d = figure_data("conv-stride-dilation")
    lengths = d["lengths"]
    assert len(lengths) > 100
    np.testing.assert_array_equal(lengths[:, 5], lengths[:, 6])
    for c in d["cases"]:
        assert c["n_out"] == c["formula"] == theory.conv_output_size(d["L"], c["kernel_size"], c["stride"],
                                                                     c["padding"], c["dilation"])
        # the engine's connectivity is exactly the formula's taps i·s − p + j·d (weights 1..K mark the tap j)
        M = c["matrix"]
        for i in range(M.shape[0]):
            for j in range(c["kernel_size"]):
                m = i * c["stride"] - c["padding"] + j * c["dilation"]
                if 0 <= m < d["L"]:
                    assert M[i, m] == j + 1
        assert np.count_nonzero(M) == sum(0 <= i * c["stride"] - c["padding"] + j * c["dilation"] < d["L"]
                                          for i in range(M.shape[0]) for j in range(c["kernel_size"]))
    assert d["cases"][0]["n_out"] == (d["L"] + 1) // 2          # stride 2 halves the outputs


def test_fc_vs_conv_matrix_conv_equals_matmul():
    d = figure_data("fc-vs-conv-matrix")
    assert d["max_error"] < 1e-12
    np.testing.assert_allclose(d["z_conv"], d["x"] @ d["conv_matrix"].T + d["bias"], atol=1e-12)
    M, w, L = d["conv_matrix"], d["w"], d["L"]
    band = np.zeros((L, L))
    for i in range(L):
        for j in range(3):
            if 0 <= i + j - 1 < L:
                band[i, i + j - 1] = w[j]
    np.testing.assert_array_equal(M, band)                  # banded, tied weights
    assert d["n_tied"] == 3 and d["n_fc"] == L * L


def test_conv_channels_two_feature_maps():
    d = figure_data("conv-channels")
    assert d["h"].shape == (2, 6) and d["n_hidden"] == 12
    for c in range(2):
        ref = np.maximum(d["biases"][c] + correlate1d_same(d["x"], d["weights"][c], 1), 0)
        np.testing.assert_allclose(d["h"][c], ref, atol=1e-14)
    assert not np.allclose(d["h"][0], d["h"][1])


def test_receptive_field_equals_analysis_formula():
    d = figure_data("receptive-field")
    for name in d["measured"]:
        np.testing.assert_array_equal(d["measured"][name], d["formula"][name])
    L = d["depths"]
    np.testing.assert_array_equal(d["measured"]["kernel 3"], 2 * L + 1)      # 3, 5, 7, ... (000 §6.2)
    np.testing.assert_array_equal(d["measured"]["kernel 3, dilation 2^(l−1)"], 2 ** (L + 1) - 1)


def test_equivariance_exact_shift_and_pooling_partial_invariance():
    d = figure_data("equivariance")
    assert np.all(d["equivariance_errors"] == 0.0)          # f[t[x]] = t[f[x]] exactly
    assert np.all(d["pool_even_shift_errors"] == 0.0)       # even shift -> pooled map shifted by half
    assert np.all(d["global_max_errors"] == 0.0)            # global pooling: invariant
    assert d["conv_unchanged"][0] == d["pool_unchanged"][0] == 1.0
    assert d["pool_unchanged"][1] > d["conv_unchanged"][1]   # pooling: partly invariant to 1 pixel
    assert d["pool4_unchanged"][1] >= d["pool_unchanged"][1]
    assert d["conv_unchanged"][1] < 0.5                      # the feature map itself moves


def test_learned_filters_become_strokes():
    """The figure's message: training turns independent random first-layer weights into
    spatially coherent strokes and edges (neighbouring weights correlated), and the blank maps
    the caption explains are exactly the filters whose ReLU output is zero on the digit."""
    d = figure_data("learned-filters")
    assert d["test_accuracy"] > 0.6                          # 3 epochs in quick mode (10 classes: chance 0.1)
    assert d["test_accuracy"] == pytest.approx(d["history"]["val_accuracy"][-1])
    assert d["filters"].shape == d["initial_filters"].shape == (d["n_filters"], 5, 5)
    assert abs(d["corr_initial"]) < 0.25
    assert d["corr_learned"] > 0.3
    assert d["corr_learned"] > d["corr_initial"] + 0.3
    blank = np.nonzero(d["feature_maps"].max(axis=(1, 2)) <= 0)[0]
    np.testing.assert_array_equal(blank, d["zero_maps"])
    assert set(d["dead_units"]) <= set(d["zero_maps"])     # dead on every digit: blank on this one
    assert "{" not in REGISTRY["learned-filters"].caption.format(**{k: v for k, v in d.items()
                                                                   if np.isscalar(v)})


def test_param_counts_77_billion():
    d = figure_data("param-counts")
    assert d["mlp_rgb"] == 77_309_804_544                   # 003 eq. 2.1
    assert d["mlp_grey"] == 8_590_065_664                   # eq. 2.2, "8.6B"
    assert d["cnn_rgb"] == 2 * 3 * (3 * 9 + 1)
    assert d["mlp_counts"][-1] == 77_309_804_544
    for kind, size, engine_count, formula in d["engine_checks"]:
        assert engine_count == formula, (kind, size)
    assert np.all(np.diff(d["mlp_counts"]) > 0) and np.all(d["cnn_counts"] == d["cnn_counts"][0])


def test_residual_gradients_keep_output_gradient_order_but_explode_unless_scaled():
    """The figure's message: the identity path keeps the gradient at least at the output's
    order, a plain stack lets it vanish, the plain residual ReLU stack makes it explode toward
    the input, and a 1/√L-scaled branch keeps it within a small factor of the output's."""
    d = figure_data("residual-gradients")
    for name, curve in d["curves"].items():
        assert curve[-1] == pytest.approx(1.0)
        if "plain" in name:
            assert curve[0] < 1e-3, name                    # plain stack: vanishes
        else:
            assert curve.min() >= 0.5, name                 # never below the output gradient's order
    assert d["residual_min"] >= 0.5
    relu = d["curves"]["ReLU, residual"]
    assert relu[0] > 30 and np.all(np.diff(relu) < 0)      # grows at every block toward the input
    assert d["residual_relu_first"] == relu[0]
    assert 0.5 <= d["scaled_min"] and d["scaled_max"] < 10
    assert d["curves"]["ReLU, scaled"][0] < relu[0] / 10


def test_residual_variance_growth_rates():
    d = figure_data("residual-variance")
    s2 = d["sigma2"]
    assert d["rate_none"] == pytest.approx(1 + s2, rel=0.1)     # exponential: × (1 + σ²) per block
    assert d["log_fit_r2_none"] > 0.98
    for n in ("layernorm", "batchnorm"):
        assert d[f"slope_{n}"] == pytest.approx(s2, rel=0.2)     # linear: + σ² per block
        assert d[f"r2_{n}"] > 0.98
        assert d[f"r2_{n}"] > d["linear_fit_r2_none"]
    v = d["variances"]
    assert v["none"][-1] > 10 * v["LayerNorm"][-1]


def test_norm_invariances_match_the_notes_table():
    d = figure_data("norm-invariances")
    assert d["matches_table"] and d["n_match"] == d["n_cells"] == 18
    np.testing.assert_array_equal(d["invariant"], d["notes_table"])
    rel = d["relative_change"]
    assert rel[d["notes_table"]].max() < 1e-10
    assert rel[~d["notes_table"]].min() > 1e-2
