"""layers.activations: every elementwise activation and Softmax(dim, temperature).

Forward and backward against PyTorch in float64 (hypothesis-drawn shapes, batch 1 included, and
options), the reference kernels against the fast ones through `engine.reference_kernels()`,
float32 runs, overflow-free evaluation at ±1000 (a sigmoid a naive 1/(1 + e^{−z}) would fail),
and refusals of bad input before any kernel runs. The finite-difference checks are the family's
table, scripts/gradcases_dense.py, run on both kernel paths by tests/test_gradient_cases.py.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine import no_grad, reference_kernels
from layers import GELU, Heaviside, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus, Tanh
from layers import activations as A

HYP = settings(max_examples=12, deadline=None, derandomize=True)
shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5)

# name -> (engine layer factory(options), torch module factory(torch, options), option strategy,
#          kinks(options): points where a[·] or a'[·] is not smooth)
ACTS = {
    "identity": (lambda o: Identity(), lambda t, o: t.nn.Identity(), st.just({}), lambda o: []),
    "relu": (lambda o: ReLU(), lambda t, o: t.nn.ReLU(), st.just({}), lambda o: [0.0]),
    "leaky_relu": (lambda o: LeakyReLU(**o), lambda t, o: t.nn.LeakyReLU(**o),
                   st.fixed_dictionaries({"negative_slope": st.sampled_from([0.01, 0.2, -0.5, 1.5])}),
                   lambda o: [0.0]),
    "sigmoid": (lambda o: Sigmoid(), lambda t, o: t.nn.Sigmoid(), st.just({}), lambda o: []),
    "tanh": (lambda o: Tanh(), lambda t, o: t.nn.Tanh(), st.just({}), lambda o: []),
    "gelu": (lambda o: GELU(), lambda t, o: t.nn.GELU(), st.just({}), lambda o: []),
    "gelu_tanh": (lambda o: GELU("tanh"), lambda t, o: t.nn.GELU(approximate="tanh"), st.just({}),
                  lambda o: []),
    "softplus": (lambda o: Softplus(**o), lambda t, o: t.nn.Softplus(**o),
                 st.fixed_dictionaries({"beta": st.sampled_from([1.0, 0.5, 2.0, 3.0]),
                                        "threshold": st.sampled_from([20.0, 1.0, 0.5, -1.0])}),
                 lambda o: [o["threshold"] / o["beta"]]),
    "heaviside": (lambda o: Heaviside(), None, st.just({}), lambda o: [0.0]),
}
# fixed options for the non-hypothesis tests: both branches of Softplus's threshold are reached
FIXED_OPTS = {"leaky_relu": {"negative_slope": 0.2}, "softplus": {"beta": 2.0, "threshold": 1.0}}


def make(name, opts=None):
    return ACTS[name][0](FIXED_OPTS.get(name, {}) if opts is None else opts)


def draw_x(rng, shape, name, opts, scale=2.0, margin=1e-3, dtype=np.float64):
    """Normal draws × scale, moved at least `margin` away from the activation's kinks."""
    x = rng.standard_normal(shape) * scale
    for k in ACTS[name][3](opts):
        near = np.abs(x - k) < margin
        x = np.where(near, k + np.where(x >= k, 1, -1) * (margin + 0.25), x)
    return x.astype(dtype)


def torch_forward_backward(torch, module, x, dy):
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = module(xt)
    yt.backward(torch.from_numpy(dy))
    return yt.detach().numpy(), xt.grad.numpy()


# ---- against PyTorch ---------------------------------------------------------------------
@pytest.mark.parametrize("name", [n for n in ACTS if n != "heaviside"])
def test_activation_matches_torch(torch, name):
    make_engine, make_torch, opt_strategy, _ = ACTS[name]

    @HYP
    @given(shape=shapes, opts=opt_strategy, scale=st.sampled_from([0.5, 3.0, 30.0]),
           seed=st.integers(0, 2**32 - 1))
    def check(shape, opts, scale, seed):
        r = np.random.default_rng(seed)
        x = draw_x(r, shape, name, opts, scale=scale)
        dy = r.standard_normal(shape)
        layer = make_engine(opts)
        y = layer.forward(x)
        dx = layer.backward(dy)
        ty, tdx = torch_forward_backward(torch, make_torch(torch, opts), x, dy)
        assert y.shape == x.shape and dx.shape == x.shape and y.dtype == dx.dtype == np.float64
        np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(dx, tdx, rtol=1e-12, atol=1e-14)

    check()


def test_heaviside_forward_and_zero_backward(torch, rng):
    x = draw_x(rng, (4, 3), "heaviside", {})
    layer = Heaviside()
    y = layer.forward(x)
    np.testing.assert_array_equal(y, torch.heaviside(torch.from_numpy(x), torch.zeros(1, dtype=torch.float64)).numpy())
    np.testing.assert_array_equal(y, (x > 0).astype(np.float64))
    dx = layer.backward(rng.standard_normal(x.shape))
    assert dx.shape == x.shape and np.all(dx == 0)
    assert Heaviside().forward(np.array([0.0, -0.0, 1e-300, -1e-300])).tolist() == [0.0, 0.0, 1.0, 0.0]


# ---- values at the kinks and by hand -------------------------------------------------------
def test_values_by_hand():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    dy = np.random.default_rng(0).standard_normal(x.shape)
    relu, lrelu = ReLU(), LeakyReLU(0.1)
    assert relu.forward(x).tolist() == [0, 0, 0, 0.5, 2]
    assert relu.backward(dy).tolist() == (dy * [0, 0, 0, 1, 1]).tolist()      # 0 at the kink, as PyTorch
    np.testing.assert_allclose(lrelu.forward(x), [-0.2, -0.05, 0, 0.5, 2], rtol=1e-15)
    np.testing.assert_allclose(lrelu.backward(dy), dy * [0.1, 0.1, 0.1, 1, 1], rtol=1e-15)
    assert LeakyReLU().negative_slope == 0.01
    ident = Identity()
    assert ident.forward(x).tolist() == x.tolist() and ident.backward(dy).tolist() == dy.tolist()
    s = Sigmoid().forward(x)
    np.testing.assert_allclose(s, 1 / (1 + np.exp(-x)), rtol=1e-15)
    from scipy.special import erf
    np.testing.assert_allclose(GELU().forward(x), 0.5 * x * (1 + erf(x / np.sqrt(2))), rtol=1e-15)
    g = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    np.testing.assert_allclose(GELU("tanh").forward(x), g, rtol=1e-14)


def test_softplus_threshold_switches_to_identity():
    sp = Softplus(beta=2.0, threshold=1.0)
    x = np.array([-1.0, 0.25, 0.49, 0.51, 3.0])
    y = sp.forward(x)
    np.testing.assert_allclose(y[:3], np.log1p(np.exp(2 * x[:3])) / 2, rtol=1e-15)
    assert y[3:].tolist() == x[3:].tolist()                       # βx > threshold: y = x exactly
    dy = np.random.default_rng(1).standard_normal(x.shape)
    d = sp.backward(dy)
    np.testing.assert_allclose(d[:3], dy[:3] / (1 + np.exp(-2 * x[:3])), rtol=1e-15)
    assert d[3:].tolist() == dy[3:].tolist()                      # slope 1 on the linear branch
    assert Softplus().beta == 1.0 and Softplus().threshold == 20.0


# ---- no overflow, no warnings --------------------------------------------------------------
EXTREME = [-1000.0, -710.0, -100.0, -30.0, -1e-3, 0.0, 1e-3, 30.0, 100.0, 710.0, 1000.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ACTS))
def test_no_overflow_at_extreme_inputs(name, dtype):
    x = np.array(EXTREME, dtype)
    layer = make(name, {"beta": 1.0, "threshold": 1e9} if name == "softplus" else None)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = layer.forward(x)
        dx = layer.backward(np.random.default_rng(2).standard_normal(x.shape).astype(dtype))
    assert y.dtype == dx.dtype == dtype
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx)), (y, dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_saturates_exactly(dtype):
    x = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype)
    dy = np.random.default_rng(3).standard_normal(x.shape).astype(dtype)
    layer = Sigmoid()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = layer.forward(x)
        d = layer.backward(dy)
    assert y[0] == 0.0 and y[2] == 0.5 and y[-1] == 1.0 and y[-2] == 1.0
    assert 0 < y[1] < 1e-40 if dtype == np.float64 else y[1] >= 0
    assert d[0] == 0.0 and d[2] == 0.25 * dy[2] and d[-1] == 0.0
    s = Softplus(threshold=1e9).forward(x)
    assert s[-1] == 1000.0 and s[0] == 0.0 and s[2] == pytest.approx(np.log(2.0))


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_sigmoid_is_not_the_naive_formula(path):
    """σ(−720) ≈ 1e-313 (subnormal): the naive 1/(1 + e^{720}) overflows e^{720} to inf and
    returns 0 (with an overflow warning); the stable form e^{z}/(1 + e^{z}) for z < 0 does not."""
    with np.errstate(over="ignore"):
        assert 1 / (1 + np.exp(np.float64(720.0))) == 0.0             # what the naive formula gives
    x = np.array([-720.0, -745.0, -30.0])
    dy = np.array([0.7, 1.3, -0.4])
    layer = Sigmoid()
    with reference_kernels(path == "reference"), warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = layer.forward(x)
        d = layer.backward(dy)
    assert y[0] > 0 and y[0] == pytest.approx(np.exp(-720.0), rel=1e-12)
    assert np.all(np.isfinite(d)) and d[0] > 0 and d[0] == pytest.approx(0.7 * np.exp(-720.0), rel=1e-12)
    np.testing.assert_allclose(y[2], np.exp(-30.0) / (1 + np.exp(-30.0)), rtol=1e-15)
    assert Sigmoid().forward(np.array([-720.0]))[0] > 0


# ---- reference and fast kernels ------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", list(ACTS))
def test_reference_and_fast_paths_agree(name, dtype, rng):
    """The reference kernels (one scalar call per element) and the fast ones (the activation
    chosen once per row) give the same numbers, forward and backward, kinks and extremes included."""
    x = np.concatenate([draw_x(rng, 41, name, FIXED_OPTS.get(name, {})), np.array(EXTREME), [0.0, -0.0]])
    x = x.astype(dtype).reshape(6, 9)
    dy = rng.standard_normal(x.shape).astype(dtype)
    out = {}
    for ref in (False, True):
        layer = make(name)
        with reference_kernels(ref):
            out[ref] = layer.forward(x), layer.backward(dy)
    for a, b in zip(out[False], out[True]):
        assert a.dtype == b.dtype == dtype
        if name == "gelu" and dtype == np.float32:   # the fast path's rational erf (bounded below)
            continue
        np.testing.assert_array_equal(a, b)
    if name == "gelu" and dtype == np.float32:
        (y, d), (yr, dr) = out[False], out[True]
        assert np.all(np.abs(y.astype(np.float64) - yr) <= 4e-7 * np.abs(x))
        assert np.all(np.abs(d.astype(np.float64) - dr) <= 4e-7 * np.abs(dy))


# ---- float32 GELU: the rational erf of the fast kernels --------------------------------------
def _float32_grid():
    t = np.concatenate([np.linspace(-12, 12, 200001), np.geomspace(1e-38, 1, 2000), np.geomspace(1, 3e38, 500)])
    return np.concatenate([t, -t, [0.0]]).astype(np.float32)


def test_erf32_relative_error_bound():
    # scripts/derive_erf32.py: 3.7e-7 in its float32 Horner evaluation; the kernel's (FMA-contracted)
    # evaluation measured 4.1e-7. math.erf in float64 is the exact value.
    import math
    x = _float32_grid()
    exact = np.array([math.erf(float(v)) for v in x])
    got = A.erf_fast_kernel(x)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - exact) <= 5e-7 * np.abs(exact))   # (0 exactly at 0, ±1 beyond the cutoff)
    np.testing.assert_array_equal(A.erf_fast_kernel(-x), -got)
    special = A.erf_fast_kernel(np.array([np.inf, -np.inf, np.nan], np.float32))
    assert special[0] == 1 and special[1] == -1 and np.isnan(special[2])
    # float64 keeps math.erf itself
    x64 = x.astype(np.float64)[::97]
    np.testing.assert_array_equal(A.erf_fast_kernel(x64), [math.erf(v) for v in x64])


def test_gelu_float32_fast_kernels_error_bound():
    # |Δ GELU| ≤ ½|z| |Δ erf| + rounding: measured 2.5e-7 |z| (the exact float32 erf: 6e-8 |z|);
    # |Δ GELU'| measured 2.4e-7 (the exact float32 erf: 6e-8). Against the float64 exact kernels.
    z = _float32_grid()
    z64 = z.astype(np.float64)
    y = A.activation_forward(z, A.A_GELU, 0.0, 0.0, 2)
    g = A.activation_backward(np.ones_like(z), z, A.A_GELU, 0.0, 0.0, 2)
    assert y.dtype == g.dtype == np.float32
    y64 = A.activation_forward_ref(z64, A.A_GELU, 0.0, 0.0)
    g64 = A.activation_backward_ref(np.ones_like(z64), z64, A.A_GELU, 0.0, 0.0)
    assert np.all(np.abs(y - y64) <= 3e-7 * np.abs(z64))
    assert np.all(np.abs(g - g64) <= 3e-7)


# ---- float32 -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ACTS))
def test_float32_close_to_float64(name, rng):
    x = draw_x(rng, (6, 5), name, FIXED_OPTS.get(name, {}), margin=1e-2)
    dy = rng.standard_normal(x.shape)
    l64, l32 = make(name), make(name)
    y64, d64 = l64.forward(x), l64.backward(dy)
    y32 = l32.forward(x.astype(np.float32))
    d32 = l32.backward(dy.astype(np.float32))
    assert y32.dtype == d32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(d32, d64, rtol=1e-5, atol=1e-6)


# ---- the backward contract -----------------------------------------------------------------
@pytest.mark.parametrize("name", list(ACTS))
def test_backward_contract(name, rng):
    x = draw_x(rng, (3, 4), name, FIXED_OPTS.get(name, {}))
    dy = rng.standard_normal(x.shape)
    layer = make(name)
    with pytest.raises(RuntimeError, match=r"backward: no forward call waits for a backward"):
        layer.backward(dy)
    layer.forward(x)
    dx1 = layer.backward(dy)
    with pytest.raises(RuntimeError, match=r"backward: no forward call"):   # one backward per forward
        layer.backward(dy)
    layer.forward(x)
    assert layer.backward(dy, input_grad=False) is None
    layer.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), dx1)       # no parameters: the same result again
    with no_grad():
        layer.forward(x)
    assert layer.pending_calls() == 0
    assert layer.parameters() == [] and layer.state_dict() == {}


# ---- bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(ACTS))
def test_activation_refuses_bad_input(name, rng):
    layer = make(name)
    with pytest.raises(TypeError, match=r"x: expected a float32 or float64 array, got int64"):
        layer.forward(np.arange(6).reshape(2, 3))
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray, got list"):
        layer.forward([[1.0, 2.0]])
    bad = np.ones((2, 3))
    bad[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"x: expected finite values"):
        layer.forward(bad)
    x = draw_x(rng, (2, 3), name, FIXED_OPTS.get(name, {}))
    layer.forward(x)
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\), got \(3, 2\)"):
        layer.backward(rng.standard_normal((3, 2)))
    with pytest.raises(TypeError, match=r"dy: expected dtype float64, got float32"):
        layer.backward(rng.standard_normal((2, 3)).astype(np.float32))
    # a refused forward leaves the stored forward state alone
    with pytest.raises(ValueError):
        layer.forward(bad)
    dy = rng.standard_normal((2, 3))
    ref = make(name)
    ref.forward(x)
    np.testing.assert_array_equal(layer.backward(dy), ref.backward(dy))


def test_activation_options_refused():
    with pytest.raises(ValueError, match=r"approximate: expected one of \['none', 'tanh'\], got 'bad'"):
        GELU(approximate="bad")
    for v in (1, None, b"tanh", ["tanh"]):
        with pytest.raises(TypeError, match=r"approximate: expected 'none' or 'tanh', got"):
            GELU(approximate=v)
    with pytest.raises(TypeError, match=r"negative_slope: expected a finite real number, got 'a'"):
        LeakyReLU("a")
    with pytest.raises(TypeError, match=r"negative_slope: expected a finite real number, got nan"):
        LeakyReLU(float("nan"))
    for beta in (0.0, -1.0):
        with pytest.raises(ValueError, match=rf"beta: expected a number in \(0.0, inf\], got {beta}"):
            Softplus(beta=beta)
    with pytest.raises(TypeError, match=r"threshold: expected a finite real number, got None"):
        Softplus(threshold=None)


@pytest.mark.parametrize("name", list(ACTS))
def test_0d_input_comes_back_0d(name):
    """An elementwise layer maps a 0-d array to a 0-d array, gradient included (never shape (1,))."""
    layer = make(name)
    for dt in (np.float64, np.float32):
        for path in (False, True):
            with reference_kernels(path):
                y = layer.forward(np.array(0.7, dt))
                dx = layer.backward(np.array(-1.3, dt))
            assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == dt
            assert isinstance(dx, np.ndarray) and dx.shape == () and dx.dtype == dt
            with reference_kernels(path):                  # (float32 GELU: each path its own erf)
                want = make(name).forward(np.array([0.7], dt))
            np.testing.assert_array_equal(y, want[0])


@pytest.mark.parametrize("layer", [make("relu"), make("gelu"), Softmax(0)], ids=["relu", "gelu", "softmax"])
def test_train_and_input_grad_are_booleans(layer, rng):
    """train and input_grad through engine.checks.check_bool: "False", 0 and None are refused by
    name, not read as truth values; a refused backward leaves the call waiting."""
    x = rng.standard_normal((2, 3))
    for v in ("False", 0, None):
        with pytest.raises(TypeError, match="train: expected True or False"):
            layer.forward(x, train=v)
    assert layer.pending_calls() == 0
    layer.forward(x, train=np.bool_(True))
    for v in ("False", 0, None):
        with pytest.raises(TypeError, match="input_grad: expected True or False"):
            layer.backward(rng.standard_normal((2, 3)), input_grad=v)
    assert layer.pending_calls() == 1
    assert layer.backward(rng.standard_normal((2, 3)), input_grad=np.bool_(False)) is None


def test_make_activation_checks_every_option():
    """Options are checked whatever the activation (a bad beta was ignored for ReLU), and the name
    must be a string of the list (TypeError otherwise, naming `activation`)."""
    from layers.activations import make_activation
    for kw, err, name in [(dict(negative_slope="a"), TypeError, "negative_slope"),
                          (dict(beta=0.0), ValueError, "beta"), (dict(beta=None), TypeError, "beta"),
                          (dict(threshold=float("inf")), TypeError, "threshold")]:
        with pytest.raises(err, match=f"{name}: expected"):
            make_activation("relu", **kw)
    for bad, err in [(3, TypeError), (None, TypeError), (b"relu", TypeError), ("RELU", ValueError), ("", ValueError)]:
        with pytest.raises(err, match="activation: expected one of"):
            make_activation(bad)


# ---- softmax -------------------------------------------------------------------------------
@HYP
@given(shape=shapes, data=st.data(), temperature=st.sampled_from([1.0, 0.3, 2.5, 10.0]),
       scale=st.sampled_from([1.0, 20.0]), seed=st.integers(0, 2**32 - 1))
def test_softmax_matches_torch_along_any_dim(torch, shape, data, temperature, scale, seed):
    dim = data.draw(st.integers(-len(shape), len(shape) - 1), label="dim")
    r = np.random.default_rng(seed)
    x = r.standard_normal(shape) * scale
    dy = r.standard_normal(shape)
    layer = Softmax(dim=dim, temperature=temperature)
    y = layer.forward(x)
    dx = layer.backward(dy)
    ty, tdx = torch_forward_backward(torch, lambda t: torch.softmax(t / temperature, dim=dim), x, dy)
    np.testing.assert_allclose(y, ty, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dx, tdx, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(y.sum(axis=dim), 1.0, rtol=1e-14)


def test_softmax_no_overflow_and_temperature_limits():
    x = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -1000.0], [0.0, 1.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = Softmax().forward(x)
    np.testing.assert_allclose(y[0], [1.0, 0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(y[1], [1 / 3] * 3, rtol=1e-15)
    cold = Softmax(temperature=1e-3).forward(x[2:])
    np.testing.assert_allclose(cold, [[0.0, 0.0, 1.0]], atol=1e-15)
    hot = Softmax(temperature=1e6).forward(x[2:])
    np.testing.assert_allclose(hot, [[1 / 3] * 3], rtol=1e-5)
    for dt in (np.float32, np.float64):
        y = Softmax(dim=0).forward(np.array([[1000.0], [-1000.0]], dt))
        assert y.dtype == dt and y[:, 0].tolist() == [1.0, 0.0]


def test_softmax_float32_close_to_float64(rng):
    x = rng.standard_normal((3, 5, 2))
    dy = rng.standard_normal(x.shape)
    a, b = Softmax(1, 0.7), Softmax(1, 0.7)
    y64, d64 = a.forward(x), a.backward(dy)
    y32, d32 = b.forward(x.astype(np.float32)), b.backward(dy.astype(np.float32))
    assert y32.dtype == d32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-6)


def test_softmax_backward_contract(rng):
    layer = Softmax(0)
    with pytest.raises(RuntimeError, match=r"Softmax.backward: no forward call waits for a backward"):
        layer.backward(rng.standard_normal((2, 3)))
    x = rng.standard_normal((2, 3))
    layer.forward(x)
    assert layer.backward(rng.standard_normal((2, 3)), input_grad=False) is None
    # an upstream gradient constant along the softmax axis (dim 0 here: one random value per
    # column) has no effect: the Jacobian's rows sum to 0
    layer.forward(x)
    np.testing.assert_allclose(layer.backward(np.repeat(rng.standard_normal((1, 3)), 2, axis=0)), 0.0, atol=1e-15)


def test_softmax_refuses_bad_options_and_input(rng):
    for t in (0, 0.0, -1.0):
        with pytest.raises(ValueError, match=rf"temperature: expected a number in \(0.0, inf\], got {t}"):
            Softmax(temperature=t)
    with pytest.raises(TypeError, match=r"temperature: expected a finite real number, got nan"):
        Softmax(temperature=float("nan"))
    with pytest.raises(TypeError, match=r"dim: expected an int, got float 1.0"):
        Softmax(dim=1.0)
    layer = Softmax(dim=2)
    with pytest.raises(ValueError, match=r"dim: expected an axis in \[-2, 1\] .*got 2 \(x of shape \(2, 3\)\)"):
        layer.forward(np.ones((2, 3)))
    assert layer.pending_calls() == 0
    with pytest.raises(ValueError, match=r"dim: expected an axis in \[-1, 0\] .*got 1 \(x of shape \(6,\)\)"):
        Softmax(dim=1).forward(np.ones(6))
    with pytest.raises(ValueError, match=r"x: expected an array with at least 1 dimension"):
        Softmax(dim=0).forward(np.array(1.0))
    with pytest.raises(TypeError, match=r"dim: expected an int, got bool True"):
        Softmax(dim=True)
    with pytest.raises(ValueError, match=r"dim: expected an axis in \[-2, 1\]"):
        Softmax(dim=-3).forward(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"x: expected a float32 or float64 array, got int64"):
        Softmax().forward(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"x: expected finite values"):
        Softmax().forward(np.array([1.0, np.inf]))
    layer = Softmax(dim=0)
    layer.forward(rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match=r"dy: expected dtype float64, got float32"):
        layer.backward(rng.standard_normal((2, 3)).astype(np.float32))
    with pytest.raises(ValueError, match=r"dy: expected"):
        layer.backward(rng.standard_normal((3, 3)))


def test_softmax_backward_refuses_dy_of_another_shape_with_the_same_rows(rng):
    layer = Softmax(dim=-1)
    layer.forward(rng.standard_normal((2, 3, 4)))
    with pytest.raises(ValueError, match=r"dy: expected"):
        layer.backward(rng.standard_normal((3, 2, 4)))
    with pytest.raises(ValueError, match=r"dy: expected"):
        layer.backward(rng.standard_normal((6, 4)))


# ---- kernels -------------------------------------------------------------------------------
def test_kernels_are_njit_pairs_without_fastmath():
    from numba.core.registry import CPUDispatcher
    for k in (A.activation_forward, A.activation_backward, A.activation_forward_ref, A.activation_backward_ref,
              A.softmax_forward, A.softmax_backward):
        assert isinstance(k, CPUDispatcher), k
        assert k.targetoptions.get("fastmath") is not True
