"""Positional encodings and the transformer encoder layer (notes 000 §9.2, 003 §2.6), as torch.nn's.

Positional encoding (003 §2.6.1). Self-attention treats its inputs as a set, so the position of
each token is added to its embedding. The notes' formula is garbled in the extraction (it writes
the exponent 2i/d_model with i the dimension itself); the standard form of Vaswani et al. (2017),
which the notes paraphrase, is used here: for position pos and column j of a d_model-wide table,
with i = ⌊j/2⌋,
    PE[pos, 2i]     = sin(pos / 10000^{2i/d_model}),
    PE[pos, 2i + 1] = cos(pos / 10000^{2i/d_model}),
so each pair of columns is a sinusoid of wavelength 2π · 10000^{2i/d_model}, from 2π to 2π·10⁴.
    SinusoidalPositionalEncoding:  y = x + PE[:T]          ∂ℓ/∂x = ∂ℓ/∂y            (no parameters)
    LearnedPositionalEmbedding:    y = x + P[:T]           ∂ℓ/∂x = ∂ℓ/∂y,
                                   ∂ℓ/∂P[t, :] += Σ_n ∂ℓ/∂y[t, n, :]   (a row per position, trained)
x is (T, N, D) (time first, as torch), (N, T, D) with batch_first, or (T, D) unbatched; the table's
row t is added to every sequence's position t.

The transformer layer (000 §9.2; Fig 9.4). Two residual blocks, multi-head self-attention and a
two-layer perceptron applied to every position separately, each followed (the notes', torch's
default `norm_first=False`, "post-LN") or preceded (`norm_first=True`, "pre-LN", as GPT-2) by a
LayerNorm over the D = d_model features of each token. With X the N·T token rows:
    post-LN:  X₁ = LN₁(X + Dr₁(MhSa[X]))              pre-LN:  X₁ = X + Dr₁(MhSa[LN₁(X)])
              Y  = LN₂(X₁ + Dr₂(mlp[X₁]))                      Y  = X₁ + Dr₂(mlp[LN₂(X₁)])
    mlp[h] = Ω₂ Dr(a[β₁ + Ω₁ h]) + β₂     (Ω₁ = linear1.weight (F, D), Ω₂ = linear2.weight (D, F),
                                            a = ReLU or GELU, F = dim_feedforward)
Dr, Dr₁, Dr₂ are the three dropouts (`dropout`, `dropout1`, `dropout2`, probability `dropout`);
the attention has its own dropout on the attention probabilities (inside `self_attn`).

Backward: the hand-chained backward of the parts, in the reverse order of the forward. A residual
y = x + g(x) passes its gradient both ways, ∂ℓ/∂x = ∂ℓ/∂y + (∂g/∂x)ᵀ ∂ℓ/∂y (000 §9.2: the identity
path is why deep stacks still train), and self-attention uses X three times, as queries, keys and
values, so ∂ℓ/∂X = ∂ℓ/∂Q_in + ∂ℓ/∂K_in + ∂ℓ/∂V_in (the sum of `self_attn`'s three input gradients):
    post-LN:  ∂ℓ/∂S₂ = LN₂ᵀ(∂ℓ/∂Y);  ∂ℓ/∂X₁ = ∂ℓ/∂S₂ + mlpᵀ(Dr₂ᵀ ∂ℓ/∂S₂)
              ∂ℓ/∂S₁ = LN₁ᵀ(∂ℓ/∂X₁); ∂ℓ/∂X  = ∂ℓ/∂S₁ + Σ_{q,k,v} MhSaᵀ(Dr₁ᵀ ∂ℓ/∂S₁)
    pre-LN:   ∂ℓ/∂X₁ = ∂ℓ/∂Y + LN₂ᵀ(mlpᵀ(Dr₂ᵀ ∂ℓ/∂Y))
              ∂ℓ/∂X  = ∂ℓ/∂X₁ + LN₁ᵀ(Σ_{q,k,v} MhSaᵀ(Dr₁ᵀ ∂ℓ/∂X₁))
where Fᵀ(g) is the part F's backward (the product of its Jacobian's transpose with g). The mlp runs
on rows: the token rows (N·T, D) are one batch for linear1 and linear2 (x Ωᵀ in batch-first rows).

Why a LayerNorm in every block (000 §9.2): without normalisation the residual sums grow through
depth; the pre-LN form keeps the identity path free of any normalisation (gradients reach the
embedding unchanged), which is why GPT-2 and later models use it, and why GPT needs a final
LayerNorm after the last block (layers/gpt.py).

Kernels. The encoder layer has no kernels of its own: every operation is a family's layer
(layers.attention.MultiheadAttention, layers.dense.Linear, layers.norm.LayerNorm,
layers.activations, layers.dropout), each with its reference and fast pair, so
`engine.reference_kernels()` switches the whole layer. The positional encodings' kernels (an add
over rows; the learned table's sum over the batch) are the plainest statement of their maths and
as fast as the memory traffic allows, so one pair serves both paths, as Dropout's does.

Masks (torch's meaning): `src_mask` is (T, T) or (N·nhead, T, T), boolean (True = this query may
NOT attend to this key) or additive float (added to the scores, −inf forbids);
`src_key_padding_mask` is (N, T) ((T,) unbatched), True (or −inf) at padded keys; `is_causal=True`
lets each position attend only to itself and earlier ones, done by the attention's loop bounds.
torch treats `is_causal` as a hint that `src_mask` holds the causal mask (and needs the mask too);
here it suffices alone, and a mask given with it is applied as well.
"""
import copy

import numpy as np
from numba import njit, prange

from engine.checks import inputs_checked, check_array, check_bool, check_choice, check_dtype, check_float, check_int, check_rng
from engine.core import Layer, Parameter, check_layer, use_reference
from engine.threads import chunks_for, parallel_call

from .activations import GELU, ReLU
from .attention import MultiheadAttention, causal_mask
from .dense import Linear
from .dropout import Dropout
from .norm import LayerNorm

__all__ = ["sinusoidal_encoding", "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding",
           "TransformerEncoderLayer", "TransformerEncoder", "LayerList", "causal_mask"]


# ---- kernels (one pair serves both paths: module docstring) ------------------------------------
@njit(cache=True)
def sinusoidal_table(max_len, d_model):
    """PE[pos, j] = sin(pos / 10000^{2i/d_model}) for even j = 2i, cos(…) for odd j = 2i + 1
    (003 §2.6.1 in Vaswani et al.'s form). Returns (max_len, d_model) float64."""
    pe = np.empty((max_len, d_model))
    for j in range(d_model):
        i = j // 2
        inv = 1.0 / 10000.0 ** (2.0 * i / d_model)           # the angular frequency of the pair
        for pos in range(max_len):
            angle = pos * inv
            pe[pos, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    return pe


@njit(cache=True)
def positional_forward(x, table, batch_first):
    """y = x + PE[:T] over rows: x (T, N, D) time-major, y[t, n, :] = x[t, n, :] + PE[t, :]; or
    x (N, T, D) with batch_first, y[n, t, :] = x[n, t, :] + PE[t, :]. table (≥ T, D)."""
    A, B, D = x.shape
    y = np.empty_like(x)
    for a in range(A):
        for b in range(B):
            t = b if batch_first else a
            src, p, dst = x[a, b], table[t], y[a, b]        # 1-D rows: the loop vectorises
            for d in range(D):
                dst[d] = src[d] + p[d]
    return y


@njit(cache=True)
def positional_backward(dy, dtable, batch_first):
    """∂ℓ/∂P[t, :] += Σ_n ∂ℓ/∂y[t, n, :] (the learned table's gradient; ∂ℓ/∂x = ∂ℓ/∂y is the
    caller's). dy as x in `positional_forward`; dtable (≥ T, D) accumulated in place."""
    A, B, D = dy.shape
    for a in range(A):
        for b in range(B):
            t = b if batch_first else a
            g, acc = dy[a, b], dtable[t]
            for d in range(D):
                acc[d] += g[d]


@njit(parallel=True, cache=True)
def residual_add(a, b, nthreads):
    """a += b over flat arrays of one size, in `nthreads` disjoint chunks: the residual sums
    X + Sublayer(X) (and their gradients' sums) of the layer, written into the sublayer's own
    fresh output so that no new array is made."""
    n = a.shape[0]
    for t in prange(nthreads):
        for i in range(t * n // nthreads, (t + 1) * n // nthreads):
            a[i] += b[i]


def _add_into(a, b):
    """a += b (same shape; a is a fresh array the caller owns); returns a."""
    if use_reference():
        a += b
    else:
        parallel_call(residual_add, chunks_for(a.size, row_cost=1), a.reshape(-1), b.reshape(-1))
    return a


def sinusoidal_encoding(max_len, d_model):
    """The sinusoidal table PE (max_len, d_model), float64 (module docstring): for figures and for
    SinusoidalPositionalEncoding."""
    max_len = check_int("max_len", max_len, low=1)
    d_model = check_int("d_model", d_model, low=1)
    return sinusoidal_table(max_len, d_model)


# ---- positional encodings ----------------------------------------------------------------------
def _rows3(name, x, width, batch_first, max_len, dtype):
    """x (T, N, D) / (N, T, D) / (T, D) checked -> (3-D view, T)."""
    x = check_array(name, x, ndim=(2, 3), dtype=dtype)
    if x.shape[-1] != width:
        raise ValueError(f"{name}: expected {width} features in the last axis, got shape {x.shape}")
    if x.ndim == 2:
        T = x.shape[0]
        x3 = x.reshape(T, 1, width) if not batch_first else x.reshape(1, T, width)
    else:
        T = x.shape[1] if batch_first else x.shape[0]
        x3 = x
    if T > max_len:
        raise ValueError(f"{name}: a sequence of {T} positions is longer than the table's {max_len} "
                         f"(shape {x.shape}, {'batch_first' if batch_first else 'time first'})")
    return x3, T


class SinusoidalPositionalEncoding(Layer):
    """y = x + PE[:T] with the fixed sinusoidal table (module docstring), for x (T, N, d_model),
    (N, T, d_model) with batch_first, or (T, d_model). No parameters; the table (max_len, d_model)
    is `pe`, in the layer's dtype, not part of the state dict (it is a function of the shape)."""

    def __init__(self, d_model, max_len=5000, batch_first=False, dtype=np.float64):
        self.d_model = check_int("d_model", d_model, low=1)
        self.max_len = check_int("max_len", max_len, low=1)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dtype = check_dtype(dtype)
        self.pe = sinusoidal_table(self.max_len, self.d_model).astype(self.dtype)

    def forward(self, x, train=True):
        check_bool("train", train)
        x3, T = _rows3("x", x, self.d_model, self.batch_first, self.max_len, self.dtype)
        y = positional_forward(x3, self.pe, self.batch_first)
        self._save(x.shape)
        return y.reshape(x.shape)

    def backward(self, dy, *, input_grad=True):
        shape, = self._saved()
        dy = check_array("dy", dy, shape=shape, dtype=self.dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        return dy.copy() if input_grad else None

    def extra_repr(self):
        return {"d_model": self.d_model, "max_len": self.max_len, "batch_first": self.batch_first}


class LearnedPositionalEmbedding(Layer):
    """y = x + P[:T] with a trained table P = `weight` (num_embeddings, embedding_dim), one row per
    position, drawn N(0, 1) as torch.nn.Embedding's (so an `nn.Embedding(max_len, D)` state dict
    loads into it): GPT's position embedding. x (T, N, D), (N, T, D) with batch_first, or (T, D)."""

    def __init__(self, num_embeddings, embedding_dim, batch_first=False, dtype=np.float64, rng=None):
        self.num_embeddings = check_int("num_embeddings", num_embeddings, low=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, low=1)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)
        self.weight = Parameter(rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype))

    def forward(self, x, train=True):
        check_bool("train", train)
        x3, T = _rows3("x", x, self.embedding_dim, self.batch_first, self.num_embeddings, self.dtype)
        y = positional_forward(x3, self.weight.value, self.batch_first)
        self._save(x.shape, x3.shape)
        return y.reshape(x.shape)

    def backward(self, dy, *, input_grad=True):
        shape, shape3 = self._saved()
        dy = check_array("dy", dy, shape=shape, dtype=self.dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        positional_backward(dy.reshape(shape3), self.weight.grad, self.batch_first)
        return dy.copy() if input_grad else None

    def extra_repr(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "batch_first": self.batch_first}


# ---- the transformer encoder layer -------------------------------------------------------------
class LayerList(Layer):
    """Layers held under the names "0", "1", … (torch.nn.ModuleList): a stack's members, so that
    their keys read "layers.{i}.…". It has no forward of its own."""

    def __init__(self, layers=()):
        layers = list(layers)
        for i, layer in enumerate(layers):
            setattr(self, str(i), check_layer(f"layers[{i}]", layer))
        object.__setattr__(self, "_list", layers)

    def __getitem__(self, i):
        return self._list[i]

    def __len__(self):
        return len(self._list)

    def __iter__(self):
        return iter(self._list)

    def forward(self, *inputs, train=True):
        raise TypeError("LayerList has no forward: call its members (layers[i].forward)")

    def backward(self, *grads, input_grad=True):
        raise TypeError("LayerList has no backward: call its members (layers[i].backward)")

    def __repr__(self):
        return "LayerList(\n" + "".join(f"  ({i}): {l!r}\n" for i, l in enumerate(self._list)) + ")"


def check_mask(name, mask, dtype, shapes, src_shape):
    """A boolean (True = not allowed) or additive float mask of the layer's dtype whose shape is one
    of `shapes`; NaN and +inf refused (−inf forbids). The message names the mask and src's shape."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray (bool, or {np.dtype(dtype)} additive), "
                        f"got {type(mask).__name__}")
    if mask.dtype != np.bool_ and mask.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected a bool mask or an additive {np.dtype(dtype)} mask, got dtype {mask.dtype}")
    if mask.shape not in shapes:
        want = " or ".join(str(s) for s in shapes)
        raise ValueError(f"{name}: expected shape {want} for src of shape {src_shape}, got {mask.shape}")
    if mask.dtype != np.bool_ and (np.isnan(mask).any() or (mask == np.inf).any()):
        raise ValueError(f"{name}: expected finite values or -inf in an additive mask, got NaN or +inf")
    return np.ascontiguousarray(mask)


class TransformerEncoderLayer(Layer):
    """TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
    layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, dtype=np.float64, rng=None),
    as torch.nn.TransformerEncoderLayer (module docstring for the equations): self-attention with
    `nhead` heads, then the feed-forward block d_model → dim_feedforward → d_model, each residual,
    with LayerNorm after (post-LN, the default) or before (`norm_first=True`) each block.
    activation: "relu" or "gelu" (exact GELU, as torch's "gelu"). Keys as torch: self_attn.*,
    linear1.*, linear2.*, norm1.*, norm2.*. The dropouts (`dropout`, `dropout1`, `dropout2`, and the
    attention's) draw from `rng` when given, else from the engine's default generator.

    forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False, train=True):
        src (T, N, d_model), (N, T, d_model) with batch_first, or (T, d_model); returns the same shape.
    backward(dy) -> ∂ℓ/∂src.
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, dtype=np.float64,
                 rng=None):
        self.d_model = check_int("d_model", d_model, low=1)
        self.nhead = check_int("nhead", nhead, low=1)
        if self.d_model % self.nhead:
            raise ValueError(f"nhead: d_model={self.d_model} must be divisible by nhead, got nhead={self.nhead}")
        self.dim_feedforward = check_int("dim_feedforward", dim_feedforward, low=1)
        p = check_float("dropout", dropout, low=0.0, high=1.0)
        if not isinstance(activation, str):
            raise TypeError(f"activation: expected 'relu' or 'gelu', got {type(activation).__name__} {activation!r}")
        self.activation = check_choice("activation", activation, ("relu", "gelu"))
        self.layer_norm_eps = check_float("layer_norm_eps", layer_norm_eps, low=0.0, low_open=True)
        self.batch_first = check_bool("batch_first", batch_first)
        self.norm_first = check_bool("norm_first", norm_first)
        self.bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        given = rng is not None
        rng = check_rng("rng", rng)                   # every argument checked before the first draw
        D, F = self.d_model, self.dim_feedforward
        # registration order = torch's (self_attn, linear1, dropout, linear2, norm1, norm2, dropout1, dropout2)
        self.self_attn = MultiheadAttention(D, self.nhead, dropout=p, bias=self.bias, batch_first=self.batch_first,
                                            dtype=self.dtype, rng=rng)
        self.linear1 = Linear(D, F, bias=self.bias, dtype=self.dtype, rng=rng)
        self.dropout = Dropout(p)
        self.linear2 = Linear(F, D, bias=self.bias, dtype=self.dtype, rng=rng)
        self.norm1 = LayerNorm(D, eps=self.layer_norm_eps, bias=self.bias, dtype=self.dtype)
        self.norm2 = LayerNorm(D, eps=self.layer_norm_eps, bias=self.bias, dtype=self.dtype)
        self.dropout1 = Dropout(p)
        self.dropout2 = Dropout(p)
        self.act = GELU() if self.activation == "gelu" else ReLU()
        if given:           # each dropout (the attention's too) its own stream, spawned from rng
            for d, child in zip((self.self_attn, self.dropout, self.dropout1, self.dropout2), rng.spawn(4)):
                d.set_generator(child)
        else:               # None: every dropout draws from the engine's default generator
            self.self_attn.set_generator(None)

    # ---- argument checks ----
    def _geometry(self, src):
        """(T, N) of src; N None when unbatched."""
        if src.ndim == 2:
            return src.shape[0], None
        return (src.shape[1], src.shape[0]) if self.batch_first else (src.shape[0], src.shape[1])

    def _check(self, src, src_mask, src_key_padding_mask, is_causal, mask_name="src_mask"):
        src = check_array("src", src, ndim=(2, 3), dtype=self.dtype)
        if src.shape[-1] != self.d_model:
            raise ValueError(f"src: expected d_model={self.d_model} features in the last axis, got shape {src.shape}")
        T, N = self._geometry(src)
        is_causal = check_bool("is_causal", is_causal)
        if src_mask is not None:
            shapes = [(T, T)] + ([] if N is None else [(N * self.nhead, T, T)])
            src_mask = check_mask(mask_name, src_mask, self.dtype, shapes, src.shape)
        if src_key_padding_mask is not None:
            src_key_padding_mask = check_mask("src_key_padding_mask", src_key_padding_mask, self.dtype,
                                              [(T,) if N is None else (N, T)], src.shape)
        return src, src_mask, src_key_padding_mask, is_causal

    # ---- the two blocks ----
    @staticmethod
    def _drop(layer, x, train):
        return layer.forward(x, train=True) if train and layer.p > 0 else x

    @staticmethod
    def _drop_back(layer, g, train):
        return layer.backward(g) if train and layer.p > 0 else g

    def _sa(self, x, mask, kpm, causal, train):
        a, _ = self.self_attn.forward(x, x, x, key_padding_mask=kpm, need_weights=False, attn_mask=mask,
                                      is_causal=causal, train=train)
        return self._drop(self.dropout1, a, train)

    def _sa_back(self, g, train, input_grad=True):
        g = self._drop_back(self.dropout1, g, train)
        return self.self_attn.backward(g, None, input_grad=input_grad, summed=True)   # X as queries, keys and values

    def _ff(self, x, train):
        h = self.linear1.forward(x.reshape(-1, self.d_model), train=train)
        h = self.act.forward(h, train=train)
        h = self._drop(self.dropout, h, train)
        f = self.linear2.forward(h, train=train).reshape(x.shape)
        return self._drop(self.dropout2, f, train)

    def _ff_back(self, g, train, input_grad=True):
        shape = g.shape
        g = self._drop_back(self.dropout2, g, train)
        g = self.linear2.backward(g.reshape(-1, self.d_model))
        g = self._drop_back(self.dropout, g, train)
        g = self.act.backward(g)
        g = self.linear1.backward(g, input_grad=input_grad)
        return g.reshape(shape) if input_grad else None

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False, train=True):
        train = check_bool("train", train)
        x, mask, kpm, causal = self._check(src, src_mask, src_key_padding_mask, is_causal)
        with self._all_or_nothing(), inputs_checked():    # parts see only what this layer made
            if self.norm_first:
                x1 = _add_into(self._sa(self.norm1.forward(x, train=train), mask, kpm, causal, train), x)
                y = _add_into(self._ff(self.norm2.forward(x1, train=train), train), x1)
            else:
                x1 = self.norm1.forward(_add_into(self._sa(x, mask, kpm, causal, train), x), train=train)
                y = self.norm2.forward(_add_into(self._ff(x1, train), x1), train=train)
        self._save(y.shape, train)
        return y

    def backward(self, dy, *, input_grad=True):
        shape, train = self._saved()
        dy = check_array("dy", dy, shape=shape, dtype=self.dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        if self.norm_first:
            dx1 = _add_into(self.norm2.backward(self._ff_back(dy, train)), dy)
            dn1 = self.norm1.backward(self._sa_back(dx1, train), input_grad=input_grad)
            return _add_into(dn1, dx1) if input_grad else None
        ds2 = self.norm2.backward(dy)
        dx1 = _add_into(self._ff_back(ds2, train), ds2)
        ds1 = self.norm1.backward(dx1)
        if not input_grad:
            self._sa_back(ds1, train, input_grad=False)
            return None
        return _add_into(self._sa_back(ds1, train), ds1)

    def extra_repr(self):
        return {"d_model": self.d_model, "nhead": self.nhead, "dim_feedforward": self.dim_feedforward,
                "dropout": self.dropout.p, "activation": self.activation, "batch_first": self.batch_first,
                "norm_first": self.norm_first}


class TransformerEncoder(Layer):
    """TransformerEncoder(encoder_layer, num_layers, norm=None), as torch.nn.TransformerEncoder: a
    stack of `num_layers` copies of `encoder_layer` (deep copies, so they start from the same
    weights, as torch's clones do; each copy's dropouts get their own stream when the original
    had one), then `norm` (e.g. a LayerNorm, the final norm of a pre-LN stack) when given.
    Keys "layers.{i}.…" and "norm.…".

    forward(src, mask=None, src_key_padding_mask=None, is_causal=None, train=True): every layer
    with the same masks (is_causal None means False); backward(dy) -> ∂ℓ/∂src through the stack
    in reverse.
    """

    def __init__(self, encoder_layer, num_layers, norm=None):
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            raise TypeError(f"encoder_layer: expected a TransformerEncoderLayer, got {type(encoder_layer).__name__}")
        self.num_layers = check_int("num_layers", num_layers, low=1)
        if norm is not None:
            check_layer("norm", norm)
            if norm.parameters() and norm.dtype != encoder_layer.dtype:
                raise TypeError(f"norm: expected dtype {np.dtype(encoder_layer.dtype)} (the layers'), "
                                f"got {np.dtype(norm.dtype)}")
        object.__setattr__(self, "encoder_layer", encoder_layer)       # held, not registered (torch's too)
        clones = []
        for _ in range(self.num_layers):
            c = copy.deepcopy(encoder_layer)
            c.clear_saved()
            for (_, orig), (_, sub) in zip(encoder_layer.named_layers(), c.named_layers()):
                if sub.stochastic and orig._rng is not None:
                    sub.set_generator(orig._rng.spawn(1)[0])
            clones.append(c)
        self.layers = LayerList(clones)
        if norm is not None:
            self.norm = norm
        object.__setattr__(self, "_norm", norm)
        self.dtype = encoder_layer.dtype

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None, train=True):
        train = check_bool("train", train)
        causal = False if is_causal is None else check_bool("is_causal", is_causal)
        first = self.layers[0]
        x, mask, kpm, causal = first._check(src, mask, src_key_padding_mask, causal, "mask")   # before any kernel
        with self._all_or_nothing(), inputs_checked():    # parts see only what this layer made
            for layer in self.layers:
                x = layer.forward(x, mask, kpm, causal, train=train)
            if self._norm is not None:
                x = self._norm.forward(x, train=train)
        self._save(x.shape)
        return x

    def backward(self, dy, *, input_grad=True):
        shape, = self._saved()
        dy = check_array("dy", dy, shape=shape, dtype=self.dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        if self._norm is not None:
            dy = self._norm.backward(dy)
        n = len(self.layers)
        for i in range(n - 1, -1, -1):
            dy = self.layers[i].backward(dy, input_grad=input_grad or i > 0)
        return dy

    def extra_repr(self):
        return {"num_layers": self.num_layers}
