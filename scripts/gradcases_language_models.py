"""Gradient-check cases for the language models (layers/language_models.py: FFNNLM and
RecurrentLM), read by tests/test_gradient_cases.py (both kernel paths), tests/test_bad_input.py
and scripts/check_gradients.py. Small sizes (vocabulary ≤ 6, T ≤ 4, N ≤ 3, H ≤ 4), float64.

The ids are integers, which gradcheck does not perturb: what is checked is every parameter's
gradient (the embedding's scatter with repeated ids, the recurrent weights through time, the
decoder), the initial state's gradient where one is given, and the gradient through the final
state (gradcheck gives every output, the state included, a random upstream gradient). The cases:
the FF-NNLM with a token repeated inside a context; the RNN (tanh and ReLU), GRU and 2-layer
LSTM language models, time first and batch first, unbatched, with an initial state (GRU directly,
the LSTM through `LMWithState`, whose forward(ids, h_0, c_0) passes the tuple on).

    python scripts/gradcases_language_models.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.core import Layer  # noqa: E402
from layers.language_models import FFNNLM, RecurrentLM  # noqa: E402


class LMWithState(Layer):
    """An LSTM RecurrentLM whose initial state is given as two arrays: forward(ids, h_0, c_0);
    backward(dlogits, dstate) -> (None, dh_0, dc_0)."""

    def __init__(self, lm):
        if not isinstance(lm, RecurrentLM) or lm.mode != "LSTM":
            raise TypeError(f"lm: expected an LSTM RecurrentLM, got {lm!r}")
        self.lm = lm
        self.dtype = lm.dtype

    def forward(self, ids, h_0, c_0, train=True):
        return self.lm.forward(ids, (h_0, c_0), train=train)

    def backward(self, dlogits, dstate=None, *, input_grad=True):
        _, ds = self.lm.backward(dlogits, dstate, input_grad=input_grad)
        dh, dc = (None, None) if ds is None else ds
        return None, dh, dc


def ffnnlm(V, ctx, E, H, ids):
    def make(rng):
        return "layer", FFNNLM(V, ctx, E, H, rng=rng), [np.array(ids, dtype=np.int64)]
    return make


def rlm(mode, shape, num_layers=1, batch_first=False, state=False, **kw):
    V, E, H = 6, 3, 4

    def make(rng):
        lm = RecurrentLM(V, E, H, num_layers=num_layers, mode=mode, batch_first=batch_first, rng=rng, **kw)
        ids = rng.integers(0, V, size=shape)
        if not state:
            return "layer", lm, [ids]
        N = shape[0 if batch_first else 1] if len(shape) == 2 else None
        sshape = (num_layers, H) if N is None else (num_layers, N, H)
        if mode == "LSTM":
            return "layer", LMWithState(lm), [ids, rng.standard_normal(sshape), rng.standard_normal(sshape)]
        return "layer", lm, [ids, rng.standard_normal(sshape)]
    return make


def table_case(mode, shape, num_layers=1, batch_first=False, state=False):
    """make(rng) for a RecurrentLM with V = 3 tokens over T·N = 12 positions: 4V ≤ T·N, so the fast
    kernels take the token-table path (layers.recurrent.TokenLookup)."""
    V, E, H = 3, 2, 3

    def make(rng):
        lm = RecurrentLM(V, E, H, num_layers=num_layers, mode=mode, batch_first=batch_first, rng=rng)
        ids = rng.integers(0, V, size=shape)
        assert 4 * V <= ids.size
        if not state:
            return "layer", lm, [ids]
        sshape = (num_layers, shape[0 if batch_first else 1], H)
        if mode == "LSTM":
            return "layer", LMWithState(lm), [ids, rng.standard_normal(sshape) * 0.5,
                                                     rng.standard_normal(sshape) * 0.5]
        return "layer", lm, [ids, rng.standard_normal(sshape) * 0.5]
    return make


CASES = [
    ("FFNNLM[V5, context 3, repeated ids]", ffnnlm(5, 3, 2, 4, [[1, 1, 4], [0, 3, 3], [2, 2, 2], [4, 0, 1]])),
    ("FFNNLM[batch 1, context 1]", ffnnlm(4, 1, 3, 2, [[3]])),
    ("RecurrentLM[RNN tanh, T4 N3]", rlm("RNN", (4, 3))),
    ("RecurrentLM[RNN relu, batch_first, N2 T3]", rlm("RNN", (2, 3), batch_first=True, nonlinearity="relu")),
    ("RecurrentLM[GRU, T3 N2, h0]", rlm("GRU", (3, 2), state=True)),
    ("RecurrentLM[LSTM 2 layers, T3 N2]", rlm("LSTM", (3, 2), num_layers=2)),
    ("RecurrentLM[LSTM 2 layers, T3 N2, (h0, c0)]", rlm("LSTM", (3, 2), num_layers=2, state=True)),
    ("RecurrentLM[LSTM, unbatched T4, (h0, c0)]", rlm("LSTM", (4,), state=True)),
    ("RecurrentLM[token table: LSTM V3, T4 N3, 2 layers]", table_case("LSTM", (4, 3), num_layers=2)),
    ("RecurrentLM[token table: LSTM V3, T4 N3, (h0, c0)]", table_case("LSTM", (4, 3), state=True)),
    ("RecurrentLM[token table: GRU V3, batch_first N3 T4, h0]", table_case("GRU", (3, 4), batch_first=True, state=True)),
    ("RecurrentLM[token table: RNN V3, T6 N2]", table_case("RNN", (6, 2))),
]


if __name__ == "__main__":
    from engine import gradcheck

    for name, make in CASES:
        _, layer, inputs = make(np.random.default_rng(0))
        print(f"{name:50s} {gradcheck(layer, *inputs)}")
