"""Winograd's F(2×2, 3×3) (layers/winograd.py): the transforms, and the kernels against the naive sums."""
import numpy as np
import pytest

import layers.conv
from engine import gradcheck
from engine.blas import gemm_for
from layers import Conv2d
from layers.conv import conv2d_backward_naive, conv2d_forward_naive
from layers.winograd import (conv3x3_backward, conv3x3_forward, tiles_per_sample, weight_transform,
                             weight_transform_adjoint)
from torchcheck import run_both


def _run(N, C, Co, H, W, p, nt=2, S=1, dtype=np.float64, seed=0, input_grad=True):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Co, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(Co).astype(dtype)
    OH, OW = H + 2 * p - 2, W + 2 * p - 2
    T1 = tiles_per_sample(OH, OW)
    U = np.empty((16, Co, C), dtype)
    weight_transform(w, U)
    Vs, Ms = np.empty((nt, 16, C, S * T1), dtype), np.empty((nt, 16, Co, S * T1), dtype)
    G = rng.standard_normal((N, Co, OH, OW)).astype(dtype)
    dU, db, dUs = np.zeros((16, Co, C), dtype), np.zeros(Co, dtype), np.empty((nt, 16, Co, C + 1), dtype)
    # nt chunks (prange(nt)), on however many threads the machine has
    z = conv3x3_forward(x, U, b, p, p, OH, OW, Vs, Ms, nt, gemm_for(dtype))
    dx = conv3x3_backward(G.reshape(N, Co, -1), x, U, dU, db, p, p, OH, OW, Vs, Ms, dUs, nt, input_grad,
                          gemm_for(dtype))
    dw = np.zeros_like(w)
    weight_transform_adjoint(dU, dw)
    zn = conv2d_forward_naive(x, w, b, 1, 1, p, p, 1, 1, 1, OH, OW)
    dwn, dbn = np.zeros_like(w), np.zeros_like(b)
    dxn = conv2d_backward_naive(G, x, w, dwn, dbn, 1, 1, p, p, 1, 1, 1)
    return (z.reshape(zn.shape), dx, dw, db), (zn, dxn, dwn, dbn)


@pytest.mark.parametrize("N,C,Co,H,W,p", [(2, 3, 4, 6, 6, 1), (3, 2, 5, 7, 5, 1), (2, 3, 2, 5, 8, 0),
                                          (1, 2, 3, 4, 4, 3), (5, 4, 3, 9, 9, 1), (1, 1, 1, 3, 3, 0),
                                          (2, 2, 2, 2, 3, 2)])
def test_kernels_equal_naive_sums(N, C, Co, H, W, p):
    """Odd and even output sizes (a half tile at the edge), padding 0 to 3, one channel, batch 1."""
    got, want = _run(N, C, Co, H, W, p)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nt,S", [(1, 1), (1, 3), (2, 2), (3, 1), (3, 2)])
def test_threads_and_tile_batches_agree(nt, S):
    got, want = _run(5, 3, 4, 7, 8, 1, nt=nt, S=S)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)


def test_float32_close_to_float64():
    got32, _ = _run(3, 4, 5, 9, 10, 1, dtype=np.float32)
    got64, _ = _run(3, 4, 5, 9, 10, 1)
    for g, w in zip(got32, got64):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-5 * np.abs(w).max())


def test_no_input_grad_still_gives_parameter_grads():
    got, want = _run(2, 3, 2, 6, 6, 1, input_grad=False)
    assert got[1].size == 0
    np.testing.assert_allclose(got[2], want[2], rtol=1e-12, atol=1e-12)


def test_weight_transform_adjoint_is_the_adjoint():
    """<U(w), e> = <w, Uᵀ(e)> for random w and e: the backward maps ∂ℓ/∂U exactly to ∂ℓ/∂ω."""
    rng = np.random.default_rng(2)
    w = rng.standard_normal((3, 2, 3, 3))
    e = rng.standard_normal((16, 3, 2))
    U = np.empty((16, 3, 2))
    weight_transform(w, U)
    wt = np.zeros_like(w)
    weight_transform_adjoint(e, wt)
    assert abs((U * e).sum() - (w * wt).sum()) < 1e-12 * np.abs(U * e).sum()


def test_workspace_too_small_is_refused():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="Vs"):
        conv3x3_forward(x, np.zeros((16, 1, 1)), np.zeros(1), 1, 1, 4, 4, np.empty((1, 16, 1, 3)),
                        np.empty((1, 16, 1, 3)), 1, gemm_for(np.float64))


@pytest.fixture
def force_winograd(monkeypatch):
    monkeypatch.setattr(layers.conv, "WINOGRAD_MIN_CHANNELS", 1)
    monkeypatch.setattr(layers.conv, "WINOGRAD_MIN_WIDTH", 1)


def test_layer_uses_it_where_it_applies():
    assert Conv2d(16, 32, 3, padding=1)._winograd(16, 28)
    assert not Conv2d(3, 16, 3, padding=1)._winograd(3, 32)          # too few channels
    assert not Conv2d(16, 32, 3, padding=1)._winograd(16, 8)         # too narrow
    assert not Conv2d(16, 32, 3, stride=2)._winograd(16, 28)
    assert not Conv2d(16, 32, 3, dilation=2)._winograd(16, 28)
    assert not Conv2d(16, 32, 3, groups=2)._winograd(16, 28)
    assert not Conv2d(16, 32, (3, 1))._winograd(16, 28)


@pytest.mark.parametrize("padding", [0, 1, "same", 2])
def test_layer_gradcheck(force_winograd, padding):
    rng = np.random.default_rng(3)
    layer = Conv2d(2, 3, 3, padding=padding, rng=rng)
    x = rng.standard_normal((2, 2, 5, 6))
    res = gradcheck(layer, x, seed=4)
    assert res.max_error < 1e-6, str(res)


@pytest.mark.parametrize("padding", [0, 1, 3])
def test_layer_matches_torch_float64(force_winograd, torch, padding):
    rng = np.random.default_rng(5)
    layer = Conv2d(4, 3, 3, padding=padding, rng=rng)
    x = rng.standard_normal((2, 4, 7, 6))
    tm = torch.nn.Conv2d(4, 3, 3, padding=padding).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    y, dx, yt, dxt = run_both(layer, tm, x, seed=6)
    np.testing.assert_allclose(y, yt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, dxt, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, tm.weight.grad.numpy(), rtol=0, atol=1e-11)
    np.testing.assert_allclose(layer.bias.grad, tm.bias.grad.numpy(), rtol=0, atol=1e-11)
