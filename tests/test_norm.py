"""BatchNorm1d/2d, LayerNorm, Dropout: PyTorch float64 (outputs, gradients, running statistics over
several steps), reference versus fast kernels, float32, serial versus parallel, per-call state,
train/eval, errors.

The finite-difference checks of every case (batch norm in train and eval mode, each layer used
twice in one forward) run from the family's case table, scripts/gradcases_norm.py, in
tests/test_gradient_cases.py; the tests here build on the same table (BN_SPECS, LN_SPECS)."""
import numpy as np
import pytest

import engine
from engine import Sequential
from engine.threads import chunks_for
from gradcases_norm import BN_SPECS, LN_SPECS, make_bn, make_ln
from layers.activations import Tanh
from layers.dropout import Dropout
from layers.norm import BatchNorm1d, BatchNorm2d, LayerNorm
from crosscheck import crosscheck


def step(layer, x, G, reference=False, train=True):
    """One forward and one backward on one kernel path, from zero gradients: returns y, ∂ℓ/∂x and
    copies of the parameters' gradients, in named_parameters order."""
    layer.zero_grad()
    with engine.reference_kernels(reference):
        y = layer.forward(x, train=train)
        dx = layer.backward(G)
    return [y, dx] + [p.grad.copy() for p in layer.parameters()]


def assert_all_close(got, expected, rtol, atol):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


def with_running_stats(layer, x):
    """Move the running statistics away from 0 and 1 (one train forward that saves nothing)."""
    with engine.no_grad():
        layer.forward(x + 0.5)
    return layer


# ---- BatchNorm ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("case", BN_SPECS)
def test_bn_matches_torch_float64(case, reference, torch):
    # three train steps (outputs, every gradient, running statistics evolving on each side), then eval
    cls, C, _, _, kw = BN_SPECS[case]
    layer, x = make_bn(case, np.random.default_rng(0))
    tm = getattr(torch.nn, cls.__name__)(C, **kw)
    with engine.reference_kernels(reference):
        for k in range(3):
            crosscheck(layer, tm, x * (k + 1) + k, seed=k, load=(k == 0), rtol=1e-12, atol=1e-11)
        sd, tsd = layer.state_dict(), tm.state_dict()
        assert set(sd) == set(tsd)
        for name in sd:
            np.testing.assert_allclose(sd[name], tsd[name].numpy(), rtol=1e-13, atol=1e-14, err_msg=name)
        crosscheck(layer, tm, x, train=False, seed=3, load=False, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("case", BN_SPECS)
def test_bn_reference_and_fast_kernels_agree(case, train):
    G = np.random.default_rng(2).standard_normal(BN_SPECS[case][2])
    runs, stats = [], []
    for reference in (False, True):
        layer, x = make_bn(case, np.random.default_rng(3))
        with_running_stats(layer, x)
        runs.append(step(layer, x, G, reference, train))
        stats.append([b for _, b in layer.named_buffers()])
    # "batch 2" cases have inputs of scale √ε: ∂ℓ/∂x is ~50, and its float64 rounding with it
    assert_all_close(runs[0], runs[1], rtol=1e-12, atol=1e-12 * max(1.0, np.abs(runs[1][1]).max()))
    assert_all_close(stats[0], stats[1], rtol=1e-14, atol=1e-15)


def test_bn_state_dict_names_and_load_from_torch(torch):
    tm = torch.nn.BatchNorm2d(3)
    tm(torch.randn(4, 3, 2, 2))
    layer = BatchNorm2d(3)
    layer.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    assert int(layer.num_batches_tracked) == 1
    np.testing.assert_allclose(layer.running_var, tm.running_var.numpy(), rtol=1e-6)
    assert set(layer.state_dict()) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def test_bn_train_false_does_not_update_running_stats():
    layer, x = make_bn("BatchNorm2d", np.random.default_rng(0))
    layer.forward(x, train=False)
    np.testing.assert_array_equal(layer.running_mean, 0)
    assert int(layer.num_batches_tracked) == 0


def test_bn_two_backwards_double_the_parameter_gradients():
    layer, x = make_bn("BatchNorm2d", np.random.default_rng(0))
    G = np.random.default_rng(1).standard_normal(x.shape)
    _, _, g, b = step(layer, x, G)
    layer.forward(x)
    layer.backward(G)
    np.testing.assert_allclose(layer.weight.grad, 2 * g, rtol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, 2 * b, rtol=1e-14)


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_bn_float32_forward_and_backward(train, reference):
    runs = []
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(4)
        layer, x = make_bn("BatchNorm2d", rng, dtype)
        with_running_stats(layer, x)
        G = rng.standard_normal(x.shape).astype(dtype)
        runs.append(step(layer, x, G, reference, train))
    assert all(a.dtype == np.float32 for a in runs[1])
    assert_all_close(runs[1], runs[0], rtol=1e-4, atol=1e-5)


def _big_bn(dtype, seed=5):
    """BatchNorm2d(8) on (16, 8, 32, 32): 131072 values, split over 2 threads by the engine."""
    rng = np.random.default_rng(seed)
    layer = BatchNorm2d(8, dtype=dtype)
    layer.weight.value[:] = rng.uniform(0.5, 1.5, 8)
    layer.bias.value[:] = rng.standard_normal(8)
    x = (2 * rng.standard_normal((16, 8, 32, 32)) + 1).astype(dtype)
    return layer, x, rng.standard_normal(x.shape).astype(dtype)


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bn_serial_and_parallel_agree(dtype, train, with_threads):
    layer, x, G = _big_bn(dtype)
    assert with_threads(2, chunks_for, x.size, row_cost=1) == 2
    with_running_stats(layer, x)
    serial = with_threads(1, step, layer, x, G, False, train)
    parallel = with_threads(2, step, layer, x, G, False, train)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert_all_close(parallel, serial, rtol=tol, atol=tol)
    if dtype == np.float32:                        # and the parallel float32 run against float64
        l64, x64, G64 = _big_bn(np.float64)
        with_running_stats(l64, x64)
        assert_all_close(parallel, step(l64, x64, G64, False, train), rtol=1e-4, atol=2e-4)


def test_bn_used_twice_accumulates_both_calls():
    # Sequential(bn, Tanh(), bn): the shared γ, β get the sum of what two copies of bn would get
    rng = np.random.default_rng(6)
    bn, x = make_bn("BatchNorm1d (N, C)", rng)
    G = rng.standard_normal(x.shape)
    copy = BatchNorm1d(3)
    copy.load_state_dict(bn.state_dict())
    first = BatchNorm1d(3)
    first.load_state_dict(bn.state_dict())
    for reference in (False, True):
        shared = step(Sequential(bn, Tanh(), bn), x, G, reference)
        apart = step(Sequential(first, Tanh(), copy), x, G, reference)
        np.testing.assert_allclose(shared[0], apart[0], rtol=1e-14)
        np.testing.assert_allclose(shared[1], apart[1], rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(bn.weight.grad, first.weight.grad + copy.weight.grad, rtol=1e-13)
        np.testing.assert_allclose(bn.bias.grad, first.bias.grad + copy.bias.grad, rtol=1e-13)
        assert bn.pending_calls() == 0


def test_bn_errors():
    with pytest.raises(ValueError, match="x: expected more than 1 value per channel"):
        BatchNorm1d(3).forward(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="x: expected 3 channels"):
        BatchNorm2d(3).forward(np.zeros((2, 4, 2, 2)))
    with pytest.raises(ValueError, match="x: expected a 4-dimensional"):
        BatchNorm2d(3).forward(np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match="x: expected a 2 or 3-dimensional"):
        BatchNorm1d(3).forward(np.zeros((2, 3, 2, 2)))
    with pytest.raises(TypeError, match="x: expected dtype float64"):
        BatchNorm1d(3).forward(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="momentum"):
        BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        BatchNorm1d(3, eps=0)
    with pytest.raises(ValueError, match="num_features"):
        BatchNorm2d(0)
    for name in ("affine", "track_running_stats"):       # through check_bool: "no" built an affine layer
        for bad in ("no", "False", 0, 1, None):
            with pytest.raises(TypeError, match=f"^{name}: expected True or False"):
                BatchNorm1d(3, **{name: bad})
    for bad in (True, "0.1", float("nan")):
        with pytest.raises(TypeError, match="^momentum: expected a finite real number"):
            BatchNorm1d(3, momentum=bad)
    with pytest.raises(ValueError, match=r"x: expected a 2 or 3-dimensional array, got shape \(\)"):
        BatchNorm1d(1).forward(np.array(1.0))
    bn = BatchNorm1d(3)
    with pytest.raises(RuntimeError, match="no forward call waits"):
        bn.backward(np.zeros((2, 3)))
    before = bn.state_dict()
    for bad in ("False", 0, None):                        # "False" trained and updated the statistics
        with pytest.raises(TypeError, match="^train: expected True or False"):
            bn.forward(np.ones((2, 3)) * [[1], [2]], train=bad)
    for k, v in bn.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    bn.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\)"):
        bn.backward(np.zeros((3, 3)))
    with pytest.raises(TypeError, match="^input_grad: expected True or False"):
        bn.backward(np.zeros((2, 3)), input_grad="False")
    assert bn.pending_calls() == 1 and np.all(bn.weight.grad == 0)


# ---- LayerNorm ---------------------------------------------------------------------------------
@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("case", LN_SPECS)
def test_ln_matches_torch_float64(case, reference, torch):
    ns, _, kw = LN_SPECS[case]
    layer, x = make_ln(case, np.random.default_rng(0))
    with engine.reference_kernels(reference):
        crosscheck(layer, torch.nn.LayerNorm(ns, **kw), x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", LN_SPECS)
def test_ln_reference_and_fast_kernels_agree(case):
    layer, x = make_ln(case, np.random.default_rng(2))
    G = np.random.default_rng(3).standard_normal(x.shape)
    assert_all_close(step(layer, x, G, False), step(layer, x, G, True), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("reference", [False, True])
def test_ln_float32_forward_and_backward(reference):
    runs = []
    for dtype in (np.float64, np.float32):
        rng = np.random.default_rng(4)
        layer, x = make_ln("LayerNorm (3, 4)", rng, dtype)
        runs.append(step(layer, x, rng.standard_normal(x.shape).astype(dtype), reference))
    assert all(a.dtype == np.float32 for a in runs[1])
    assert_all_close(runs[1], runs[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ln_serial_and_parallel_agree(dtype, with_threads):
    # (2048, 64): 131072 values, split over 2 threads; γ's and β's gradients through per-thread buffers
    rng = np.random.default_rng(5)
    layer = LayerNorm(64, dtype=dtype)
    layer.weight.value[:] = rng.uniform(0.5, 1.5, 64)
    layer.bias.value[:] = rng.standard_normal(64)
    x = (2 * rng.standard_normal((2048, 64)) + 1).astype(dtype)
    G = rng.standard_normal(x.shape).astype(dtype)
    assert with_threads(2, chunks_for, x.size, row_cost=1) == 2
    serial = with_threads(1, step, layer, x, G)
    parallel = with_threads(2, step, layer, x, G)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert_all_close(parallel, serial, rtol=tol, atol=tol)
    if dtype == np.float32:
        assert_all_close(parallel, step(layer, x, G, reference=True), rtol=1e-4, atol=1e-3)


def test_ln_backward_kernel_any_chunk_count_accumulates_onto_the_gradients(with_threads):
    # The fast backward's per-thread buffers are np.empty, zeroed inside its one parallel region
    # (np.zeros and `dgamma += part[t]` would each be a region of their own: 35-90 ms per call on the
    # loaded 2-core VM, against 0.23 ms on one thread). Any chunk count, on 1 or 2 threads, and onto
    # gradients that already hold values, must give the reference's sums.
    from layers.norm import layernorm_backward, layernorm_backward_ref, layernorm_forward_ref
    rng = np.random.default_rng(7)
    x = 3 * rng.standard_normal((37, 16)) - 1
    dy = rng.standard_normal(x.shape)
    g = rng.uniform(0.5, 1.5, 16)
    _, mean, rstd = layernorm_forward_ref(x, g, rng.standard_normal(16), 1e-5)
    dg0, db0 = rng.standard_normal(16), rng.standard_normal(16)
    dg_ref, db_ref = dg0.copy(), db0.copy()
    dx_ref = layernorm_backward_ref(dy, x, mean, rstd, g, dg_ref, db_ref)
    for threads in (1, 2):
        for chunks in (1, 2, 3, 5):
            dg, db = dg0.copy(), db0.copy()
            dx = with_threads(threads, layernorm_backward, dy, x, mean, rstd, g, dg, db, True, chunks)
            np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(dg, dg_ref, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(db, db_ref, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("reference", [False, True])
def test_ln_input_grad_false_returns_none_and_accumulates_parameters(reference):
    layer, x = make_ln("LayerNorm (D,)", np.random.default_rng(6))
    G = np.random.default_rng(7).standard_normal(x.shape)
    _, _, g, b = step(layer, x, G, reference)
    layer.zero_grad()
    with engine.reference_kernels(reference):
        layer.forward(x)
        assert layer.backward(G, input_grad=False) is None
    np.testing.assert_allclose(layer.weight.grad, g, rtol=1e-14)
    np.testing.assert_allclose(layer.bias.grad, b, rtol=1e-14)
    assert layer.pending_calls() == 0


def test_ln_errors():
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 4\)"):
        LayerNorm(4).forward(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 3, 4\)"):
        LayerNorm((3, 4)).forward(np.zeros(4))
    with pytest.raises(TypeError, match="normalized_shape"):
        LayerNorm("4")
    with pytest.raises(ValueError, match="normalized_shape"):
        LayerNorm((4, 0))
    for name in ("elementwise_affine", "bias"):
        for bad in ("no", 0, None):
            with pytest.raises(TypeError, match=f"^{name}: expected True or False"):
                LayerNorm(4, **{name: bad})
    with pytest.raises(TypeError, match="^bias: expected True or False"):
        LayerNorm(4, elementwise_affine=False, bias="no")           # (was not looked at without affine)
    ln = LayerNorm(4)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 4\), got \(\)"):
        ln.forward(np.array(1.0))
    with pytest.raises(TypeError, match="^train: expected True or False"):
        ln.forward(np.ones((2, 4)), train="no")
    ln.forward(np.random.default_rng(0).standard_normal((2, 4)))
    with pytest.raises(TypeError, match="^input_grad: expected True or False"):
        ln.backward(np.ones((2, 4)), input_grad=None)
    assert ln.pending_calls() == 1 and np.all(ln.weight.grad == 0)


# ---- statistics under a large common offset, and overflow ----------------------------------------
NORM_KINDS = {
    "BatchNorm1d (N, C)": (lambda dt, **kw: BatchNorm1d(3, dtype=dt, **kw), (6, 3)),
    "BatchNorm1d (N, C, L)": (lambda dt, **kw: BatchNorm1d(3, dtype=dt, **kw), (4, 3, 5)),
    "BatchNorm2d": (lambda dt, **kw: BatchNorm2d(3, dtype=dt, **kw), (4, 3, 5, 7)),
    "BatchNorm2d on 2 threads": (lambda dt, **kw: BatchNorm2d(4, dtype=dt, **kw), (16, 4, 64, 32)),
    "LayerNorm (D,)": (lambda dt, **kw: LayerNorm(35, dtype=dt), (6, 35)),
    "LayerNorm (3, 4) on 2 threads": (lambda dt, **kw: LayerNorm((3, 4), dtype=dt), (16384, 3, 4)),
}


def _beta_like(layer, shape):
    """β broadcast to the output's shape (per channel for batch norm, per position for layer norm)."""
    b = layer.bias.value
    if isinstance(layer, LayerNorm):
        return np.broadcast_to(b, shape)
    return np.broadcast_to(b.reshape((1, -1) + (1,) * (len(shape) - 2)), shape)


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [0.3, 1e6 + 0.3, 1e12 + 0.3, -1e12 + 0.3, 3e38])
@pytest.mark.parametrize("kind", NORM_KINDS)
def test_constant_input_gives_beta_exactly(kind, offset, dtype, reference, with_threads):
    """A constant group (channel or row) normalises to x̂ = 0, so y = β exactly, whatever its
    offset: the sums run over x − K (K the group's first value, which is 0 here) and y is
    γ (x − μ) r + β (issue 11, item 6: a channel of 1e12 + 0.3 gave x̂ up to 0.47). The gradient
    is finite and the running statistics stay finite."""
    make, shape = NORM_KINDS[kind]
    for train in ([True, False] if kind.startswith("Batch") else [True]):
        layer = make(dtype, track_running_stats=train)      # eval without tracking: batch statistics
        rng = np.random.default_rng(0)
        layer.bias.value[...] = rng.standard_normal(layer.bias.shape)
        layer.weight.value[...] = rng.uniform(0.5, 1.5, layer.weight.shape)
        x = np.full(shape, offset, dtype)
        G = rng.standard_normal(shape).astype(dtype)
        y, dx, *_ = with_threads(2, step, layer, x, G, reference, train)
        np.testing.assert_array_equal(y, _beta_like(layer, shape))
        assert np.isfinite(dx).all()
        for name, b in layer.named_buffers():
            assert np.isfinite(b).all(), name
        if train and not kind.startswith("Layer"):
            f = np.float64(offset).astype(dtype).astype(np.float64)
            np.testing.assert_allclose(layer.running_mean, 0.1 * f, rtol=1e-6)
            np.testing.assert_allclose(layer.running_var, 0.9, rtol=1e-6)


# x = offset + z: the normalised values against the exact ones (the data minus the offset, which
# float64 subtracts exactly here, then normalised). Float64: off by μ's rounding to float64 at most,
# ~spacing(offset)/σ (6e-5 at 1e12, σ ≈ 1), the same order as rounding the input itself.
# Float32: summed in float64, exact to the float32 rounding of y (|y| < 5: ~3e-7) at any offset
# where the data still differ (the spacing of float32 near 1e6 is 0.06).
@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("dtype,offset", [(np.float64, 0.0), (np.float64, 1e6), (np.float64, 1e12),
                                          (np.float64, -1e12), (np.float32, 0.0), (np.float32, 1e3),
                                          (np.float32, 1e6), (np.float32, -1e6)])
@pytest.mark.parametrize("kind", ["BatchNorm2d", "BatchNorm2d on 2 threads", "LayerNorm (D,)",
                                  "LayerNorm (3, 4) on 2 threads"])
def test_offset_data_normalised_to_float_rounding(kind, dtype, offset, reference, with_threads):
    make, shape = NORM_KINDS[kind]
    layer = make(dtype)
    x = (offset + np.random.default_rng(1).standard_normal(shape)).astype(dtype)
    z = x.astype(np.float64) - offset                                         # exact (Sterbenz)
    axes = tuple(range(len(shape) - len(layer.normalized_shape), len(shape))) \
        if isinstance(layer, LayerNorm) else (0,) + tuple(range(2, len(shape)))
    zc = z - z.mean(axis=axes, keepdims=True)
    xhat = zc / np.sqrt((zc ** 2).mean(axis=axes, keepdims=True) + layer.eps)
    with engine.reference_kernels(reference):
        y = with_threads(2, layer.forward, x)
    sigma = np.sqrt((zc ** 2).mean(axis=axes)).min()
    tol = 3e-7 if dtype == np.float32 else 1e-12 + 1.5 * np.spacing(abs(offset)) / sigma
    np.testing.assert_allclose(y, xhat, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("first", [0.5, 5.0, 7.9, 8.1, 1e3, -1e6])
def test_fast_statistics_agree_with_the_reference_whatever_the_first_value(first, dtype, with_threads):
    """The fast kernels sum x − K in one pass (K the group's first value), σ² = mean(d²) − δ²,
    which loses digits as δ²/σ² grows; past (μ − K)² > 64 σ² they recompute σ² around μ. Either
    way σ² stays within 1e-13 of the two-pass reference (seen in running_var), and the outputs
    and gradients agree, with the first value an outlier of up to 1e6 σ in groups of 65536
    (BatchNorm2d channels and LayerNorm rows, 2 threads): outputs and gradients to 1e-11 of each
    array's largest value (sums over 65536 terms in another order)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((16, 2, 64, 64)).astype(dtype)
    x[0, :, 0, 0] = first
    G = rng.standard_normal(x.shape).astype(dtype)
    runs = {}
    for reference in (False, True):
        bn, ln = BatchNorm2d(2, dtype=dtype), LayerNorm((64, 64), dtype=dtype)
        ln.bias.value[...] = 0.5
        runs[reference] = (with_threads(2, step, bn, x, G, reference), with_threads(2, step, ln, x, G, reference),
                           bn.running_var.copy())
    tol = 1e-11 if dtype == np.float64 else 5e-7          # of each array's largest value
    for k in (0, 1):
        for a, b in zip(runs[False][k], runs[True][k]):
            assert np.abs(a - b).max() <= tol * np.abs(b).max()
    np.testing.assert_allclose(runs[False][2], runs[True][2], rtol=1e-13 if dtype == np.float64 else 1e-7)
    unbiased = x.var(axis=(0, 2, 3), dtype=np.float64) * 65536 / 65535
    np.testing.assert_allclose(runs[True][2], (0.9 + 0.1 * unbiased).astype(dtype),
                               rtol=1e-13 if dtype == np.float64 else 1e-7)


def test_statistics_that_overflow_are_refused_and_leave_the_layer_as_it_was():
    """Float64 inputs spread over more than ~1e154 have a variance float64 cannot hold: refused
    (not normalised by σ = ∞). Float32 inputs never overflow the float64 statistics, but their
    variance can overflow the float32 running_var: a train forward that would store Inf is refused
    before anything changes; without running statistics, or in eval, it is computed."""
    x = np.array([[1e200, 1.0], [-1e200, 2.0]])
    for reference in (False, True):
        with engine.reference_kernels(reference):
            for layer in (BatchNorm1d(2), BatchNorm1d(2, track_running_stats=False)):
                before = layer.state_dict()
                for train in (True, False) if not layer.track_running_stats else (True,):
                    with pytest.raises(ValueError, match="x: the variance of channel 0 overflows float64"):
                        layer.forward(x, train=train)
                for k, v in layer.state_dict().items():
                    np.testing.assert_array_equal(v, before[k])
                assert layer.pending_calls() == 0
            with pytest.raises(ValueError, match=r"x: the variance of x\[1\] overflows float64"):
                LayerNorm(2).forward(np.array([[1.0, 2.0], [1e200, -1e200]]))
            with pytest.raises(ValueError, match=r"x: the variance of x overflows float64"):
                LayerNorm(2).forward(np.array([1e200, -1e200]))

            x32 = np.array([[1e30, 1.0], [-1e30, 2.0]], np.float32)
            bn = BatchNorm1d(2, dtype=np.float32)
            bn.forward(np.array([[1, 1], [2, 3]], np.float32))
            before = bn.state_dict()
            with pytest.raises(ValueError, match="x: the running statistics of channel 0 would overflow float32"):
                bn.forward(x32)
            for k, v in bn.state_dict().items():
                np.testing.assert_array_equal(v, before[k])
            assert bn.pending_calls() == 1
            np.testing.assert_allclose(bn.forward(x32, train=False)[:, 1], (x32[:, 1] - bn.running_mean[1])
                                       / np.sqrt(bn.running_var[1] + 1e-5), rtol=1e-6)
            unt = BatchNorm1d(2, dtype=np.float32, track_running_stats=False)
            np.testing.assert_allclose(unt.forward(x32)[:, 0], [1, -1], rtol=1e-6)
            np.testing.assert_allclose(LayerNorm(2, dtype=np.float32).forward(x32[:, :1].T.copy()), [[1, -1]],
                                       rtol=1e-6)
            big = BatchNorm1d(2, dtype=np.float32)                   # variance 1e36 fits float32
            big.forward(np.array([[1e18, 1.0], [-1e18, 2.0]], np.float32))
            assert np.isfinite(big.running_var).all() and big.running_var[0] > 1e35


# ---- no_grad and per-call state ----------------------------------------------------------------
def _layers():
    rng = np.random.default_rng(8)
    yield make_bn("BatchNorm2d", rng)
    yield make_ln("LayerNorm (3, 4)", rng)
    yield Dropout(0.3, rng=0), rng.standard_normal((4, 6))


@pytest.mark.parametrize("train", [True, False])
def test_no_grad_saves_nothing(train):
    rng = np.random.default_rng(10)
    for layer, x in _layers():
        with engine.no_grad():
            layer.forward(x, train=train)
        assert layer.pending_calls() == 0, type(layer).__name__
        layer.forward(x, train=train)
        assert layer.pending_calls() == 1
        assert layer.backward(rng.standard_normal(x.shape), input_grad=False) is None
        assert layer.pending_calls() == 0


# ---- Dropout -----------------------------------------------------------------------------------
def test_dropout_each_call_keeps_its_own_mask():
    # two calls in one forward draw two masks; each backward (newest first) uses its call's mask
    rng = np.random.default_rng(9)
    x = rng.uniform(1, 2, (50, 40))
    d = Dropout(0.5, rng=0)
    y1 = d.forward(x)
    y2 = d.forward(x)
    m1, m2 = y1 / x, y2 / x
    assert not np.array_equal(m1, m2)
    np.testing.assert_array_equal(d.mask, m2)
    G2, G1 = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    np.testing.assert_allclose(d.backward(G2), G2 * m2, rtol=1e-15)
    np.testing.assert_allclose(d.backward(G1), G1 * m1, rtol=1e-15)
    # the same through Sequential(d, Tanh(), d), on both kernel paths (one pair serves both):
    # y = tanh(x ⊙ m_a) ⊙ m_b, ∂ℓ/∂x = ((∂ℓ/∂y ⊙ m_b) ⊙ (1 − tanh²(x ⊙ m_a))) ⊙ m_a
    for reference in (False, True):
        d, twin = Dropout(0.5, rng=3), Dropout(0.5, rng=3)
        with engine.no_grad():
            m_a, m_b = twin.forward(np.ones_like(x)), twin.forward(np.ones_like(x))
        G = rng.standard_normal(x.shape)
        y, dx = step(Sequential(d, Tanh(), d), x, G, reference)
        np.testing.assert_allclose(y, np.tanh(x * m_a) * m_b, rtol=1e-15)
        np.testing.assert_allclose(dx, G * m_b * (1 - np.tanh(x * m_a) ** 2) * m_a, rtol=1e-12, atol=1e-15)
        assert d.pending_calls() == 0


def test_dropout_statistics_seed_and_eval():
    x = np.ones((200, 100))
    d = Dropout(0.25, rng=1)
    y = d.forward(x)
    assert abs((y == 0).mean() - 0.25) < 0.01
    np.testing.assert_allclose(np.unique(y), [0, 1 / 0.75])
    np.testing.assert_array_equal(d.mask, y)
    G = np.random.default_rng(2).standard_normal(x.shape)
    np.testing.assert_array_equal(d.backward(G), G * d.mask)
    np.testing.assert_array_equal(Dropout(0.25, rng=1).forward(x), y)          # seeded
    assert not np.array_equal(d.forward(x), y)                                  # redrawn per forward
    np.testing.assert_array_equal(d.forward(x, train=False), x)                 # identity in eval
    np.testing.assert_array_equal(d.backward(G), G)
    np.testing.assert_array_equal(Dropout(0.0).forward(x), x)
    np.testing.assert_array_equal(Dropout(1.0).forward(x), 0)
    assert Dropout(0.5).forward(x.astype(np.float32)).dtype == np.float32


def test_dropout_draws_from_its_generator():
    x = np.ones((30, 20))
    assert Dropout.stochastic
    engine.manual_seed(7)
    a = Dropout(0.5).forward(x)
    engine.manual_seed(7)
    np.testing.assert_array_equal(Dropout(0.5).forward(x), a)              # the engine's default generator
    d = Dropout(0.5, rng=1)
    d.set_generator(7)
    np.testing.assert_array_equal(d.forward(x), Dropout(0.5, rng=7).forward(x))
    with pytest.raises(ValueError, match="rng"):
        Dropout(0.5, rng=-1)


def test_dropout_fixed_mask_is_layer_state():
    x = np.ones((20, 10))
    f = Dropout(0.5, rng=2, fix_mask=True)
    m1 = f.forward(x).copy()
    np.testing.assert_array_equal(f.forward(x), m1)
    with engine.no_grad():                                                      # gradcheck's forwards
        np.testing.assert_array_equal(f.forward(x), m1)
    f.resample()
    assert not np.array_equal(f.forward(x), m1)
    assert f.mask.shape == x.shape and f.pending_calls() == 3


def test_dropout_0d_input_comes_back_0d():
    d = Dropout(0.5, rng=0)
    for train in (True, False):
        ys = [d.forward(np.array(2.0), train=train) for _ in range(20)]
        assert all(isinstance(y, np.ndarray) and y.shape == () for y in ys)     # was a Python float
        assert {float(y) for y in ys} <= {0.0, 4.0, 2.0}
        dxs = [d.backward(np.array(1.5)) for _ in range(20)][::-1]
        assert all(isinstance(g, np.ndarray) and g.shape == () for g in dxs)
        np.testing.assert_array_equal([float(g) for g in dxs], [0.75 * float(y) for y in ys])


def test_dropout_errors():
    for bad in ("yes", "False", 0, None):                 # "False" fixed the mask
        with pytest.raises(TypeError, match="^fix_mask: expected True or False"):
            Dropout(0.5, fix_mask=bad)
    d = Dropout(0.5, rng=0)
    for bad in ("no", None, 0):                          # None dropped nothing (read as eval)
        with pytest.raises(TypeError, match="^train: expected True or False"):
            d.forward(np.ones((2, 3)), train=bad)
    assert d.pending_calls() == 0 and d.mask is None
    d.forward(np.ones((2, 3)))
    with pytest.raises(TypeError, match="^input_grad: expected True or False"):
        d.backward(np.ones((2, 3)), input_grad="no")
    assert d.pending_calls() == 1
    with pytest.raises(ValueError, match="p"):
        Dropout(1.5)
    with pytest.raises(TypeError, match="x"):
        Dropout().forward([1.0, 2.0])
    d = Dropout()
    d.forward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\)"):
        d.backward(np.ones((3, 2)))
    with pytest.raises(TypeError, match="dy: expected dtype float64"):
        d.backward(np.ones((2, 3), np.float32))
