"""Gradient-check cases for the recurrent family (RNN, LSTM, GRU and their cells), read by
tests/test_gradient_cases.py (both kernel paths), tests/test_bad_input.py and
scripts/check_gradients.py. Issue 12, item 7: every option in float64 with small sizes (T ≤ 4,
N ≤ 3, H ≤ 3): 1–3 layers, bidirectional, both batch_first, T = 1, batch 1, with and without
an initial state (whose gradient is checked like any input), gradients through the final state
only (`skip_outputs`: the output gets the upstream gradient None), the ReLU RNN, no bias, and
inter-layer dropout with a fixed mask (`fix_mask=True`: the mask drawn at the first forward is
kept while gradcheck perturbs).

The cases with an initial state wrap the layer in `WithState`, whose forward(x, h_0[, c_0])
requires the state (the layers' own hx=None is valid: a zero state) and passes an LSTM's on as
the tuple (h_0, c_0), which gradcheck could not perturb; its backward returns (dx, dh_0[, dc_0]).

The "token table" cases run a RecurrentLM whose first recurrent layer reads its embedding table
directly (layers.recurrent.TokenLookup, taken on the fast kernels when 4 V ≤ T·N): the ids are not
perturbed, every parameter (the table's gradient S Ω_x and ∂ℓ/∂Ω_x = Sᵀ E included) and the
initial state are; on the reference kernels the same cases take the materialised path.

ReLU RNN: a preactivation within ε = 1e-6 of the kink would spoil the central differences; with
N(0, 1) inputs and U(±1/√H) weights the chance per element is ~1e-6, and the cases are seeded.

    python scripts/gradcases_recurrent.py      # runs the cases itself and prints the errors
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.core import Layer  # noqa: E402
from layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell  # noqa: E402


class WithState(Layer):
    """A recurrent layer (or cell) with its initial state passed as arrays that must be given:
    forward(x, h_0) for RNN and GRU, forward(x, h_0, c_0) for an LSTM (whose own forward takes the
    tuple (h_0, c_0)); backward returns (dx, dh_0) or (dx, dh_0, dc_0)."""

    def __init__(self, layer):
        if not isinstance(layer, (RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell)):
            raise TypeError(f"layer: expected a recurrent layer or cell, got {type(layer).__name__}")
        self.layer = layer
        self.dtype = layer.dtype

    def forward(self, x, h_0, c_0=None, train=True):
        if h_0 is None:
            raise TypeError("h_0: expected a numpy.ndarray, got NoneType")
        if self.layer.mode == "LSTM":
            if c_0 is None:
                raise TypeError("c_0: expected a numpy.ndarray, got NoneType")
            return self.layer.forward(x, (h_0, c_0), train=train)
        return self.layer.forward(x, h_0, train=train)

    def backward(self, dy, dh_n=None, *, input_grad=True):
        return self.layer.backward(dy, dh_n, input_grad=input_grad)       # (dx, dh_0)


class LSTMWithState(WithState):
    """WithState for an LSTM: backward(dy, dstate=(dh_n, dc_n)) -> (dx, dh_0, dc_0)."""

    def backward(self, dy, dstate=None, *, input_grad=True):
        dx, ds = self.layer.backward(dy, dstate, input_grad=input_grad)
        dh, dc = (None, None) if ds is None else ds
        return dx, dh, dc


class CellWithState(WithState):
    """WithState for an RNNCell or GRUCell: backward(dh) -> (dx, dh_0)."""

    def backward(self, dh, *, input_grad=True):
        return self.layer.backward(dh, input_grad=input_grad)


class LSTMCellWithState(WithState):
    """WithState for an LSTMCell: backward(dh, dc) -> (dx, dh_0, dc_0)."""

    def backward(self, dh, dc=None, *, input_grad=True):
        dx, ds = self.layer.backward(dh, dc, input_grad=input_grad)
        dh0, dc0 = (None, None) if ds is None else ds
        return dx, dh0, dc0


def with_state(layer):
    """The WithState wrapper for this kind of layer."""
    if isinstance(layer, LSTM):
        return LSTMWithState(layer)
    if isinstance(layer, LSTMCell):
        return LSTMCellWithState(layer)
    return (CellWithState if isinstance(layer, (RNNCell, GRUCell)) else WithState)(layer)


def seq_case(cls, T, N, I, H, state=False, only_final=False, **kw):
    """make(rng) for a sequence layer: x (T, N, I) or (N, T, I) with batch_first, or (T, I) with
    N = None (unbatched, as torch), an initial state when `state`; `only_final`: the upstream
    gradient reaches the final state only."""
    def make(rng):
        layer = cls(I, H, rng=rng, **kw)
        L = layer.num_layers * layer.num_directions
        if N is None:
            x = rng.standard_normal((T, I))
        else:
            x = rng.standard_normal((N, T, I) if layer.batch_first else (T, N, I))
        opts = {"skip_outputs": (0,)} if only_final else {}
        if not state:
            return "layer", layer, [x], opts
        sshape = (L, H) if N is None else (L, N, H)
        h0 = rng.standard_normal(sshape) * 0.5
        if cls is LSTM:
            opts["input_names"] = ["x", "h_0", "c_0"]
            return "layer", with_state(layer), [x, h0, rng.standard_normal(sshape) * 0.5], opts
        opts["input_names"] = ["x", "h_0"]
        return "layer", with_state(layer), [x, h0], opts
    return make


def cell_case(cls, N, I, H, state=False, **kw):
    def make(rng):
        cell = cls(I, H, rng=rng, **kw)
        x = rng.standard_normal((N, I))
        if not state:
            return "layer", cell, [x]
        h = rng.standard_normal((N, H)) * 0.5
        if cls is LSTMCell:
            return "layer", with_state(cell), [x, h, rng.standard_normal((N, H)) * 0.5], \
                {"input_names": ["x", "h_0", "c_0"]}
        return "layer", with_state(cell), [x, h], {"input_names": ["x", "h_0"]}
    return make


CASES = []
for _cls, _name, _extra in [(RNN, "rnn", {}), (RNN, "rnn_relu", {"nonlinearity": "relu"}),
                            (LSTM, "lstm", {}), (GRU, "gru", {})]:
    CASES += [
        (f"{_name}/T3,N2", seq_case(_cls, 3, 2, 3, 2, **_extra)),
        (f"{_name}/T3,N2,h0", seq_case(_cls, 3, 2, 3, 2, state=True, **_extra)),
        (f"{_name}/2 layers,bidirectional,batch_first,h0",
         seq_case(_cls, 3, 2, 2, 2, state=True, num_layers=2, bidirectional=True, batch_first=True, **_extra)),
        (f"{_name}/3 layers,T4,N3", seq_case(_cls, 4, 3, 2, 3, num_layers=3, **_extra)),
        (f"{_name}/T1,N1,h0", seq_case(_cls, 1, 1, 2, 3, state=True, **_extra)),
        (f"{_name}/final state only,h0", seq_case(_cls, 3, 2, 2, 2, state=True, only_final=True, **_extra)),
        (f"{_name}/2 layers,dropout 0.5 fixed mask",
         seq_case(_cls, 3, 2, 2, 2, num_layers=2, dropout=0.5, fix_mask=True, **_extra)),
    ]
CASES += [
    ("rnn/bidirectional,no bias,batch_first", seq_case(RNN, 3, 2, 2, 2, bidirectional=True, bias=False,
                                                       batch_first=True)),
    ("lstm/bidirectional,no bias,final state only,h0",
     seq_case(LSTM, 2, 2, 2, 2, state=True, only_final=True, bidirectional=True, bias=False)),
    ("gru/bidirectional,no bias", seq_case(GRU, 3, 1, 2, 2, bidirectional=True, bias=False)),
    ("rnn/unbatched", seq_case(RNN, 3, None, 2, 2)),
    ("lstm/unbatched,2 layers,h0", seq_case(LSTM, 3, None, 2, 2, state=True, num_layers=2)),
    ("gru/unbatched,bidirectional,h0", seq_case(GRU, 2, None, 2, 2, state=True, bidirectional=True)),
    ("rnncell/tanh,h", cell_case(RNNCell, 2, 3, 2, state=True)),
    ("rnncell/relu", cell_case(RNNCell, 3, 2, 3, nonlinearity="relu")),
    ("lstmcell/h,c", cell_case(LSTMCell, 2, 3, 2, state=True)),
    ("lstmcell/no state,no bias", cell_case(LSTMCell, 1, 2, 3, bias=False)),
    ("grucell/h", cell_case(GRUCell, 2, 3, 2, state=True)),
    ("grucell/no state", cell_case(GRUCell, 3, 2, 2)),
]


if __name__ == "__main__":
    from check_gradients import main
    sys.exit(main(["recurrent"]))
