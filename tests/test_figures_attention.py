"""The attention figures (attention-scaling, attention-weights, positional-encoding): FIGURES.md's
"checks" column, tested on the data each figure function returns in quick mode."""
import math

import numpy as np
import pytest

import figures.attention  # noqa: F401  (registers)
from figures.registry import REGISTRY
from figtests import figure_data

IDS = ["attention-scaling", "attention-weights", "positional-encoding"]


def test_attention_figures_registered():
    assert [fid for fid in IDS if fid not in REGISTRY] == []


def test_attention_scaling_variance_is_d_k_and_the_scale_keeps_rows_soft():
    d = figure_data("attention-scaling")
    d_k = d["d_k"]
    # measured Var(q·k) ≈ d_k for unit-variance q, k: within 4 standard errors of the sample
    # variance (derived from the Gaussian fourth moment, analysis.attention.sample_variance_se)
    np.testing.assert_array_equal(d["var_plain_theory"], d_k)
    assert np.all(np.abs(d["var_plain_measured"] - d_k) < 4 * d["var_plain_se"])
    np.testing.assert_allclose(d["var_scaled_theory"], 1.0)
    assert np.all(np.abs(d["var_scaled_measured"] - 1.0) < 4 * d["var_scaled_se"])
    # without the scale rows saturate as d_k grows; with it they stay where they were at d_k = 1
    assert np.all(np.diff(d["max_prob_plain"]) > 0) and d["max_prob_plain"][-1] > 0.8
    assert np.all(np.diff(d["entropy_plain"]) < 0)
    assert np.ptp(d["max_prob_scaled"]) < 0.05
    assert np.all(d["entropy_scaled"] > math.log(d["n_keys"]) - 0.6)
    assert d["jac_ratio"] > 1.5


def test_attention_weights_rows_sum_to_one_and_masked_entries_are_zero():
    d = figure_data("attention-weights")
    T = d["n_tokens"]
    for key in ("full", "causal"):
        p = d[f"p_{key}"]
        assert p.shape == (T, T) and np.all(p >= 0)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    mask = d["causal_mask"]
    np.testing.assert_array_equal(mask, np.triu(np.ones((T, T), bool), 1))
    assert np.all(d["p_causal"][mask] == 0.0)          # exactly zero: the keys are never visited
    assert np.all(d["p_causal"][~mask] > 0)
    # the weights are softmax_m(k_m·q_n/√D) of the figure's q, k (written here with NumPy), and
    # the outputs Σ_m a[x_m, x_n] v_m
    q, k, v = d["q"], d["k"], d["v"]
    s = q @ k.T / math.sqrt(q.shape[1])
    for key, allowed in (("full", np.ones((T, T), bool)), ("causal", ~mask)):
        e = np.where(allowed, np.exp(s - s.max(axis=1, keepdims=True)), 0.0)
        np.testing.assert_allclose(d[f"p_{key}"], e / e.sum(axis=1, keepdims=True), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(d[f"y_{key}"], d[f"p_{key}"] @ v, rtol=1e-12, atol=1e-14)
    assert d["sdpa_diff"] < 1e-12 and d["row_sum_err"] < 1e-12 and d["masked_max"] == 0.0


def test_positional_encoding_equals_the_formula():
    d = figure_data("positional-encoding")
    pe, L, D = d["pe"], d["max_len"], d["d_model"]
    assert pe.shape == (L, D)
    # the formula, element by element (independent of the figure module's vectorised one)
    for pos in (0, 1, 7, L - 1):
        for j in (0, 1, 2, 5, D - 2, D - 1):
            w = pos / 10000.0 ** (2 * (j // 2) / D)
            assert pe[pos, j] == pytest.approx(math.sin(w) if j % 2 == 0 else math.cos(w), abs=1e-12)
    np.testing.assert_allclose(pe, d["formula"], rtol=0, atol=1e-12)
    # PE[pos]·PE[pos + k] = Σ_i cos(k ω_i), whatever pos
    np.testing.assert_allclose(d["dots"], np.broadcast_to(d["dots_theory"], d["dots"].shape), atol=1e-10)
