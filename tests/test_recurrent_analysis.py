"""analysis.recurrent.lstm_gates: gates recomputed from an LSTM's public parameters reproduce the
layer's own outputs and final states (so the gates shown in the lstm-gates figure are the layer's)."""
import numpy as np
import pytest

from analysis.recurrent import lstm_gates, sigmoid
from engine.core import reference_kernels
from layers.recurrent import GRU, LSTM


def _time_major(layer, y):
    return y.transpose(1, 0, 2) if layer.batch_first else y


@pytest.mark.parametrize("kw, with_hx", [(dict(), False),
                                         (dict(num_layers=2, bidirectional=True, batch_first=True), True),
                                         (dict(num_layers=3, bias=False), True)])
def test_recomputed_states_equal_the_layer(kw, with_hx):
    rng = np.random.default_rng(0)
    lstm = LSTM(3, 5, rng=1, **kw)
    D = 2 if lstm.bidirectional else 1
    T, N = 7, 4
    x = rng.normal(size=(N, T, 3) if lstm.batch_first else (T, N, 3))
    hx = tuple(rng.normal(size=(lstm.num_layers * D, N, 5)) for _ in range(2)) if with_hx else None
    y, (h_n, c_n) = lstm.forward(x, hx, train=False)
    lstm.clear_saved()
    g = lstm_gates(lstm, x, hx)
    np.testing.assert_allclose(g.output, _time_major(lstm, y), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g.h_n, h_n, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(g.c_n, c_n, rtol=1e-12, atol=1e-13)
    # the definitions: c_t = f c_{t−1} + i g, h_t = o tanh(c_t); gates in (0, 1), g in (−1, 1)
    c_prev = np.concatenate([(hx[1] if with_hx else np.zeros_like(c_n))[:, None], g.cell[:, :-1]], axis=1)
    fwd = slice(0, None, D)                              # forward directions: step t follows t − 1
    np.testing.assert_allclose(g.cell[fwd], (g.forget * c_prev + g.input * g.cell_input)[fwd], rtol=1e-12)
    np.testing.assert_allclose(g.hidden, g.output_gate * np.tanh(g.cell), rtol=1e-12)
    for a in (g.input, g.forget, g.output_gate):
        assert a.shape == (lstm.num_layers * D, T, N, 5) and np.all((a > 0) & (a < 1))
    assert np.all(np.abs(g.cell_input) < 1)
    # the last layer's hidden states are the output's columns, direction by direction
    for d in range(D):
        np.testing.assert_allclose(g.hidden[(lstm.num_layers - 1) * D + d], g.output[:, :, d * 5:(d + 1) * 5])


def test_gate_values_against_the_layers_reference_kernel_and_float32():
    """One step by hand from the parameter rows (torch's gate order i, f, g, o)."""
    rng = np.random.default_rng(2)
    lstm = LSTM(2, 3, rng=3)
    x = rng.normal(size=(4, 2))                          # unbatched
    with reference_kernels():
        y, _ = lstm.forward(x, train=False)
    lstm.clear_saved()
    g = lstm_gates(lstm, x)
    assert g.forget.shape == (1, 4, 1, 3)
    np.testing.assert_allclose(g.output[:, 0], y, rtol=1e-12)
    p = dict(lstm.named_parameters())
    pre = p["weight_ih_l0"].value @ x[0] + p["bias_ih_l0"].value + p["bias_hh_l0"].value
    np.testing.assert_allclose(g.forget[0, 0, 0], 1 / (1 + np.exp(-pre[3:6])), rtol=1e-12)
    np.testing.assert_allclose(g.output_gate[0, 0, 0], 1 / (1 + np.exp(-pre[9:12])), rtol=1e-12)
    l32 = LSTM(2, 3, rng=3, dtype=np.float32)
    y32, _ = l32.forward(x.astype(np.float32), train=False)
    l32.clear_saved()
    np.testing.assert_allclose(lstm_gates(l32, x.astype(np.float32)).output[:, 0], y32, rtol=1e-5, atol=1e-6)


def test_sigmoid_has_no_overflow():
    with np.errstate(all="raise"):
        s = sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(s, [0.0, 0.5, 1.0])


BAD = [
    (lambda: lstm_gates(GRU(2, 3, rng=0), np.zeros((3, 2))), TypeError, "lstm"),
    (lambda: lstm_gates(LSTM(2, 3, rng=0), np.zeros((3, 1, 4))), ValueError, "x"),
    (lambda: lstm_gates(LSTM(2, 3, rng=0), np.zeros((3, 1, 2), np.float32)), TypeError, "x"),
    (lambda: lstm_gates(LSTM(2, 3, rng=0), np.zeros((3, 1, 2)), np.zeros((1, 1, 3))), TypeError, "hx"),
    (lambda: lstm_gates(LSTM(2, 3, rng=0), np.zeros((3, 1, 2)), (np.zeros((1, 1, 3)), np.zeros((2, 1, 3)))),
     ValueError, r"hx\[1\]"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}" for i in range(len(BAD))])
def test_bad_arguments(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}"):
        call()
