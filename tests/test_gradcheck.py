"""engine.gradcheck: passes correct layers and catches wrong backward passes whatever the seed;
several inputs (integer ones not perturbed, None as their gradient), several and nested outputs
(skip_outputs), the floored element-wise error and the scales it reports."""
import numpy as np
import pytest

from engine import Layer, Parameter, Sequential, gradcheck, gradcheck_loss
from engine.gradcheck import FLOOR, GradcheckResult, numeric_grad, rel_error
from layers import Linear, Tanh


class Affine(Layer):
    """y = x ⊙ w + b (elementwise over the features), with a backward that can be made wrong."""

    def __init__(self, n, bug=None, seed=0):
        r = np.random.default_rng(seed)
        self.w = Parameter(r.standard_normal(n))
        self.b = Parameter(r.standard_normal(n))
        self.bug = bug

    def forward(self, x, train=True):
        self._save(x)
        return x * self.w.value + self.b.value

    def backward(self, dy, *, input_grad=True):
        x, = self._saved()
        self._release()
        if self.bug == "ignore_dy":            # right shapes, but as if dy were all ones
            dy = np.full_like(dy, 1.0)     # the bug gradcheck must catch
        scale = {"factor": 1.1, "one_percent": 1.01}.get(self.bug, 1.0)
        self.w.grad += scale * (dy * x).sum(0)
        self.b.grad += dy.sum(0) if self.bug != "bias_sign" else -dy.sum(0)
        return dy * self.w.value if input_grad else None


class Square(Layer):
    """y = x², no parameters, optionally with a backward missing its factor 2."""

    def __init__(self, bug=False):
        self.bug = bug

    def forward(self, x, train=True):
        self._save(x)
        return x * x

    def backward(self, dy, *, input_grad=True):
        x, = self._saved()
        self._release()
        return (1.0 if self.bug else 2.0) * x * dy


class Product(Layer):
    """Two inputs: y = a ⊙ b; `bug` makes one input's gradient 1% wrong."""

    def __init__(self, bug=None):
        self.bug = bug

    def forward(self, a, b, train=True):
        self._save(a, b)
        return a * b

    def backward(self, dy, *, input_grad=True):
        a, b = self._saved()
        self._release()
        return dy * b * (1.01 if self.bug == "a" else 1.0), dy * a * (1.01 if self.bug == "b" else 1.0)


class AddRow(Layer):
    """An embedding-like layer with an integer input: y[n] = x[n] + E[idx[n]]. Records every idx
    its forward sees; `bug` returns an array as the integer input's gradient."""

    def __init__(self, V, D, bug=False):
        self.E = Parameter(np.random.default_rng(1).standard_normal((V, D)))
        self.bug = bug
        self.seen = []

    def forward(self, x, idx, train=True):
        self.seen.append(idx.copy())
        self._save(idx)
        return x + self.E.value[idx]

    def backward(self, dy, *, input_grad=True):
        idx, = self._saved()
        self._release()
        np.add.at(self.E.grad, idx, dy)
        return dy, (np.zeros(idx.shape) if self.bug else None)


class TwoOutputs(Layer):
    """y = (x ⊙ w, (x², tanh x)): a nested tuple of outputs; `bug` makes the gradient through
    the second output (x²) 50% too large."""

    def __init__(self, n, bug=False):
        self.w = Parameter(np.random.default_rng(2).standard_normal(n))
        self.bug = bug

    def forward(self, x, train=True):
        self._save(x)
        return x * self.w.value, (x * x, np.tanh(x))

    def backward(self, g0, g12, *, input_grad=True):
        x, = self._saved()
        self._release()
        g1, g2 = g12
        dx = np.zeros_like(x)
        if g0 is not None:
            self.w.grad += (g0 * x).sum(0)
            dx += g0 * self.w.value
        if g1 is not None:
            dx += (3.0 if self.bug else 2.0) * x * g1
        if g2 is not None:
            dx += (1 - np.tanh(x) ** 2) * g2
        return dx


def test_correct_layer_passes(rng):
    layer = Affine(4)
    r = gradcheck(layer, rng.standard_normal((3, 4)))
    assert set(r.errors) == set(r.scales) == {"x", "w", "b"}
    assert r.passed() and r.max_error < 1e-7, str(r)
    assert all(v > 0 for v in r.scales.values())
    assert layer.pending_calls() == 0                         # the perturbed forwards record nothing


def test_scales_are_the_largest_numeric_gradient(rng):
    layer = Affine(3)
    x = rng.standard_normal((2, 3))
    r = gradcheck(layer, x, seed=4)
    G = np.random.default_rng(4).standard_normal((2, 3))      # gradcheck's upstream gradient
    assert r.scales["b"] == pytest.approx(np.abs(G.sum(0)).max(), rel=1e-6)
    assert r.scales["x"] == pytest.approx(np.abs(G * layer.w.value).max(), rel=1e-6)
    assert f"(|g| ≤ {r.scales['x']:.1e})" in str(r)


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


# ---- the verdict does not depend on the seed -------------------------------------------------
def _tanh_net(r):
    return Sequential(Linear(3, 4, rng=r), Tanh(), Linear(4, 2, rng=r))


@pytest.mark.parametrize("seed", range(5))
def test_verdict_does_not_depend_on_the_seed(seed):
    """Correct layers pass and a 1% wrong gradient fails for every seed, the inputs fixed."""
    x = np.random.default_rng(100).standard_normal((4, 3))
    ok = gradcheck(Affine(3), x, seed=seed)
    assert ok.passed(), f"seed {seed}: {ok}"
    net = gradcheck(_tanh_net(np.random.default_rng(7)), x, seed=seed)
    assert net.passed(), f"seed {seed}: {net}"
    bad = gradcheck(Affine(3, bug="one_percent"), x, seed=seed)
    assert not bad.passed() and bad.errors["w"] > 1e-3 and bad.errors["b"] < 1e-6, f"seed {seed}: {bad}"


@pytest.mark.parametrize("seed", range(5))
def test_verdict_does_not_depend_on_the_drawn_model(seed):
    """A model drawn from each seed (not only the upstream gradient) passes."""
    r = np.random.default_rng(seed)
    res = gradcheck(_tanh_net(r), r.standard_normal((5, 3)), seed=seed)
    assert res.passed(), f"seed {seed}: {res}"


def test_inputs_are_not_modified(rng):
    x = rng.standard_normal((3, 4))
    x0 = x.copy()
    layer = Affine(4)
    w0 = layer.w.value.copy()
    gradcheck(layer, x)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(layer.w.value, w0)


# ---- several inputs --------------------------------------------------------------------------
def test_several_inputs_get_names(rng):
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    r = gradcheck(Product(), a, b)
    assert set(r.errors) == {"x0", "x1"} and r.passed()
    r = gradcheck(Product(), a, b, input_names=["query", "key"])
    assert set(r.errors) == {"query", "key"}
    with pytest.raises(ValueError, match=r"input_names: expected 2 names, got 1"):
        gradcheck(Product(), a, b, input_names=["query"])


@pytest.mark.parametrize("which", ["a", "b"])
def test_wrong_gradient_of_one_input_of_several_is_caught(rng, which):
    a, b = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    r = gradcheck(Product(bug=which), a, b)
    wrong, right = ("x0", "x1") if which == "a" else ("x1", "x0")
    assert r.errors[wrong] > 1e-3 and r.errors[right] < 1e-7 and not r.passed()


def test_integer_inputs_are_not_perturbed_and_get_none(rng):
    x = rng.standard_normal((4, 3))
    idx = np.array([2, 0, 2, 1])
    layer = AddRow(3, 3)
    r = gradcheck(layer, x, idx, input_names=["x", "idx"])
    assert set(r.errors) == {"x", "E"} and r.passed(), str(r)   # no entry for the integer input
    assert len(layer.seen) > 1 and all(np.array_equal(s, idx) for s in layer.seen)
    assert idx.tolist() == [2, 0, 2, 1]
    with pytest.raises(ValueError, match=r"AddRow.backward: expected None as the gradient of the "
                                         r"non-floating input 'idx'"):
        gradcheck(AddRow(3, 3, bug=True), x, idx, input_names=["x", "idx"])


def test_missing_gradient_of_a_floating_input_is_refused(rng):
    class NoGrad(Product):
        def backward(self, dy, *, input_grad=True):
            da, _ = super().backward(dy)
            return da, None
    with pytest.raises(ValueError, match=r"NoGrad.backward returned no gradient for the floating input 'x1'"):
        gradcheck(NoGrad(), rng.standard_normal((2, 2)), rng.standard_normal((2, 2)))


# ---- several outputs -------------------------------------------------------------------------
def test_nested_outputs_are_checked_and_can_be_skipped(rng):
    x = rng.standard_normal((3, 4))
    ok = gradcheck(TwoOutputs(4), x)
    assert set(ok.errors) == {"x", "w"} and ok.passed(), str(ok)
    for skip in [(0,), (1,), (2,), (0, 2), (1, 2)]:
        r = gradcheck(TwoOutputs(4), x, skip_outputs=skip)
        assert r.passed(), f"skip {skip}: {r}"
    assert gradcheck(TwoOutputs(4), x, skip_outputs=(0,)).scales["w"] == 0.0   # w reaches only output 0
    bad = gradcheck(TwoOutputs(4, bug=True), x)
    assert bad.errors["x"] > 1e-2 and not bad.passed()
    assert gradcheck(TwoOutputs(4, bug=True), x, skip_outputs=(1,)).passed()  # the bug is on output 1 only
    assert not gradcheck(TwoOutputs(4, bug=True), x, skip_outputs=(0, 2)).passed()


def test_gradcheck_refuses_non_layers_and_float32(rng):
    with pytest.raises(TypeError, match=r"layer: expected a Layer, got function"):
        gradcheck(lambda x: x, rng.standard_normal(3))
    with pytest.raises(TypeError, match=r"inputs\[0\]: gradient checks run in float64, got float32"):
        gradcheck(Square(), rng.standard_normal(3).astype(np.float32))
    with pytest.raises(TypeError, match=r"inputs\[1\]: expected a numpy.ndarray, got list"):
        gradcheck(Product(), rng.standard_normal(3), [1.0, 2.0, 3.0])


# ---- the floored element-wise error ----------------------------------------------------------
def test_rel_error_is_element_wise_with_a_floor():
    assert rel_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == 0.0
    assert rel_error(np.array([2.0]), np.array([1.0])) == pytest.approx(1 / 3)
    # element-wise: one wrong small element is not hidden by large correct ones
    assert rel_error(np.array([100.0, 3.0]), np.array([100.0, 2.8])) == pytest.approx(0.2 / 5.8)
    # ... but an element far below the array's largest is judged against FLOOR × that scale
    a, n = np.array([1.0, 2e-9]), np.array([1.0, 1e-9])
    assert rel_error(a, n) == pytest.approx(1e-9 / (FLOOR * 2.0))
    assert rel_error(np.array([1e-12]), np.array([0.0])) == pytest.approx(1.0)   # all tiny: no scale to hide behind
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match=r"analytic gradient: expected shape \(2,\), got \(3,\)"):
        rel_error(np.zeros(3), np.zeros(2))


def test_result_object():
    r = GradcheckResult({"x": 1e-9, "w": 3e-6}, {"x": 0.5, "w": 2.0})
    assert r.max_error == 3e-6 and not r.passed() and r.passed(tol=1e-5)
    assert "w: 3.0e-06 (|g| ≤ 2.0e+00)" in str(r) and "x: 1.0e-09 (|g| ≤ 5.0e-01)" in str(r)
    assert GradcheckResult().max_error == 0.0


def test_numeric_grad_of_a_known_function():
    u = np.array([[1.0, -2.0], [0.5, 3.0]])
    g = numeric_grad(lambda: float(np.sum(u ** 3)), u)
    np.testing.assert_allclose(g, 3 * u ** 2, rtol=1e-8)
    with pytest.raises(ValueError, match=r"contiguous"):
        numeric_grad(lambda: 0.0, np.zeros((3, 4))[:, :2])


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
    r = gradcheck_loss(HalfMSE(), pred, target)
    assert r.max_error < 1e-7 and r.scales["pred"] == pytest.approx(np.abs(pred - target).max(), rel=1e-6)
    assert gradcheck_loss(HalfMSE(bug=True), pred, target).errors["pred"] > 0.3
