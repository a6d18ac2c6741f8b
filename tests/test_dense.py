"""layers.dense.Linear: f = β + Ω h, against PyTorch, by hand, by finite differences; naive and
fast kernels; 1 vs 2 threads; float32; the backward contract and refusals."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import gradcheck
from layers import Linear
from engine.blas import gemm_for
from layers import dense as D

HYP = settings(max_examples=15, deadline=None, derandomize=True)


def _setup(seed, N, d_in, d_out, bias, dtype=np.float64):
    r = np.random.default_rng(seed)
    layer = Linear(d_in, d_out, bias=bias, dtype=dtype, rng=r)
    x = r.standard_normal((N, d_in)).astype(dtype)
    dy = r.standard_normal((N, d_out)).astype(dtype)
    return layer, x, dy


# ---- against PyTorch and by hand -----------------------------------------------------------
@HYP
@given(N=st.integers(1, 6), d_in=st.integers(1, 5), d_out=st.integers(1, 5), bias=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_linear_matches_torch(torch, N, d_in, d_out, bias, seed):
    layer, x, dy = _setup(seed, N, d_in, d_out, bias)
    tl = torch.nn.Linear(d_in, d_out, bias=bias).double()
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    y = layer.forward(x)
    dx = layer.backward(dy)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = tl(xt)
    yt.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.weight.grad, tl.weight.grad.numpy(), rtol=1e-12, atol=1e-14)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, tl.bias.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_linear_torch_weights_copied_in(torch, rng):
    tl = torch.nn.Linear(4, 3).double()
    layer = Linear(4, 3)
    layer.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(layer.forward(x), tl(torch.from_numpy(x)).detach().numpy(), rtol=1e-13, atol=1e-15)


def test_linear_by_hand(rng):
    layer, x, dy = _setup(1, 4, 3, 2, True)
    W, b = layer.weight.value, layer.bias.value
    assert W.shape == (2, 3) and b.shape == (2,)                      # Ω (out, in), β (out,)
    np.testing.assert_allclose(layer.forward(x), x @ W.T + b, rtol=1e-14)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy @ W, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(0), rtol=1e-13, atol=1e-15)


def test_linear_without_bias(rng):
    layer = Linear(3, 2, bias=False, rng=0)
    assert [n for n, _ in layer.named_parameters()] == ["weight"] and list(layer.state_dict()) == ["weight"]
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.forward(x), x @ layer.weight.value.T, rtol=1e-14)
    layer.backward(rng.standard_normal((4, 2)))
    assert np.all(layer._zero_bias == 0)                              # the stand-in β stays 0
    assert "bias=False" in repr(layer)


# ---- initialisation ------------------------------------------------------------------------
def test_linear_init_as_torch_and_seeded():
    layer = Linear(16, 300, rng=0)
    bound = 1 / np.sqrt(16)
    for v in (layer.weight.value, layer.bias.value):
        assert v.dtype == np.float64 and np.abs(v).max() <= bound and np.abs(v).max() > 0.9 * bound
    np.testing.assert_array_equal(Linear(16, 300, rng=0).weight.value, layer.weight.value)
    assert not np.array_equal(Linear(16, 300, rng=1).weight.value, layer.weight.value)
    l32 = Linear(4, 3, dtype=np.float32, rng=np.random.default_rng(0))
    assert l32.weight.dtype == l32.bias.dtype == l32.weight.grad.dtype == np.float32
    assert np.all(l32.weight.grad == 0)


# ---- finite differences --------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("N,d_in,d_out", [(1, 3, 2), (5, 4, 3), (2, 1, 1)])
def test_linear_gradcheck(N, d_in, d_out, bias):
    layer, x, _ = _setup(3, N, d_in, d_out, bias)
    r = gradcheck(layer, x)
    assert set(r.errors) == ({"x", "weight", "bias"} if bias else {"x", "weight"})
    assert r.max_error < 1e-6, str(r)


# ---- naive and fast kernels, serial and parallel -------------------------------------------
@pytest.mark.parametrize("N,d_in,d_out", [(1, 3, 2), (7, 5, 4), (3, 1, 6)])
def test_naive_and_fast_kernels_agree(N, d_in, d_out, rng):
    # float64 only: compiling the naive loops for float32 too costs ~10 s of CPU; the fast
    # kernels' float32 results are compared with float64 in test_float32_close_to_float64
    dtype = np.float64
    x = rng.standard_normal((N, d_in)).astype(dtype)
    W = rng.standard_normal((d_out, d_in)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    df = rng.standard_normal((N, d_out)).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for nt in (1, 2, 3):                  # more chunks than rows included (N = 1)
        np.testing.assert_allclose(D.linear_forward(x, W, b, gemm_for(dtype), nthreads=nt), D.linear_forward_naive(x, W, b),
                                   rtol=tol, atol=tol)
    dW0, db0 = rng.standard_normal(W.shape).astype(dtype), rng.standard_normal(d_out).astype(dtype)
    dWn, dbn = dW0.copy(), db0.copy()
    dxn = D.linear_backward_naive(df, x, W, dWn, dbn)                # accumulates onto dW0, db0
    for nt in (1, 2, 3):
        dWf, dbf = dW0.copy(), db0.copy()
        dxf = D.linear_backward(df, x, W, dWf, dbf, True, gemm_for(dtype), nthreads=nt)
        np.testing.assert_allclose(dxf, dxn, rtol=tol, atol=tol)
        np.testing.assert_allclose(dWf, dWn, rtol=tol, atol=tol)
        np.testing.assert_allclose(dbf, dbn, rtol=tol, atol=tol)
        assert dxf.dtype == dWf.dtype == dtype
        dWg, dbg = dW0.copy(), db0.copy()
        assert D.linear_backward(df, x, W, dWg, dbg, False, gemm_for(dtype), nthreads=nt).shape[0] == 0
        np.testing.assert_allclose(dWg, dWn, rtol=tol, atol=tol)
    np.testing.assert_allclose(dWn - dW0, df.T.astype(np.float64) @ x, rtol=1e-4 if dtype == np.float32 else 1e-12)


def test_parallel_and_serial_agree(with_threads, rng):
    # 130 rows of 64 -> 32: enough work for the layer to split the batch over 2 threads
    from engine.threads import chunks_for
    layer = Linear(64, 32, rng=0)
    x = rng.standard_normal((130, 64))
    dy = rng.standard_normal((130, 32))
    assert with_threads(2, lambda: layer._chunks(130)) == 2

    def run():
        layer.zero_grad()
        y = layer.forward(x)
        dx = layer.backward(dy)
        return y, dx, layer.weight.grad.copy(), layer.bias.grad.copy()

    serial, parallel = with_threads(1, run), with_threads(2, run)
    for s, p in zip(serial, parallel):
        np.testing.assert_allclose(p, s, rtol=1e-12, atol=1e-14)


# ---- the backward contract -----------------------------------------------------------------
def test_backward_twice_doubles_parameter_gradients(rng):
    layer, x, dy = _setup(5, 4, 3, 2, True)
    layer.forward(x)
    dx1 = layer.backward(dy)
    g = [p.grad.copy() for p in layer.parameters()]
    dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx1, dx2)                           # the input gradient is fresh
    for p, g1 in zip(layer.parameters(), g):
        np.testing.assert_allclose(p.grad, 2 * g1, rtol=1e-15)
    layer.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.parameters())


def test_backward_without_input_grad_still_accumulates(rng):
    layer, x, dy = _setup(6, 3, 4, 2, True)
    ref, _, _ = _setup(6, 3, 4, 2, True)
    layer.forward(x)
    ref.forward(x)
    ref.backward(dy)
    assert layer.backward(dy, input_grad=False) is None
    for p, q in zip(layer.parameters(), ref.parameters()):
        np.testing.assert_allclose(p.grad, q.grad, rtol=1e-14)


def test_backward_before_forward():
    with pytest.raises(RuntimeError, match=r"Linear.backward called before forward"):
        Linear(2, 2).backward(np.ones((1, 2)))


# ---- float32 -------------------------------------------------------------------------------
@HYP
@given(N=st.integers(1, 5), d_in=st.integers(1, 5), d_out=st.integers(1, 5), bias=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_float32_close_to_float64(N, d_in, d_out, bias, seed):
    l64, x, dy = _setup(seed, N, d_in, d_out, bias)
    l32 = Linear(d_in, d_out, bias=bias, dtype=np.float32)
    l32.load_state_dict(l64.state_dict())
    y64, dx64 = l64.forward(x), l64.backward(dy)
    y32, dx32 = l32.forward(x.astype(np.float32)), l32.backward(dy.astype(np.float32))
    assert y32.dtype == dx32.dtype == l32.weight.grad.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx32, dx64, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(l32.weight.grad, l64.weight.grad, rtol=1e-5, atol=1e-5)


# ---- bad input -----------------------------------------------------------------------------
def test_linear_refuses_bad_options():
    with pytest.raises(ValueError, match=r"in_features: expected an int in \[1, inf\], got -3"):
        Linear(-3, 2)
    with pytest.raises(ValueError, match=r"out_features: expected an int in \[1, inf\], got 0"):
        Linear(2, 0)
    with pytest.raises(TypeError, match=r"in_features: expected an int, got float 2.5"):
        Linear(2.5, 2)
    with pytest.raises(TypeError, match=r"dtype: expected np.float32 or np.float64, got int64"):
        Linear(2, 2, dtype=np.int64)


def test_linear_refuses_bad_input(rng):
    layer = Linear(3, 2, rng=0)
    with pytest.raises(TypeError, match=r"x: expected dtype float64, got float32"):
        layer.forward(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match=r"x: expected dtype float32, got float64"):
        Linear(3, 2, dtype=np.float32).forward(np.ones((2, 3)))
    with pytest.raises(TypeError, match=r"x: expected dtype float64, got int64"):
        layer.forward(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\), got \(2, 4\)"):
        layer.forward(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\), got \(3,\)"):
        layer.forward(np.ones(3))
    with pytest.raises(ValueError, match=r"x: expected a non-empty array, got shape \(0, 3\)"):
        layer.forward(np.ones((0, 3)))
    with pytest.raises(ValueError, match=r"x: expected finite values"):
        layer.forward(np.array([[1.0, np.nan, 0.0]]))

    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 2\), got \(3, 2\)"):
        layer.backward(np.ones((3, 2)))
    with pytest.raises(TypeError, match=r"dy: expected dtype float64, got float32"):
        layer.backward(np.ones((4, 2), np.float32))
    # refusals happen before any kernel: no gradient written, the stored input kept
    assert np.all(layer.weight.grad == 0) and np.all(layer.bias.grad == 0)
    with pytest.raises(ValueError):
        layer.forward(np.ones((5, 4)))
    dx = layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-13)
    assert dx.shape == (4, 3)


def test_kernels_are_njit_without_fastmath():
    from numba.core.registry import CPUDispatcher
    for k in (D.linear_forward, D.linear_backward, D.linear_forward_naive, D.linear_backward_naive):
        assert isinstance(k, CPUDispatcher) and k.targetoptions.get("fastmath") is not True


def test_non_contiguous_input(rng):
    layer = Linear(3, 2, rng=0)
    big = rng.standard_normal((4, 6))
    for x in (big[:, ::2], np.asfortranarray(big[:, :3]), big[::-1, 1:4]):
        y = layer.forward(x)
        np.testing.assert_allclose(y, np.ascontiguousarray(x) @ layer.weight.value.T + layer.bias.value, rtol=1e-14)
        layer.zero_grad()
        dy = rng.standard_normal((4, 2))[:, ::-1]
        dx = layer.backward(dy)
        np.testing.assert_allclose(dx, dy @ layer.weight.value, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-13, atol=1e-15)


def test_float32_sequential_end_to_end(rng):
    from engine import Sequential
    from layers import GELU, Softmax
    seq = Sequential(Linear(4, 5, dtype=np.float32, rng=0), GELU(), Linear(5, 3, dtype=np.float32, rng=1),
                     Softmax(-1))
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = seq.forward(x)
    dx = seq.backward(rng.standard_normal((6, 3)).astype(np.float32))
    assert y.dtype == dx.dtype == np.float32 and seq.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in seq.parameters())
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)
