"""Conv1d / Conv2d: PyTorch float64, reference versus fast kernels through the public switch
`engine.reference_kernels()` on every fast path, a layer used twice in one forward, threads,
float32, options and errors.

The cases are the family's table, scripts/gradcases_conv.py; their finite-difference checks (on
both kernel paths, the reused layer included) run in tests/test_gradient_cases.py."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from analysis import theory
from engine import no_grad, reference_kernels
from engine.blas import gemm_for
from gradcases_conv import CONV1D, CONV2D, make_conv, make_reused
from layers.conv import Conv1d, Conv2d, conv2d_backward, conv2d_forward, conv_output_size
from layers.im2col import GATHER, ROWS, SEGMENTS, padded_size
from crosscheck import crosscheck

ALL = [(2, c) for c in CONV2D] + [(1, c) for c in CONV1D]


def _out_shape(layer, x):
    return (x.shape[0], layer.out_channels) + layer.output_shape(x.shape[2:])


def run(layer, x, G, reference):
    """Forward and backward of `layer` on its reference or its fast kernels ->
    [y, ∂ℓ/∂x, then every parameter's gradient]."""
    layer.zero_grad()
    with reference_kernels(reference):
        y = layer.forward(x)
        dx = layer.backward(G)
    return [y, dx] + [p.grad.copy() for p in layer.parameters()]


def assert_paths_agree(layer, x, seed=2, tol=1e-12):
    """The same layer (or model), input and random upstream gradient on both kernel paths."""
    with no_grad():
        shape = layer.forward(x).shape
    G = np.random.default_rng(seed).standard_normal(shape).astype(x.dtype)
    ref, fast = run(layer, x, G, True), run(layer, x, G, False)
    assert len(ref) == len(fast) == 2 + len(layer.parameters())
    for r, f in zip(ref, fast):
        np.testing.assert_allclose(f, r, rtol=tol, atol=tol)


def _torch_conv(torch, layer, nd, opts):
    cls = torch.nn.Conv1d if nd == 1 else torch.nn.Conv2d
    tm = cls(layer.in_channels, layer.out_channels, layer.kernel_size, **opts).double()
    tm.load_state_dict({k: torch.tensor(v) for k, v in layer.state_dict().items()})
    return tm


# ---- against PyTorch -----------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("nd,case", ALL)
def test_matches_torch_float64(torch, nd, case):
    layer, x = make_conv(nd, case, np.random.default_rng(0))
    tm = _torch_conv(torch, layer, nd, (CONV1D if nd == 1 else CONV2D)[case][-1])
    crosscheck(layer, tm, x, rtol=0, atol=1e-11)


# ---- one layer used twice in one forward ---------------------------------------------------
@pytest.mark.parametrize("nd", [2, 1])
def test_reused_layer_matches_torch(torch, nd):
    """Sequential(c, Tanh(), c): each call keeps its own input, the backward consumes them in
    reverse order and the weight gradients of both uses add up, as in PyTorch."""
    conv, model, x = make_reused(nd, np.random.default_rng(0))
    tc = _torch_conv(torch, conv, nd, dict(padding=1))
    crosscheck(model, torch.nn.Sequential(tc, torch.nn.Tanh(), tc), x, rtol=0, atol=1e-11)
    assert conv.pending_calls() == 0
    assert_paths_agree(model, x)


# ---- reference versus fast kernels ---------------------------------------------------------
@pytest.mark.parametrize("nd,case", ALL)
def test_reference_equals_fast(nd, case):
    assert_paths_agree(*make_conv(nd, case, np.random.default_rng(0)))


# geometries on which the layer picks each fast path: (layer arguments, x shape,
# (im2col, col2im, direct)), im2col / col2im as layers.im2col's SEGMENTS, GATHER, ROWS
PATHS = {
    "rows_groups": ((Conv2d, 4, 6, 3, dict(padding=1, groups=2)), (3, 4, 8, 9), (ROWS, ROWS, False)),
    "rows_1x1": ((Conv2d, 3, 5, 1, dict()), (2, 3, 4, 4), (ROWS, ROWS, False)),
    "gather": ((Conv2d, 2, 3, 3, dict(stride=2, padding=1)), (3, 2, 9, 10), (GATHER, GATHER, False)),
    "gather_segments": ((Conv2d, 2, 3, (3, 2), dict(stride=(1, 2), padding=(1, 0), dilation=(2, 1))),
                        (2, 2, 5, 40), (GATHER, SEGMENTS, False)),
    "segments": ((Conv2d, 4, 4, 3, dict(stride=(1, 2), padding=2, dilation=2, groups=2)), (2, 4, 3, 70),
                 (SEGMENTS, SEGMENTS, False)),
    "direct_groups": ((Conv2d, 4, 6, 3, dict(stride=2, padding=1, groups=2, bias=False)), (2, 4, 34, 70),
                      (SEGMENTS, SEGMENTS, True)),
    "direct_gather": ((Conv2d, 2, 4, 3, dict(stride=2)), (2, 2, 48, 48), (GATHER, SEGMENTS, True)),
    "conv1d_rows": ((Conv1d, 3, 4, 3, dict(padding="same")), (2, 3, 20), (ROWS, ROWS, False)),
    "conv1d_direct": ((Conv1d, 2, 4, 3, dict(stride=2, dilation=2, padding=3)), (2, 2, 1100),
                      (SEGMENTS, SEGMENTS, True)),
}


@pytest.mark.parametrize("name", PATHS)
def test_reference_equals_fast_on_every_path(name):
    (cls, C, Co, k, opts), shape, want = PATHS[name]
    rng = np.random.default_rng(1)
    layer = cls(C, Co, k, rng=rng, **opts)
    x = rng.standard_normal(shape)
    plan = layer.kernel_plan(x.shape)
    assert (plan.im2col, plan.col2im, plan.direct) == want
    assert_paths_agree(layer, x)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(N=st.integers(1, 3), C=st.integers(1, 3), H=st.integers(1, 9),
       W=st.one_of(st.integers(1, 9), st.integers(60, 110)),
       g=st.integers(1, 2), Cog=st.integers(1, 3), kh=st.integers(1, 4), kw=st.integers(1, 4),
       sh=st.integers(1, 3), sw=st.integers(1, 3), dh=st.integers(1, 3), dw=st.integers(1, 2),
       ph=st.integers(0, 4), pw=st.integers(0, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_reference_equals_fast_random(N, C, H, W, g, Cog, kh, kw, sh, sw, dh, dw, ph, pw, bias, seed):
    """Random geometries, narrow (gather, rows) and wide (row segments) outputs."""
    if conv_output_size(H, kh, sh, ph, ph, dh) < 1 or conv_output_size(W, kw, sw, pw, pw, dw) < 1:
        return
    rng = np.random.default_rng(seed)
    layer = Conv2d(C * g, Cog * g, (kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), groups=g,
                   bias=bias, rng=rng)
    assert_paths_agree(layer, rng.standard_normal((N, C * g, H, W)))


@pytest.mark.parametrize("case", ["mixed", "same_even", "groups2"])
def test_kernel_threads_samples_and_paths_agree(case):
    """The fast kernels with 1-3 chunks, 1-3 samples per GEMM and every im2col/col2im path
    combination (also those the layer never picks) give the same results."""
    layer, x = make_conv(2, case, np.random.default_rng(0))
    x = np.random.default_rng(3).standard_normal((5,) + x.shape[1:])
    (KH, KW), (sh, sw), (dh, dw) = layer.kernel_size, layer.stride, layer.dilation
    pt, pl = (tuple(d * (k - 1) // 2 for k, d in zip(layer.kernel_size, layer.dilation))
              if layer.padding == "same" else layer.padding)     # top and left padding
    OH, OW = layer.output_shape(x.shape[2:])
    Co = layer.out_channels
    wm = layer.weight.value.reshape(Co, -1)
    G = np.random.default_rng(4).standard_normal((x.shape[0], Co, OH * OW))
    rows = [(ROWS, ROWS)] if sh == sw == 1 else []
    outs = []
    for nt, S, (path, path_c2i) in [(1, 1, (SEGMENTS, SEGMENTS)), (2, 1, (SEGMENTS, GATHER)), (3, 1, (GATHER, SEGMENTS)),
                                    (1, 3, (GATHER, GATHER)), (2, 2, (SEGMENTS, SEGMENTS))] + \
                                   [(nt, S, r) for r in rows for nt, S in ((1, 1), (2, 2), (3, 3))]:
        Q = OH * (padded_size(*x.shape[2:], KH, KW, sh, sw, pt, pl, dh, dw, OH, OW)[1] if path == ROWS else OW)
        ws = np.empty((nt, x.shape[1] * KH * KW, S * Q))
        zs = np.empty((nt, Co, S * Q))
        dws = np.empty((nt, Co, wm.shape[1] + 1))
        y = conv2d_forward(x, wm, layer.bias.value, KH, KW, sh, sw, pt, pl, dh, dw, layer.groups, OH, OW, ws, zs,
                           gemm_for(np.float64), path, nt)
        dwm, db = np.zeros_like(wm), np.zeros(Co)
        dx = conv2d_backward(G, x, wm, dwm, db, KH, KW, sh, sw, pt, pl, dh, dw, layer.groups, OH, OW, ws, zs, dws,
                             True, gemm_for(np.float64), path, path_c2i, nt)
        outs.append((y, dx, dwm, db))
    assert len(outs) == (8 if rows else 5)
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


# ---- threads and float32 -------------------------------------------------------------------
# batches large enough that the layer splits them into 2 chunks on 2 threads
CHUNKED = {
    "rows_groups": ((Conv2d, 4, 6, 3, dict(padding=1, groups=2)), (24, 4, 8, 8)),
    "gather_stride2": ((Conv2d, 3, 8, 3, dict(stride=2, padding=1)), (24, 3, 12, 12)),
    "direct_groups": ((Conv2d, 4, 6, 3, dict(stride=2, padding=1, groups=2)), (4, 4, 34, 70)),
    "conv1d_segments": ((Conv1d, 4, 8, 3, dict(stride=2, dilation=2)), (40, 4, 90)),
}


@pytest.mark.parametrize("name", CHUNKED)
def test_float32_on_two_chunks_matches_float64(with_threads, name):
    """float32 on 2 threads (2 chunks of the batch: every offset into the workspaces and into z
    of the second chunk, with 4-byte items) against float64 on 1 thread, same weights."""
    (cls, C, Co, k, opts), shape = CHUNKED[name]
    rng = np.random.default_rng(5)
    l64 = cls(C, Co, k, rng=rng, **opts)
    l32 = cls(C, Co, k, dtype=np.float32, **opts)
    l32.load_state_dict(l64.state_dict())
    x = rng.standard_normal(shape)
    assert with_threads(2, l32.kernel_plan, shape).chunks == 2
    G = rng.standard_normal(_out_shape(l64, x))
    r64 = with_threads(1, run, l64, x, G, False)
    r32 = with_threads(2, run, l32, x.astype(np.float32), G.astype(np.float32), False)
    for a32, a64 in zip(r32, r64):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-4 * np.abs(a64).max())


@pytest.mark.parametrize("name", ["rows_groups", "direct_groups"])
def test_two_chunks_equal_one(with_threads, name):
    (cls, C, Co, k, opts), shape = CHUNKED[name]
    rng = np.random.default_rng(6)
    layer = cls(C, Co, k, rng=rng, **opts)
    x = rng.standard_normal(shape)
    G = rng.standard_normal(_out_shape(layer, x))
    serial, parallel = with_threads(1, run, layer, x, G, False), with_threads(2, run, layer, x, G, False)
    for s, p in zip(serial, parallel):
        np.testing.assert_allclose(p, s, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nd,case", [(2, "mixed"), (1, "mixed"), (2, "basic")])
def test_float32_close_to_float64(nd, case):
    l64, x64 = make_conv(nd, case, np.random.default_rng(0))
    l32, x32 = make_conv(nd, case, np.random.default_rng(0), dtype=np.float32)
    l32.load_state_dict(l64.state_dict())
    G = np.random.default_rng(7).standard_normal(_out_shape(l64, x64))
    r64, r32 = run(l64, x64, G, False), run(l32, x32, G.astype(np.float32), False)
    for a32, a64 in zip(r32, r64):
        assert a32.dtype == np.float32
        np.testing.assert_allclose(a32, a64, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(a64).max()))


# ---- the backward contract -----------------------------------------------------------------
@pytest.mark.parametrize("nd", [1, 2])
def test_backward_twice_doubles_parameter_grads(nd):
    layer, x = make_conv(nd, "mixed", np.random.default_rng(0))
    G = np.random.default_rng(4).standard_normal(_out_shape(layer, x))
    layer.forward(x)
    dx1 = layer.backward(G)
    g1, b1 = layer.weight.grad.copy(), layer.bias.grad.copy()
    layer.forward(x)
    dx2 = layer.backward(G)
    np.testing.assert_allclose(layer.weight.grad, 2 * g1, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad, 2 * b1, atol=1e-12)
    np.testing.assert_array_equal(dx1, dx2)
    layer.forward(x)
    assert layer.backward(G, input_grad=False) is None
    np.testing.assert_allclose(layer.weight.grad, 3 * g1, atol=1e-12)
    with reference_kernels():
        layer.forward(x)
        assert layer.backward(G, input_grad=False) is None
    np.testing.assert_allclose(layer.weight.grad, 4 * g1, atol=1e-12)


def test_calls_are_consumed_in_reverse_order():
    """Two forwards of different batches, then two backwards: each gets its own input's gradients."""
    rng = np.random.default_rng(8)
    layer = Conv2d(2, 3, 3, padding=1, rng=rng)
    x1, x2 = rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((3, 2, 5, 5))
    G1, G2 = rng.standard_normal((1, 3, 5, 5)), rng.standard_normal((3, 3, 5, 5))
    want = []
    for x, G in ((x2, G2), (x1, G1)):
        layer.zero_grad()
        layer.forward(x)
        want.append((layer.backward(G), layer.weight.grad.copy()))
    layer.zero_grad()
    layer.forward(x1)
    layer.forward(x2)
    assert layer.pending_calls() == 2
    np.testing.assert_allclose(layer.backward(G2), want[0][0], atol=1e-12)
    np.testing.assert_allclose(layer.backward(G1), want[1][0], atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad, want[0][1] + want[1][1], atol=1e-12)


def test_no_grad_saves_nothing():
    layer = Conv1d(2, 2, 3)
    with no_grad():
        layer.forward(np.zeros((1, 2, 6)))
    assert layer.pending_calls() == 0
    with pytest.raises(RuntimeError, match="no forward call waits for a backward"):
        layer.backward(np.zeros((1, 2, 4)))


# ---- shapes, state, initialisation ---------------------------------------------------------
def test_output_shape_formula_and_same_padding():
    layer = Conv2d(2, 3, (3, 4), padding="same", dilation=(2, 1), rng=0)
    x = np.zeros((1, 2, 7, 6))
    assert layer.forward(x).shape == (1, 3, 7, 6)
    layer = Conv2d(2, 3, 3, stride=2, padding=1, rng=0)
    assert layer.forward(np.zeros((1, 2, 7, 8))).shape == (1, 3, 4, 4)
    assert layer.output_shape((7, 8)) == (4, 4)
    assert Conv1d(1, 1, 5, stride=2, dilation=2).forward(np.zeros((1, 1, 20))).shape == (1, 1, 6)


def test_load_state_dict_from_torch_names():
    layer = Conv2d(4, 6, 3, groups=2)
    sd = layer.state_dict()
    assert set(sd) == {"weight", "bias"} and sd["weight"].shape == (6, 2, 3, 3)
    assert set(Conv1d(2, 3, 3, bias=False).state_dict()) == {"weight"}


def test_default_init_bound():
    layer = Conv2d(4, 8, 3, rng=0)
    bound = 1 / np.sqrt(4 * 9)
    for v in (layer.weight.value, layer.bias.value):
        assert np.abs(v).max() <= bound and np.abs(v).max() > 0.8 * bound
    assert layer.weight.value.dtype == np.float64
    assert Conv2d(1, 1, 1, dtype=np.float32).weight.value.dtype == np.float32
    np.testing.assert_array_equal(Conv2d(4, 8, 3, rng=0).weight.value, layer.weight.value)


# ---- clear errors before any kernel runs ---------------------------------------------------
def test_errors_constructor():
    with pytest.raises(ValueError, match="stride"):
        Conv2d(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="stride"):
        Conv1d(1, 1, 3, stride=-1)
    with pytest.raises(ValueError, match="dilation"):
        Conv2d(1, 1, 3, dilation=(1, 0))
    with pytest.raises(ValueError, match="groups"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups"):
        Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(1, 1, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2d(1, 1, (3, 3, 3))
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 1, 3, padding=-1)
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 1, 3, padding="full")
    with pytest.raises(ValueError, match="padding"):
        Conv1d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode"):
        Conv1d(1, 1, 3, padding_mode="reflect")
    with pytest.raises(TypeError, match="dtype"):
        Conv1d(1, 1, 3, dtype=np.int32)


def test_errors_input():
    layer = Conv2d(2, 3, 5, padding=1)
    with pytest.raises(ValueError, match="x: .*smaller than the dilated kernel"):
        layer.forward(np.zeros((1, 2, 2, 9)))
    with pytest.raises(ValueError, match="x: .*4-dimensional"):
        layer.forward(np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2, H, W\)"):
        layer.forward(np.zeros((1, 3, 8, 8)))
    with pytest.raises(TypeError, match="x: expected dtype float64"):
        layer.forward(np.zeros((1, 2, 8, 8), np.float32))
    with pytest.raises(ValueError, match="x: .*smaller than the dilated kernel"):
        Conv1d(1, 1, 3, dilation=3).forward(np.zeros((1, 1, 6)))
    with pytest.raises(ValueError, match="x: .*3-dimensional"):
        Conv1d(1, 1, 3).forward(np.zeros((1, 6)))
    with pytest.raises(RuntimeError, match="no forward call"):
        Conv1d(1, 1, 3).backward(np.zeros((1, 1, 4)))
    layer.forward(np.zeros((1, 2, 8, 8)))
    with pytest.raises(ValueError, match="dy"):
        layer.backward(np.zeros((1, 3, 5, 5)))
    assert layer.pending_calls() == 1                   # a refused dy leaves the call in place
    with pytest.raises(TypeError):
        layer.backward(np.zeros((1, 3, 6, 6)), False)   # input_grad is keyword-only
    assert layer.backward(np.zeros((1, 3, 6, 6))).shape == (1, 2, 8, 8)


# ---- analysis.theory's formulas agree with what the layers produce -------------------------
@settings(max_examples=30, deadline=None, derandomize=True)
@given(n=st.integers(1, 20), k=st.integers(1, 5), s=st.integers(1, 3), p=st.integers(0, 4), d=st.integers(1, 3))
def test_theory_conv_output_size_agrees(n, k, s, p, d):
    if n + 2 * p < d * (k - 1) + 1:
        with pytest.raises(ValueError):
            theory.conv_output_size(n, k, s, p, d)
        with pytest.raises(ValueError, match="x"):
            Conv1d(1, 1, k, stride=s, padding=p, dilation=d).forward(np.zeros((1, 1, n)))
        return
    want = theory.conv_output_size(n, k, s, p, d)
    assert Conv1d(1, 1, k, stride=s, padding=p, dilation=d).forward(np.zeros((1, 1, n))).shape[-1] == want
    assert Conv2d(1, 1, (k, 1), stride=(s, 1), padding=(p, 0), dilation=(d, 1)).forward(
        np.zeros((1, 1, n, 2))).shape[-2] == want


@pytest.mark.parametrize("ks,ss,ds", [([3, 3], None, None), ([3, 3, 3, 3], None, [1, 2, 4, 8]),
                                      ([5, 3, 3], [2, 2, 1], None), ([3, 2, 3], [1, 2, 1], [2, 1, 3])])
def test_theory_receptive_field_agrees(ks, ss, ds):
    """The input positions that reach one output unit (nonzero gradient of that unit, all-positive
    weights so nothing cancels) span exactly theory.receptive_field."""
    ss, ds = ss or [1] * len(ks), ds or [1] * len(ks)
    layers = [Conv1d(1, 1, k, stride=s, dilation=d) for k, s, d in zip(ks, ss, ds)]
    for l in layers:
        l.weight.value[...] = 1.0
    h = np.zeros((1, 1, 200))
    for l in layers:
        h = l.forward(h)
    g = np.zeros_like(h)
    g[0, 0, h.shape[-1] // 2] = 1.0
    for l in reversed(layers):
        g = l.backward(g)
    nz = np.flatnonzero(g[0, 0])
    assert nz[-1] - nz[0] + 1 == theory.receptive_field(ks, ss, ds)


def test_constructor_arguments_are_named_in_errors():
    with pytest.raises(TypeError, match="bias: expected True or False"):
        Conv2d(3, 4, 3, bias="False")
    with pytest.raises(ValueError, match="rng: expected a non-negative int seed, got -1"):
        Conv1d(3, 4, 3, rng=-1)
