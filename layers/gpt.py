"""A decoder-only transformer language model, GPT (notes 000 §9.3.2; 004 §5.4.2, §5.4.4, §5.4.6).

An autoregressive model factorises the joint probability of a text into next-token conditionals,
    Pr(t_1, …, t_N) = Pr(t_1) ∏_{n=2}^{N} Pr(t_n | t_1, …, t_{n−1}),
and GPT computes every conditional of a window at once: causal self-attention lets position n see
positions ≤ n only, so the output at n is Pr(t_{n+1} | t_1 … t_n). Training is teacher forcing
(004 §5.4.6): the true previous tokens are the inputs, the targets are the inputs shifted by one,
and the loss is the cross-entropy summed (or averaged) over every position of every window.
Generation feeds each sampled token back as the next input (`generate`).

For token ids idx (N, T) with T ≤ block_size (the context), width D = n_embd, vocabulary V:
    X₀ = E[idx] + P[:T]                   E = wte.weight (V, D) token embedding (layers.embedding),
                                          P = wpe.weight (block_size, D) learned positions
    X_k = Block_k(X_{k−1}), k = 1 … L     pre-LN causal transformer layers (layers.transformer):
                                          X₁ = X + MhSa_causal[LN₁(X)],  Y = X₁ + mlp[LN₂(X₁)],
                                          mlp = D → 4D → D with GELU (or ReLU)
    H = LN_f(X_L)                         the final LayerNorm a pre-LN stack needs
    logits = H Eᵀ                         (N, T, V): the output head *is* the token embedding
                                          (tied weights, Press & Wolf 2017), lm_head.weight = E
Backward, by hand through the parts in reverse: ∂ℓ/∂H = ∂ℓ/∂logits E, ∂ℓ/∂E += ∂ℓ/∂logitsᵀ H (the
head's use of E), then LN_f, the blocks from L down to 1, the position table (∂ℓ/∂P[t] += Σ_n
∂ℓ/∂X₀[n, t]) and the embedding's scatter-add ∂ℓ/∂E[idx_i] += ∂ℓ/∂X₀[i] (its second use): one
Parameter, used twice, so both contributions accumulate into the same `grad`, exactly as autograd
adds them. An optimizer sees the tied Parameter once (`parameters()`); the state dict lists it
under both names, as torch's does.

Initialisation as GPT-2 (Radford et al. 2019, as nanoGPT does it): every matrix and both tables
N(0, 0.02²), the two projections that write into the residual stream (self_attn.out_proj and
linear2) N(0, (0.02/√(2L))²) so that the residual sum's variance does not grow with depth (the
notes' variance argument, 000 §9.2), biases 0, LayerNorms γ = 1, β = 0.

The model has no kernels of its own: each part is a family's layer with its two kernel paths.
"""
import numpy as np

from engine.checks import inputs_checked, check_bool, check_choice, check_dtype, check_float, check_int, check_rng
from engine.core import Layer
from engine.sampling import generate as _generate

from .dense import Linear
from .dropout import Dropout
from .embedding import Embedding, check_ids
from .norm import LayerNorm
from .transformer import LayerList, LearnedPositionalEmbedding, TransformerEncoderLayer

__all__ = ["GPT"]


class GPT(Layer):
    """GPT(vocab_size, block_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True,
    activation="gelu", dtype=np.float64, rng=None): a decoder-only language model (module docstring).

    Parts and keys: wte (Embedding), wpe (learned positions, "wpe.weight" as an nn.Embedding's),
    drop (Dropout on the embeddings), blocks.{i} (TransformerEncoderLayer(n_embd, n_head,
    4·n_embd, dropout, activation ("gelu", GPT-2's, or "relu"), batch_first=True, norm_first=True),
    called causally), ln_f
    (LayerNorm), lm_head (Linear without bias whose weight is wte's Parameter). The dropouts draw
    from streams spawned from `rng` when it is given, else from the engine's default generator
    (engine.manual_seed); fit(seed=) reseeds them either way.

    forward(idx, train=True): idx (N, T) integer token ids, 1 ≤ T ≤ block_size -> logits (N, T, V).
    backward(dlogits) -> None (token ids have no gradient); every parameter's grad accumulates.
    generate(idx, max_new_tokens, temperature=1.0, top_k=None, rng=None): sampled continuation.
    """

    def __init__(self, vocab_size, block_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=True,
                 activation="gelu", dtype=np.float64, rng=None):
        self.vocab_size = check_int("vocab_size", vocab_size, low=1)
        self.block_size = check_int("block_size", block_size, low=1)
        self.n_layer = check_int("n_layer", n_layer, low=1)
        self.n_head = check_int("n_head", n_head, low=1)
        self.n_embd = check_int("n_embd", n_embd, low=1)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_head: n_embd={self.n_embd} must be divisible by n_head, got n_head={self.n_head}")
        self.dropout = check_float("dropout", dropout, low=0.0, high=1.0)
        self.bias = check_bool("bias", bias)
        if not isinstance(activation, str):
            raise TypeError(f"activation: expected 'gelu' or 'relu', got {type(activation).__name__} {activation!r}")
        self.activation = check_choice("activation", activation, ("gelu", "relu"))
        self.dtype = check_dtype(dtype)
        given = rng is not None
        rng = check_rng("rng", rng)                   # every argument checked before the first draw
        V, D, L = self.vocab_size, self.n_embd, self.n_layer
        self.wte = Embedding(V, D, dtype=self.dtype, rng=rng)
        self.wpe = LearnedPositionalEmbedding(self.block_size, D, batch_first=True, dtype=self.dtype, rng=rng)
        self.drop = Dropout(self.dropout, rng=rng.spawn(1)[0])
        self.blocks = LayerList([
            TransformerEncoderLayer(D, self.n_head, 4 * D, self.dropout, self.activation, batch_first=True, norm_first=True,
                                    bias=self.bias, dtype=self.dtype, rng=rng) for _ in range(L)])
        self.ln_f = LayerNorm(D, bias=self.bias, dtype=self.dtype)
        self.lm_head = Linear(D, V, bias=False, dtype=self.dtype, rng=rng)
        self.lm_head.weight = self.wte.weight            # tied: one Parameter, two uses
        self._init_gpt2(rng)
        if not given:       # without rng, every dropout draws from the engine's default generator
            for _, layer in self.named_layers():
                layer.set_generator(None)

    def _init_gpt2(self, rng):
        """GPT-2's initial values (module docstring), drawn from rng in parameter order."""
        resid = 0.02 / np.sqrt(2 * self.n_layer)
        for name, p in self.named_parameters():
            v = p.value
            if name.startswith("ln_f.") or ".norm" in name:
                v[...] = 1.0 if name.endswith("weight") else 0.0
            elif name.endswith("bias"):
                v[...] = 0.0
            else:
                std = resid if name.endswith(("out_proj.weight", "linear2.weight")) else 0.02
                v[...] = rng.normal(0.0, std, v.shape)

    # ---- argument checks ----
    def _check_idx(self, name, idx):
        """(N, T) integer ids in [0, V) with 1 ≤ T ≤ block_size, checked before any kernel."""
        if not isinstance(idx, np.ndarray):
            raise TypeError(f"{name}: expected a numpy.ndarray of integer token ids, got {type(idx).__name__}")
        if not np.issubdtype(idx.dtype, np.integer):
            raise TypeError(f"{name}: expected integer token ids, got dtype {idx.dtype} (ids are never cast)")
        if idx.ndim != 2:
            raise ValueError(f"{name}: expected token ids of shape (N, T), got shape {idx.shape}")
        if idx.shape[1] > self.block_size:
            raise ValueError(f"{name}: a context of {idx.shape[1]} tokens is longer than the model's "
                             f"block_size={self.block_size} (shape {idx.shape}); pass the last "
                             f"{self.block_size} tokens, idx[:, -{self.block_size}:]")
        check_ids(name, idx, self.vocab_size)                 # non-empty, every id in [0, V)
        return idx

    def forward(self, idx, train=True):
        train = check_bool("train", train)
        idx = self._check_idx("idx", idx)
        N, T = idx.shape
        D, V = self.n_embd, self.vocab_size
        drop = train and self.drop.p > 0
        with self._all_or_nothing(), inputs_checked():    # parts see only what this layer made
            x = self.wte.forward(idx, train=train)                       # (N, T, D)
            x = self.wpe.forward(x, train=train)
            if drop:
                x = self.drop.forward(x, train=True)
            for block in self.blocks:
                x = block.forward(x, is_causal=True, train=train)
            h = self.ln_f.forward(x, train=train)
            logits = self.lm_head.forward(h.reshape(N * T, D), train=train)   # H Eᵀ
        self._save((N, T), drop)
        return logits.reshape(N, T, V)

    def backward(self, dlogits, *, input_grad=True):
        (N, T), drop = self._saved()
        D, V = self.n_embd, self.vocab_size
        dlogits = self._check_input(dlogits, name="dlogits", shape=(N, T, V), finite=False)
        check_bool("input_grad", input_grad)
        self._release()
        dh = self.lm_head.backward(dlogits.reshape(N * T, V)).reshape(N, T, D)    # ∂ℓ/∂E += ∂ℓ/∂logitsᵀ H
        dx = self.ln_f.backward(dh)
        for i in range(len(self.blocks) - 1, -1, -1):
            dx = self.blocks[i].backward(dx)
        if drop:
            dx = self.drop.backward(dx)
        dx = self.wpe.backward(dx)
        self.wte.backward(dx)                                                    # ∂ℓ/∂E[idx] += ∂ℓ/∂X₀
        return None

    # ---- sampling ----
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, rng=None):
        """Append `max_new_tokens` sampled tokens to each sequence of idx ((N, T0) or (T0,) ids in
        [0, V)), each drawn from softmax(logits/temperature) over the top_k largest logits
        (engine.sampling), the logits of the last position given the last block_size tokens, in
        evaluation mode under no_grad. rng: a seed or a Generator (a seed gives the same text).
        Returns the ids with the new ones appended, as engine.sampling.generate."""
        if not isinstance(idx, np.ndarray):
            raise TypeError(f"idx: expected a numpy.ndarray of integer token ids, got {type(idx).__name__}")
        if idx.ndim not in (1, 2):
            raise ValueError(f"idx: expected token ids of shape (N, T0) or (T0,), got shape {idx.shape}")
        check_ids("idx", idx, self.vocab_size)
        if top_k is not None:
            check_int("top_k", top_k, low=1, high=self.vocab_size)
        B = self.block_size

        def step(ids):
            return self.forward(ids[:, -B:], train=False)[:, -1, :]

        return _generate(step, idx, max_new_tokens, temperature=temperature, top_k=top_k, rng=rng)

    def num_parameters(self):
        """The number of trained numbers (the tied matrix once)."""
        return int(sum(p.value.size for p in self.parameters()))

    def extra_repr(self):
        return {"vocab_size": self.vocab_size, "block_size": self.block_size, "n_layer": self.n_layer,
                "n_head": self.n_head, "n_embd": self.n_embd, "dropout": self.dropout}
