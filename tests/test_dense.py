"""layers.dense: Linear (f = β + Ω h) and Bilinear (f = x₁ᵀ A x₂ + b) against PyTorch (forward and
every gradient, tests/crosscheck.py) and by hand; reference versus fast kernels through the public
switch `engine.reference_kernels()`; 1 vs 2 threads; float32 on more than one chunk; the backward
contract and refusals.

The finite-difference checks are the family's table, scripts/gradcases_dense.py, run on both
kernel paths by tests/test_gradient_cases.py."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosscheck import crosscheck
from engine import Sequential, no_grad, reference_kernels
from engine.blas import gemm_for
from engine.threads import chunks_for
from layers import GELU, Bilinear, Linear, Softmax
from layers import dense as D

HYP = settings(max_examples=15, deadline=None, derandomize=True)
PATHS = ["fast", "reference"]


def _setup(seed, N, d_in, d_out, bias, dtype=np.float64):
    r = np.random.default_rng(seed)
    layer = Linear(d_in, d_out, bias=bias, dtype=dtype, rng=r)
    x = r.standard_normal((N, d_in)).astype(dtype)
    dy = r.standard_normal((N, d_out)).astype(dtype)
    return layer, x, dy


def run(layer, inputs, dy, reference=False, input_grad=True):
    """zero_grad, forward, backward on one kernel path -> (y, input gradient(s), {name: grad})."""
    layer.zero_grad()
    with reference_kernels(reference):
        y = layer.forward(*inputs)
        dx = layer.backward(dy, input_grad=input_grad)
    return y, dx, {n: p.grad.copy() for n, p in layer.named_parameters()}


def assert_runs_close(a, b, rtol, atol=None):
    """Two results of `run` agree (atol relative to each array's largest entry when not given)."""
    ya, dxa, ga = a
    yb, dxb, gb = b
    pairs = [(ya, yb)] + list(zip(dxa if isinstance(dxa, tuple) else (dxa,),
                                  dxb if isinstance(dxb, tuple) else (dxb,)))
    pairs += [(ga[n], gb[n]) for n in gb]
    assert list(ga) == list(gb)
    for u, v in pairs:
        tol = atol if atol is not None else rtol * float(np.abs(v).max())
        np.testing.assert_allclose(u, v, rtol=rtol, atol=tol)


# ---- Linear against PyTorch and by hand ------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
@HYP
@given(N=st.integers(1, 6), d_in=st.integers(1, 5), d_out=st.integers(1, 5), bias=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_linear_matches_torch(torch, path, N, d_in, d_out, bias, seed):
    layer, x, _ = _setup(seed, N, d_in, d_out, bias)
    with reference_kernels(path == "reference"):
        crosscheck(layer, torch.nn.Linear(d_in, d_out, bias=bias), x, seed=seed)


def test_linear_torch_weights_copied_in(torch, rng):
    tl = torch.nn.Linear(4, 3).double()
    layer = Linear(4, 3)
    layer.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
    x = rng.standard_normal((5, 4))
    np.testing.assert_allclose(layer.forward(x), tl(torch.from_numpy(x)).detach().numpy(), rtol=1e-13, atol=1e-15)


def test_linear_by_hand():
    layer, x, dy = _setup(1, 4, 3, 2, True)
    W, b = layer.weight.value, layer.bias.value
    assert W.shape == (2, 3) and b.shape == (2,)                      # Ω (out, in), β (out,)
    np.testing.assert_allclose(layer.forward(x), x @ W.T + b, rtol=1e-14)
    dx = layer.backward(dy)
    np.testing.assert_allclose(dx, dy @ W, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(0), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("path", PATHS)
def test_linear_without_bias(rng, path):
    layer = Linear(3, 2, bias=False, rng=0)
    assert [n for n, _ in layer.named_parameters()] == ["weight"] and list(layer.state_dict()) == ["weight"]
    x = rng.standard_normal((4, 3))
    with reference_kernels(path == "reference"):
        for _ in range(2):                                            # the absent β stays 0 after a backward
            np.testing.assert_allclose(layer.forward(x), x @ layer.weight.value.T, rtol=1e-14)
            layer.backward(rng.standard_normal((4, 2)))
    assert "bias=False" in repr(layer)


# ---- initialisation --------------------------------------------------------------------------
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


# ---- reference and fast kernels, serial and parallel -----------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("N,d_in,d_out", [(1, 3, 2), (7, 5, 4), (3, 1, 6)])
def test_linear_reference_and_fast_paths_agree(N, d_in, d_out, bias):
    layer, x, dy = _setup(2, N, d_in, d_out, bias)
    assert_runs_close(run(layer, [x], dy, reference=False), run(layer, [x], dy, reference=True),
                      rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("N,d_in,d_out", [(1, 3, 2), (7, 5, 4), (3, 1, 6)])
def test_linear_kernels_serial_and_parallel_agree(N, d_in, d_out, rng):
    """The fast kernels called directly with 1, 2 and 3 chunks (more chunks than rows included)
    give the reference kernels' numbers; parameter gradients accumulate onto what was there."""
    x, W, b = rng.standard_normal((N, d_in)), rng.standard_normal((d_out, d_in)), rng.standard_normal(d_out)
    df = rng.standard_normal((N, d_out))
    gemm = gemm_for(np.float64)
    f_ref = D.linear_forward_ref(x, W, b)
    dW0, db0 = rng.standard_normal(W.shape), rng.standard_normal(d_out)
    dW_ref, db_ref = dW0.copy(), db0.copy()
    dx_ref = D.linear_backward_ref(df, x, W, dW_ref, db_ref)
    np.testing.assert_allclose(dW_ref - dW0, df.T @ x, rtol=1e-12, atol=1e-13)
    for nt in (1, 2, 3):
        np.testing.assert_allclose(D.linear_forward(x, W, b, gemm, nt), f_ref, rtol=1e-12, atol=1e-13)
        dW, db = dW0.copy(), db0.copy()
        np.testing.assert_allclose(D.linear_backward(df, x, W, dW, db, True, gemm, nt), dx_ref, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(dW, dW_ref, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(db, db_ref, rtol=1e-12, atol=1e-13)
        dW, db = dW0.copy(), db0.copy()
        assert D.linear_backward(df, x, W, dW, db, False, gemm, nt).shape[0] == 0   # no ∂ℓ/∂h asked
        np.testing.assert_allclose(dW, dW_ref, rtol=1e-12, atol=1e-13)


def test_linear_parallel_and_serial_agree(with_threads, rng):
    # 130 rows of 64 -> 32: enough work for the layer to split the batch over 2 threads
    layer = Linear(64, 32, rng=0)
    x = rng.standard_normal((130, 64))
    dy = rng.standard_normal((130, 32))
    assert with_threads(2, chunks_for, 130, row_cost=64 * 32) == 2
    serial, parallel = with_threads(1, run, layer, [x], dy), with_threads(2, run, layer, [x], dy)
    assert_runs_close(parallel, serial, rtol=1e-12, atol=1e-13)


def test_linear_float32_on_two_chunks_close_to_float64(with_threads, rng):
    """float32 through the parallel kernels split into 2 chunks (offsets with 4-byte items),
    against the same layer in float64."""
    N, d_in, d_out = 150, 64, 33                                      # odd sizes: uneven chunks
    assert with_threads(2, chunks_for, N, row_cost=d_in * d_out) == 2
    l64 = Linear(d_in, d_out, rng=0)
    l32 = Linear(d_in, d_out, dtype=np.float32)
    l32.load_state_dict(l64.state_dict())
    x, dy = rng.standard_normal((N, d_in)), rng.standard_normal((N, d_out))
    r32 = with_threads(2, run, l32, [x.astype(np.float32)], dy.astype(np.float32))
    r64 = run(l64, [x], dy)
    assert r32[0].dtype == r32[1].dtype == r32[2]["weight"].dtype == np.float32
    assert_runs_close(r32, r64, rtol=2e-5)


# ---- the backward contract -------------------------------------------------------------------
@pytest.mark.parametrize("path", PATHS)
def test_two_forward_backward_pairs_double_parameter_gradients(path):
    layer, x, dy = _setup(5, 4, 3, 2, True)
    with reference_kernels(path == "reference"):
        layer.forward(x)
        dx1 = layer.backward(dy)
        g = [p.grad.copy() for p in layer.parameters()]
        layer.forward(x)
        dx2 = layer.backward(dy)
    np.testing.assert_array_equal(dx1, dx2)                           # the input gradient is fresh
    for p, g1 in zip(layer.parameters(), g):
        np.testing.assert_allclose(p.grad, 2 * g1, rtol=1e-15)
    layer.zero_grad()
    assert all(np.all(p.grad == 0) for p in layer.parameters())


@pytest.mark.parametrize("path", PATHS)
def test_backward_without_input_grad_still_accumulates(path):
    layer, x, dy = _setup(6, 3, 4, 2, True)
    ref = run(layer, [x], dy, reference=path == "reference")
    y, dx, g = run(layer, [x], dy, reference=path == "reference", input_grad=False)
    assert dx is None
    for n in g:
        np.testing.assert_allclose(g[n], ref[2][n], rtol=1e-14)


def test_backward_needs_a_forward(rng):
    layer = Linear(2, 2, rng=0)
    with pytest.raises(RuntimeError, match=r"Linear.backward: no forward call waits for a backward"):
        layer.backward(rng.standard_normal((1, 2)))
    layer.forward(rng.standard_normal((1, 2)))
    layer.backward(rng.standard_normal((1, 2)))
    with pytest.raises(RuntimeError, match=r"Linear.backward: no forward call"):   # one backward per forward
        layer.backward(rng.standard_normal((1, 2)))
    with no_grad():
        layer.forward(rng.standard_normal((1, 2)))
    assert layer.pending_calls() == 0
    with pytest.raises(RuntimeError, match=r"Linear.backward: no forward call"):
        layer.backward(rng.standard_normal((1, 2)))


# ---- float32 ---------------------------------------------------------------------------------
@HYP
@given(N=st.integers(1, 5), d_in=st.integers(1, 5), d_out=st.integers(1, 5), bias=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_float32_close_to_float64(N, d_in, d_out, bias, seed):
    l64, x, dy = _setup(seed, N, d_in, d_out, bias)
    l32 = Linear(d_in, d_out, bias=bias, dtype=np.float32)
    l32.load_state_dict(l64.state_dict())
    r64 = run(l64, [x], dy)
    r32 = run(l32, [x.astype(np.float32)], dy.astype(np.float32))
    assert r32[0].dtype == r32[1].dtype == r32[2]["weight"].dtype == np.float32
    assert_runs_close(r32, r64, rtol=1e-5, atol=1e-5)


# ---- bad input -------------------------------------------------------------------------------
def test_linear_refuses_bad_options():
    with pytest.raises(ValueError, match=r"in_features: expected an int in \[1, inf\], got -3"):
        Linear(-3, 2)
    with pytest.raises(ValueError, match=r"out_features: expected an int in \[1, inf\], got 0"):
        Linear(2, 0)
    with pytest.raises(TypeError, match=r"in_features: expected an int, got float 2.5"):
        Linear(2.5, 2)
    with pytest.raises(TypeError, match=r"dtype: expected np.float32 or np.float64, got int64"):
        Linear(2, 2, dtype=np.int64)


@pytest.mark.parametrize("cls,args", [(Linear, (2, 3)), (Bilinear, (2, 3, 4))])
def test_bias_and_rng_checked_by_name_before_any_draw(cls, args):
    """bias through check_bool ("False" built a layer with a bias, 0 one without), rng through
    check_rng (numpy's "expected non-negative integer" named nothing), both before the layer draws
    from a given Generator (a refused call leaves its state alone)."""
    for bad in ("False", "True", 0, 1, None, 1.0):
        with pytest.raises(TypeError, match=rf"^bias: expected True or False, got {type(bad).__name__}"):
            cls(*args, bias=bad)
    assert not hasattr(cls(*args, bias=np.bool_(False)), "bias")
    with pytest.raises(ValueError, match=r"^rng: expected a non-negative int seed, got -1$"):
        cls(*args, rng=-1)
    for bad in (1.5, "a", True, np.random.RandomState(0)):
        with pytest.raises(TypeError, match=r"^rng: expected an int, a numpy.random.Generator or None"):
            cls(*args, rng=bad)
    g = np.random.default_rng(5)
    state = g.bit_generator.state
    with pytest.raises(TypeError, match="bias"):
        cls(*args, bias="no", rng=g)
    with pytest.raises(TypeError, match="dtype"):
        cls(*args, dtype=np.int32, rng=g)
    assert g.bit_generator.state == state
    np.testing.assert_array_equal(cls(*args, rng=g).weight.value, cls(*args, rng=5).weight.value)


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
    assert layer.pending_calls() == 0                                 # refused forwards save nothing

    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layer.forward(x)
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 2\), got \(3, 2\)"):
        layer.backward(rng.standard_normal((3, 2)))
    with pytest.raises(TypeError, match=r"dy: expected dtype float64, got float32"):
        layer.backward(rng.standard_normal((4, 2)).astype(np.float32))
    # refusals happen before any kernel: no gradient written, the call still waits for its backward
    assert np.all(layer.weight.grad == 0) and np.all(layer.bias.grad == 0)
    with pytest.raises(ValueError):
        layer.forward(np.ones((5, 4)))
    assert layer.pending_calls() == 1
    dx = layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-13)
    assert dx.shape == (4, 3) and layer.pending_calls() == 0


def test_train_and_input_grad_are_booleans(rng):
    layer, bil = Linear(3, 2, rng=0), Bilinear(3, 2, 4, rng=0)
    x, x2 = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    for v in ("False", 0, None):
        with pytest.raises(TypeError, match="train: expected True or False"):
            layer.forward(x, train=v)
        with pytest.raises(TypeError, match="train: expected True or False"):
            bil.forward(x, x2, train=v)
    assert layer.pending_calls() == bil.pending_calls() == 0
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\), got \(\)"):
        layer.forward(np.array(1.0))
    layer.forward(x)
    bil.forward(x, x2)
    for v in ("False", 0, None):
        with pytest.raises(TypeError, match="input_grad: expected True or False"):
            layer.backward(rng.standard_normal((4, 2)), input_grad=v)
        with pytest.raises(TypeError, match="input_grad: expected a bool or 2 bools"):
            bil.backward(rng.standard_normal((4, 4)), input_grad=v)
    assert layer.pending_calls() == bil.pending_calls() == 1
    assert np.all(layer.weight.grad == 0) and np.all(bil.weight.grad == 0)


def test_kernels_are_njit_without_fastmath():
    from numba.core.registry import CPUDispatcher
    for k in (D.linear_forward, D.linear_backward, D.linear_forward_ref, D.linear_backward_ref,
              D.bilinear_forward, D.bilinear_backward, D.bilinear_forward_ref, D.bilinear_backward_ref):
        assert isinstance(k, CPUDispatcher) and k.targetoptions.get("fastmath") is not True


def test_non_contiguous_input(rng):
    layer = Linear(3, 2, rng=0)
    big = rng.standard_normal((4, 6))
    for x in (big[:, ::2], np.asfortranarray(big[:, :3]), big[::-1, 1:4]):
        layer.zero_grad()
        y = layer.forward(x)
        np.testing.assert_allclose(y, np.ascontiguousarray(x) @ layer.weight.value.T + layer.bias.value, rtol=1e-14)
        dy = rng.standard_normal((4, 2))[:, ::-1]
        dx = layer.backward(dy)
        np.testing.assert_allclose(dx, dy @ layer.weight.value, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(layer.weight.grad, dy.T @ x, rtol=1e-13, atol=1e-15)


def test_float32_sequential_end_to_end(rng):
    seq = Sequential(Linear(4, 5, dtype=np.float32, rng=0), GELU(), Linear(5, 3, dtype=np.float32, rng=1),
                     Softmax(-1))
    x = rng.standard_normal((6, 4)).astype(np.float32)
    y = seq.forward(x)
    dx = seq.backward(rng.standard_normal((6, 3)).astype(np.float32))
    assert y.dtype == dx.dtype == np.float32 and seq.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in seq.parameters())
    np.testing.assert_allclose(y.sum(1), 1.0, rtol=1e-6)


# ---- Bilinear --------------------------------------------------------------------------------
def _bilinear(seed, N, i, j, o, bias, dtype=np.float64):
    r = np.random.default_rng(seed)
    layer = Bilinear(i, j, o, bias=bias, dtype=dtype, rng=r)
    x1, x2 = r.standard_normal((N, i)).astype(dtype), r.standard_normal((N, j)).astype(dtype)
    return layer, x1, x2, r.standard_normal((N, o)).astype(dtype)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("N,i,j,o,bias", [(4, 3, 2, 5, True), (4, 3, 2, 5, False), (1, 1, 4, 2, True),
                                          (3, 2, 2, 1, True)])
def test_bilinear_matches_torch(torch, path, N, i, j, o, bias):
    layer, x1, x2, _ = _bilinear(0, N, i, j, o, bias)
    tm = torch.nn.Bilinear(i, j, o, bias=bias)
    assert list(layer.state_dict()) == list(tm.state_dict())
    assert all(layer.state_dict()[k].shape == tuple(v.shape) for k, v in tm.state_dict().items())
    with reference_kernels(path == "reference"):
        res = crosscheck(layer, tm, x1, x2)
    assert len(res.input_grads) == 2 and set(res.param_grads) == ({"weight", "bias"} if bias else {"weight"})


def test_bilinear_by_hand(rng):
    layer, x1, x2, dy = _bilinear(1, 3, 2, 4, 2, True)
    A, b = layer.weight.value, layer.bias.value
    assert A.shape == (2, 2, 4) and b.shape == (2,)
    np.testing.assert_allclose(layer.forward(x1, x2), np.einsum("ni,oij,nj->no", x1, A, x2) + b, rtol=1e-13)
    dx1, dx2 = layer.backward(dy)
    np.testing.assert_allclose(dx1, np.einsum("no,oij,nj->ni", dy, A, x2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dx2, np.einsum("no,ni,oij->nj", dy, x1, A), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.weight.grad, np.einsum("no,ni,nj->oij", dy, x1, x2), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, dy.sum(0), rtol=1e-13)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("N,i,j,o", [(1, 3, 2, 4), (6, 4, 3, 2), (2, 1, 1, 1)])
def test_bilinear_reference_and_fast_paths_agree(N, i, j, o, bias):
    layer, x1, x2, dy = _bilinear(2, N, i, j, o, bias)
    assert_runs_close(run(layer, [x1, x2], dy, reference=False), run(layer, [x1, x2], dy, reference=True),
                      rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("path", PATHS)
def test_bilinear_input_grad_per_input(path):
    layer, x1, x2, dy = _bilinear(3, 4, 3, 2, 2, True)
    ref = run(layer, [x1, x2], dy, reference=path == "reference")
    for flags, want in [((True, False), (0,)), ((False, True), (1,)), (False, ()), (True, (0, 1))]:
        y, dxs, g = run(layer, [x1, x2], dy, reference=path == "reference", input_grad=flags)
        assert isinstance(dxs, tuple) and len(dxs) == 2
        for k in range(2):
            if k in want:
                np.testing.assert_array_equal(dxs[k], ref[1][k])
            else:
                assert dxs[k] is None
        for n in g:                                                   # parameters accumulate all the same
            np.testing.assert_array_equal(g[n], ref[2][n])
    layer.forward(x1, x2)
    with pytest.raises(TypeError, match=r"input_grad: expected a bool or 2 bools"):
        layer.backward(dy, input_grad=(True,))


def test_bilinear_float32_close_to_float64():
    l64, x1, x2, dy = _bilinear(4, 5, 3, 4, 2, True)
    l32 = Bilinear(3, 4, 2, dtype=np.float32)
    l32.load_state_dict(l64.state_dict())
    r64 = run(l64, [x1, x2], dy)
    r32 = run(l32, [x1.astype(np.float32), x2.astype(np.float32)], dy.astype(np.float32))
    assert r32[0].dtype == r32[1][0].dtype == r32[1][1].dtype == r32[2]["weight"].dtype == np.float32
    assert_runs_close(r32, r64, rtol=1e-5)


def test_bilinear_init_and_refusals(rng):
    layer = Bilinear(16, 3, 200, rng=0)
    bound = 1 / np.sqrt(16)                                           # U(±1/√in1_features), as torch
    for v in (layer.weight.value, layer.bias.value):
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.9 * bound
    assert "in1_features=16" in repr(layer) and "in2_features=3" in repr(layer)
    with pytest.raises(ValueError, match=r"in2_features: expected an int in \[1, inf\], got 0"):
        Bilinear(2, 0, 3)
    layer = Bilinear(3, 2, 4, rng=0)
    x1, x2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    with pytest.raises(ValueError, match=r"x2: expected shape \(5, 2\), got \(4, 2\)"):
        layer.forward(x1, x2[:4])
    with pytest.raises(ValueError, match=r"x1: expected shape \(N, 3\), got \(5, 2\)"):
        layer.forward(x2, x2)
    with pytest.raises(TypeError, match=r"x2: expected dtype float64, got float32"):
        layer.forward(x1, x2.astype(np.float32))
    assert layer.pending_calls() == 0
    layer.forward(x1, x2)
    with pytest.raises(ValueError, match=r"dy: expected shape \(5, 4\), got \(5, 3\)"):
        layer.backward(rng.standard_normal((5, 3)))
    assert np.all(layer.weight.grad == 0) and layer.pending_calls() == 1
