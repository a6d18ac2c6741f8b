"""layers.mlp.MLP (the notes' MLP, 000 §7): the fused fast kernels against the reference pair
through `engine.reference_kernels()`, against the equivalent Sequential of Linear and activation
layers, against PyTorch (tests/crosscheck.py), by hand (preactivations, activations and their
gradients); 1 vs 2 threads; float32 on more than one chunk; the backward contract and refusals.

The finite-difference checks are the family's table, scripts/gradcases_dense.py, run on both
kernel paths by tests/test_gradient_cases.py. Models whose hidden preactivations would come near
an activation's kink are made well-conditioned deterministically (gradcases_dense.clear_kinks
shifts that unit's bias), never by redrawing."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crosscheck import crosscheck
from engine import Sequential, no_grad, reference_kernels
from engine.threads import chunks_for
from gradcases_dense import clear_kinks
from layers import GELU, MLP, Heaviside, Identity, LeakyReLU, Linear, ReLU, Sigmoid, Softplus, Tanh
from layers import mlp as M

HYP = settings(max_examples=10, deadline=None, derandomize=True)

OPTS = {"negative_slope": 0.2, "beta": 2.0, "threshold": 1.0}   # Softplus: both branches reached
ACT_LAYERS = {   # name -> factory(opts) of the equivalent standalone activation layer
    "relu": lambda o: ReLU(), "leaky_relu": lambda o: LeakyReLU(o["negative_slope"]),
    "sigmoid": lambda o: Sigmoid(), "tanh": lambda o: Tanh(), "gelu": lambda o: GELU(),
    "gelu_tanh": lambda o: GELU("tanh"), "softplus": lambda o: Softplus(o["beta"], o["threshold"]),
    "identity": lambda o: Identity(), "heaviside": lambda o: Heaviside(),
}
ACTS = list(ACT_LAYERS)


def kink(act, opts):
    return {"relu": 0.0, "leaky_relu": 0.0, "heaviside": 0.0,
            "softplus": opts["threshold"] / opts["beta"]}.get(act)


def make_mlp(widths, act, seed=0, dtype=np.float64, opts=OPTS):
    return MLP(widths, activation=act, dtype=dtype, rng=seed, **opts)


def equivalent_sequential(m, act, opts=OPTS):
    """Sequential(Linear, act, Linear, …, Linear) built by hand, weights copied by state dict."""
    w = [int(v) for v in m.widths]
    mods = []
    for k in range(len(w) - 1):
        mods.append(Linear(w[k], w[k + 1], dtype=m.dtype))
        if k < len(w) - 2:
            mods.append(ACT_LAYERS[act](opts))
    seq = Sequential(*mods)
    seq.load_state_dict(m.state_dict())
    return seq


def run(layer, x, dy, input_grad=True, reference=False):
    layer.zero_grad()
    with reference_kernels(reference):
        y = layer.forward(x)
        dx = layer.backward(dy, input_grad=input_grad)
    return y, dx, {n: p.grad.copy() for n, p in layer.named_parameters()}


def well_conditioned(widths, act, N, seed=0, margin=1e-3, dtype=np.float64, opts=OPTS):
    """An MLP, an input and a random upstream gradient, the MLP's hidden preactivations all
    `margin` away from the activation's kink (biases shifted deterministically: clear_kinks)."""
    r = np.random.default_rng(seed)
    m = make_mlp(widths, act, seed=r, opts=opts)
    x = r.standard_normal((N, widths[0]))
    dy = r.standard_normal((N, widths[-1]))
    clear_kinks(m, x, kink(act, opts), margin)
    if dtype != np.float64:
        m32 = make_mlp(widths, act, dtype=dtype, opts=opts)
        m32.load_state_dict(m.state_dict())
        m = m32
    return m, x.astype(dtype), dy.astype(dtype)


# ---- against the equivalent Sequential -----------------------------------------------------
@pytest.mark.parametrize("act", ACTS)
def test_mlp_equals_sequential(act):
    @HYP
    @given(widths=st.lists(st.integers(1, 5), min_size=2, max_size=5), N=st.integers(1, 6),
           seed=st.integers(0, 2**32 - 1),
           opts=st.fixed_dictionaries({"negative_slope": st.sampled_from([0.01, 0.2, -0.3]),
                                       "beta": st.sampled_from([1.0, 2.0, 0.5]),
                                       "threshold": st.sampled_from([20.0, 1.0, -0.5])}))
    def check(widths, N, seed, opts):
        m, x, dy = well_conditioned(widths, act, N, seed=seed, opts=opts)
        seq = equivalent_sequential(m, act, opts)
        y, dx, g = run(m, x, dy)
        ys, dxs, gs = run(seq, x, dy)
        assert list(g) == list(gs)
        np.testing.assert_allclose(y, ys, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx, dxs, rtol=1e-12, atol=1e-12)
        for n in g:
            np.testing.assert_allclose(g[n], gs[n], rtol=1e-12, atol=1e-12, err_msg=n)
        # and the MLP's own to_sequential
        y2, dx2, g2 = run(m.to_sequential(), x, dy)
        np.testing.assert_allclose(y2, y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx2, dx, rtol=1e-12, atol=1e-12)

    check()


TORCH_ACTS = {"relu": ("ReLU", {}), "tanh": ("Tanh", {}), "sigmoid": ("Sigmoid", {}), "gelu": ("GELU", {}),
              "gelu_tanh": ("GELU", {"approximate": "tanh"}), "identity": ("Identity", {}),
              "softplus": ("Softplus", {"beta": 2.0, "threshold": 1.0}),
              "leaky_relu": ("LeakyReLU", {"negative_slope": 0.2})}


def torch_mlp(torch, widths, act):
    """torch.nn.Sequential(Linear, act, Linear, …, Linear): the MLP's torch counterpart."""
    name, kw = TORCH_ACTS[act]
    mods = []
    for k in range(len(widths) - 1):
        mods.append(torch.nn.Linear(widths[k], widths[k + 1]))
        if k < len(widths) - 2:
            mods.append(getattr(torch.nn, name)(**kw))
    return torch.nn.Sequential(*mods)


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("act", list(TORCH_ACTS))
def test_mlp_matches_torch(torch, act, path):
    for widths, N in [([4, 6, 5, 3], 7), ([3, 2], 1), ([2, 5, 1], 1)]:
        m, x, _ = well_conditioned(widths, act, N)
        with reference_kernels(path == "reference"):
            crosscheck(m, torch_mlp(torch, widths, act), x)


# ---- the fused kernels against the reference pair ------------------------------------------
def stored(m):
    return [a.copy() for a in m.preactivations + m.activations + m.preactivation_grads]


@pytest.mark.parametrize("act", ACTS)
def test_fast_and_reference_paths_agree(act):
    """The fused kernels against the notes' reference pair: output, ∂ℓ/∂x, every parameter
    gradient and every stored f_k, h_k, ∂ℓ/∂f_k; for K = 2, 1 and 0 hidden layers."""
    for widths, N in [([3, 5, 4, 2], 6), ([2, 3, 1], 1), ([4, 3], 3)]:
        m, x, dy = well_conditioned(widths, act, N)
        fast = run(m, x, dy, reference=False)
        fast_stored = stored(m)
        ref = run(m, x, dy, reference=True)
        ref_stored = stored(m)
        assert len(fast_stored) == len(ref_stored) == 3 * len(widths) - 4
        for a, b in zip(fast[:2], ref[:2]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        for n in ref[2]:
            np.testing.assert_allclose(fast[2][n], ref[2][n], rtol=1e-12, atol=1e-13, err_msg=n)
        for a, b in zip(fast_stored, ref_stored):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_clear_kinks_shifts_a_bias_deterministically(rng):
    """A hidden unit put exactly on ReLU's kink for one row gets its bias shifted (that column
    only), so that every hidden preactivation clears the margin; a second call changes nothing."""
    m = MLP([3, 4, 3, 2], rng=0)
    x = rng.standard_normal((5, 3))
    with no_grad():
        m.forward(x)
    m.biases[0][2] -= m.preactivations[0][1, 2]                       # f_0[1, 2] = 0 (up to rounding)
    before = m.theta.copy()
    assert clear_kinks(m, x, 0.0, margin=1e-3) >= 1
    changed = np.flatnonzero(m.theta != before)
    assert 3 * 4 + 2 in changed                                       # β_0[2] moved
    with no_grad():
        m.forward(x)
    assert all(np.abs(f).min() > 1e-3 for f in m.preactivations[:-1])
    after = m.theta.copy()
    assert clear_kinks(m, x, 0.0, margin=1e-3) == 0
    np.testing.assert_array_equal(m.theta, after)


# ---- the stored quantities, by hand --------------------------------------------------------
@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("act", ACTS)
def test_preactivations_activations_and_their_gradients(act, path):
    widths = [3, 5, 4, 2]
    m, x, dy = well_conditioned(widths, act, 4)
    run(m, x, dy, reference=path == "reference")
    f, h, df = m.preactivations, m.activations, m.preactivation_grads
    K = m.K
    assert K == 2 and len(f) == len(df) == K + 1 and len(h) == K
    assert [a.shape for a in f] == [(4, w) for w in widths[1:]]
    assert [a.shape for a in h] == [(4, w) for w in widths[1:-1]]
    assert [a.shape for a in df] == [(4, w) for w in widths[1:]]
    W, b = m.weights, m.biases
    assert [w.shape for w in W] == [(5, 3), (4, 5), (2, 4)] and [v.shape for v in b] == [(5,), (4,), (2,)]
    a = ACT_LAYERS[act](OPTS)
    np.testing.assert_allclose(f[0], x @ W[0].T + b[0], rtol=1e-13, atol=1e-14)      # f_0 = β_0 + Ω_0 x
    for k in range(1, K + 1):
        with no_grad():
            np.testing.assert_allclose(h[k - 1], a.forward(f[k - 1]), rtol=1e-15, atol=1e-300)  # h_k = a[f_{k−1}]
        np.testing.assert_allclose(f[k], h[k - 1] @ W[k].T + b[k], rtol=1e-13, atol=1e-14)   # f_k = β_k + Ω_k h_k
    np.testing.assert_array_equal(df[K], dy)                                         # ∂ℓ/∂f_K = dy
    for k in range(K, 0, -1):                                                        # a'[f_{k−1}] ⊙ Ω_kᵀ ∂ℓ/∂f_k
        a.forward(f[k - 1])
        np.testing.assert_allclose(df[k - 1], a.backward(df[k] @ W[k]), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(m.grad[:15], (df[0].T @ x).ravel(), rtol=1e-13, atol=1e-14)  # ∂ℓ/∂Ω_0
    for arr in f + h + df:
        assert not arr.flags.writeable
        with pytest.raises(ValueError, match="read-only"):
            arr[0, 0] = 1.0


def test_stored_quantities_need_forward_and_backward(rng):
    m = MLP([2, 3, 1], rng=0)
    with pytest.raises(RuntimeError, match="preactivations: call forward first"):
        m.preactivations
    with pytest.raises(RuntimeError, match="activations: call forward first"):
        m.activations
    with pytest.raises(RuntimeError, match="preactivation_grads"):
        m.preactivation_grads
    with pytest.raises(RuntimeError, match="MLP.backward: no forward call waits for a backward"):
        m.backward(rng.standard_normal((1, 1)))
    x = rng.standard_normal((3, 2))
    m.forward(x)
    assert len(m.preactivations) == 2 and len(m.activations) == 1
    with pytest.raises(RuntimeError, match="preactivation_grads"):
        m.preactivation_grads
    m.backward(rng.standard_normal((3, 1)))
    assert len(m.preactivation_grads) == 2
    x2 = rng.standard_normal((4, 2))
    m.forward(x2)                                             # the stored f_k are the last forward's
    np.testing.assert_allclose(m.preactivations[0], x2 @ m.weights[0].T + m.biases[0], rtol=1e-14)


@pytest.mark.parametrize("sizes", [(4, 6), (6, 4), (4, 6, 4)])
def test_calls_of_different_batch_sizes_in_flight(sizes, rng):
    """One MLP used on batches of different sizes in one forward (then backward in reverse
    order): each call's buffers fit its batch, and later forwards of either size get buffers of
    their own size (the fast path reuses freed buffers), as the reference path computes."""
    m = MLP([3, 5, 2], activation="tanh", rng=0)
    xs = [rng.standard_normal((N, 3)) for N in sizes]
    Gs = [rng.standard_normal((N, 2)) for N in sizes]
    out = {}
    for ref in (False, True):
        m.zero_grad()
        with reference_kernels(ref):
            ys = [m.forward(x) for x in xs]
            dxs = [m.backward(G) for G in reversed(Gs)][::-1]
            again = [m.forward(x) for x in xs[::-1]]
            m.zero_grad()
        out[ref] = ys + dxs + again
    for a, b in zip(out[False], out[True]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_no_hidden_layer_and_batch_size_changes(rng):
    m = MLP([3, 2], rng=0)                                    # a single Linear
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(m.forward(x), x @ m.weights[0].T + m.biases[0], rtol=1e-14)
    assert m.K == 0 and m.activations == [] and len(m.preactivations) == 1
    m2 = MLP([3, 4, 2], activation="tanh", rng=1)
    seq = m2.to_sequential()
    for N in (5, 1, 3, 130, 5):
        x = rng.standard_normal((N, 3))
        dy = rng.standard_normal((N, 2))
        for a, b in zip(run(m2, x, dy)[:2], run(seq, x, dy)[:2]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        assert m2.preactivations[0].shape == (N, 4)


def test_names_views_and_state(rng):
    m = MLP([3, 4, 4, 2], activation="gelu", rng=0)
    assert [n for n, _ in m.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias",
                                                    "4.weight", "4.bias"]
    assert m.theta.size == sum(p.value.size for p in m.parameters())
    for p in m.parameters():
        assert np.shares_memory(p.value, m.theta) and np.shares_memory(p.grad, m.grad)
        assert p.grad.shape == p.value.shape
    assert np.shares_memory(m.weights[1], m.theta)
    bound = 1 / np.sqrt(3)
    assert np.abs(m.weights[0]).max() <= bound and np.abs(m.biases[0]).max() <= bound
    np.testing.assert_array_equal(MLP([3, 4, 4, 2], activation="gelu", rng=0).theta, m.theta)
    assert "widths=[3, 4, 4, 2]" in repr(m) and "gelu" in repr(m)


# ---- the backward contract -----------------------------------------------------------------
@pytest.mark.parametrize("path", ["fast", "reference"])
def test_two_forward_backward_pairs_and_no_input_grad(path):
    m, x, dy = well_conditioned([3, 5, 2], "sigmoid", 4)
    m.zero_grad()
    with reference_kernels(path == "reference"):
        m.forward(x)
        dx1 = m.backward(dy)
        g1 = m.grad.copy()
        m.forward(x)
        dx2 = m.backward(dy)
        np.testing.assert_array_equal(dx1, dx2)              # the input gradient is fresh
        np.testing.assert_allclose(m.grad, 2 * g1, rtol=1e-14)
        m.zero_grad()
        assert np.all(m.grad == 0)
        m.forward(x)
        assert m.backward(dy, input_grad=False) is None
        np.testing.assert_allclose(m.grad, g1, rtol=1e-14)


def test_heaviside_mlp_passes_no_gradient_below_the_output_layer():
    m, x, dy = well_conditioned([3, 4, 2], "heaviside", 5)
    _, dx, g = run(m, x, dy)
    assert np.all(dx == 0) and np.all(g["0.weight"] == 0) and np.all(g["0.bias"] == 0)
    np.testing.assert_allclose(g["2.bias"], dy.sum(0), rtol=1e-14)


# ---- serial vs parallel, float32 on two chunks ---------------------------------------------
BIG = [40, 48, 32, 3]      # 130 rows of this MLP: enough work to split the batch over 2 threads


@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_parallel_and_serial_agree(with_threads, act):
    m, x, dy = well_conditioned(BIG, act, 130, margin=1e-6)
    assert with_threads(2, chunks_for, 130, row_cost=m.theta.size) == 2

    def go():
        y, dx, g = run(m, x, dy)
        return [y, dx, m.grad.copy()] + stored(m)

    serial, parallel = with_threads(1, go), with_threads(2, go)
    for s, p in zip(serial, parallel):
        np.testing.assert_allclose(p, s, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid"])
def test_float32_on_two_chunks_close_to_float64(with_threads, act):
    """float32 through the fused parallel kernels split into 2 chunks (offsets with 4-byte
    items), against the same MLP in float64; preactivations kept 1e-2 from ReLU's kink so
    float32 rounding cannot cross it."""
    N = 141                                                   # odd: chunks of different sizes
    m64, x, dy = well_conditioned(BIG, act, N, margin=1e-2)
    m32 = make_mlp(BIG, act, dtype=np.float32)
    m32.load_state_dict(m64.state_dict())
    assert with_threads(2, chunks_for, N, row_cost=m32.theta.size) == 2
    r64 = run(m64, x, dy)
    s64 = stored(m64)

    def go():
        return run(m32, x.astype(np.float32), dy.astype(np.float32)), stored(m32)

    r32, s32 = with_threads(2, go)
    assert r32[0].dtype == r32[1].dtype == m32.grad.dtype == np.float32
    pairs = [(r32[0], r64[0]), (r32[1], r64[1])] + [(r32[2][n], r64[2][n]) for n in r64[2]] + list(zip(s32, s64))
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(np.abs(b).max()))


@pytest.mark.parametrize("act", ACTS)
def test_float32_close_to_float64(act):
    m64, x, dy = well_conditioned([4, 5, 3], act, 6, margin=1e-2)
    m32 = make_mlp([4, 5, 3], act, dtype=np.float32)
    m32.load_state_dict(m64.state_dict())
    y64, dx64, g64 = run(m64, x, dy)
    y32, dx32, g32 = run(m32, x.astype(np.float32), dy.astype(np.float32))
    assert y32.dtype == dx32.dtype == m32.grad.dtype == np.float32
    for a, b in [(y32, y64), (dx32, dx64)] + [(g32[n], g64[n]) for n in g64]:
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---- bad input -----------------------------------------------------------------------------
def test_mlp_refuses_bad_options():
    with pytest.raises(ValueError, match=r"activation: expected one of .*'relu'.*, got 'swish'"):
        MLP([2, 3, 1], activation="swish")
    with pytest.raises(ValueError, match=r"widths\[1\]: expected an int in \[1, inf\], got -3"):
        MLP([2, -3, 1])
    with pytest.raises(TypeError, match=r"widths\[0\]: expected an int, got float"):
        MLP([2.0, 3])
    for bad in ([4], []):
        with pytest.raises(ValueError, match=r"widths: expected a list of at least 2 layer sizes"):
            MLP(bad)
    for bad in ("abc", 5, None, np.ones((2, 2), np.int64)):                   # not a list: TypeError
        with pytest.raises(TypeError, match=r"widths: expected a list of layer sizes"):
            MLP(bad)
    with pytest.raises(TypeError, match=r"widths\[1\]: expected an int, got list"):
        MLP([3, [4]])
    for bad in (3, None, ["relu"], b"relu"):
        with pytest.raises(TypeError, match=r"activation: expected one of"):
            MLP([2, 2], activation=bad)
    # every option is checked, whether or not the activation uses it (a bad one was ignored)
    with pytest.raises(TypeError, match=r"negative_slope: expected a finite real number"):
        MLP([2, 2], activation="relu", negative_slope="x")
    with pytest.raises(ValueError, match=r"beta: expected a number in \(0.0, inf\]"):
        MLP([2, 2], activation="tanh", beta=-1.0)
    # rng through engine.checks.check_rng, by name (numpy's message named nothing)
    with pytest.raises(ValueError, match=r"^rng: expected a non-negative int seed, got -1$"):
        MLP([2, 2], rng=-1)
    for bad in (1.5, "0", True):
        with pytest.raises(TypeError, match=r"^rng: expected an int, a numpy.random.Generator or None"):
            MLP([2, 2], rng=bad)
    with pytest.raises(ValueError, match=r"beta: expected a number in \(0.0, inf\], got 0"):
        MLP([2, 2], activation="softplus", beta=0)
    with pytest.raises(TypeError, match=r"negative_slope: expected a finite real number"):
        MLP([2, 2], activation="leaky_relu", negative_slope="x")
    with pytest.raises(TypeError, match=r"dtype: expected np.float32 or np.float64, got int32"):
        MLP([2, 2], dtype=np.int32)


def test_mlp_refuses_bad_input(rng):
    m = MLP([3, 4, 2], rng=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\), got \(\)"):
        m.forward(np.array(1.0))                                   # 0-d: refused by name
    for v in ("False", 0, None):
        with pytest.raises(TypeError, match="train: expected True or False"):
            m.forward(rng.standard_normal((2, 3)), train=v)
    with pytest.raises(TypeError, match=r"x: expected dtype float64, got float32"):
        m.forward(rng.standard_normal((2, 3)).astype(np.float32))
    with pytest.raises(TypeError, match=r"x: expected dtype float64, got int64"):
        m.forward(np.ones((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3\), got \(2, 2\)"):
        m.forward(rng.standard_normal((2, 2)))
    with pytest.raises(ValueError, match=r"x: expected finite values"):
        m.forward(np.full((2, 3), np.inf))
    assert m.pending_calls() == 0
    x = rng.standard_normal((4, 3))
    dy = rng.standard_normal((4, 2))
    m.forward(x)
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 2\), got \(4, 3\)"):
        m.backward(rng.standard_normal((4, 3)))
    with pytest.raises(TypeError, match=r"dy: expected dtype float64, got float32"):
        m.backward(dy.astype(np.float32))
    for v in ("False", 0, None):                              # None was read as False
        with pytest.raises(TypeError, match="input_grad: expected True or False"):
            m.backward(dy, input_grad=v)
    assert np.all(m.grad == 0) and m.pending_calls() == 1     # nothing ran, the call still waits
    with pytest.raises(ValueError):
        m.forward(rng.standard_normal((5, 2)))                # refused: the last forward stays
    dx = m.backward(dy)
    _, dxs, gs = run(m.to_sequential(), x, dy)
    np.testing.assert_allclose(dx, dxs, rtol=1e-12, atol=1e-14)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, gs[n], rtol=1e-12, atol=1e-14)


def test_kernels_are_njit_without_fastmath():
    from numba.core.registry import CPUDispatcher
    for k in (M.mlp_forward, M.mlp_backward, M.mlp_forward_ref, M.mlp_backward_ref):
        assert isinstance(k, CPUDispatcher) and k.targetoptions.get("fastmath") is not True


def test_non_contiguous_input(rng):
    m = MLP([3, 4, 2], activation="tanh", rng=0)
    seq = m.to_sequential()
    x = rng.standard_normal((5, 6))[:, ::2]
    dy = np.asfortranarray(rng.standard_normal((5, 2)))
    for a, b in zip(run(m, x, dy)[:2], run(seq, np.ascontiguousarray(x), np.ascontiguousarray(dy))[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("make,arg", [(lambda: MLP(5), "widths"),
                                      (lambda: MLP([2, 2], activation=["relu"]), "activation"),
                                      (lambda: MLP([2, 2], dtype="bad"), "dtype")],
                         ids=["widths", "activation", "dtype"])
def test_refusals_name_the_argument(make, arg):
    with pytest.raises((TypeError, ValueError), match=rf"^{arg}: expected"):
        make()
