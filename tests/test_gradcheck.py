"""engine.gradcheck: passes correct layers, catches wrong backward passes."""
import numpy as np
import pytest

from engine import Layer, Parameter, gradcheck, gradcheck_loss
from engine.gradcheck import GradcheckResult, numeric_grad, rel_error


class Affine(Layer):
    """y = x ⊙ w + b (elementwise over the features), with a backward that can be made wrong."""

    def __init__(self, n, bug=None, seed=0):
        r = np.random.default_rng(seed)
        self.w = Parameter(r.standard_normal(n))
        self.b = Parameter(r.standard_normal(n))
        self.bug = bug
        self._x = None

    def forward(self, x, train=True):
        self._x = x
        return x * self.w.value + self.b.value

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        if self.bug == "ignore_dy":            # right shapes, but as if dy were all ones
            dy = np.ones_like(dy)
        scale = 1.1 if self.bug == "factor" else 1.0
        self.w.grad += scale * (dy * self._x).sum(0)
        self.b.grad += dy.sum(0) if self.bug != "bias_sign" else -dy.sum(0)
        return dy * self.w.value if input_grad else None


class Square(Layer):
    """y = x², no parameters, optionally with a backward missing its factor 2."""

    def __init__(self, bug=False):
        self.bug = bug

    def forward(self, x, train=True):
        self._x = x
        return x * x

    def backward(self, dy, input_grad=True):
        return (1.0 if self.bug else 2.0) * self._x * dy


class Bilinear(Layer):
    """Two inputs: y = a ⊙ b."""

    def forward(self, a, b, train=True):
        self._a, self._b = a, b
        return a * b

    def backward(self, dy, input_grad=True):
        return dy * self._b, dy * self._a


def test_correct_layer_passes(rng):
    r = gradcheck(Affine(4), rng.standard_normal((3, 4)))
    assert set(r.errors) == {"x", "w", "b"}
    assert r.passed() and r.max_error < 1e-7, str(r)


def test_wrong_factor_is_caught(rng):
    r = gradcheck(Affine(4, bug="factor"), rng.standard_normal((3, 4)))
    assert r.errors["w"] > 1e-2 and r.errors["x"] < 1e-7 and r.errors["b"] < 1e-7
    assert not r.passed()
    r = gradcheck(Square(bug=True), rng.standard_normal((2, 3)))
    assert r.errors["x"] > 0.3                   # |2 − 1| / (2 + 1)


def test_wrong_sign_is_caught(rng):
    r = gradcheck(Affine(3, bug="bias_sign"), rng.standard_normal((5, 3)))
    assert r.errors["b"] > 0.99 and not r.passed()


def test_upstream_gradient_is_random_not_ones(rng):
    """A backward that ignores dy's values (but has its shape) would pass with G = ones."""
    x = rng.standard_normal((3, 4))
    r = gradcheck(Affine(4, bug="ignore_dy"), x)
    assert r.errors["w"] > 1e-2 and r.errors["b"] > 1e-2 and not r.passed()


def test_upstream_gradient_depends_on_seed(rng):
    x = rng.standard_normal((3, 4))
    layer = Affine(4)
    gradcheck(layer, x, seed=0)
    g0 = layer.b.grad.copy()
    gradcheck(layer, x, seed=1)
    assert not np.allclose(g0, layer.b.grad)     # b.grad = Σ_n G_n: the G differ
    gradcheck(layer, x, seed=0)
    np.testing.assert_array_equal(g0, layer.b.grad)   # zero_grad before the analytic backward


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    layer = Affine(4)
    w0 = layer.w.value.copy()
    gradcheck(layer, x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(layer.w.value, w0)


def test_several_inputs_get_names(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    r = gradcheck(Bilinear(), a, b)
    assert set(r.errors) == {"x0", "x1"} and r.passed()
    r = gradcheck(Bilinear(), a, b, input_names=["query", "key"])
    assert set(r.errors) == {"query", "key"}


def test_gradcheck_refuses_non_layers_and_float32(rng):
    with pytest.raises(TypeError, match=r"layer: expected a Layer, got function"):
        gradcheck(lambda x: x, rng.standard_normal(3))
    with pytest.raises(TypeError, match=r"inputs\[0\]: gradient checks run in float64, got float32"):
        gradcheck(Square(), np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"inputs\[1\]: gradient checks run in float64, got list"):
        gradcheck(Bilinear(), np.ones(3), [1.0, 2.0, 3.0])


def test_rel_error_and_result():
    assert rel_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert rel_error(np.array([2.0]), np.array([1.0])) == pytest.approx(1 / 3)
    assert rel_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1e-4)   # floor 1e-8
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    r = GradcheckResult({"x": 1e-9, "w": 3e-6})
    assert r.max_error == 3e-6 and not r.passed() and r.passed(tol=1e-5)
    assert "w: 3.0e-06" in str(r)
    assert GradcheckResult().max_error == 0.0


def test_numeric_grad_of_a_known_function():
    u = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numeric_grad(lambda: float(np.sum(u ** 3)), u)
    np.testing.assert_allclose(g, 3 * u ** 2, rtol=1e-8)


class HalfMSE:
    """L = ½ Σ (pred − target)²; the bug variant forgets the ½ in backward."""

    def __init__(self, bug=False):
        self.bug = bug

    def forward(self, pred, target):
        self._d = pred - target
        return 0.5 * float(np.sum(self._d ** 2))

    def backward(self):
        return (2.0 if self.bug else 1.0) * self._d


def test_gradcheck_loss(rng):
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert gradcheck_loss(HalfMSE(), pred, target).max_error < 1e-7
    assert gradcheck_loss(HalfMSE(bug=True), pred, target).errors["pred"] > 0.3
