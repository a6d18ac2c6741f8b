"""Shared weights and reused layers (DESIGN.md, "Shared weights"): a layer or a Parameter used
several times in one forward gets the accumulated gradients torch gives, on both kernel paths;
shared parameters are counted once by parameters(), optimizers and gradcheck while state_dict
keeps every key; saved arrays live from a forward until its backward (nothing under no_grad,
dropped by zero_grad).

The finite-difference checks of these models are the "shared: …" cases of
scripts/gradcases_dense.py, run on both kernel paths by tests/test_gradient_cases.py."""
import numpy as np
import pytest

from engine import Layer, Sequential, gradcheck, no_grad, reference_kernels
from engine.optim import SGD, Adam
from crosscheck import crosscheck, torch_residual
from gradcases_dense import CASES, SHARED, reused_linear as reused, tied_linears as tied
from layers import MLP, GELU, Bilinear, Linear, ReLU, Residual, Sigmoid, Tanh

PATHS = ["fast", "reference"]


# ---- the models and their torch counterparts -------------------------------------------------
def torch_reused(torch, act="Tanh"):
    tl = torch.nn.Linear(3, 3)
    return torch.nn.Sequential(tl, getattr(torch.nn, act)(), tl)


def torch_tied(torch):
    t1, t2 = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    t2.weight = t1.weight                       # one nn.Parameter in both layers
    return torch.nn.Sequential(t1, torch.nn.Tanh(), t2)


def torch_mlp(torch, widths, act="Tanh"):
    mods = []
    for k in range(len(widths) - 1):
        mods.append(torch.nn.Linear(widths[k], widths[k + 1]))
        if k < len(widths) - 2:
            mods.append(getattr(torch.nn, act)())
    return torch.nn.Sequential(*mods)


def models(torch, rng):
    """(name, engine model, torch model) for every shared-weight pattern."""
    nn = torch.nn
    lin = Linear(3, 3, rng=rng)
    r = Residual(Sequential(Linear(3, 3, rng=rng), Tanh()))
    tr = torch_residual(torch, nn.Sequential(nn.Linear(3, 3), nn.Tanh()))
    m = MLP([3, 5, 3], activation="tanh", rng=rng)
    tm = torch_mlp(torch, [3, 5, 3])
    tl = nn.Linear(3, 3)
    return [
        ("Sequential(l, Tanh(), l)", reused(rng), torch_reused(torch)),
        ("Sequential(l, Sigmoid(), l)", reused(rng, Sigmoid), torch_reused(torch, "Sigmoid")),
        ("Sequential(l, GELU(), l)", reused(rng, GELU), torch_reused(torch, "GELU")),
        ("tied weights", tied(rng), torch_tied(torch)),
        ("Residual(Sequential(l, Tanh(), l))", Residual(reused(rng)), torch_residual(torch, torch_reused(torch))),
        ("Sequential(r, Tanh(), r)", Sequential(r, Tanh(), r), nn.Sequential(tr, nn.Tanh(), tr)),
        ("Residual(l, shortcut=l)", Residual(lin, shortcut=lin), torch_residual(torch, tl, tl)),
        ("Sequential(m, m), MLP", Sequential(m, m), nn.Sequential(tm, tm)),
    ]


# ---- against PyTorch -------------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_shared_weights_match_torch(torch, path):
    rng = np.random.default_rng(0)
    for name, model, tm in models(torch, rng):
        x = rng.standard_normal((5, 3))
        with reference_kernels(path == "reference"):
            res = crosscheck(model, tm, x)
        assert len(res.param_grads) == len(model.parameters()), name


@pytest.mark.parametrize("path", PATHS)
def test_mlp_used_twice_in_one_forward(torch, path):
    """Sequential(m, m) with equal input and output widths: both uses' saved quantities are kept
    apart (also in the fast path's buffers), the gradients accumulate as in torch, and the stored
    f_k afterwards are those of the second use."""
    rng = np.random.default_rng(1)
    for act, tact in [("tanh", "Tanh"), ("gelu", "GELU"), ("sigmoid", "Sigmoid")]:
        m = MLP([4, 6, 5, 4], activation=act, rng=rng)
        x = rng.standard_normal((7, 4))
        tm = torch_mlp(torch, [4, 6, 5, 4], tact)
        with reference_kernels(path == "reference"):
            res = crosscheck(Sequential(m, m), torch.nn.Sequential(tm, tm), x)
            stored = [a.copy() for a in m.preactivations]
            with no_grad():
                mid = m.forward(x)                            # the first use's output
        np.testing.assert_array_equal(stored[-1], res.outputs[0])
        np.testing.assert_allclose(stored[0], mid @ m.weights[0].T + m.biases[0], rtol=1e-13, atol=1e-14)


# ---- finite differences ----------------------------------------------------------------------
def test_gradient_table_has_the_shared_weight_cases():
    names = [n for n, _ in CASES]
    for name, _ in SHARED:
        assert name in names


def test_gradcheck_counts_a_shared_parameter_once(rng):
    r = gradcheck(tied(np.random.default_rng(3)), rng.standard_normal((1, 3)))
    assert set(r.errors) == {"x", "0.weight", "0.bias", "2.bias"} and r.passed(), str(r)
    r = gradcheck(reused(np.random.default_rng(4)), rng.standard_normal((2, 3)))
    assert set(r.errors) == {"x", "0.weight", "0.bias"} and r.passed(), str(r)


# ---- names, state dicts, optimizers ----------------------------------------------------------
def test_parameters_once_state_dict_every_key(torch):
    rng = np.random.default_rng(2)
    for model, tm, once, every in [
        (tied(rng), torch_tied(torch), ["0.weight", "0.bias", "2.bias"], ["0.weight", "0.bias", "2.weight", "2.bias"]),
        (reused(rng), torch_reused(torch), ["0.weight", "0.bias"], ["0.weight", "0.bias", "2.weight", "2.bias"]),
    ]:
        assert [n for n, _ in model.named_parameters()] == once == [n for n, _ in tm.named_parameters()]
        assert len(model.parameters()) == len(set(map(id, model.parameters()))) == len(once)
        assert [n for n, _ in model.named_parameters(remove_duplicate=False)] == every
        assert list(model.state_dict()) == every == list(tm.state_dict())
        sd = model.state_dict()
        np.testing.assert_array_equal(sd["0.weight"], sd["2.weight"])
        # torch's state dict (tied keys included) loads, and the shared Parameter stays shared
        model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        np.testing.assert_array_equal(model[2].weight.value, tm[0].weight.detach().numpy())
        assert model[0].weight is model[2].weight


@pytest.mark.parametrize("opt", ["SGD", "Adam"])
def test_optimizer_updates_a_tied_parameter_once_per_step(torch, opt):
    """Over 3 steps (zero_grad, forward, backward with a random upstream gradient, step) the
    engine's optimizer on a model with tied weights matches torch.optim on the same model."""
    rng = np.random.default_rng(5)
    model, tm = tied(rng), torch_tied(torch).double()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    if opt == "SGD":
        o, to = SGD(model.parameters(), lr=0.1, momentum=0.9), torch.optim.SGD(tm.parameters(), lr=0.1, momentum=0.9)
    else:
        o, to = Adam(model.parameters(), lr=0.05), torch.optim.Adam(tm.parameters(), lr=0.05)
    assert len(o.params) == 3 and len(to.param_groups[0]["params"]) == 3
    for step in range(3):
        x, G = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
        model.zero_grad()
        model.forward(x)
        model.backward(G)
        o.step()
        to.zero_grad()
        tm(torch.from_numpy(x)).backward(torch.from_numpy(G))
        to.step()
        for n, p in tm.named_parameters():
            np.testing.assert_allclose(model.state_dict()[n], p.detach().numpy(), rtol=1e-12, atol=1e-13,
                                       err_msg=f"step {step}: {n}")
        np.testing.assert_array_equal(model[0].weight.value, model[2].weight.value)


# ---- saved arrays: lifetime ------------------------------------------------------------------
def every_layer(model):
    """The model and every layer below it."""
    out, stack = [], [model]
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(c for _, c in layer.named_children())
    return out


def _lifetime_models(rng):
    return [reused(rng), tied(rng), Residual(reused(rng)), Sequential(MLP([3, 4, 3], rng=rng), ReLU()),
            MLP([3, 4, 3], activation="tanh", rng=rng)]


@pytest.mark.parametrize("path", PATHS)
def test_no_grad_saves_nothing_and_backward_releases(path, rng):
    x = rng.standard_normal((4, 3))
    for model in _lifetime_models(np.random.default_rng(6)):
        with reference_kernels(path == "reference"):
            with no_grad():
                y0 = model.forward(x)
            assert all(layer.pending_calls() == 0 for layer in every_layer(model)), model
            y = model.forward(x)
            np.testing.assert_array_equal(y, y0)
            assert any(layer.pending_calls() > 0 for layer in every_layer(model))
            model.backward(rng.standard_normal(y.shape))
        assert all(layer.pending_calls() == 0 for layer in every_layer(model)), model
    b = Bilinear(3, 2, 2, rng=0)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    with no_grad():
        b.forward(x1, x2)
    assert b.pending_calls() == 0
    b.forward(x1, x2)
    b.forward(x1, x2)
    assert b.pending_calls() == 2
    b.backward(rng.standard_normal((4, 2)))
    assert b.pending_calls() == 1


@pytest.mark.parametrize("path", PATHS)
def test_zero_grad_drops_a_forward_whose_backward_never_came(path, rng):
    """forward (no backward), zero_grad, forward, backward: the gradients of that last pair alone."""
    x_stray, x, G = rng.standard_normal((6, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    for make in (reused, tied, lambda r: Residual(reused(r)), lambda r: MLP([3, 4, 3], activation="tanh", rng=r)):
        model, fresh = make(np.random.default_rng(7)), make(np.random.default_rng(7))
        with reference_kernels(path == "reference"):
            model.forward(x_stray)
            model.zero_grad()
            assert all(layer.pending_calls() == 0 for layer in every_layer(model))
            model.forward(x)
            dx = model.backward(G)
            fresh.zero_grad()
            fresh.forward(x)
            dx_fresh = fresh.backward(G)
        np.testing.assert_array_equal(dx, dx_fresh)
        for (n, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
            np.testing.assert_array_equal(p.grad, q.grad, err_msg=n)


def test_backward_without_a_pending_forward_raises(rng):
    x, G = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    for model in _lifetime_models(np.random.default_rng(8)):
        with pytest.raises(RuntimeError, match=r"backward: no forward call waits for a backward"):
            model.backward(G)
        with no_grad():
            model.forward(x)
        with pytest.raises(RuntimeError, match=r"backward: no forward call waits"):
            model.backward(G)
        model.forward(x)
        model.backward(G)
        with pytest.raises(RuntimeError, match=r"backward: no forward call waits"):
            model.backward(G)


@pytest.mark.parametrize("path", PATHS)
def test_mlp_exposes_the_last_forward_also_under_no_grad(path, rng):
    """A forward under no_grad saves nothing for a backward, but the MLP's preactivations and
    activations are those of that forward (for analysis); the pending call's backward is not
    disturbed by it."""
    m = MLP([3, 5, 2], activation="tanh", rng=0)
    x1, x2, G = rng.standard_normal((4, 3)), rng.standard_normal((6, 3)), rng.standard_normal((4, 2))
    with reference_kernels(path == "reference"):
        m.forward(x1)
        with no_grad():
            m.forward(x2)
        assert m.pending_calls() == 1
        f0 = x2 @ m.weights[0].T + m.biases[0]
        np.testing.assert_allclose(m.preactivations[0], f0, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(m.activations[0], np.tanh(f0), rtol=1e-13, atol=1e-14)
        assert m.preactivations[1].shape == (6, 2)
        dx = m.backward(G)                                    # the call of x1
        g = m.grad.copy()
        m.zero_grad()
        m.forward(x1)
        np.testing.assert_array_equal(m.backward(G), dx)
        np.testing.assert_array_equal(m.grad, g)


# ---- the cross-check helper itself -----------------------------------------------------------
class WrongLinear(Linear):
    """A Linear whose weight gradient is 1% too large."""

    def backward(self, dy, *, input_grad=True):
        before = self.weight.grad.copy()
        dx = super().backward(dy, input_grad=input_grad)
        self.weight.grad[...] = before + 1.01 * (self.weight.grad - before)
        return dx


class Twice(Layer):
    """(f(x), f(x)) with one Linear f: two outputs, one shared layer; None upstream gradients
    are zero."""

    def __init__(self, rng):
        self.lin = Linear(3, 2, rng=rng)

    def forward(self, x, train=True):
        y1, y2 = self.lin.forward(x), self.lin.forward(x)
        self._save(y1.shape)
        return y1, y2

    def backward(self, g1, g2, *, input_grad=True):
        shape, = self._saved()
        self._release()
        dx = 0
        for g in (g2, g1):                                    # reverse order of the forward's calls
            dx = dx + self.lin.backward(np.zeros(shape) if g is None else g)
        return dx if input_grad else None


def test_crosscheck_catches_a_wrong_parameter_gradient(torch, rng):
    x = rng.standard_normal((4, 3))
    crosscheck(Linear(3, 2, rng=0), torch.nn.Linear(3, 2), x)
    with pytest.raises(AssertionError, match="weight"):
        crosscheck(WrongLinear(3, 2, rng=0), torch.nn.Linear(3, 2), x)


def test_crosscheck_handles_tuple_outputs_and_none_gradients(torch, rng):
    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x), self.lin(x)

    x = rng.standard_normal((4, 3))
    full = crosscheck(Twice(np.random.default_rng(0)), T(), x)
    half = crosscheck(Twice(np.random.default_rng(0)), T(), x, none_outputs=(1,))
    assert half.upstream[1] is None and len(full.outputs) == 2
    np.testing.assert_allclose(half.param_grads["lin.bias"], full.upstream[0].sum(0), rtol=1e-13)
