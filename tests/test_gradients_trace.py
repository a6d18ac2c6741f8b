"""Per-layer gradient norms and training traces (analysis.gradients)."""
import numpy as np
import pytest

from analysis.gradients import (GradientTrace, deep_mlp, gradient_norms, layer_norms, register_norms,
                                vanishing_profile)
from engine.losses import MSELoss
from layers import MLP, Linear, ReLU


def test_norms_match_manual_backprop():
    rng = np.random.default_rng(0)
    net = MLP([4, 6, 5, 2], activation="tanh", rng=1)
    X, y = rng.normal(size=(8, 4)), rng.normal(size=(8, 2))
    n = gradient_norms(net, X, y, MSELoss())
    # recompute with the notes' recursion in NumPy
    Ws, bs = net.weights, net.biases
    f0 = X @ Ws[0].T + bs[0]
    h1 = np.tanh(f0)
    f1 = h1 @ Ws[1].T + bs[1]
    h2 = np.tanh(f1)
    f2 = h2 @ Ws[2].T + bs[2]
    g2 = 2 * (f2 - y) / f2.size
    g1 = (g2 @ Ws[2]) * (1 - h2 ** 2)
    g0 = (g1 @ Ws[1]) * (1 - h1 ** 2)
    for k, g in enumerate([g0, g1, g2]):
        assert n["preact"][k] == pytest.approx(np.sqrt((g ** 2).sum() / 8), rel=1e-10)
    for k, (g, h) in enumerate([(g0, X), (g1, h1), (g2, h2)]):
        assert n["weight"][k] == pytest.approx(np.linalg.norm(g.T @ h), rel=1e-10)
    assert n["weight_names"] == ["0.weight", "2.weight", "4.weight"]


def test_sigmoid_vanishes_exponentially_relu_he_does_not():
    s = vanishing_profile("sigmoid", depth=50, width=32)["preact"]
    assert s.shape == (51,)
    logs = np.log(s)
    slope = np.polyfit(np.arange(51), logs, 1)[0]
    assert slope > 0.3                       # grows toward the output: decays toward the input
    assert s[0] < 1e-10 * s[-1]
    t = vanishing_profile("tanh", depth=50, width=32)["preact"]
    assert t[0] < t[-1]
    r = vanishing_profile("relu", depth=50, width=64, init="he")["preact"]
    assert 1e-2 < r[0] / r[-2] < 1e2          # He + ReLU: no exponential trend


def test_trace_through_fit_callback_and_manual_loop():
    import engine
    from engine.optim import SGD
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 1))
    net = MLP([3, 8, 8, 1], activation="relu", rng=0)
    trace = GradientTrace(every=2, probes={"theta_norm": lambda m: np.linalg.norm(m.theta)})
    engine.fit(net, MSELoss(), SGD(net.parameters(), lr=0.05), X, y, epochs=3, batch_size=16, seed=0,
               progress=False, callbacks=[trace.callback])
    a = trace.arrays()
    assert len(trace) == 6                       # 12 steps, every 2nd
    assert a["preact"].shape == (6, 3) and a["weight"].shape == (6, 3)
    assert list(a["step"]) == [1, 3, 5, 7, 9, 11]
    assert a["theta_norm"].shape == (6,) and np.all(a["loss"] > 0)
    # the recorded norms are the step's: compare with a manual replay of the last recorded step
    manual = GradientTrace()
    net2 = MLP([3, 8, 8, 1], activation="relu", rng=0)
    loss = MSELoss()
    net2.zero_grad()
    loss.forward(net2.forward(X[:16]), y[:16])
    net2.backward(loss.backward(), input_grad=False)
    manual.record(net2, loss=0.0)
    assert manual.arrays()["preact"].shape == (1, 3)


def test_register_norms_extension_point_and_generic_layers():
    from engine.core import Sequential
    seq = Sequential(Linear(2, 3), ReLU(), Linear(3, 1))
    seq.forward(np.ones((4, 2)))
    seq.backward(np.ones((4, 1)))
    n = layer_norms(seq)
    assert n["weight"].shape == (2,) and "preact" not in n

    class Toy(MLP):
        pass

    @register_norms(Toy)
    def toy_norms(model):
        return {"sensitivity": np.arange(3.0)}

    toy = Toy([2, 2, 1], rng=0)
    toy.forward(np.ones((2, 2)))
    toy.backward(np.ones((2, 1)))
    assert np.array_equal(layer_norms(toy)["sensitivity"], np.arange(3.0))
    with pytest.raises(TypeError, match="model"):
        layer_norms("nope")
    with pytest.raises(TypeError, match="probes"):
        GradientTrace(probes={"x": 3})
    with pytest.raises(ValueError, match="every"):
        GradientTrace(every=0)


def test_deep_mlp_init_variance():
    net = deep_mlp(3, 200, "relu", init="he", rng=0)
    assert np.var(net.weights[1]) == pytest.approx(2 / 200, rel=0.05)


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu"])
def test_depth_50_trace_manual_loop(act):
    from engine.optim import SGD
    rng = np.random.default_rng(0)
    net = deep_mlp(50, 16, act, init="he" if act == "relu" else "default", rng=1)
    X, y = rng.normal(size=(32, 16)), rng.normal(size=(32, 1))
    loss, opt, trace = MSELoss(), SGD(net.parameters(), lr=0.01), GradientTrace()
    for step in range(4):
        net.zero_grad()
        loss.forward(net.forward(X), y)
        net.backward(loss.backward(), input_grad=False)
        opt.step()
        trace.callback({"epoch": 1, "step": step + 1, "loss": 0.0, "model": net})
    a = trace.arrays()
    assert a["preact"].shape == (4, 51) and a["weight"].shape == (4, 51)
    assert np.isfinite(a["preact"]).all()
    if act == "sigmoid":
        assert a["preact"][0, 0] < 1e-10 * a["preact"][0, -1]


BAD = [
    (lambda: deep_mlp(3, 4, "relu", d_in=0), ValueError, "d_in"),              # was: silently width
    (lambda: deep_mlp(3, 4, "relu", d_out=1.0), TypeError, "d_out"),
    (lambda: deep_mlp(3, 4, "relu", rng=-1), ValueError, "rng"),              # was: unnamed
    (lambda: deep_mlp(3, 4, "relu", init="glorious"), ValueError, "init"),
    (lambda: vanishing_profile("relu", depth=3, batch_size=0), ValueError, "batch_size"),
    (lambda: vanishing_profile("relu", depth=3, rng="0"), TypeError, "rng"),
    (lambda: gradient_norms("net", np.zeros((2, 2))), TypeError, "model"),
    (lambda: gradient_norms(MLP([2, 2, 1], rng=0), np.zeros((2, 2)), np.zeros((2, 1)), "mse"), TypeError, "loss"),
    (lambda: gradient_norms(MLP([2, 2, 1], rng=0), np.zeros((2, 2)), None, MSELoss()), ValueError, "y"),
    (lambda: GradientTrace(every=0), ValueError, "every"),
    (lambda: GradientTrace(probes=[len]), TypeError, "probes"),
    (lambda: register_norms("MLP"), TypeError, "layer_type"),
    (lambda: register_norms(MLP)(3), TypeError, "fn"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}\b"):
        call()


# ---- through time: recurrent layers (issue 12, item 11) ---------------------------------------
from analysis.gradients import (hidden_grad_trace, input_jacobian_trace, log_slope,  # noqa: E402
                                orthogonal_rnn)
from engine.core import reference_kernels  # noqa: E402
from layers.recurrent import GRU, LSTM, RNN  # noqa: E402

REC = {
    "rnn-tanh": lambda: RNN(3, 4, rng=0),
    "rnn-relu-2layers": lambda: RNN(3, 4, num_layers=2, nonlinearity="relu", rng=1),
    "lstm-2layers-batch-first": lambda: LSTM(3, 4, num_layers=2, batch_first=True, rng=2),
    "gru": lambda: GRU(3, 4, rng=3),
}


def _final_h(layer, x, hx=None):
    """h_T of the last layer, in evaluation mode (no saved call), as (N, H) or (H,)."""
    from engine.core import no_grad
    with no_grad():
        _, s = layer.forward(x, hx, train=False)
    h = s[0] if isinstance(layer, LSTM) else s
    return h[-1]


def _layout(layer, X):
    return np.ascontiguousarray(X.transpose(1, 0, 2)) if layer.batch_first else X


@pytest.mark.parametrize("name", list(REC))
def test_input_jacobian_equals_finite_differences(name):
    layer = REC[name]()
    rng = np.random.default_rng(0)
    T, N, I, H = 5, 2, 3, 4
    X = rng.normal(size=(T, N, I))                       # time-major here
    hx = None
    if name == "gru":                                    # an initial state too
        hx = rng.normal(size=(1, N, H)) * 0.5
    tr = input_jacobian_trace(layer, _layout(layer, X), hx)
    assert tr.jacobian.shape == (T, N, H, I) and tr.norm.shape == (T,)
    assert list(tr.lag) == [4, 3, 2, 1, 0]
    eps = 1e-6
    J = np.zeros((T, N, H, I))
    for t in range(T):
        for i in range(I):
            Xp, Xm = X.copy(), X.copy()
            Xp[t, :, i] += eps
            Xm[t, :, i] -= eps
            J[t, :, :, i] = (_final_h(layer, _layout(layer, Xp), hx)
                             - _final_h(layer, _layout(layer, Xm), hx)) / (2 * eps)
    np.testing.assert_allclose(tr.jacobian, J, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tr.frobenius, np.sqrt((J ** 2).sum(axis=(2, 3))), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(tr.norm, np.sqrt(np.mean(tr.frobenius ** 2, axis=1)), rtol=1e-12)
    assert layer.pending_calls() == 0 and all(not p.grad.any() for p in layer.parameters())


def _restart_loss(layer, x_rest, state, dy_rest, dstate):
    """ℓ of the steps after t as a function of the state handed over at t: Σ dy·y + Σ dstate·state_T."""
    from engine.core import no_grad
    with no_grad():
        y, s = layer.forward(x_rest, state, train=False)
    parts = s if isinstance(layer, LSTM) else (s,)
    return float(np.sum(dy_rest * y) + sum(np.sum(d * p) for d, p in zip(dstate, parts)))


@pytest.mark.parametrize("name", ["rnn-tanh", "rnn-relu-2layers", "lstm-2layers", "gru"])
def test_hidden_grad_trace_is_bptt(name):
    layer = LSTM(3, 4, num_layers=2, rng=2) if name == "lstm-2layers" else REC[name]()
    is_lstm = isinstance(layer, LSTM)
    rng = np.random.default_rng(1)
    T, N, L, H = 6, 2, layer.num_layers, 4
    X = rng.normal(size=(T, N, 3))
    dy = rng.normal(size=(T, N, H))
    dstate = tuple(rng.normal(size=(L, N, H)) for _ in range(2 if is_lstm else 1))
    h0 = tuple(rng.normal(size=(L, N, H)) * 0.3 for _ in range(2 if is_lstm else 1))
    hx, ds = (h0, dstate) if is_lstm else (h0[0], dstate[0])
    for p in layer.parameters():                        # gradients already there stay as they are
        p.grad[...] = 0.25
    tr = hidden_grad_trace(layer, X, dy, ds, hx=hx)
    assert all(np.all(p.grad == 0.25) for p in layer.parameters()) and layer.pending_calls() == 0
    # the whole-sequence backward of the layer itself gives the same dx and initial-state gradient
    layer.forward(X, hx)
    dx, dhx = layer.backward(dy, ds)
    np.testing.assert_allclose(tr.dx, dx, rtol=1e-10, atol=1e-12)
    for a, b in zip(tr.dhx if is_lstm else (tr.dhx,), dhx if is_lstm else (dhx,)):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the state handed over at t: finite differences of the rest of the sequence's loss
    states = [h0]
    for t in range(T - 1):
        _, s = layer.forward(X[t:t + 1], hx if t == 0 else (states[-1] if is_lstm else states[-1][0]), train=False)
        layer.backward(None, None)
        states.append(tuple(s) if is_lstm else (s,))
    eps = 1e-6
    for t in (0, 2, T - 2):
        base = states[t + 1]                            # the state after step t
        for part, carried in enumerate((tr.carried, tr.carried_c)[:len(base)]):
            num = np.zeros((L, N, H))
            for idx in np.ndindex(L, N, H):
                sp = [b.copy() for b in base]
                sm = [b.copy() for b in base]
                sp[part][idx] += eps
                sm[part][idx] -= eps
                st = (lambda s: tuple(s)) if is_lstm else (lambda s: s[0])
                num[idx] = (_restart_loss(layer, X[t + 1:], st(sp), dy[t + 1:], dstate)
                            - _restart_loss(layer, X[t + 1:], st(sm), dy[t + 1:], dstate)) / (2 * eps)
            np.testing.assert_allclose(carried[t], num, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(tr.carried[-1], dstate[0])
    np.testing.assert_allclose(tr.dh, dy + tr.carried[:, -1])
    np.testing.assert_allclose(tr.norm, np.sqrt((tr.dh ** 2).sum(axis=(1, 2)) / N))
    assert (tr.carried_c is not None) == is_lstm


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.1])
def test_orthogonal_rnn_slope_is_log_rho(rho):
    """004 §5.1.3: with Ω_h = ρQ in tanh's linear regime (inputs ~1e-6), ‖∂h_T/∂x_t‖_F =
    ρ^{T−t}‖Ω_x‖_F and ‖∂ℓ/∂h_t‖ = ρ^{T−1−t} for a unit loss direction at the last step."""
    net = orthogonal_rnn(8, rho, input_size=3, rng=4)
    Q = dict(net.named_parameters())["weight_hh_l0"].value / rho
    np.testing.assert_allclose(Q @ Q.T, np.eye(8), atol=1e-12)
    x = 1e-6 * np.random.default_rng(5).normal(size=(25, 2, 3))
    jt = input_jacobian_trace(net, x)
    assert log_slope(jt.lag, jt.norm) == pytest.approx(np.log(rho), abs=1e-6)
    Wih = dict(net.named_parameters())["weight_ih_l0"].value
    np.testing.assert_allclose(jt.norm, rho ** jt.lag * np.linalg.norm(Wih), rtol=1e-6)
    ht = hidden_grad_trace(net, x, rng=0)
    np.testing.assert_allclose(ht.norm, rho ** ht.lag, rtol=1e-6)


def test_saturated_tanh_vanishes_faster_and_lstm_forget_bias_keeps_it():
    """Large inputs saturate tanh (a′ < 1): the slope falls below ln ρ. An LSTM whose forget
    gates are held near 1 (bias +6) keeps ‖∂h_T/∂x_t‖ far longer than one near ½ (bias 0)."""
    rng = np.random.default_rng(6)
    net = orthogonal_rnn(16, 1.0, input_size=4, rng=7)
    x = 2.0 * rng.normal(size=(30, 4, 4))
    assert log_slope(*(lambda t: (t.lag, t.norm))(input_jacobian_trace(net, x))) < -0.2
    slopes = {}
    for bf in (0.0, 6.0):
        lstm = LSTM(4, 16, rng=8)
        sd = lstm.state_dict()
        for k in ("bias_ih_l0", "bias_hh_l0"):
            sd[k][16:32] = bf / 2
        lstm.load_state_dict(sd)
        t = input_jacobian_trace(lstm, x)
        slopes[bf] = log_slope(t.lag[:-1], t.norm[:-1])
    assert slopes[6.0] > -0.05 and slopes[0.0] < 3 * slopes[6.0] - 0.1


def test_traces_on_both_kernel_paths_and_unbatched():
    layer = LSTM(3, 4, rng=9)
    x = np.random.default_rng(2).normal(size=(7, 3))     # unbatched: one example
    fast = input_jacobian_trace(layer, x)
    hfast = hidden_grad_trace(layer, x)
    with reference_kernels():
        ref = input_jacobian_trace(layer, x)
        href = hidden_grad_trace(layer, x)
    assert fast.jacobian.shape == (7, 1, 4, 3) and hfast.dh.shape == (7, 1, 4)
    np.testing.assert_allclose(fast.jacobian, ref.jacobian, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(hfast.dh, href.dh, rtol=1e-10, atol=1e-13)
    assert hfast.norm[-1] == pytest.approx(1.0)       # ℓ = u · h_{T−1}, ‖u‖ = 1
    x32 = x.astype(np.float32)
    t32 = input_jacobian_trace(LSTM(3, 4, rng=9, dtype=np.float32), x32)
    np.testing.assert_allclose(t32.norm, fast.norm, rtol=1e-4)


BAD_REC = [
    (lambda: input_jacobian_trace(MLP([2, 2], rng=0), np.zeros((3, 2))), TypeError, "layer"),
    (lambda: input_jacobian_trace(RNN(2, 3, bidirectional=True, rng=0), np.zeros((3, 2))), ValueError, "layer"),
    (lambda: input_jacobian_trace(RNN(2, 3, rng=0), np.zeros((3, 4))), ValueError, "x"),
    (lambda: input_jacobian_trace(RNN(2, 3, rng=0), np.zeros((3, 2), np.float32)), TypeError, "x"),
    (lambda: input_jacobian_trace(RNN(2, 3, rng=0), [[0.0, 0.0]]), TypeError, "x"),
    (lambda: input_jacobian_trace(RNN(2, 3, rng=0), np.zeros((3, 1, 2)), np.zeros((1, 2, 3))), ValueError, "hx"),
    (lambda: hidden_grad_trace(LSTM(2, 3, rng=0), np.zeros((3, 1, 2)), dstate=np.zeros((1, 1, 3))), TypeError,
     "dstate"),
    (lambda: hidden_grad_trace(RNN(2, 3, rng=0), np.zeros((3, 1, 2)), dy=np.zeros((3, 1, 2))), ValueError, "dy"),
    (lambda: hidden_grad_trace(RNN(2, 3, rng=0), np.zeros((3, 1, 2)), rng=-1), ValueError, "rng"),
    (lambda: orthogonal_rnn(4, -0.5), ValueError, "rho"),
    (lambda: orthogonal_rnn(0, 0.5), ValueError, "hidden_size"),
    (lambda: log_slope([0, 1, 2], [1.0, 0.0, 1.0]), ValueError, "norm"),
]


@pytest.mark.parametrize("call, exc, name", BAD_REC, ids=[f"rec{i}-{b[2]}" for i, b in enumerate(BAD_REC)])
def test_recurrent_traces_bad_arguments(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}\b"):
        call()


def test_hidden_grad_trace_batch_first_is_the_same_trace():
    """dy and x in the layer's own layout: a batch_first copy of a layer gives the same trace."""
    tm = GRU(3, 4, num_layers=2, rng=11)
    bf = GRU(3, 4, num_layers=2, batch_first=True, rng=0)
    bf.load_state_dict(tm.state_dict())
    rng = np.random.default_rng(3)
    X, dy, dh = rng.normal(size=(5, 2, 3)), rng.normal(size=(5, 2, 4)), rng.normal(size=(2, 2, 4))
    a = hidden_grad_trace(tm, X, dy, dh)
    b = hidden_grad_trace(bf, X.transpose(1, 0, 2).copy(), dy.transpose(1, 0, 2).copy(), dh)
    for f in ("dh", "norm", "carried", "dx", "dhx"):
        np.testing.assert_allclose(getattr(a, f), getattr(b, f), rtol=1e-12, atol=1e-15)
