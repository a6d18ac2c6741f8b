"""What an LSTM's gates do along a sequence (004 §5.2, 003 §2.4), read from its public parameters.

The LSTM layer keeps its gates for its own backward but does not return them; this module
recomputes them from the layer's parameters (weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k},
bias_hh_l{k}, suffix _reverse for the backward direction; gates stacked i, f, g, o as torch) and
its input, in NumPy float64, one step at a time (column-vector notation of the notes, batch as
rows here: Ω x is x Ωᵀ):

    [i; f; g; o] = [σ; σ; tanh; σ](β_x + Ω_x x_t + β_h + Ω_h h_{t−1})
    c_t = f ⊙ c_{t−1} + i ⊙ g,        h_t = o ⊙ tanh(c_t)

f is the forget gate (1: the cell keeps its value, 0: it is cleared, 004 §5.2.1), i the input
gate scaling the proposed update g ∈ [−1, 1] (§5.2.2), o the output gate (§5.2.3). σ(z) is
evaluated as ½ + ½ tanh(z/2) (the same function, no overflow for large |z|).

`lstm_gates(lstm, x, hx=None)` returns every gate, cell and hidden state of every layer and
direction; the recomputed h_t and c_t equal the layer's own output and final states (a test holds
them to 1e-12 in float64), which is what makes the gates trustworthy. Evaluation mode: the layer's
inter-layer dropout is not applied.
"""
from dataclasses import dataclass

import numpy as np

from .gradients import _time_major

__all__ = ["LSTMGates", "lstm_gates", "sigmoid"]


def sigmoid(z):
    """σ(z) = 1 / (1 + e^{−z}) = ½ + ½ tanh(z/2), without overflow."""
    return 0.5 + 0.5 * np.tanh(0.5 * np.asarray(z, np.float64))


@dataclass
class LSTMGates:
    """Gates and states of an LSTM along a sequence (`lstm_gates`), float64. Every array is
    (layers · directions, T, N, H), time-major, row s = k · directions + d as the layer's h_n
    (N = 1 for an unbatched x); step t of the reverse direction is the one that read x_t.

    input (i), forget (f), output (o) ∈ (0, 1); cell_input (g, the proposed update) ∈ (−1, 1);
    cell (c_t) and hidden (h_t). `output` (T, N, directions · H) is the last layer's, as the
    layer returns it time-major; `h_n`, `c_n` (layers · directions, N, H) the final states.
    """
    input: np.ndarray
    forget: np.ndarray
    cell_input: np.ndarray
    output_gate: np.ndarray
    cell: np.ndarray
    hidden: np.ndarray
    output: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray


def lstm_gates(lstm, x, hx=None):
    """The gates i, f, g, o and the states c_t, h_t of `lstm` (a layers.LSTM, any number of
    layers, uni- or bidirectional) on x, given as the layer takes it (batch_first honoured;
    unbatched (T, input_size) is one example) with an optional initial state hx = (h_0, c_0).
    Returns an `LSTMGates`; the layer is not touched (its parameters are only read)."""
    from layers.recurrent import LSTM
    if not isinstance(lstm, LSTM):
        raise TypeError(f"lstm: expected a layers.LSTM, got {type(lstm).__name__}")
    X, unbatched = _time_major("x", lstm, x)
    T, N, _ = X.shape
    L, H = lstm.num_layers, lstm.hidden_size
    D = 2 if lstm.bidirectional else 1
    if hx is None:
        h0 = c0 = np.zeros((L * D, N, H))
    else:
        from engine.checks import check_array
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"hx: expected a tuple (h_0, c_0) of two arrays, got {type(hx).__name__}")
        shape = (L * D, H) if unbatched else (L * D, N, H)
        h0, c0 = (check_array(f"hx[{j}]", s, shape=shape, dtype=lstm.dtype) for j, s in enumerate(hx))
        if unbatched:
            h0, c0 = h0[:, None, :], c0[:, None, :]
    params = {name: p.value.astype(np.float64) for name, p in lstm.named_parameters()}
    gates = {k: np.empty((L * D, T, N, H)) for k in ("i", "f", "g", "o", "c", "h")}
    h_n, c_n = np.empty((L * D, N, H)), np.empty((L * D, N, H))
    inp = X.astype(np.float64)
    for k in range(L):
        out = np.empty((T, N, D * H))
        for d in range(D):
            s = k * D + d
            sfx = f"_l{k}" + ("_reverse" if d else "")
            Wih, Whh = params["weight_ih" + sfx], params["weight_hh" + sfx]
            b = params["bias_ih" + sfx] + params["bias_hh" + sfx] if lstm.bias else np.zeros(4 * H)
            h, c = h0[s].astype(np.float64), c0[s].astype(np.float64)
            for t in (range(T - 1, -1, -1) if d else range(T)):
                p = inp[t] @ Wih.T + h @ Whh.T + b                      # (N, 4H): i, f, g, o
                i, f = sigmoid(p[:, :H]), sigmoid(p[:, H:2 * H])
                g, o = np.tanh(p[:, 2 * H:3 * H]), sigmoid(p[:, 3 * H:])
                c = f * c + i * g
                h = o * np.tanh(c)
                for key, v in zip("ifgoch", (i, f, g, o, c, h)):
                    gates[key][s, t] = v
                out[t, :, d * H:(d + 1) * H] = h
            h_n[s], c_n[s] = h, c
        inp = out
    return LSTMGates(input=gates["i"], forget=gates["f"], cell_input=gates["g"], output_gate=gates["o"],
                     cell=gates["c"], hidden=gates["h"], output=inp, h_n=h_n, c_n=c_n)
