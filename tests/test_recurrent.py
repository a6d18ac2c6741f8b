"""RNN, LSTM, GRU and their cells (issue 12, items 4, 5, 7, 14): PyTorch float64 for every option
(forward, final states, every gradient incl. the initial states') on both kernel paths, the
reference against the fast kernels, float32, dropout, truncated BPTT, bad input. Finite
differences for every option are the case table scripts/gradcases_recurrent.py."""
import numpy as np
import pytest

import engine
from crosscheck import crosscheck
from engine.core import leaves
from layers import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, detach_state

SEQ = {"rnn": (RNN, "RNN", {}), "rnn_relu": (RNN, "RNN", {"nonlinearity": "relu"}),
       "lstm": (LSTM, "LSTM", {}), "gru": (GRU, "GRU", {})}
# (num_layers, bidirectional, batch_first, T, N, with initial state, gradient through the final state only, bias)
OPTIONS = [(1, False, False, 3, 2, False, False, True),
           (1, False, True, 3, 2, True, False, True),
           (2, True, True, 3, 2, True, False, True),
           (3, False, False, 4, 3, True, False, True),
           (2, True, False, 1, 1, True, False, True),
           (1, False, False, 3, 2, True, True, True),
           (2, True, False, 2, 3, False, True, False)]
OPT_IDS = [f"L{o[0]}{'-bi' if o[1] else ''}{'-bf' if o[2] else ''}-T{o[3]}N{o[4]}{'-h0' if o[5] else ''}"
           f"{'-final only' if o[6] else ''}{'-nobias' if not o[7] else ''}" for o in OPTIONS]


def _torch_flat(torch, module, lstm):
    """A torch module taking the initial state as separate arrays (as gradcases' WithState)."""
    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = module

        def forward(self, x, h0=None, c0=None):
            if h0 is None:
                return self.layer(x)
            return self.layer(x, (h0, c0) if lstm else h0)
    return Flat()


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("opt", OPTIONS, ids=OPT_IDS)
@pytest.mark.parametrize("kind", list(SEQ))
def test_sequence_layers_match_torch(torch, kind, opt, path, rng):
    from gradcases_recurrent import with_state
    cls, tname, kw = SEQ[kind]
    L, bi, bf, T, N, state, final_only, bias = opt
    I, H = 3, 2
    layer = cls(I, H, num_layers=L, bidirectional=bi, batch_first=bf, bias=bias, rng=rng, **kw)
    tm = getattr(torch.nn, tname)(I, H, num_layers=L, bidirectional=bi, batch_first=bf, bias=bias, **kw)
    x = rng.standard_normal((N, T, I) if bf else (T, N, I))
    inputs = [x]
    if state:
        S = L * (2 if bi else 1)
        inputs += [rng.standard_normal((S, N, H)) for _ in range(2 if kind == "lstm" else 1)]
        layer, tm = with_state(layer), _torch_flat(torch, tm, kind == "lstm")
    with engine.reference_kernels(path == "reference"):
        res = crosscheck(layer, tm, *inputs, none_outputs=(0,) if final_only else (), rtol=1e-10, atol=1e-12)
    assert len(res.outputs) == (3 if kind == "lstm" else 2)           # output, h_n (, c_n)


CELLS = {"rnncell": (RNNCell, "RNNCell", {}), "rnncell_relu": (RNNCell, "RNNCell", {"nonlinearity": "relu"}),
         "lstmcell": (LSTMCell, "LSTMCell", {}), "grucell": (GRUCell, "GRUCell", {})}


@pytest.mark.parametrize("state", [False, True])
@pytest.mark.parametrize("kind", list(CELLS))
def test_cells_match_torch(torch, kind, state, rng):
    from gradcases_recurrent import with_state
    cls, tname, kw = CELLS[kind]
    cell = cls(3, 2, rng=rng, **kw)
    tm = getattr(torch.nn, tname)(3, 2, **kw)
    inputs = [rng.standard_normal((2, 3))]
    if state:
        inputs += [rng.standard_normal((2, 2)) for _ in range(2 if kind == "lstmcell" else 1)]
        cell, tm = with_state(cell), _torch_flat(torch, tm, kind == "lstmcell")
    crosscheck(cell, tm, *inputs, rtol=1e-10, atol=1e-12)


def test_cell_forward_is_one_step_of_the_sequence_layer(rng):
    """An LSTMCell with the LSTM's weights, stepped over t, gives the LSTM's output and final state."""
    lstm = LSTM(3, 4, rng=rng)
    cell = LSTMCell(3, 4)
    cell.load_state_dict({k[:-3]: v for k, v in lstm.state_dict().items()})
    x = rng.standard_normal((5, 2, 3))
    y, (hn, cn) = lstm.forward(x)
    h, c = np.zeros((2, 4)), np.zeros((2, 4))
    for t in range(5):
        h, c = cell.forward(x[t], (h, c))
        np.testing.assert_allclose(h, y[t], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(h, hn[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(c, cn[0], rtol=1e-13, atol=1e-15)


def _run(layer, x, hx, G, ref):
    with engine.reference_kernels(ref):
        layer.zero_grad()
        out = layer.forward(x, hx)
        grads = layer.backward(*G)
    return leaves(out) + leaves(grads) + [p.grad.copy() for p in layer.parameters()]


# float32 reference kernels only for the LSTM (every compiled signature costs CI time); the fast
# float32 kernels of every kind are compared with float64 below
@pytest.mark.parametrize("kind,dtype,tol", [(k, np.float64, 1e-12) for k in SEQ] + [("lstm", np.float32, 2e-5)])
def test_reference_and_fast_kernels_agree(kind, dtype, tol, rng):
    cls, _, kw = SEQ[kind]
    layer = cls(4, 5, num_layers=2, bidirectional=True, dtype=dtype, rng=rng, **kw)
    T, N, S = 6, 3, 4
    x = rng.standard_normal((T, N, 4)).astype(dtype)
    h0 = rng.standard_normal((S, N, 5)).astype(dtype)
    hx = (h0, rng.standard_normal((S, N, 5)).astype(dtype)) if kind == "lstm" else h0
    G = (rng.standard_normal((T, N, 10)).astype(dtype),
         (h0 * 0.5, h0 * 0.25) if kind == "lstm" else h0 * 0.5)
    fast, ref = _run(layer, x, hx, G, False), _run(layer, x, hx, G, True)
    for a, b in zip(fast, ref):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("kind", list(SEQ))
def test_float32_matches_float64(kind, rng):
    cls, _, kw = SEQ[kind]
    l64 = cls(3, 4, num_layers=2, rng=rng, **kw)
    l32 = cls(3, 4, num_layers=2, dtype=np.float32, **kw)
    l32.load_state_dict(l64.state_dict())
    x = rng.standard_normal((5, 2, 3))
    G = rng.standard_normal((5, 2, 4))
    y64, _ = l64.forward(x)
    y32, _ = l32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    dx64 = l64.backward(G)
    dx32 = l32.backward(G.astype(np.float32))
    assert dx32.dtype == np.float32
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-5)
    for (n, p64), (_, p32) in zip(l64.named_parameters(), l32.named_parameters()):
        np.testing.assert_allclose(p32.grad, p64.grad, rtol=1e-4, atol=1e-5, err_msg=n)


# the fast kernels split the batch over threads for the recurrence and the T·N rows (and Ω's rows)
# for the products around it; this shape is large enough for 2 chunks of each kind
PAR = dict(T=10, N=16, I=5, H=32)


def _par_case(kind, dtype, rng):
    cls, _, kw = SEQ[kind]
    T, N, I, H = PAR["T"], PAR["N"], PAR["I"], PAR["H"]
    layer = cls(I, H, num_layers=2, bidirectional=True, dtype=dtype, rng=0, **kw)
    x = rng.standard_normal((T, N, I))
    h0 = rng.standard_normal((4, N, H))
    hx = (h0, rng.standard_normal((4, N, H))) if kind == "lstm" else h0
    G = (rng.standard_normal((T, N, 2 * H)), (0.5 * h0, 0.25 * h0) if kind == "lstm" else 0.5 * h0)
    cast = (lambda a: tuple(cast(b) for b in a) if isinstance(a, tuple) else a.astype(dtype))
    return layer, cast(x), cast(hx), cast(G)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_parallel_and_serial_fast_kernels_agree(with_threads, kind, rng):
    from engine.threads import chunks_for
    from layers.recurrent import GATES, _batch_chunks
    T, N, I, H = PAR["T"], PAR["N"], PAR["I"], PAR["H"]
    GH = GATES[SEQ[kind][1]] * H
    assert with_threads(2, _batch_chunks, N, T, GH, H) == 2                  # the recurrence: 2 chunks
    assert with_threads(2, chunks_for, T * N, row_cost=GH * (I + H)) == 2     # the gradient products: 2
    layer, x, hx, G = _par_case(kind, np.float64, rng)
    serial = with_threads(1, _run, layer, x, hx, G, False)
    parallel = with_threads(2, _run, layer, x, hx, G, False)
    for a, b in zip(parallel, serial):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_float32_on_two_chunks_close_to_the_reference_in_float64(with_threads, kind, rng):
    """float32 fast kernels (the gate approximations, offsets of 4-byte items) with the batch in 2
    chunks, against the float64 reference kernels on the same weights and data."""
    l32, x, hx, G = _par_case(kind, np.float32, rng)
    l64, _, _, _ = _par_case(kind, np.float64, np.random.default_rng(0))
    l64.load_state_dict(l32.state_dict())
    cast = (lambda a: tuple(cast(b) for b in a) if isinstance(a, tuple) else a.astype(np.float64))
    r32 = with_threads(2, _run, l32, x, hx, G, False)
    r64 = _run(l64, cast(x), cast(hx), cast(G), True)
    for a, b in zip(r32, r64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * np.max(np.abs(b)))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_reused_workspace_arrays_never_serve_two_pending_calls(kind, rng):
    """The fast path hands a finished backward's arrays to the next forward: interleaved calls
    (forward 1, forward 2, backward 2, forward 3, backward 3, backward 1) give what each call gives
    alone on a fresh layer."""
    cls, _, kw = SEQ[kind]
    xs = [rng.standard_normal((5, 3, 4)) for _ in range(3)]
    gs = [rng.standard_normal((5, 3, 6)) for _ in range(3)]
    alone = []
    for x, g in zip(xs, gs):
        layer = cls(4, 6, rng=0, **kw)
        y, _ = layer.forward(x)
        alone.append((y, layer.backward(g), [p.grad.copy() for p in layer.parameters()]))
    layer = cls(4, 6, rng=0, **kw)
    y1, _ = layer.forward(xs[0])
    y2, _ = layer.forward(xs[1])
    dx2 = layer.backward(gs[1])
    y3, _ = layer.forward(xs[2])
    dx3 = layer.backward(gs[2])
    dx1 = layer.backward(gs[0])
    for (y, dx), (ya, dxa, _) in zip([(y1, dx1), (y2, dx2), (y3, dx3)], alone):
        np.testing.assert_allclose(y, ya, rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(dx, dxa, rtol=1e-13, atol=1e-14)
    total = [sum(a[2][i] for a in alone) for i in range(len(alone[0][2]))]
    for p, t in zip(layer.parameters(), total):
        np.testing.assert_allclose(p.grad, t, rtol=1e-12, atol=1e-13)


def test_state_dict_keys_shapes_and_init_are_torchs(torch):
    tm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, rng=0)
    sd = layer.state_dict()
    assert list(sd) == list(tm.state_dict())
    assert all(sd[k].shape == tuple(v.shape) for k, v in tm.state_dict().items())
    assert all(np.abs(v).max() <= 0.5 for v in sd.values())                # U(±1/√hidden_size)
    assert list(GRU(2, 3).state_dict()) == list(torch.nn.GRU(2, 3).state_dict())
    assert list(RNNCell(2, 3, bias=False).state_dict()) == list(torch.nn.RNNCell(2, 3, bias=False).state_dict())


def test_initial_and_final_state_gradients_are_none_or_absent(rng):
    """Without hx the backward returns dx alone; with input_grad=False, None (parameters still accumulate)."""
    rnn = RNN(2, 3, rng=rng)
    x = rng.standard_normal((3, 2, 2))
    y, hn = rnn.forward(x)
    dx = rnn.backward(None, rng.standard_normal(hn.shape))
    assert isinstance(dx, np.ndarray) and dx.shape == x.shape
    rnn.forward(x, hn)
    dx, dh0 = rnn.backward(rng.standard_normal(y.shape), None, input_grad=(False, True))
    assert dx is None and dh0.shape == hn.shape
    rnn.zero_grad()
    rnn.forward(x)
    assert rnn.backward(rng.standard_normal(y.shape), input_grad=False) is None
    assert np.abs(dict(rnn.named_parameters())["weight_ih_l0"].grad).sum() > 0


def test_layer_used_twice_in_one_forward(rng):
    """Two forwards, two backwards in reverse order: each backward uses its own call's states."""
    gru = GRU(2, 3, rng=rng)
    x1, x2 = rng.standard_normal((3, 2, 2)), rng.standard_normal((4, 2, 2))
    G1, G2 = rng.standard_normal((3, 2, 3)), rng.standard_normal((4, 2, 3))
    gru.forward(x1)
    gru.forward(x2)
    dx2 = gru.backward(G2)
    dx1 = gru.backward(G1)
    twin = GRU(2, 3)
    twin.load_state_dict(gru.state_dict())
    twin.forward(x1)
    np.testing.assert_array_equal(twin.backward(G1), dx1)
    twin.forward(x2)
    np.testing.assert_array_equal(twin.backward(G2), dx2)


# ---- dropout between layers --------------------------------------------------------------------
def test_dropout_only_between_layers_in_train_mode_and_seeded(rng):
    x = rng.standard_normal((4, 3, 2))
    a = LSTM(2, 8, num_layers=2, dropout=0.5, rng=7)
    b = LSTM(2, 8, num_layers=2, dropout=0.5, rng=7)
    plain = LSTM(2, 8, num_layers=2, dropout=0.0)
    plain.load_state_dict(a.state_dict())
    assert a.stochastic and not plain.stochastic and not LSTM(2, 3, dropout=0.5).stochastic
    ya, _ = a.forward(x)
    yb, _ = b.forward(x)
    np.testing.assert_array_equal(ya, yb)                              # the same seed, the same masks
    y0, _ = plain.forward(x)
    assert not np.allclose(ya, y0)
    ye, _ = a.forward(x, train=False)                                  # eval: no dropout
    np.testing.assert_array_equal(ye, plain.forward(x, train=False)[0])
    ya2, _ = a.forward(x)
    assert not np.array_equal(ya, ya2)                                 # a new mask at each train forward


def test_fix_mask_keeps_the_mask_until_resample(rng):
    x = rng.standard_normal((3, 2, 2))
    g = RNN(2, 6, num_layers=3, dropout=0.4, fix_mask=True, rng=1)
    y1, _ = g.forward(x)
    y2, _ = g.forward(x)
    np.testing.assert_array_equal(y1, y2)
    g.resample()
    y3, _ = g.forward(x)
    assert not np.array_equal(y1, y3)


def test_dropout_one_zeroes_the_upper_layers_input(rng):
    g = GRU(2, 3, num_layers=2, dropout=1.0, rng=0)
    ref = GRU(2, 3, num_layers=1)
    ref.load_state_dict({"weight_ih_l0": np.zeros((9, 2)), "weight_hh_l0": g.state_dict()["weight_hh_l1"],
                         "bias_ih_l0": g.state_dict()["bias_ih_l1"], "bias_hh_l0": g.state_dict()["bias_hh_l1"]})
    x = rng.standard_normal((3, 2, 2))
    np.testing.assert_allclose(g.forward(x)[0], ref.forward(x)[0], rtol=1e-14)


# ---- truncated BPTT (item 5) ---------------------------------------------------------------------
def test_detach_state_copies_nested_states():
    h, c = np.ones((1, 2, 3)), np.zeros((1, 2, 3))
    d = detach_state((h, c))
    assert isinstance(d, tuple) and len(d) == 2
    assert not np.shares_memory(d[0], h) and np.array_equal(d[0], h)
    assert detach_state(None) is None
    with pytest.raises(TypeError, match="state"):
        detach_state([h, "c"])


def test_truncated_bptt_carries_the_state_with_the_gradient_cut(rng):
    """Two chunks with the state carried: the forward equals one pass over the whole sequence, and
    the second chunk's backward gives the parameters exactly the gradient of its own chunk (the
    first chunk's states are constants there), as torch's .detach() does."""
    lstm = LSTM(2, 3, rng=rng)
    x = rng.standard_normal((6, 2, 2))
    y_full, _ = lstm.forward(x)
    lstm.zero_grad()
    y1, st1 = lstm.forward(x[:3])
    lstm.zero_grad()                                            # (a step would happen here)
    st1 = detach_state(st1)
    y2, st2 = lstm.forward(x[3:], st1)
    np.testing.assert_allclose(np.concatenate([y1, y2]), y_full, rtol=1e-13, atol=1e-15)
    G = rng.standard_normal(y2.shape)
    dx, (dh0, dc0) = lstm.backward(G)                           # dh0, dc0: returned, then dropped
    grads = {n: p.grad.copy() for n, p in lstm.named_parameters()}
    twin = LSTM(2, 3)
    twin.load_state_dict(lstm.state_dict())
    twin.forward(x[3:], (st1[0].copy(), st1[1].copy()))
    twin.backward(G)
    for n, p in twin.named_parameters():
        np.testing.assert_array_equal(p.grad, grads[n])
    assert lstm.pending_calls() == 0


# ---- bad input (item 14) -----------------------------------------------------------------------
def _unchanged(layer, fn):
    before = {n: (p.value.copy(), p.grad.copy()) for n, p in layer.named_parameters()}
    pending = layer.pending_calls()
    fn()
    assert layer.pending_calls() == pending
    for n, p in layer.named_parameters():
        np.testing.assert_array_equal(p.value, before[n][0])
        np.testing.assert_array_equal(p.grad, before[n][1])


BAD_FORWARD = [
    ("wrong rank", lambda x, h: (x[0, 0], None), ValueError, "^x:"),
    ("unbatched x, batched h_0", lambda x, h: (x[:, 0], h), ValueError, "h_0"),
    ("4-d input", lambda x, h: (x[None], None), ValueError, "^x:"),
    ("wrong feature size", lambda x, h: (x[..., :2], None), ValueError, "input_size"),
    ("empty sequence", lambda x, h: (x[:0], None), ValueError, "^x:"),
    ("empty batch", lambda x, h: (x[:, :0], None), ValueError, "^x:"),
    ("float32 input", lambda x, h: (x.astype(np.float32), None), TypeError, "^x:"),
    ("NaN in x", lambda x, h: (np.where(x > 1, np.nan, x), None), ValueError, "^x:"),
    ("h_0 of wrong layers", lambda x, h: (x, h[:1]), ValueError, "h_0"),
    ("h_0 of wrong batch", lambda x, h: (x, h[:, :1]), ValueError, "h_0"),
    ("h_0 unbatched", lambda x, h: (x, h[0]), ValueError, "h_0"),
    ("h_0 a list", lambda x, h: (x, h.tolist()), TypeError, "h_0"),
]


@pytest.mark.parametrize("label,mutate,err,name", BAD_FORWARD, ids=[b[0] for b in BAD_FORWARD])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_bad_forward_input_is_refused_by_name_before_anything_runs(kind, label, mutate, err, name, rng):
    cls = RNN if kind == "rnn" else LSTM
    layer = cls(3, 2, num_layers=2, rng=rng)
    x = rng.standard_normal((4, 2, 3)) * 2
    h = rng.standard_normal((2, 2, 2))
    bx, bh = mutate(x, h)
    hx = None if bh is None else ((bh, h) if kind == "lstm" else bh)

    def call():
        with pytest.raises(err, match=name):
            layer.forward(bx, hx)
    _unchanged(layer, call)


def test_lstm_state_must_be_a_pair_and_c0_is_named(rng):
    lstm = LSTM(3, 2, rng=rng)
    x = rng.standard_normal((2, 1, 3))
    h = np.zeros((1, 1, 2))
    with pytest.raises(TypeError, match="hx"):
        lstm.forward(x, h)
    with pytest.raises(ValueError, match="c_0"):
        lstm.forward(x, (h, np.zeros((1, 2, 2))))
    with pytest.raises(ValueError, match="h_0"):
        LSTMCell(3, 2).forward(x[0], (np.zeros((2, 2)), np.zeros((1, 2))))
    assert lstm.pending_calls() == 0


def test_bad_gradients_are_refused_and_keep_the_call(rng):
    lstm = LSTM(3, 2, num_layers=2, bidirectional=True, rng=rng)
    x = rng.standard_normal((4, 2, 3))
    y, (hn, cn) = lstm.forward(x)
    for dy, ds, err, name in [(y[:, :1], None, ValueError, "dy"), (y.astype(np.float32), None, TypeError, "dy"),
                              (y, (hn[:1], None), ValueError, "dh_n"), (y, (None, cn[..., :1]), ValueError, "dc_n"),
                              (y, hn, TypeError, "dstate")]:
        def call():
            with pytest.raises(err, match=name):
                lstm.backward(dy, ds)
        _unchanged(lstm, call)
    assert lstm.backward(y, (hn, cn)).shape == x.shape


@pytest.mark.parametrize("arg,value,err", [("input_size", 0, ValueError), ("hidden_size", 2.0, TypeError),
                                           ("num_layers", 0, ValueError), ("nonlinearity", "sigmoid", ValueError),
                                           ("dropout", 1.5, ValueError), ("bidirectional", 1, TypeError),
                                           ("batch_first", "True", TypeError), ("dtype", np.int32, TypeError),
                                           ("rng", -1, ValueError), ("fix_mask", None, TypeError)])
def test_bad_constructor_arguments_are_named(arg, value, err):
    kw = {"input_size": 2, "hidden_size": 3}
    kw[arg] = value
    with pytest.raises(err, match=arg):
        RNN(**kw)


def test_float32_gate_approximations_are_accurate_to_float32():
    """The fast float32 kernels' tanh and σ (PERFORMANCE.md lesson 4) against the exact functions
    over float32's whole useful range (beyond ±7.9 tanh is ±1 in float32): within 4e-7 relative
    for tanh (a few units in the last place) and 3e-7 absolute for σ, and exact limits far out."""
    from layers.recurrent import fast_gate
    x = np.concatenate([np.linspace(-12, 12, 400001), np.geomspace(1e-30, 1e-2, 2001),
                        -np.geomspace(1e-30, 1e-2, 2001), [0.0, 50.0, -50.0, 1e30, -1e30]]).astype(np.float32)
    x64 = x.astype(np.float64)
    t, s = fast_gate(x), fast_gate(x, tanh=False)
    assert t.dtype == s.dtype == np.float32
    exact_t = np.tanh(x64)
    assert np.max(np.abs(t - exact_t) / np.maximum(np.abs(exact_t), 1e-38)) < 4e-7
    assert np.max(np.abs(s - 0.5 * (1 + np.tanh(x64 / 2)))) < 3e-7
    assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))
    assert t[-2] == 1 and t[-1] == -1 and s[-2] == 1 and s[-1] == 0


def test_float64_fast_gates_are_accurate_to_float64():
    """The fast float64 kernels' tanh and σ (vectorisable, from e^x = 2^k e^r) against NumPy's over
    float64's range: within 5e-16 relative (about 2 units in the last place; σ where it is above
    1e-300, below that within 1e-307 absolute), odd/exact limits, NaN kept."""
    from layers.recurrent import fast_gate
    x = np.concatenate([np.linspace(-40, 40, 400001), np.geomspace(1e-300, 1, 4001), -np.geomspace(1e-300, 1, 4001),
                        np.linspace(-800, 800, 4001), [0.0, 1e300, -1e300, np.inf, -np.inf]])
    t, s = fast_gate(x), fast_gate(x, tanh=False)
    exact_t = np.tanh(x)
    assert np.max(np.abs(t - exact_t) / np.maximum(np.abs(exact_t), 1e-300)) < 5e-16
    with np.errstate(over="ignore"):
        exact_s = np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))
    big = exact_s > 1e-300
    assert np.max(np.abs(s - exact_s)[big] / exact_s[big]) < 5e-16
    assert np.max(np.abs(s - exact_s)[~big]) < 1e-307
    assert np.all(np.abs(t) <= 1) and np.all((s >= 0) & (s <= 1))
    assert t[-4] == 1 and t[-3] == -1 and t[-2] == 1 and t[-1] == -1 and s[-2] == 1 and s[-4] == 1
    assert np.all(np.isnan(fast_gate(np.array([np.nan])))) and np.all(np.isnan(fast_gate(np.array([np.nan]), tanh=False)))


@pytest.mark.parametrize("state", [False, True])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru", "lstmcell", "grucell"])
def test_unbatched_input_as_torch(torch, kind, state, rng):
    """torch's unbatched form: x (T, input_size) with states (layers · directions, H); a cell's x
    (input_size,) with states (H,)."""
    from gradcases_recurrent import with_state
    cell = kind.endswith("cell")
    cls, tname, kw = CELLS[kind] if cell else SEQ[kind]
    extra = {} if cell else {"num_layers": 2, "bidirectional": True, "batch_first": True}
    layer = cls(3, 2, rng=rng, **kw, **extra)
    tm = getattr(torch.nn, tname)(3, 2, **kw, **extra)
    inputs = [rng.standard_normal((3,) if cell else (4, 3))]
    if state:
        sshape = (2,) if cell else (4, 2)
        inputs += [rng.standard_normal(sshape) for _ in range(2 if "lstm" in kind else 1)]
        layer, tm = with_state(layer), _torch_flat(torch, tm, "lstm" in kind)
    res = crosscheck(layer, tm, *inputs, rtol=1e-10, atol=1e-12)
    assert res.outputs[0].ndim == (1 if cell else 2)


# ---- TokenLookup: the first layer's input as rows of an embedding table --------------------------
@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_token_lookup_equals_its_rows_and_returns_the_tables_gradient(kind, path, rng):
    """forward(TokenLookup(ids, E)) is forward(E[ids]); its backward returns ∂ℓ/∂E, the sum of ∂ℓ/∂x
    over each token's positions; parameters' gradients as with the rows (2 layers, bidirectional)."""
    from layers.recurrent import TokenLookup
    cls, _, kw = SEQ[kind]
    T, N, V, I, H = 5, 3, 4, 3, 2
    ids = rng.integers(0, V, size=(T, N))
    E = rng.standard_normal((V, I))
    dy = rng.standard_normal((T, N, 2 * H))
    res = []
    with engine.reference_kernels(path == "reference"):
        for x in (TokenLookup(ids, E), E[ids]):
            layer = cls(I, H, num_layers=2, bidirectional=True, rng=0, **kw)
            y, _ = layer.forward(x)
            dx = layer.backward(dy)
            res.append((y, dx, [p.grad.copy() for p in layer.parameters()]))
    (y1, dE, g1), (y2, dx, g2) = res
    np.testing.assert_allclose(y1, y2, rtol=1e-13, atol=1e-14)
    expect = np.zeros_like(E)
    np.add.at(expect, ids.reshape(-1), dx.reshape(-1, I))
    assert dE.shape == E.shape
    np.testing.assert_allclose(dE, expect, rtol=1e-12, atol=1e-13)
    for a, b in zip(g1, g2):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


def test_token_lookup_into_a_wrong_table_is_refused():
    from layers.recurrent import TokenLookup
    lstm = LSTM(3, 2, rng=0)
    ids = np.zeros((4, 2), np.int64)
    for E in (np.zeros((5, 3), np.float32), np.zeros((5, 4))):
        with pytest.raises(ValueError, match=r"x: expected ids \(T, N\) into a float64 table with 3 columns"):
            lstm.forward(TokenLookup(ids, E))
    with pytest.raises(ValueError, match="x: expected ids"):
        lstm.forward(TokenLookup(np.zeros(4, np.int64), np.zeros((5, 3))))
    assert lstm.pending_calls() == 0


# ---- the LSTM's per-step products in small-kernel blocks (step_blocks) ----------------------------
def test_step_blocks_follow_openblas_small_kernel_limits():
    from layers.recurrent import SMALL_MN_TRANS, SMALL_MNK, step_blocks
    f32, f64 = np.float32, np.float64
    assert step_blocks(16, 256, 1024, f32, small=True) == (128, True, 128, 256)     # A·B on Ω_hᵀ
    assert step_blocks(16, 128, 512, f32, small=True) == (256, True, 128, 256)
    assert step_blocks(16, 256, 1024, f64, small=True) == (64, False, 128, 256)     # A·Bᵀ on Ω_h
    assert step_blocks(32, 256, 1024, f64, small=True) == (32, False, 64, 256)
    assert step_blocks(16, 256, 1024, f32, small=False) == (1024, True, 256, 1024)  # no small kernels
    assert step_blocks(4, 32, 128, f64, small=True) == (128, False, 32, 128)       # small enough as it is
    assert step_blocks(8, 16, 64, f64, small=True)[:2] == (64, True)                # k < 32: no Bᵀ kernel
    assert step_blocks(16, 256, 1024, f32, small=True, stored=False) == (64, False, 128, 256)  # no Ω_hᵀ copy
    assert step_blocks(8, 16, 64, f32, small=True, stored=False)[:2] == (64, False)
    assert step_blocks(16, 256, 1024, f32, small=False, stored=False)[:2] == (1024, False)
    for dt in (f32, f64):
        for m in (1, 3, 8, 16, 17, 32, 64, 75):
            for H in (32, 100, 128, 256, 512):
                nf, nn, nb, kb = step_blocks(m, H, 4 * H, dt, small=True)
                assert 16 <= nf <= 4 * H or nf == 4 * H
                if nf < 4 * H:
                    assert m * nf * H <= SMALL_MNK and nf % 16 == 0
                    assert nn or m * nf <= SMALL_MN_TRANS
                if (nb, kb) != (H, 4 * H):
                    assert m * nb * kb <= SMALL_MNK


def _recurrent_results(layer, x, hx, dy):
    """Output, final states, ∂ℓ/∂x, ∂ℓ/∂(initial state) when hx is given, and every parameter's
    gradient of one forward and backward (the final states' gradients: the final states themselves)."""
    y, state = layer.forward(x, hx)
    r = layer.backward(dy, state)
    dx, dhx = (r if hx is not None else (r, None))
    states = list(state) if isinstance(state, tuple) else [state]
    dstates = [] if dhx is None else list(dhx) if isinstance(dhx, tuple) else [dhx]
    return [y] + states + [dx] + dstates + [p.grad.copy() for p in layer.parameters()]


@pytest.mark.parametrize("T", [8, 3])
@pytest.mark.parametrize("state", [False, True])
def test_lstm_fast_kernels_in_uneven_step_blocks_match_the_reference(monkeypatch, with_threads, state, T, rng):
    """Blocks that do not divide the products (gate columns 40 of 96, hidden columns 10 of 24, gate
    rows 36 of 96), on 1 and 2 chunks of the batch, with and without an initial state, against the
    reference kernels: output, final states, every gradient; T = 3 is below MIN_STEPS_FOR_COPY
    (Ω_h read in place, no huge-page copy)."""
    import layers.recurrent as R
    N, I, H = (8 if T == 8 else 24), 5, 24       # 24 rows: enough work at T = 3 for two chunks
    assert (T >= R.MIN_STEPS_FOR_COPY) == (T == 8)
    assert with_threads(2, R._batch_chunks, N, T, 4 * H, H) == 2
    x = rng.standard_normal((T, N, I))
    hx = (rng.standard_normal((2, N, H)), rng.standard_normal((2, N, H))) if state else None
    dy = rng.standard_normal((T, N, H))

    def run():
        return _recurrent_results(LSTM(I, H, num_layers=2, rng=0), x, hx, dy)
    with engine.reference_kernels():
        want = run()
    monkeypatch.setattr(R, "PACKED_STEPS", False)      # the forward in blocks, not with Ω_h packed
    for nn in (False, True):            # the forward's blocks of Ω_h (A·Bᵀ) and of Ω_hᵀ (A·B)
        monkeypatch.setattr(R, "step_blocks", lambda m, H_, GH, dtype=None, small=None, stored=True, nn=nn:
                            (40, nn and stored, 10, 36))
        for threads in (1, 2):
            got = with_threads(threads, run)
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("state", [False, True])
@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_forward_with_packed_recurrent_weight_matches_the_reference(monkeypatch, with_threads, mode, state, dtype, rng):
    """The forward's per-step products with Ω_h packed once (engine.blas.gemm_packed_at) and, with
    PACKED_STEPS off, on a stored Ω_hᵀ (RNN, GRU) or in small-kernel blocks (LSTM), on 1 and 2 chunks
    of the batch, both directions, with and without an initial state: output, final states and
    every gradient as the reference kernels give them; one packing per layer, direction and call
    when on, none when off."""
    import layers.recurrent as R
    from engine.blas import packed_for
    if not packed_for(dtype)[0]:
        pytest.skip("no packed OpenBLAS kernel for this core (or HANDPROP_PACKED=0)")
    T, N, I, H = 8, 48, 5, 20                    # H 20: 20-80 gate rows, not multiples of the panels
    make, gates = {"RNN": (RNN, 1), "GRU": (GRU, 3), "LSTM": (LSTM, 4)}[mode]
    assert with_threads(2, R._batch_chunks, N, T, gates * H, H) == 2
    x = rng.standard_normal((T, N, I)).astype(dtype)
    hx = None
    if state:
        hx = tuple(rng.standard_normal((4, N, H)).astype(dtype) for _ in range(2 if mode == "LSTM" else 1))
        hx = hx if mode == "LSTM" else hx[0]
    dy = rng.standard_normal((T, N, 2 * H)).astype(dtype)
    packings = []
    real = R.Workspace.packed_weight
    monkeypatch.setattr(R.Workspace, "packed_weight", lambda ws, W, p: packings.append(1) or real(ws, W, p))

    def run():
        return _recurrent_results(make(I, H, num_layers=2, bidirectional=True, dtype=dtype, rng=0), x, hx, dy)
    with engine.reference_kernels():
        want = run()
    tol = dict(rtol=1e-12, atol=1e-13) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    for packed in (True, False):
        monkeypatch.setattr(R, "PACKED_STEPS", packed)
        for threads in (1, 2):
            del packings[:]
            got = with_threads(threads, run)
            assert len(packings) == (4 if packed else 0)          # 2 layers × 2 directions
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("threads", [1, 2])
def test_recurrent_weight_copies_are_exact(with_threads, threads, rng):
    """Workspace.recurrent_weight: Ω_h or Ω_hᵀ, element for element, for row counts that the
    transposition's groups of four and the threads do not divide (1030 rows: two chunks of 515),
    small ones copied by NumPy; a returned copy is reused."""
    from layers.recurrent import Workspace
    ws = Workspace()
    for R, C, dt in ((37, 5, np.float64), (1024, 256, np.float32), (1030, 129, np.float32), (130, 33, np.float32)):
        W = rng.standard_normal((R, C)).astype(dt)
        for transposed in (False, True):
            got = with_threads(threads, ws.recurrent_weight, W, transposed)
            assert got.flags.c_contiguous and got.dtype == dt
            np.testing.assert_array_equal(got, W.T if transposed else W)
            ws.give_weight(got)
            again = with_threads(threads, ws.recurrent_weight, W, transposed)
            assert again is got
            ws.give_weight(again)
