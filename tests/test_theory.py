"""Closed-form answers to the notes' exercises (analysis.theory)."""
import math

import numpy as np
import pytest

from analysis import theory as th
from layers import MLP


def test_least_squares_matches_lstsq_and_gradient_zero():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 50)
    y = 0.3 + 1.7 * x + 0.1 * rng.normal(size=50)
    phi = th.least_squares(x, y)
    ref = np.linalg.lstsq(np.c_[np.ones(50), x], y, rcond=None)[0]
    np.testing.assert_allclose(phi, ref, rtol=1e-12)
    np.testing.assert_allclose(th.linear_loss_grad(phi[0], phi[1], x, y), 0, atol=1e-12)
    X = rng.normal(size=(40, 3))
    np.testing.assert_allclose(th.least_squares(X, X @ [1.0, 2.0, 3.0] + 4.0), [4, 1, 2, 3], atol=1e-10)


def test_linear_loss_grad_finite_differences():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=20), rng.normal(size=20)
    p0, p1, h = 0.4, -0.8, 1e-6
    g = th.linear_loss_grad(p0, p1, x, y)
    fd = [(th.linear_loss(p0 + h, p1, x, y) - th.linear_loss(p0 - h, p1, x, y)) / (2 * h),
          (th.linear_loss(p0, p1 + h, x, y) - th.linear_loss(p0, p1 - h, x, y)) / (2 * h)]
    np.testing.assert_allclose(g, fd, rtol=1e-7)
    assert th.linear_loss_grad(np.zeros((4, 5)), np.ones((4, 5)), x, y).shape == (4, 5, 2)


def test_gradient_orthogonal_to_level_lines():
    rng = np.random.default_rng(2)
    x = rng.uniform(0, 3, 30)
    y = 1.0 + 0.5 * x + rng.normal(size=30)
    for p0, p1 in rng.normal(size=(10, 2)) * 3:
        t = th.level_line_tangent(p0, p1, x, y)
        g = th.linear_loss_grad(p0, p1, x, y)
        assert abs(t @ g) <= 1e-10 * np.linalg.norm(g)
        # the loss is constant to second order along the tangent
        e = 1e-4
        assert abs(th.linear_loss(p0 + e * t[0], p1 + e * t[1], x, y) - th.linear_loss(p0, p1, x, y)) < 1e-6


def test_least_squares_cost():
    c = th.least_squares_cost(1000, 10)
    assert c["XtX"] == 100_000 and c["inverse"] == 1000 and c["Xty"] == 10_000
    assert c["total"] == 111_000


def test_parameter_counts():
    assert th.shallow_param_count(2, 3, 1) == 13                 # the notes' example
    for widths in ([2, 3, 1], [5, 7, 7, 3], [1, 1]):
        assert th.mlp_param_count(widths) == MLP(widths, rng=0).theta.size
    d = th.mlp_vs_cnn_256()
    assert d["D"] == 196608 and d["mlp_hidden"] == 77309804544        # 003 eq. 2.1
    assert th.mlp_vs_cnn_256(channels=1)["mlp_hidden"] == 65536 * 65536 * 2 + 2 * 65536   # eq. 2.2, 8.6B
    assert d["cnn"] == 2 * 3 * (3 * 9 + 1)
    assert th.max_regions(2, 3) == 7


def test_radial_density_normalised_mode_and_monte_carlo():
    for D in (1, 2, 10, 100):
        r = np.linspace(0, 20, 20001)
        p = th.gaussian_radial_density(r, D)
        assert np.trapezoid(p, r) == pytest.approx(1.0, abs=1e-6)
        mode = th.gaussian_radial_mode(D)
        assert mode == pytest.approx(math.sqrt(D - 1))
        if D > 1:
            assert abs(r[np.argmax(p)] - mode) < 2e-3
    rng = np.random.default_rng(0)
    norms = np.linalg.norm(rng.normal(size=(20000, 10)) * 2.0, axis=1)
    hist, edges = np.histogram(norms, bins=40, density=True)
    mid = 0.5 * (edges[1:] + edges[:-1])
    np.testing.assert_allclose(hist, th.gaussian_radial_density(mid, 10, sigma=2.0), atol=0.03)


def test_conv_output_size_and_receptive_field():
    assert th.conv_output_size(10, 3) == 8
    assert th.conv_output_size(10, 3, padding=1) == 10
    assert th.conv_output_size(10, 3, stride=2, padding=1) == 5
    assert th.conv_output_size(10, 3, dilation=2) == 6
    assert th.conv_output_size(7, 3, stride=2) == 3
    for n, k, s, p, d in [(13, 3, 2, 1, 1), (20, 5, 3, 2, 2), (9, 1, 1, 0, 1)]:
        brute = len(range(0, n + 2 * p - d * (k - 1), s))
        assert th.conv_output_size(n, k, s, p, d) == brute
    assert th.receptive_field([3]) == 3 and th.receptive_field([3, 3]) == 5      # 000 §6.2
    assert th.receptive_field([3, 3, 3], strides=[2, 2, 1]) == 1 + 2 + 4 + 8
    assert th.receptive_field([3, 3], dilations=[1, 2]) == 7
    with pytest.raises(ValueError, match="kernel_size"):
        th.conv_output_size(2, 5)
    with pytest.raises(ValueError, match="strides"):
        th.receptive_field([3, 3], strides=[1])
    with pytest.raises(ValueError, match="stride"):
        th.conv_output_size(5, 3, stride=0)


def test_receptive_field_bruteforce():
    # follow which input samples reach output unit 0 through the stack
    ks, ss, ds = [3, 2, 5], [1, 2, 2], [2, 1, 1]
    idx = {0}
    for k, s, d in reversed(list(zip(ks, ss, ds))):
        idx = {i * s + d * m for i in idx for m in range(k)}
    assert th.receptive_field(ks, ss, ds) == max(idx) - min(idx) + 1


def test_softmax_temperature():
    eta = np.array([3.0, 0.0, 1.0])
    p1 = th.softmax_temperature(eta)
    np.testing.assert_allclose(p1, np.exp(eta) / np.exp(eta).sum())
    np.testing.assert_allclose(th.softmax_temperature(eta, 1e3), 1 / 3, atol=1e-3)
    np.testing.assert_allclose(th.softmax_temperature(eta, 1e-3), [1, 0, 0], atol=1e-12)
    assert np.isfinite(th.softmax_temperature(np.array([1e4, 0.0]), 0.01)).all()
    with pytest.raises(ValueError, match="T"):
        th.softmax_temperature(eta, 0.0)


def test_softmax_temperature_at_tiny_temperatures():
    """The maximum is subtracted before dividing by T: at T = 1e-308, η/T is ±inf and the old
    (η/T) − max(η/T) gave inf − inf = NaN; now the one-hot limit, ties shared, as layers.Softmax."""
    np.testing.assert_array_equal(th.softmax_temperature(np.array([3.0, 0.0, 1.0]), 1e-308), [1, 0, 0])
    np.testing.assert_array_equal(th.softmax_temperature([[3, 0, 1], [1, 1, 0]], 5e-324),
                                  [[1, 0, 0], [0.5, 0.5, 0]])
    np.testing.assert_allclose(th.softmax_temperature([1e308, -1e308], 1e308), [1 / (1 + math.exp(-2)),
                                                                                 1 / (1 + math.exp(2))])
    torch = pytest.importorskip("torch", reason="the comparison with PyTorch needs torch")
    eta = np.random.default_rng(3).normal(size=(4, 5)) * 100
    for T in (1e-300, 1e-3, 1.0, 1e300):
        ref = torch.softmax(torch.tensor(eta) / T, dim=-1).numpy() if T >= 1e-3 else None
        got = th.softmax_temperature(eta, T)
        assert np.isfinite(got).all()
        if ref is not None:
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)


BAD = [
    (lambda: th.softmax_temperature([1 + 1j, 2.0]), TypeError, "eta"),        # was: imaginary part dropped
    (lambda: th.softmax_temperature([1.0, np.nan]), ValueError, "eta"),
    (lambda: th.softmax_temperature(5.0), ValueError, "eta"),
    (lambda: th.softmax_temperature([1.0, 2.0], "1"), TypeError, "T"),
    (lambda: th.least_squares([1, 2, 3], [1, 2, "a"]), TypeError, "y"),      # was: unnamed ValueError
    (lambda: th.least_squares([[[1.0]]], [1.0]), ValueError, "x"),
    (lambda: th.least_squares([1.0, 2.0], [True, False]), TypeError, "y"),
    (lambda: th.linear_loss(0.0, np.zeros(3), [1.0, 2.0], [1.0, 2.0, 3.0]), ValueError, "y"),
    (lambda: th.linear_loss(np.zeros(2), np.zeros(3), [1.0, 2.0], [1.0, 2.0]), ValueError, "phi1"),
    (lambda: th.linear_loss_grad(np.nan, 0.0, [1.0], [1.0]), ValueError, "phi0"),
    (lambda: th.level_line_tangent("1", 0.0, [1.0, 2.0, 3.0], [1.0, 2.0, 3.0]), TypeError, "phi0"),
    (lambda: th.mlp_param_count([2, 3], bias="False"), TypeError, "bias"),   # was: a bias counted
    (lambda: th.mlp_param_count(3), TypeError, "widths"),
    (lambda: th.conv2d_param_count(3, 4, (3, 0)), ValueError, "kernel_size"),
    (lambda: th.conv2d_param_count(3, 4, 3, bias=0), TypeError, "bias"),
    (lambda: th.conv2d_param_count(3.0, 4, 3), TypeError, "in_channels"),
    (lambda: th.mlp_vs_cnn_256(channels=0), ValueError, "channels"),
    (lambda: th.max_regions(0, 3), ValueError, "D_i"),                       # was: named n0
    (lambda: th.gaussian_radial_density([1.0, np.nan], 2), ValueError, "r"),
    (lambda: th.receptive_field(3), TypeError, "kernel_sizes"),
    (lambda: th.receptive_field([]), ValueError, "kernel_sizes"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_input_names_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}\b"):
        call()
