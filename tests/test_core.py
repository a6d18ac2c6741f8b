"""engine.core (Parameter, Layer, Sequential: registration, per-call saved state, no_grad,
reference_kernels, several inputs and outputs) and engine.threads."""
import numba
import numpy as np
import pytest

from engine import Layer, Parameter, Sequential, is_grad_enabled, no_grad, reference_kernels
from engine.core import input_grad_flags, leaves, rebuild, use_reference
from engine.numerics import FASTMATH
from engine.threads import num_threads, set_num_threads
from layers import MLP, GELU, Linear, ReLU, Sigmoid, Tanh


class Scale(Layer):
    """y = s ⊙ x + c with a buffer `count`: a tiny layer to exercise registration."""

    def __init__(self, n, dtype=np.float64):
        self.dtype = dtype
        self.s = Parameter(np.arange(1.0, n + 1).astype(dtype))
        self.c = Parameter(np.zeros(n, dtype))
        self.register_buffer("count", np.zeros(1))

    def forward(self, x, train=True):
        x = self._check_input(x, shape=(None, self.s.shape[0]))
        self._save(x)
        return x * self.s.value + self.c.value

    def backward(self, dy, *, input_grad=True):
        x, = self._saved()
        dy = self._check_input(dy, name="dy", shape=x.shape)
        self._release()
        self.s.grad += (dy * x).sum(0)
        self.c.grad += dy.sum(0)
        return dy * self.s.value if input_grad else None


class Block(Layer):
    def __init__(self):
        self.inner = Scale(2)
        self.w = Parameter(np.ones((2, 2)))
        self.outer = Sequential(Scale(2), Scale(2))


# ---- Parameter -----------------------------------------------------------------------------
def test_parameter_value_grad_shape_dtype():
    p = Parameter(np.ones((2, 3), np.float32))
    assert p.shape == (2, 3) and p.dtype == np.float32 and p.grad.dtype == np.float32
    assert np.all(p.grad == 0) and p.grad.shape == (2, 3)
    p.grad += 1
    p.zero_grad()
    assert np.all(p.grad == 0)
    assert "Parameter(shape=(2, 3)" in repr(p)
    q = Parameter(np.asfortranarray(np.ones((3, 2))))
    assert q.value.flags.c_contiguous


@pytest.mark.parametrize("bad", [np.ones(3, np.int64), np.ones(2, np.float16), [1, 2]])
def test_parameter_refuses_non_float(bad):
    with pytest.raises(TypeError, match=r"value: expected a float32 or float64 array"):
        Parameter(bad)


# ---- Layer registration, names, zero_grad --------------------------------------------------
def test_named_parameters_in_assignment_order_with_prefixes():
    b = Block()
    names = [n for n, _ in b.named_parameters()]
    assert names == ["w", "inner.s", "inner.c", "outer.0.s", "outer.0.c", "outer.1.s", "outer.1.c"]
    assert [n for n, _ in b.named_buffers()] == ["inner.count", "outer.0.count", "outer.1.count"]
    assert len(b.parameters()) == 7 and all(isinstance(p, Parameter) for p in b.parameters())
    assert [n for n, _ in b.named_children()] == ["inner", "outer"]
    sd = b.state_dict()
    assert set(sd) == set(names) | {"inner.count", "outer.0.count", "outer.1.count"}


def test_zero_grad_clears_every_parameter():
    b = Block()
    for p in b.parameters():
        p.grad += 3.0
    b.zero_grad()
    assert all(np.all(p.grad == 0) for p in b.parameters())


def test_layer_base_is_abstract_and_backward_before_forward():
    with pytest.raises(NotImplementedError):
        Layer().forward(np.ones(2))
    with pytest.raises(NotImplementedError):
        Layer().backward(np.random.default_rng(0).standard_normal(2))
    with pytest.raises(RuntimeError, match=r"Scale.backward: no forward call waits for a backward"):
        Scale(2).backward(np.random.default_rng(0).standard_normal((1, 2)))


def test_call_is_forward():
    s = Scale(3)
    x = np.ones((2, 3))
    np.testing.assert_array_equal(s(x), s.forward(x))


class Record(Layer):
    """y = 2x, recording which call each backward consumes (the call's tag, saved by forward)."""

    def __init__(self):
        self.seen = []

    def forward(self, x, train=True):
        self._save(x, len(self.seen) + self.pending_calls())
        return 2 * x

    def backward(self, dy, *, input_grad=True):
        x, tag = self._saved()
        self._release()
        self.seen.append(tag)
        return 2 * dy if input_grad else None


def test_calls_stack_and_backwards_consume_them_newest_first(rng):
    r = Record()
    x = rng.standard_normal((2, 3))
    for _ in range(3):
        r.forward(x)
    assert r.pending_calls() == 3
    for _ in range(3):
        r.backward(x)
    assert r.seen == [2, 1, 0] and r.pending_calls() == 0
    with pytest.raises(RuntimeError, match=r"Record.backward: no forward call waits for a backward"):
        r.backward(x)


def test_no_grad_records_nothing_and_restores(rng):
    s = Scale(2)
    x = rng.standard_normal((3, 2))
    assert is_grad_enabled()
    with no_grad():
        assert not is_grad_enabled()
        y = s.forward(x)
        with no_grad():
            pass
        assert not is_grad_enabled()                        # nested blocks restore the outer mode
    assert is_grad_enabled() and s.pending_calls() == 0
    np.testing.assert_array_equal(y, s.forward(x))          # the same numbers, now recorded
    assert s.pending_calls() == 1
    with pytest.raises(ZeroDivisionError):
        with no_grad():
            1 // 0
    assert is_grad_enabled()                                # restored after an error too


def test_reference_kernels_switch_nests_and_restores():
    assert not use_reference()
    with reference_kernels():
        assert use_reference()
        with reference_kernels(False):
            assert not use_reference()
        assert use_reference()
    assert not use_reference()
    with pytest.raises(KeyError):
        with reference_kernels():
            raise KeyError("x")
    assert not use_reference()


def test_zero_grad_drops_calls_whose_backward_never_came(rng):
    seq = Sequential(Scale(2), Scale(2))
    x = rng.standard_normal((3, 2))
    seq.forward(x)
    seq.forward(x)
    assert seq[0].pending_calls() == seq[1].pending_calls() == 2
    seq.zero_grad()
    assert seq[0].pending_calls() == seq[1].pending_calls() == 0
    seq.forward(x)
    seq[1].clear_saved()
    assert seq[0].pending_calls() == 1 and seq[1].pending_calls() == 0
    seq.clear_saved()
    assert seq[0].pending_calls() == 0


def test_input_grad_is_keyword_only(rng):
    s = Scale(2)
    x = rng.standard_normal((3, 2))
    s.forward(x)
    with pytest.raises(TypeError):
        s.backward(x, False)
    for layer in (Linear(2, 2, rng=0), Sequential(Linear(2, 2, rng=0)), ReLU(), MLP([2, 2])):
        layer.forward(x)
        with pytest.raises(TypeError):
            layer.backward(x, False)


def test_input_grad_flags():
    assert input_grad_flags(True, 3) == (True, True, True)
    assert input_grad_flags(np.bool_(False), 2) == (False, False)
    assert input_grad_flags([True, False], 2) == (True, False)
    for bad in ((True,), "yes", 1, (True, 1)):
        with pytest.raises(TypeError, match=r"input_grad: expected a bool or 2 bools"):
            input_grad_flags(bad, 2)


def test_leaves_and_rebuild_nested_outputs(rng):
    a, b, c = (rng.standard_normal(2) for _ in range(3))
    tree = (a, (b, c))
    assert [id(v) for v in leaves(tree)] == [id(a), id(b), id(c)] and leaves(a) == [a]
    out = rebuild(tree, iter([1, None, 3]))
    assert out == (1, (None, 3))
    assert rebuild(a, iter(["x"])) == "x"


def test_register_parameter_under_any_name():
    layer = Layer()
    p = Parameter(np.zeros(3))
    layer.register_parameter("0.weight", p)
    assert [(n, q) for n, q in layer.named_parameters()] == [("0.weight", p)]
    assert not hasattr(layer, "0.weight") or getattr(layer, "0.weight") is p
    assert list(layer.state_dict()) == ["0.weight"]
    with pytest.raises(TypeError, match=r"param: expected a Parameter, got ndarray"):
        layer.register_parameter("w", np.zeros(3))


def test_parameter_with_given_grad_array():
    theta, grad = np.arange(6.0), np.zeros(6)
    p = Parameter(theta[2:4], grad=grad[2:4])
    p.grad += 1.0
    assert grad.tolist() == [0, 0, 1, 1, 0, 0]             # accumulates into the given array
    p.zero_grad()
    assert np.all(grad == 0)
    for bad in (np.zeros(3), np.zeros(2, np.float32), [0.0, 0.0]):
        with pytest.raises(ValueError, match=r"grad: expected an array of shape \(2,\) and dtype float64"):
            Parameter(np.zeros(2), grad=bad)


# ---- state dicts ---------------------------------------------------------------------------
def test_state_dict_returns_copies():
    s = Scale(2)
    sd = s.state_dict()
    sd["s"][:] = 99
    sd["count"][:] = 7
    assert s.s.value.tolist() == [1.0, 2.0] and s.count.tolist() == [0.0]


def test_load_state_dict_writes_in_place_and_converts_dtype():
    s = Scale(2, dtype=np.float32)
    view = s.s.value
    s.load_state_dict({"s": np.array([0.5, 0.25]), "c": np.array([1.0, 2.0]), "count": np.array([3.0])})
    assert view is s.s.value and view.dtype == np.float32 and view.tolist() == [0.5, 0.25]
    assert s.c.value.tolist() == [1.0, 2.0] and s.count.tolist() == [3.0]


def _snapshot(layer):
    return {k: v.copy() for k, v in layer.state_dict().items()}


def test_load_state_dict_missing_or_unexpected_key_writes_nothing():
    model = Sequential(Linear(3, 4, rng=0), ReLU(), Linear(4, 2, rng=1))
    before = _snapshot(model)
    new = {k: v + 1.0 for k, v in before.items()}
    bad = dict(new)
    del bad["2.bias"]
    with pytest.raises(ValueError, match=r"missing keys \['2.bias'\]"):
        model.load_state_dict(bad)
    bad = dict(new, **{"1.weight": np.ones(2)})
    with pytest.raises(ValueError, match=r"unexpected keys \['1.weight'\]"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_wrong_shape_writes_nothing():
    model = Sequential(Linear(3, 4, rng=0), Tanh(), Linear(4, 2, rng=1))
    before = _snapshot(model)
    # the bad key comes last, so a loader that wrote as it checked would have changed the others
    bad = {k: v + 1.0 for k, v in before.items()}
    bad["2.weight"] = np.ones((4, 2))
    with pytest.raises(ValueError, match=r"state\['2.weight'\]: expected shape \(2, 4\), got \(4, 2\)"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_unconvertible_value_writes_nothing():
    model = Sequential(Linear(3, 4, rng=0), ReLU(), Linear(4, 2, rng=1))
    before = _snapshot(model)
    bad = {k: v + 1.0 for k, v in before.items()}
    bad["2.bias"] = np.array(["a", "b"])
    with pytest.raises((TypeError, ValueError), match=r"2.bias"):
        model.load_state_dict(bad)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_save_load_same_path_without_suffix(tmp_path):
    model = Linear(2, 3, rng=0)
    model.save(tmp_path / "weights")
    other = Linear(2, 3, rng=1)
    other.load(tmp_path / "weights")
    np.testing.assert_array_equal(other.weight.value, model.weight.value)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_save_load_npz_bit_exact(tmp_path, rng, dtype):
    model = Sequential(Linear(5, 7, dtype=dtype, rng=1), GELU(), Linear(7, 3, bias=False, dtype=dtype, rng=2))
    for p in model.parameters():
        p.value[...] = rng.standard_normal(p.shape).astype(dtype) * 1e3 + 1e-300
    path = tmp_path / "model.npz"
    model.save(path)
    other = Sequential(Linear(5, 7, dtype=dtype, rng=3), GELU(), Linear(7, 3, bias=False, dtype=dtype, rng=4))
    other.load(path)
    sa, sb = model.state_dict(), other.state_dict()
    assert list(sa) == list(sb) == ["0.weight", "0.bias", "2.weight"]
    for k in sa:
        assert sa[k].dtype == sb[k].dtype == dtype
        assert sa[k].tobytes() == sb[k].tobytes()
    with np.load(path) as f:
        assert sorted(f.files) == sorted(sa)


def test_mlp_save_load_npz_bit_exact(tmp_path):
    m = MLP([4, 6, 5, 2], activation="sigmoid", rng=0)
    m.save(tmp_path / "m.npz")
    m2 = MLP([4, 6, 5, 2], activation="sigmoid", rng=1)
    m2.load(tmp_path / "m.npz")
    assert m.theta.tobytes() == m2.theta.tobytes()


# ---- torch names and shapes ----------------------------------------------------------------
def _torch_seq(torch, widths, act):
    mods = []
    for k in range(len(widths) - 1):
        mods.append(torch.nn.Linear(widths[k], widths[k + 1]).double())
        if k < len(widths) - 2:
            mods.append(act())
    return torch.nn.Sequential(*mods)


def test_state_dict_torch_to_engine_and_back(torch, rng):
    widths = [3, 5, 4, 2]
    tm = _torch_seq(torch, widths, torch.nn.Tanh)
    em = Sequential(Linear(3, 5), Tanh(), Linear(5, 4), Tanh(), Linear(4, 2))
    tsd = tm.state_dict()
    esd = em.state_dict()
    assert list(esd) == list(tsd)
    assert all(esd[k].shape == tuple(tsd[k].shape) for k in tsd)
    em.load_state_dict({k: v.detach().numpy() for k, v in tsd.items()})
    x = rng.standard_normal((6, 3))
    np.testing.assert_allclose(em.forward(x), tm(torch.from_numpy(x)).detach().numpy(), rtol=0, atol=1e-13)

    # and the reverse: engine weights into torch
    em2 = Sequential(Linear(3, 5, rng=7), Tanh(), Linear(5, 4, rng=8), Tanh(), Linear(4, 2, rng=9))
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in em2.state_dict().items()})
    np.testing.assert_allclose(tm(torch.from_numpy(x)).detach().numpy(), em2.forward(x), rtol=0, atol=1e-13)


def test_state_dict_float32_torch_into_float64_engine(torch):
    tl = torch.nn.Linear(4, 3)                       # float32
    el = Linear(4, 3)
    el.load_state_dict({k: v.detach().numpy() for k, v in tl.state_dict().items()})
    assert el.weight.value.dtype == np.float64
    np.testing.assert_array_equal(el.weight.value, tl.weight.detach().numpy().astype(np.float64))


def test_mlp_state_dict_matches_torch_sequential(torch):
    tm = _torch_seq(torch, [3, 4, 2], torch.nn.ReLU)
    m = MLP([3, 4, 2])
    assert list(m.state_dict()) == list(tm.state_dict())
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    np.testing.assert_array_equal(m.weights[0], tm[0].weight.detach().numpy())
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in MLP([3, 4, 2], rng=5).state_dict().items()})
    np.testing.assert_array_equal(tm[2].bias.detach().numpy(), MLP([3, 4, 2], rng=5).biases[1])


# ---- Sequential ----------------------------------------------------------------------------
def test_sequential_indexing_names_and_repr():
    seq = Sequential(Linear(2, 3), ReLU(), Linear(3, 1, bias=False))
    assert len(seq) == 3 and isinstance(seq[1], ReLU) and list(seq)[2] is seq[2]
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias", "2.weight"]
    r = repr(seq)
    assert "(0): Linear(in_features=2, out_features=3, bias=True)" in r and "(1): ReLU()" in r


def test_sequential_refuses_non_layers_and_mixed_dtypes():
    with pytest.raises(TypeError, match=r"layers\[1\]: expected a Layer, got ufunc"):
        Sequential(Linear(2, 2), np.tanh)
    with pytest.raises(TypeError, match=r"layers: expected one dtype for all parameters"):
        Sequential(Linear(2, 2), Linear(2, 2, dtype=np.float32))
    assert Sequential(Linear(2, 2, dtype=np.float32), Sigmoid()).dtype == np.float32
    assert Sequential(ReLU()).dtype == np.float64


def test_sequential_chains_forward_and_backward(rng):
    l1, l2 = Linear(3, 4, rng=0), Linear(4, 2, rng=1)
    seq = Sequential(l1, Sigmoid(), l2)
    x = rng.standard_normal((5, 3))
    dy = rng.standard_normal((5, 2))
    y = seq.forward(x)
    dx = seq.backward(dy)
    # by hand
    f0 = x @ l1.weight.value.T + l1.bias.value
    h = 1 / (1 + np.exp(-f0))
    np.testing.assert_allclose(y, h @ l2.weight.value.T + l2.bias.value, rtol=1e-13, atol=1e-14)
    df0 = (dy @ l2.weight.value) * h * (1 - h)
    np.testing.assert_allclose(dx, df0 @ l1.weight.value, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(l1.weight.grad, df0.T @ x, rtol=1e-12, atol=1e-14)
    g = {n: p.grad.copy() for n, p in seq.named_parameters()}
    seq.forward(x)
    assert seq.backward(dy, input_grad=False) is None
    for n, p in seq.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * g[n], rtol=1e-14, atol=0)


# ---- threads -------------------------------------------------------------------------------
def test_threads_policy():
    assert "fast" not in FASTMATH and {"nnan", "ninf"}.isdisjoint(FASTMATH)
    saved = num_threads()
    try:
        set_num_threads(1)
        assert num_threads() == 1 == numba.get_num_threads()
    finally:
        set_num_threads(saved)
    for bad in (0, numba.config.NUMBA_NUM_THREADS + 1, 1.0, "2"):
        with pytest.raises(ValueError, match=r"n: expected an int in \[1, "):
            set_num_threads(bad)


def test_blas_pinned_to_one_thread():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import engine  # noqa: F401
    blas = [i for i in threadpoolctl.threadpool_info()
            if i["user_api"] == "blas" and ("numpy" in i["filepath"] or "scipy" in i["filepath"])]
    if not blas:
        pytest.skip("NumPy's/SciPy's BLAS not identified by threadpoolctl on this install")
    for info in blas:                       # the BLAS np.dot calls inside @njit: NumPy's / SciPy's
        assert info["num_threads"] == 1, info


def test_chunks_for_and_parallel_call(with_threads):
    from numba import njit, prange

    from engine.threads import chunks_for, parallel_call

    @njit(parallel=True)
    def fill(out, nthreads):
        for t in prange(nthreads):
            lo, hi = t * out.shape[0] // nthreads, (t + 1) * out.shape[0] // nthreads
            for i in range(lo, hi):
                out[i] = t
        return nthreads

    def check():
        assert chunks_for(0) == chunks_for(10) == chunks_for(127) == 1
        assert chunks_for(128) == chunks_for(10_000) == 2
        assert chunks_for(40, min_rows=20) == 2 and chunks_for(39, min_rows=20) == 1
        assert chunks_for(10_000, row_cost=1) == 1 and chunks_for(256, row_cost=784 * 512) == 2
        out = np.zeros(6)
        assert parallel_call(fill, 2, out) == 2 and out.tolist() == [0, 0, 0, 1, 1, 1]
        assert parallel_call(fill, 1, out) == 1 and out.tolist() == [0] * 6
        assert numba.get_num_threads() == num_threads() == 2       # restored after the call
        with pytest.raises(ZeroDivisionError):
            parallel_call(lambda n: 1 // 0, 1)
        assert numba.get_num_threads() == 2                        # restored after an error too

    with_threads(2, check)
    with_threads(1, lambda: [chunks_for(10_000) == 1 or pytest.fail("1 thread: 1 chunk")])
