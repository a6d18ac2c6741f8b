"""Tests for engine.init: gains, fans, and the spread of every scheme's draws."""
import math

import numpy as np
import pytest

from engine import init

SQRT3 = math.sqrt(3.0)


# ----------------------------------------------------------------------------- gains and fans

@pytest.mark.parametrize("name,param,expected", [
    ("linear", None, 1.0), ("conv2d", None, 1.0), ("conv_transpose3d", None, 1.0),
    ("sigmoid", None, 1.0), ("tanh", None, 5.0 / 3.0), ("relu", None, math.sqrt(2.0)),
    ("leaky_relu", None, math.sqrt(2.0 / (1 + 0.01 ** 2))),
    ("leaky_relu", 0.2, math.sqrt(2.0 / 1.04)), ("leaky_relu", 0, math.sqrt(2.0)),
    ("selu", None, 0.75),
])
def test_calculate_gain_values(name, param, expected):
    assert init.calculate_gain(name, param) == pytest.approx(expected, rel=1e-15)


def test_calculate_gain_matches_torch():
    torch = pytest.importorskip("torch", reason="torch is only a cross-check")
    for name in init.NONLINEARITIES:
        assert init.calculate_gain(name) == pytest.approx(torch.nn.init.calculate_gain(name))
    for slope in [0.0, 0.01, 0.2, math.sqrt(5), 3]:
        assert init.calculate_gain("leaky_relu", slope) == pytest.approx(
            torch.nn.init.calculate_gain("leaky_relu", slope))


def test_calculate_gain_errors():
    with pytest.raises(ValueError, match="nonlinearity"):
        init.calculate_gain("swish")
    with pytest.raises(ValueError, match="param"):
        init.calculate_gain("leaky_relu", "0.1")
    with pytest.raises(ValueError, match="param"):
        init.calculate_gain("leaky_relu", True)


@pytest.mark.parametrize("shape,expected", [
    ((5, 3), (3, 5)),                    # Linear (D_out, D_in)
    ((8, 4, 3), (12, 24)),               # Conv1d (C_out, C_in, K)
    ((16, 3, 5, 5), (75, 400)),          # Conv2d (C_out, C_in, KH, KW)
    ((2, 3, 1, 2, 4), (24, 16)),         # Conv3d
])
def test_fans(shape, expected):
    assert init.fan_in_and_fan_out(shape) == expected


def test_fans_match_torch():
    torch = pytest.importorskip("torch", reason="torch is only a cross-check")
    from torch.nn.init import _calculate_fan_in_and_fan_out as torch_fans
    for shape in [(5, 3), (8, 4, 3), (16, 3, 5, 5), (2, 3, 1, 2, 4), (7, 1)]:
        assert init.fan_in_and_fan_out(shape) == torch_fans(torch.empty(shape))


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="shape"):
        init.fan_in_and_fan_out((5,))
    with pytest.raises(ValueError, match="shape"):
        init.xavier_uniform(7)


# ----------------------------------------------------------------------------- spread of draws
# Shapes with ~250k entries: the sample std is within ~0.3% of the true std (3 sigma), so a 2%
# tolerance passes reliably and still fails for a wrong gain (relu sqrt(2) vs 1, tanh 5/3),
# a missing sqrt(3) on a bound, or a fan_in/fan_out mix-up (the shapes are far from square).

CONV = (64, 32, 11, 11)                  # fan_in 3872, fan_out 7744, 247,808 entries
DENSE = (200, 1250)                      # fan_in 1250, fan_out 200


def _check_normal(w, std):
    assert abs(w.mean()) < 0.02 * std
    assert w.std() == pytest.approx(std, rel=0.02)


def _check_uniform(w, bound):
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.999 * bound
    assert w.std() == pytest.approx(bound / SQRT3, rel=0.02)


@pytest.mark.parametrize("shape", [CONV, DENSE])
@pytest.mark.parametrize("gain", [1.0, 5.0 / 3.0])
def test_xavier(shape, gain):
    fan_in, fan_out = init.fan_in_and_fan_out(shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    _check_normal(init.xavier_normal(shape, gain=gain, rng=0), std)
    _check_uniform(init.xavier_uniform(shape, gain=gain, rng=0), SQRT3 * std)


@pytest.mark.parametrize("shape", [CONV, DENSE])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity,a", [("relu", 0.0), ("leaky_relu", 0.0),
                                            ("leaky_relu", math.sqrt(5)), ("tanh", 0.0),
                                            ("linear", 0.0)])
def test_kaiming(shape, mode, nonlinearity, a):
    fan_in, fan_out = init.fan_in_and_fan_out(shape)
    fan = fan_in if mode == "fan_in" else fan_out
    gain = {"relu": math.sqrt(2), "tanh": 5 / 3, "linear": 1.0,
            "leaky_relu": math.sqrt(2 / (1 + a * a))}[nonlinearity]
    std = gain / math.sqrt(fan)
    _check_normal(init.kaiming_normal(shape, a=a, mode=mode, nonlinearity=nonlinearity,
                                      rng=1), std)
    _check_uniform(init.kaiming_uniform(shape, a=a, mode=mode, nonlinearity=nonlinearity,
                                        rng=1), SQRT3 * std)


def test_kaiming_defaults_and_torch_linear_default():
    # default: leaky_relu with a=0 -> gain sqrt(2), Var = 2 / fan_in
    _check_normal(init.kaiming_normal(DENSE, rng=2), math.sqrt(2.0 / 1250))
    # torch.nn.Linear's weight init: a = sqrt(5) gives bound = 1 / sqrt(fan_in)
    _check_uniform(init.kaiming_uniform(DENSE, a=math.sqrt(5), rng=2), 1.0 / math.sqrt(1250))


def test_lecun_normal():
    _check_normal(init.lecun_normal(CONV, rng=3), 1.0 / math.sqrt(32 * 11 * 11))
    np.testing.assert_array_equal(init.lecun_normal(DENSE, rng=3),
                                  init.kaiming_normal(DENSE, nonlinearity="linear", rng=3))


def test_normal_uniform_constant_zeros_ones():
    _check_normal(init.normal((500, 500), mean=0.0, std=0.3, rng=4), 0.3)
    w = init.normal((500, 500), mean=2.0, std=0.5, rng=4)
    assert w.mean() == pytest.approx(2.0, abs=0.005)
    u = init.uniform((500, 500), a=-2.0, b=1.0, rng=4)
    assert u.min() >= -2.0 and u.max() < 1.0
    assert u.mean() == pytest.approx(-0.5, abs=0.01)
    assert u.std() == pytest.approx(3.0 / math.sqrt(12), rel=0.02)
    np.testing.assert_array_equal(init.constant((2, 3), 0.7), np.full((2, 3), 0.7))
    np.testing.assert_array_equal(init.zeros(4), np.zeros(4))
    np.testing.assert_array_equal(init.ones((1, 2)), np.ones((1, 2)))


def test_spread_matches_torch_samples():
    torch = pytest.importorskip("torch", reason="torch is only a cross-check")
    torch.manual_seed(0)
    for ours, theirs, kw in [
        (init.kaiming_uniform, torch.nn.init.kaiming_uniform_, dict(a=math.sqrt(5))),
        (init.kaiming_normal, torch.nn.init.kaiming_normal_, dict(mode="fan_out",
                                                                  nonlinearity="relu")),
        (init.xavier_uniform, torch.nn.init.xavier_uniform_, dict(gain=5 / 3)),
        (init.xavier_normal, torch.nn.init.xavier_normal_, dict()),
    ]:
        t = theirs(torch.empty(CONV, dtype=torch.float64), **kw).numpy()
        w = ours(CONV, rng=5, **kw)
        assert w.std() == pytest.approx(t.std(), rel=0.02), ours.__name__


# ----------------------------------------------------------------------------- orthogonal

@pytest.mark.parametrize("shape", [(50, 20), (20, 50), (30, 30), (8, 3, 3, 3), (4, 2, 5)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    w = init.orthogonal(shape, gain=gain, rng=6)
    assert w.shape == shape
    M = w.reshape(shape[0], -1)
    rows, cols = M.shape
    if rows >= cols:
        np.testing.assert_allclose(M.T @ M, gain ** 2 * np.eye(cols), atol=1e-12)
    else:
        np.testing.assert_allclose(M @ M.T, gain ** 2 * np.eye(rows), atol=1e-12)


def test_orthogonal_errors():
    with pytest.raises(ValueError, match="shape"):
        init.orthogonal((5,))


# ----------------------------------------------------------------------------- rng and dtype

SCHEMES = [
    (init.normal, {}), (init.uniform, {}), (init.xavier_normal, {}),
    (init.xavier_uniform, {}), (init.kaiming_normal, {}), (init.kaiming_uniform, {}),
    (init.lecun_normal, {}), (init.orthogonal, {}),
]


@pytest.mark.parametrize("scheme,kw", SCHEMES)
def test_same_seed_same_array(scheme, kw):
    a = scheme((6, 4, 3), rng=11, **kw)
    b = scheme((6, 4, 3), rng=np.random.default_rng(11), **kw)
    c = scheme((6, 4, 3), rng=12, **kw)
    assert a.dtype == np.float64 and a.shape == (6, 4, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    f = scheme((6, 4, 3), rng=11, dtype=np.float32, **kw)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, a.astype(np.float32))


def test_generator_state_advances():
    rng = np.random.default_rng(0)
    assert not np.array_equal(init.normal((3, 3), rng=rng), init.normal((3, 3), rng=rng))


def test_bad_arguments():
    with pytest.raises(TypeError, match="rng"):
        init.normal((2, 2), rng="seed")
    with pytest.raises(TypeError, match="rng"):
        init.normal((2, 2), rng=1.5)
    with pytest.raises(TypeError, match="dtype"):
        init.zeros((2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match="std"):
        init.normal((2, 2), std=-1.0)
    with pytest.raises(ValueError, match="a, b"):
        init.uniform((2, 2), a=1.0, b=0.0)
    with pytest.raises(ValueError, match="mode"):
        init.kaiming_uniform((2, 2), mode="fan_avg")
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_normal((2, 2), nonlinearity="gelu")
    with pytest.raises(ValueError, match="shape"):
        init.zeros((2, -1))
    with pytest.raises(TypeError, match="shape"):
        init.zeros(2.5)
    with pytest.raises(ValueError, match="gain"):
        init.xavier_normal((2, 2), gain=-1.0)


# ----------------------------------------------------------------------------- in place

class _Param:
    def __init__(self, value):
        self.value = value


def test_init_in_place():
    p = _Param(np.zeros((40, 30), dtype=np.float32))
    buf = p.value
    assert init.init_(p, "kaiming_uniform", a=math.sqrt(5), rng=7) is p
    assert p.value is buf and buf.dtype == np.float32
    np.testing.assert_array_equal(buf, init.kaiming_uniform((40, 30), a=math.sqrt(5), rng=7,
                                                            dtype=np.float32))
    init.init_(p, init.constant, val=0.5)
    assert (p.value == 0.5).all()
    with pytest.raises(ValueError, match="scheme"):
        init.init_(p, "kaiming")
    with pytest.raises(TypeError, match="param"):
        init.init_(np.zeros(3), "zeros")


def test_init_with_engine_parameter():
    from engine import Parameter
    p = Parameter(np.zeros((5, 4)))
    init.init_(p, "orthogonal", rng=0)
    np.testing.assert_allclose(p.value.T @ p.value, np.eye(4), atol=1e-12)
