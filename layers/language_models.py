"""Neural language models (notes 000 §8): the feed-forward neural language model (FF-NNLM,
Bengio et al. 2003) and a recurrent language model (Embedding → RNN/GRU/LSTM → Linear), built
from the engine's layers.

FF-NNLM (000 §8.1.1: one-hot input → embedding → hidden layer → softmax over the next token),
for a context of the previous n − 1 tokens w_{t−n+1} … w_{t−1} (column vectors, E the embedding
matrix |V| × d, e_w its row for token w):

    x = [e_{w_{t−n+1}}; …; e_{w_{t−1}}]                 ((n−1)·d,)  the embeddings concatenated
    h = tanh(β_1 + Ω_1 x)                               (H,)
    f = β_2 + Ω_2 h                                     (|V|,)     logits; p(w_t | context) = softmax(f)

backward, from ∂ℓ/∂f (the cross-entropy gives softmax(f) − onehot(w_t)):
    ∂ℓ/∂Ω_2 += ∂ℓ/∂f hᵀ,  ∂ℓ/∂β_2 += ∂ℓ/∂f,  ∂ℓ/∂h = Ω_2ᵀ ∂ℓ/∂f
    ∂ℓ/∂a = (1 − h²) ⊙ ∂ℓ/∂h   (a = β_1 + Ω_1 x),   ∂ℓ/∂Ω_1 += ∂ℓ/∂a xᵀ,  ∂ℓ/∂β_1 += ∂ℓ/∂a
    ∂ℓ/∂x = Ω_1ᵀ ∂ℓ/∂a, whose j-th block of d rows is added to row w_{t−n+1+j} of ∂ℓ/∂E
    (a token used twice in one context gets both gradients).
Batch rows: contexts (N, n−1) int → x (N, (n−1)·d) → h (N, H) → f (N, |V|), so Ω h is h Ωᵀ.
Bengio's optional direct input-to-output connections are not included.

Recurrent LM (000 §8 "Recurrent neural networks"; the cells' equations are in layers.recurrent):
    x_t = e_{w_t},   (y_t, s_t) = cell(x_t, s_{t−1}),   f_t = β + Ω y_t   (logits of w_{t+1})
ids (T, N) int (time first, torch's default; (N, T) with batch_first; (T,) unbatched) →
logits (*ids.shape, |V|); the state s is h (num_layers, N, H), or (h, c) for the LSTM.
forward(ids, hx=None) -> (logits, state); the returned state, passed as hx to the next forward
after `detach_state`, continues the sequence: truncated BPTT as `engine.fit` does on a stream.
backward(dlogits, dstate=None) -> None (ids have no gradient), or (None, ∂ℓ/∂hx) when the
forward got hx; dstate (the final state's gradient) may be None (zero).

Both classes have no kernels of their own: every product, gather and scatter runs in the layers
they are built from (Embedding, Linear, Tanh, RNN/GRU/LSTM), on their reference or fast kernels
(`engine.reference_kernels()`). On the fast kernels, when the vocabulary is small against the
batch's T·N ids (4|V| ≤ T·N, a character LM), the recurrent LM hands the ids and the embedding
matrix E to the recurrent layer instead of the rows e_{w_t} (layers.recurrent.TokenLookup): the
first layer's Ω_x x_t is then row w_t of E Ω_xᵀ (|V| rows instead of T·N), and its backward sums
∂ℓ/∂p_t by token first, S_w = Σ_{t: w_t = w} ∂ℓ/∂p_t, so that ∂ℓ/∂Ω_x += Sᵀ E and ∂ℓ/∂E += S Ω_x
(the same sums, grouped by token). Char LM of the benchmark (65 tokens, T·N = 2048, E 64, H 256),
float32, one thread, interleaved under load ~2.3: 85.9 -> 83.0 ms per Adam step (min). State-dict keys are nested as torch names a module with those
attributes: FF-NNLM embedding.weight, hidden.weight, hidden.bias, output.weight, output.bias;
recurrent LM encoder.weight, rnn.weight_ih_l0, …, decoder.weight, decoder.bias (the names of
PyTorch's word_language_model example).
"""
import numpy as np

from engine.checks import check_array, check_bool, check_choice, check_dtype, check_float, check_int, check_rng
from engine.core import Layer, input_grad_flags, use_reference

from .activations import Tanh
from .dense import Linear
from .embedding import Embedding, check_ids
from .recurrent import GRU, LSTM, RNN, TokenLookup, detach_state

RECURRENT = {"RNN": RNN, "GRU": GRU, "LSTM": LSTM}


class FFNNLM(Layer):
    """FFNNLM(vocab_size, context_size, embedding_dim, hidden_size, dtype=np.float64, rng=None):
    the feed-forward neural language model (module docstring). forward(ctx) with ctx (N,
    context_size) integer ids (the previous n − 1 tokens, oldest first) -> logits (N, vocab_size);
    backward(dlogits) -> None. The weights are drawn from `rng` (a seed or a Generator) in the
    order embedding (N(0, 1), torch's Embedding), hidden, output (U(±1/√fan_in), torch's Linear)."""

    def __init__(self, vocab_size, context_size, embedding_dim, hidden_size, dtype=np.float64, rng=None):
        self.vocab_size = check_int("vocab_size", vocab_size, low=1)
        self.context_size = check_int("context_size", context_size, low=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, low=1)
        self.hidden_size = check_int("hidden_size", hidden_size, low=1)
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)
        self.embedding = Embedding(self.vocab_size, self.embedding_dim, dtype=self.dtype, rng=rng)
        self.hidden = Linear(self.context_size * self.embedding_dim, self.hidden_size, dtype=self.dtype, rng=rng)
        self.activation = Tanh()
        self.output = Linear(self.hidden_size, self.vocab_size, dtype=self.dtype, rng=rng)

    def forward(self, ctx, train=True):
        check_bool("train", train)
        if isinstance(ctx, np.ndarray) and (ctx.ndim != 2 or ctx.shape[1] != self.context_size):
            raise ValueError(f"ctx: expected shape (N, {self.context_size}) (the previous context_size ids), "
                             f"got {ctx.shape}")
        check_ids("ctx", ctx, self.vocab_size)
        with self._all_or_nothing():
            x = self.embedding.forward(ctx, train=train)                  # (N, n−1, d)
            N = x.shape[0]
            a = self.hidden.forward(x.reshape(N, -1), train=train)       # (N, H)
            h = self.activation.forward(a, train=train)
            f = self.output.forward(h, train=train)                      # (N, |V|)
        self._save(N)
        return f

    def backward(self, dlogits, *, input_grad=True):
        N, = self._saved()
        dlogits = check_array("dlogits", dlogits, shape=(N, self.vocab_size), dtype=self.dtype, finite=False)
        check_bool("input_grad", input_grad)
        self._release()
        dh = self.output.backward(dlogits)
        da = self.activation.backward(dh)
        dx = self.hidden.backward(da)
        self.embedding.backward(dx.reshape(N, self.context_size, self.embedding_dim))
        return None

    def step_fn(self):
        """A step function for engine.sampling.generate: the logits of the next token from the
        last context_size ids of each sequence (the prompt must hold at least that many)."""
        def step(ids):
            if ids.shape[1] < self.context_size:
                raise ValueError(f"start_ids: the FF-NNLM needs at least {self.context_size} ids of context, "
                                 f"got {ids.shape[1]}")
            return self.forward(ids[:, -self.context_size:], train=False)
        return step

    def extra_repr(self):
        return {"vocab_size": self.vocab_size, "context_size": self.context_size,
                "embedding_dim": self.embedding_dim, "hidden_size": self.hidden_size}


class RecurrentLM(Layer):
    """RecurrentLM(vocab_size, embedding_dim, hidden_size, num_layers=1, mode="LSTM",
    nonlinearity="tanh", dropout=0.0, batch_first=False, dtype=np.float64, rng=None):
    Embedding → RNN/GRU/LSTM (num_layers, inter-layer dropout in train mode) → Linear
    (module docstring). forward(ids, hx=None) -> (logits, state); backward(dlogits, dstate=None)
    -> None, or (None, dhx) when forward got hx. `nonlinearity` is the RNN's ("tanh" or "relu").
    The weights are drawn from `rng` in the order encoder, rnn, decoder."""

    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers=1, mode="LSTM", nonlinearity="tanh",
                 dropout=0.0, batch_first=False, dtype=np.float64, rng=None):
        self.vocab_size = check_int("vocab_size", vocab_size, low=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, low=1)
        self.hidden_size = check_int("hidden_size", hidden_size, low=1)
        self.num_layers = check_int("num_layers", num_layers, low=1)
        self.mode = check_choice("mode", mode, tuple(RECURRENT))
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        if self.nonlinearity != "tanh" and self.mode != "RNN":
            raise ValueError(f"nonlinearity: only the RNN takes one, got {nonlinearity!r} with mode={self.mode!r}")
        self.dropout = check_float("dropout", dropout, low=0, high=1)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)
        kw = dict(num_layers=self.num_layers, dropout=self.dropout, batch_first=self.batch_first, dtype=self.dtype)
        if self.mode == "RNN":
            kw["nonlinearity"] = self.nonlinearity
        self.encoder = Embedding(self.vocab_size, self.embedding_dim, dtype=self.dtype, rng=rng)
        self.rnn = RECURRENT[self.mode](self.embedding_dim, self.hidden_size, rng=rng, **kw)
        self.decoder = Linear(self.hidden_size, self.vocab_size, dtype=self.dtype, rng=rng)

    def forward(self, ids, hx=None, train=True):
        check_bool("train", train)
        if isinstance(ids, np.ndarray) and ids.ndim not in (1, 2):
            order = "(N, T)" if self.batch_first else "(T, N)"
            raise ValueError(f"ids: expected a 2-dimensional array {order} of token ids (or (T,) unbatched), "
                             f"got shape {ids.shape}")
        check_ids("ids", ids, self.vocab_size)
        if hx is not None:
            self._check_hx(hx, ids)
        lookup = self._table_path(ids)
        with self._all_or_nothing():
            if lookup:                                  # the embedding folded into the first layer
                x = TokenLookup(ids.T if self.batch_first else ids, self.encoder.weight.value)
            else:
                x = self.encoder.forward(ids, train=train)                # (*ids.shape, E)
            y, state = self.rnn.forward(x, hx, train=train)               # (*ids.shape, H)
            f = self.decoder.forward(y.reshape(-1, self.hidden_size), train=train)
        self._save(ids.shape, hx is not None, self._state_shape(ids), lookup)
        return f.reshape(ids.shape + (self.vocab_size,)), state

    def _table_path(self, ids):
        """Whether the first recurrent layer reads the embedding table directly (layers.recurrent's
        TokenLookup: x_t Ω_xᵀ as rows of E Ω_xᵀ, and its backward summed by token first): on the fast
        kernels, for batched ids, when the vocabulary is small against the T·N tokens (V ≤ T·N / 4:
        the table's three V-row products then cost at most a quarter of the three T·N-row products
        they replace; a character LM: 65 against 2048)."""
        return (not use_reference()) and ids.ndim == 2 and 4 * self.vocab_size <= ids.size

    def _check_hx(self, hx, ids):
        """The initial state's shape follows the ids' (refused naming both: either may be wrong);
        dtypes and values are the recurrent layer's to check."""
        want = self._state_shape(ids)
        parts = [("hx", hx)]
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a tuple (h_0, c_0) of two arrays, got {type(hx).__name__}")
            parts = [("hx[0] (h_0)", hx[0]), ("hx[1] (c_0)", hx[1])]
        for name, h in parts:
            if not isinstance(h, np.ndarray):
                raise TypeError(f"{name}: expected a numpy.ndarray, got {type(h).__name__}")
            if h.shape != want:
                raise ValueError(f"{name}: expected shape {want} (num_layers, N, hidden_size) for ids of shape "
                                 f"{ids.shape}, got {h.shape}")

    def _state_shape(self, ids):
        if ids.ndim == 1:
            return (self.num_layers, self.hidden_size)
        return (self.num_layers, ids.shape[0 if self.batch_first else 1], self.hidden_size)

    def backward(self, dlogits, dstate=None, *, input_grad=True):
        shape, has_hx, sshape, lookup = self._saved()
        V = self.vocab_size
        if dlogits is not None:
            dlogits = check_array("dlogits", dlogits, shape=shape + (V,), dtype=self.dtype, finite=False)
        # the final state's gradient is checked here, before the decoder's backward accumulates
        if self.mode == "LSTM" and dstate is not None:
            if not isinstance(dstate, (tuple, list)) or len(dstate) != 2:
                raise TypeError(f"dstate: expected a tuple (dh_n, dc_n) of two arrays or None, "
                                f"got {type(dstate).__name__}")
            for i, g in enumerate(dstate):
                if g is not None:
                    check_array(f"dstate[{i}]", g, shape=sshape, dtype=self.dtype, finite=False)
        elif dstate is not None:
            check_array("dstate (dh_n)", dstate, shape=sshape, dtype=self.dtype, finite=False)
        flags = input_grad_flags(input_grad, 2 if has_hx else 1)
        self._release()
        dy = None
        if dlogits is not None:
            dy = self.decoder.backward(dlogits.reshape(-1, V)).reshape(shape + (self.hidden_size,))
        r = self.rnn.backward(dy, dstate, input_grad=(True, flags[1]) if has_hx else True)
        dx, dhx = r if has_hx else (r, None)
        if lookup:                                      # dx is ∂ℓ/∂E itself (V, E)
            self.encoder.weight.grad += dx
        else:
            self.encoder.backward(dx)
        return (None, dhx) if has_hx else None

    def step_fn(self):
        """A step function for engine.sampling.generate keeping the state between calls: the
        first call reads the whole prompt, the later ones the newest id only."""
        state = None

        def step(ids):
            nonlocal state
            x = ids if state is None else ids[:, -1:]
            x = x if self.batch_first else np.ascontiguousarray(x.T)
            logits, state = self.forward(x, state, train=False)
            state = detach_state(state)
            return logits[:, -1] if self.batch_first else logits[-1]
        return step

    def extra_repr(self):
        return {"vocab_size": self.vocab_size, "embedding_dim": self.embedding_dim,
                "hidden_size": self.hidden_size, "num_layers": self.num_layers, "mode": self.mode,
                "dropout": self.dropout, "batch_first": self.batch_first}


__all__ = ["FFNNLM", "RecurrentLM"]
