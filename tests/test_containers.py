"""Residual, Concat, SkipConcat: gradients by finite differences and against a PyTorch ResNet block."""
import numpy as np
import pytest

from engine import Sequential, gradcheck
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


def test_residual_identity_gradcheck():
    rng = np.random.default_rng(0)
    layer = Residual(Sequential(Linear(4, 4, rng=rng), Tanh(), Linear(4, 4, rng=rng)))
    x = rng.standard_normal((3, 4))
    assert gradcheck(layer, x).max_error < 1e-6
    y = layer.forward(x)
    np.testing.assert_allclose(y - x, layer.block.forward(x))
    assert [n for n, _ in layer.named_parameters()] == ["block.0.weight", "block.0.bias", "block.2.weight", "block.2.bias"]


def test_resnet_blocks_gradcheck():
    rng = np.random.default_rng(1)
    net = Sequential(basic_block(2, rng), ReLU(), basic_block(3, rng, stride=2, Cin=2), ReLU(),
                     AdaptiveAvgPool2d(1), Flatten(), Linear(3, 2, rng=rng))
    x = rng.standard_normal((2, 2, 5, 5))
    res = gradcheck(net, x)
    assert res.max_error < 1e-6, str(res)


def test_resnet_block_matches_torch():
    torch = pytest.importorskip("torch", reason="PyTorch not installed: cross-checks skipped")
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
    sd = block.state_dict()
    assert set(sd) == set(tm.state_dict())
    tm.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
    x = rng.standard_normal((3, 3, 7, 6))
    y = block.forward(x)
    G = rng.standard_normal(y.shape)
    dx = block.backward(G)
    xt = torch.tensor(x, requires_grad=True)
    yt = tm(xt)
    yt.backward(torch.tensor(G))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-11)
    tp = dict(tm.named_parameters())
    for n, p in block.named_parameters():
        np.testing.assert_allclose(p.grad, tp[n].grad.numpy(), atol=1e-10, err_msg=n)
    for k, v in block.state_dict().items():          # running statistics updated alike
        np.testing.assert_allclose(v, tm.state_dict()[k].numpy(), atol=1e-12, err_msg=k)


def test_concat_and_skipconcat():
    rng = np.random.default_rng(3)
    c = Concat(Conv2d(2, 3, 3, padding=1, rng=rng), Conv2d(2, 1, 1, rng=rng), dim=1)
    x = rng.standard_normal((2, 2, 4, 4))
    assert c.forward(x).shape == (2, 4, 4, 4)
    assert gradcheck(c, x).max_error < 1e-6
    s = SkipConcat(Sequential(Conv2d(2, 3, 3, padding=1, rng=rng), Tanh()))
    y = s.forward(x)
    np.testing.assert_array_equal(y[:, :2], x)
    assert gradcheck(s, x).max_error < 1e-6
    assert [n for n, _ in s.named_parameters()] == ["1.0.weight", "1.0.bias"]
    last = Concat(Linear(3, 2, rng=rng), Linear(3, 4, rng=rng), dim=-1)
    assert gradcheck(last, rng.standard_normal((2, 3))).max_error < 1e-6


def test_backward_twice_and_input_grad_false():
    rng = np.random.default_rng(4)
    r = Residual(Conv2d(2, 2, 3, padding=1, rng=rng))
    x = rng.standard_normal((2, 2, 4, 4))
    y = r.forward(x)
    G = rng.standard_normal(y.shape)
    dx = r.backward(G)
    g = r.block.weight.grad.copy()
    assert r.backward(G, input_grad=False) is None
    np.testing.assert_allclose(r.block.weight.grad, 2 * g)
    assert dx.shape == x.shape


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


def test_digits_cnns_learn_quickly():
    """scripts/train_digits_cnn.py's models: two epochs already separate the digits well (the full
    runs, 30 epochs, reach >= 98.5%; that is the script's own exit status, not a unit test)."""
    from train_digits_cnn import train
    for name in ("plain", "resnet"):
        _, history, acc, _ = train(name, epochs=2, seed=0, progress=False)
        assert acc > 0.85, (name, acc)
        assert history["loss"][-1] < history["loss"][0]
