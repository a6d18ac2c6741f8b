"""The attention figures (attention-scaling, attention-weights, positional-encoding): FIGURES.md's
"checks" column, tested on the data each figure function returns in quick mode."""
import functools
import math

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

import figures.attention  # noqa: F401  (registers)
from figures.registry import REGISTRY

IDS = ["attention-scaling"]


@functools.lru_cache(maxsize=None)
def figure_data(fid):
    fig, data = REGISTRY[fid].func(quick=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close(fig)
    return data


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
