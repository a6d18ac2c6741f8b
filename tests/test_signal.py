"""Mean-field theory and variance propagation (analysis.signal)."""
import math

import numpy as np
import pytest

from analysis import signal as sg
from analysis.signal import (critical_weight_variance, expect, mean_field, measure_variance,
                             order_chaos_boundary, predict_variance, weight_variance)


def test_relu_closed_forms():
    m = mean_field("relu", 1.5, 0.1)
    assert m.q_star == pytest.approx(0.1 / (1 - 0.75))
    assert m.chi1 == pytest.approx(0.75) and m.chi_q == pytest.approx(0.75)
    assert m.c_star == 1.0 and m.phase == "ordered"
    assert m.xi_q == pytest.approx(-1 / math.log(0.75)) and m.xi_c == m.xi_q
    assert m.length_map(m.q_star) == pytest.approx(m.q_star)
    assert m.corr_map(1.0) == pytest.approx(1.0)
    # He initialisation is critical for ReLU
    assert mean_field("relu", 2.0, 0.0).phase == "critical"
    assert math.isinf(mean_field("relu", 2.0, 0.0).xi_c)
    assert math.isinf(mean_field("relu", 2.5, 0.1).q_star)
    lk = mean_field("leaky_relu", 1.5, 0.1, negative_slope=0.2)
    assert lk.chi1 == pytest.approx(1.5 * (1 + 0.04) / 2)


def test_closed_forms_match_monte_carlo_correlation():
    rng = np.random.default_rng(0)
    z1, z2 = rng.normal(size=(2, 400_000))
    for act, a in [("relu", 0.0), ("leaky_relu", 0.3), ("linear", 1.0)]:
        m = mean_field(act, 0.8, 0.2, negative_slope=0.3)
        q = m.q_star
        for c in (-0.5, 0.3, 0.9):
            u1 = math.sqrt(q) * z1
            u2 = math.sqrt(q) * (c * z1 + math.sqrt(1 - c * c) * z2)
            phi = lambda x: np.where(x > 0, x, a * x)
            mc = (0.8 * np.mean(phi(u1) * phi(u2)) + 0.2) / q
            assert m.corr_map(c) == pytest.approx(mc, abs=5e-3)


def test_tanh_quadrature_and_fixed_points():
    m = mean_field("tanh", 1.5, 0.05)
    assert m.length_map(m.q_star) == pytest.approx(m.q_star, rel=1e-10)
    assert m.c_star == 1.0 and m.chi1 < 1
    # χ₁ matches Monte Carlo
    z = np.random.default_rng(1).normal(size=1_000_000)
    mc = 1.5 * np.mean((1 - np.tanh(math.sqrt(m.q_star) * z) ** 2) ** 2)
    assert m.chi1 == pytest.approx(mc, rel=5e-3)
    ch = mean_field("tanh", 3.0, 0.05)
    assert ch.phase == "chaotic" and 0 < ch.c_star < 1
    assert ch.corr_map(ch.c_star) == pytest.approx(ch.c_star, abs=1e-10)
    assert 0 < ch.chi_c < 1 and np.isfinite(ch.xi_c)
    # iterating the maps converges at the rates exp(−l/ξ)
    c, errs = 0.2, []
    for _ in range(40):
        c = ch.corr_map(c)
        errs.append(abs(c - ch.c_star))
    rate = errs[30] / errs[29]
    assert rate == pytest.approx(ch.chi_c, rel=1e-3)
    q, qe = 2.0, []
    for _ in range(30):
        q = m.length_map(q)
        qe.append(abs(q - m.q_star))
    assert qe[20] / qe[19] == pytest.approx(m.chi_q, rel=1e-3)
    assert expect(lambda z: z ** 2) == pytest.approx(1.0)


def test_order_chaos_boundary_tanh():
    sb = np.array([0.0, 0.05, 0.2])
    sw = order_chaos_boundary(sb)
    assert sw[0] == pytest.approx(1.0, abs=1e-3)      # χ₁ − 1 is flat (second order) there
    assert np.all(np.diff(sw) > 0)
    for b2, w2 in zip(sb, sw):
        assert mean_field("tanh", w2, b2).chi1 == pytest.approx(1.0, abs=1e-8)


def test_weight_variance_schemes():
    assert weight_variance("he", 50, 10) == 2 / 50
    assert weight_variance("xavier", 50, 10) == 2 / 60
    assert weight_variance("lecun", 50, 10) == 1 / 50
    assert weight_variance(2.0, 50, 10) == 2 / 50
    with pytest.raises(ValueError, match="init"):
        weight_variance("bogus", 1, 1)
    with pytest.raises(ValueError, match="activation"):
        mean_field("bogus", 1.0, 0.0)
    with pytest.raises(ValueError, match="sigma_w2"):
        mean_field("tanh", -1.0, 0.0)


def test_he_relu_constant_xavier_halves():
    he = predict_variance([100] * 8, "relu", "he")
    np.testing.assert_allclose(he.forward, he.forward[0])
    np.testing.assert_allclose(he.backward, 1.0)
    xv = predict_variance([100] * 8, "relu", "xavier")
    np.testing.assert_allclose(xv.forward[1:] / xv.forward[:-1], 0.5)
    np.testing.assert_allclose(xv.backward[:-1] / xv.backward[1:], 0.5)


def test_sigma_omega_2_over_Dh():
    for D in (10, 100, 256):
        assert critical_weight_variance("relu", D) == pytest.approx(2 / D, rel=1e-12)
    assert critical_weight_variance("linear", 100) == pytest.approx(1 / 100)


@pytest.mark.parametrize("init,act", [("he", "relu"), ("xavier", "relu"), ("lecun", "tanh")])
def test_measured_matches_predicted(init, act):
    widths = [128] * 6
    p = predict_variance(widths, act, init, sigma_b2=0.01)
    m = measure_variance(widths, act, init, sigma_b2=0.01, n_seeds=30, batch_size=64, rng=3)
    # forward: exact in expectation (symmetric weights), so within sampling error
    assert np.all(np.abs(m.forward - p.forward) <= 4 * m.forward_sem + 1e-12)
    # backward: the independence assumption has an O(1/width) bias; allow 5 %
    np.testing.assert_allclose(m.backward, p.backward, rtol=0.05)
    if init == "he":
        np.testing.assert_allclose(m.forward, m.forward[0], rtol=0.1)
    if init == "xavier":
        np.testing.assert_allclose(m.forward[1:] / m.forward[:-1], p.forward[1:] / p.forward[:-1], rtol=0.1)


def test_custom_activation_pair_matches_named():
    named = mean_field("tanh", 2.0, 0.1)
    custom = mean_field((np.tanh, lambda x: 1 - np.tanh(x) ** 2), 2.0, 0.1)
    assert custom.q_star == pytest.approx(named.q_star, rel=1e-12)
    assert custom.chi1 == pytest.approx(named.chi1, rel=1e-12)
    assert custom.c_star == pytest.approx(named.c_star, abs=1e-10)
    with pytest.raises(TypeError, match="activation"):
        mean_field(3, 1.0, 0.0)


BAD = [
    (lambda: sg.measure_variance([4, 4, 1], rng=-1), ValueError, "rng"),               # was: unnamed
    (lambda: sg.measure_variance([4, 4, 1], negative_slope="0.1", activation="leaky_relu"), TypeError,
     "negative_slope"),                                                              # was: a numpy error
    (lambda: sg.measure_variance([4, 4, 1], init="glorious"), ValueError, "init"),
    (lambda: sg.predict_variance(5), TypeError, "widths"),
    (lambda: sg.predict_variance([4, 4, 1], negative_slope=np.nan), TypeError, "negative_slope"),
    (lambda: sg.weight_variance("he", 0, 3), ValueError, "fan_in"),                   # was: ZeroDivisionError
    (lambda: sg.weight_variance("he", 3, 2.5), TypeError, "fan_out"),
    (lambda: sg.weight_variance(True, 3, 3), TypeError, "init"),
    (lambda: sg.expect(np.sin, n=0), ValueError, "n"),
    (lambda: sg.expect(3.0), TypeError, "f"),
    (lambda: sg.order_chaos_boundary([0.1, -0.2]), ValueError, "sigma_b2"),
    (lambda: sg.order_chaos_boundary([0.1, 1j]), TypeError, "sigma_b2"),
    (lambda: sg.order_chaos_boundary(0.1, activation="swish"), ValueError, "activation"),
    (lambda: sg.order_chaos_boundary(0.1, n_quad=2), ValueError, "n_quad"),
    (lambda: sg.critical_weight_variance("leaky_relu", negative_slope=[0.1]), TypeError, "negative_slope"),
    (lambda: sg.mean_field("tanh", -1.0, 0.0), ValueError, "sigma_w2"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}\b"):
        call()
