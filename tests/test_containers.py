"""Residual, Concat, SkipConcat: against PyTorch (tests/crosscheck.py) over dense layers on both
kernel paths and as a ResNet block, a ResNet by finite differences, the backward contract, a
forward refused part-way, refusals.

The finite-difference checks of Residual and Concat over dense layers are cases of
scripts/gradcases_dense.py, those of the conv-bn-relu Residual and of SkipConcat of
scripts/gradcases_norm.py; tests/test_gradient_cases.py runs them on both kernel paths."""
import numpy as np
import pytest

from crosscheck import crosscheck, torch_concat, torch_residual
from engine import Sequential, gradcheck, reference_kernels
from layers.activations import ReLU, Tanh
from layers.containers import Concat, Residual, SkipConcat
from layers.conv import Conv2d
from layers.dense import Linear
from layers.norm import BatchNorm2d
from layers.pooling import AdaptiveAvgPool2d, Flatten, MaxPool2d


def basic_block(C, rng, stride=1, Cin=None):
    """ResNet basic block: conv-bn-relu-conv-bn (+ shortcut), He et al. 2016."""
    Cin = Cin or C
    body = Sequential(Conv2d(Cin, C, 3, stride=stride, padding=1, bias=False, rng=rng), BatchNorm2d(C), ReLU(),
                      Conv2d(C, C, 3, padding=1, bias=False, rng=rng), BatchNorm2d(C))
    short = None
    if stride != 1 or Cin != C:
        short = Sequential(Conv2d(Cin, C, 1, stride=stride, bias=False, rng=rng), BatchNorm2d(C))
    return Residual(body, short)


def test_residual_identity_forward_and_names():
    rng = np.random.default_rng(0)
    layer = Residual(Sequential(Linear(4, 4, rng=rng), Tanh(), Linear(4, 4, rng=rng)))
    x = rng.standard_normal((3, 4))
    y = layer.forward(x)
    np.testing.assert_allclose(y - x, layer.block.forward(x), rtol=1e-13, atol=1e-14)
    assert [n for n, _ in layer.named_parameters()] == ["block.0.weight", "block.0.bias", "block.2.weight", "block.2.bias"]


@pytest.mark.parametrize("path", ["fast", "reference"])
def test_residual_and_concat_over_dense_layers_match_torch(torch, path):
    rng = np.random.default_rng(5)
    nn = torch.nn
    x = rng.standard_normal((4, 3))
    cases = [
        (Residual(Sequential(Linear(3, 5, rng=rng), Tanh(), Linear(5, 3, rng=rng))),
         torch_residual(torch, nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 3)))),
        (Residual(Sequential(Linear(3, 2, rng=rng), Tanh()), shortcut=Linear(3, 2, bias=False, rng=rng)),
         torch_residual(torch, nn.Sequential(nn.Linear(3, 2), nn.Tanh()), nn.Linear(3, 2, bias=False))),
        (Concat(Linear(3, 2, rng=rng), Sequential(Linear(3, 4, rng=rng), Tanh()), dim=-1),
         torch_concat(torch, nn.Linear(3, 2), nn.Sequential(nn.Linear(3, 4), nn.Tanh()), dim=-1)),
        (SkipConcat(Linear(3, 2, rng=rng)),
         torch_concat(torch, nn.Identity(), nn.Linear(3, 2), dim=1)),
    ]
    for model, tm in cases:
        with reference_kernels(path == "reference"):
            crosscheck(model, tm, x)


def test_resnet_blocks_gradcheck():
    rng = np.random.default_rng(1)
    net = Sequential(basic_block(2, rng), ReLU(), basic_block(3, rng, stride=2, Cin=2), ReLU(),
                     AdaptiveAvgPool2d(1), Flatten(), Linear(3, 2, rng=rng))
    x = rng.standard_normal((2, 2, 5, 5))
    res = gradcheck(net, x)
    assert res.max_error < 1e-6, str(res)


def test_resnet_block_matches_torch(torch):
    rng = np.random.default_rng(2)
    block = basic_block(4, rng, stride=2, Cin=3)

    class TorchBlock(torch.nn.Module):
        def __init__(self):
            super().__init__()
            nn = torch.nn
            self.block = nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                                       nn.Conv2d(4, 4, 3, 1, 1, bias=False), nn.BatchNorm2d(4))
            self.shortcut = nn.Sequential(nn.Conv2d(3, 4, 1, 2, bias=False), nn.BatchNorm2d(4))

        def forward(self, x):
            return self.block(x) + self.shortcut(x)

    tm = TorchBlock().double()
    assert set(block.state_dict()) == set(tm.state_dict())
    x = rng.standard_normal((3, 3, 7, 6))
    crosscheck(block, tm, x, rtol=1e-10, atol=1e-10)
    for k, v in block.state_dict().items():          # running statistics updated alike
        np.testing.assert_allclose(v, tm.state_dict()[k].numpy(), atol=1e-12, err_msg=k)


def test_concat_and_skipconcat():
    rng = np.random.default_rng(3)
    c = Concat(Conv2d(2, 3, 3, padding=1, rng=rng), Conv2d(2, 1, 1, rng=rng), dim=1)
    x = rng.standard_normal((2, 2, 4, 4))
    assert c.forward(x).shape == (2, 4, 4, 4)
    res = gradcheck(c, x)
    assert res.passed(), str(res)
    s = SkipConcat(Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), Tanh()))
    y = s.forward(x)
    np.testing.assert_array_equal(y[:, :2], x)
    assert [n for n, _ in s.named_parameters()] == ["1.0.weight", "1.0.bias"]


@pytest.mark.parametrize("make", [lambda r: Residual(Linear(3, 3, rng=r)),
                                  lambda r: Concat(Linear(3, 3, rng=r), Tanh(), dim=1)], ids=["residual", "concat"])
def test_two_forward_backward_pairs_and_input_grad_false(make):
    rng = np.random.default_rng(4)
    r = make(rng)
    x = rng.standard_normal((2, 3))
    y = r.forward(x)
    G = rng.standard_normal(y.shape)
    dx = r.backward(G)
    g = r.parameters()[0].grad.copy()
    with pytest.raises(RuntimeError, match=r"backward: no forward call waits"):   # one backward per forward
        r.backward(G)
    r.forward(x)
    assert r.backward(G, input_grad=False) is None
    np.testing.assert_allclose(r.parameters()[0].grad, 2 * g, rtol=1e-15)
    assert dx.shape == x.shape and r.pending_calls() == 0


def test_forward_refused_part_way_leaves_no_saved_call(rng):
    """The block's second layer refuses the first one's output: nothing stays saved anywhere, so
    the next forward/backward pair runs as if the refused one had never happened."""
    first, second = Linear(3, 4, rng=0), Linear(3, 3, rng=1)
    for model in (Residual(Sequential(first, second)), Concat(Linear(3, 2, rng=2), Sequential(first, second))):
        x = rng.standard_normal((2, 3))
        with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\), got \(2, 4\)"):
            model.forward(x)
        assert model.pending_calls() == first.pending_calls() == second.pending_calls() == 0
        assert all(b.pending_calls() == 0 for b in getattr(model, "branches", []))


def test_errors():
    with pytest.raises(TypeError, match="block"):
        Residual(3)
    with pytest.raises(TypeError, match="shortcut"):
        Residual(ReLU(), shortcut="id")
    with pytest.raises(ValueError, match="block: output shape"):
        Residual(MaxPool2d(2)).forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="branches"):
        Concat()
    with pytest.raises(ValueError, match=r"branches\[1\]"):
        Concat(ReLU(), MaxPool2d(2)).forward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(TypeError, match="dtype"):
        Residual(Conv2d(1, 1, 1), shortcut=Conv2d(1, 1, 1, dtype=np.float32))


def test_dims_booleans_and_0d_inputs_refused_by_name(rng):
    """Concat's dim through check_dim against the outputs' rank (dim=5 on 2-D outputs was read as
    5 % 2 = 1); train and input_grad through check_bool; a 0-d input comes back 0-d through a
    Residual of elementwise layers and is refused by a Concat (no axis to join along)."""
    x = rng.standard_normal((2, 3))
    for model in (Concat(ReLU(), Tanh(), dim=5), SkipConcat(Tanh(), dim=-3)):
        with pytest.raises(ValueError, match=r"dim: expected an axis in \[-2, 1\] .*\(x of shape \(2, 3\)\)"):
            model.forward(x)
        assert model.pending_calls() == 0 and all(b.pending_calls() == 0 for b in model.branches)
    with pytest.raises(TypeError, match="dim: expected an int, got bool"):
        Concat(ReLU(), dim=True)
    with pytest.raises(TypeError, match="block: expected a Layer"):
        SkipConcat(None)
    r, c = Residual(Tanh()), Concat(ReLU(), Tanh(), dim=1)
    for model in (r, c):
        for v in ("False", 0, None):
            with pytest.raises(TypeError, match="train: expected True or False"):
                model.forward(x, train=v)
        model.forward(x)
        with pytest.raises(TypeError, match="input_grad: expected True or False"):
            model.backward(rng.standard_normal(model.forward(x).shape), input_grad="no")
        model.zero_grad()
    y = r.forward(np.array(0.5))
    dx = r.backward(np.array(1.0))
    assert isinstance(y, np.ndarray) and isinstance(dx, np.ndarray) and y.shape == dx.shape == ()
    with pytest.raises(ValueError, match="x: expected an array with at least 1 dimension"):
        c.forward(np.array(0.5))
    assert c.pending_calls() == 0


@pytest.mark.parametrize("make", [lambda: Residual(Sequential(Linear(3, 3, rng=0), Linear(3, 3, rng=0))),
                                  lambda: Concat(Linear(3, 2, rng=0), Linear(3, 3, rng=1))],
                         ids=["residual", "concat"])
def test_backward_refused_by_the_container_keeps_every_call(make, rng):
    """dy of the wrong dtype is refused by the container itself, before it releases its call (it was
    refused by a layer inside, after the container had dropped its own call), and the correct
    backward afterwards works."""
    model = make()
    x = rng.standard_normal((2, 3))
    y = model.forward(x)
    pending = [(n, l.pending_calls()) for n, l in model.named_layers()]
    with pytest.raises(TypeError, match="dy: expected dtype float64, got float32"):
        model.backward(rng.standard_normal(y.shape).astype(np.float32))
    assert [(n, l.pending_calls()) for n, l in model.named_layers()] == pending
    assert model.backward(rng.standard_normal(y.shape)).shape == x.shape


def test_digits_cnns_learn_quickly():
    """scripts/train_digits_cnn.py's models: two epochs already separate the digits well (the full
    runs, 30 epochs, reach >= 98.5%; that is the script's own exit status, not a unit test)."""
    from train_digits_cnn import train
    for name in ("plain", "resnet"):
        _, history, acc, _ = train(name, epochs=2, seed=0, progress=False)
        assert acc > 0.85, (name, acc)
        assert history["loss"][-1] < history["loss"][0]
