"""Gradient-check cases for the transformer family (layers/transformer.py, layers/gpt.py), read by
tests/test_gradient_cases.py (both kernel paths), tests/test_bad_input.py and
scripts/check_gradients.py. Issue 13, item 5, in float64 with small sizes (d_model ≤ 8, T ≤ 4,
N ≤ 3, dim_feedforward ≤ 8): 1, 2 and 4 heads, both batch_first, both norm_first, ReLU and GELU,
T = 1, batch 1, unbatched input, causal attention (is_causal), a boolean src_mask with a key
padding mask and an additive float mask, no bias; the residual, feed-forward and attention
dropouts with fixed masks (`fix_mask`: every dropout keeps the mask drawn at the first forward
while gradcheck perturbs); a two-layer TransformerEncoder with a final LayerNorm; both positional
encodings in both layouts; and a tiny GPT (causal pre-LN blocks, tied head), whose token ids
are not perturbed: its check is every parameter's gradient, the tied matrix collecting the
embedding's and the head's contributions.

Masks are not inputs a gradient check could perturb, so the masked cases bind them in `Masked`,
whose forward(src) calls the layer with them.

ReLU kinks: a feed-forward preactivation within ε = 1e-6 of 0 would spoil the central
differences; with U(±1/√d) weights the chance per element is ~1e-6 and the cases are seeded.

    python scripts/gradcases_transformer.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.checks import check_bool  # noqa: E402
from engine.core import Layer, check_layer  # noqa: E402
from layers.gpt import GPT  # noqa: E402
from layers.norm import LayerNorm  # noqa: E402
from layers.transformer import (LearnedPositionalEmbedding, SinusoidalPositionalEncoding,  # noqa: E402
                                TransformerEncoder, TransformerEncoderLayer, causal_mask)


class Masked(Layer):
    """layer.forward(src, src_mask, src_key_padding_mask, is_causal) with the masks bound at
    construction: forward(src) -> the layer's output; backward(dy) -> ∂ℓ/∂src."""

    def __init__(self, layer, src_mask=None, src_key_padding_mask=None, is_causal=False):
        self.layer = check_layer("layer", layer)
        self.is_causal = check_bool("is_causal", is_causal)
        object.__setattr__(self, "src_mask", src_mask)
        object.__setattr__(self, "src_key_padding_mask", src_key_padding_mask)
        self.dtype = layer.dtype

    def forward(self, src, train=True):
        return self.layer.forward(src, self.src_mask, self.src_key_padding_mask, self.is_causal, train=train)

    def backward(self, dy, *, input_grad=True):
        return self.layer.backward(dy, input_grad=input_grad)


def fix_masks(model):
    """Every dropout below `model` (the residual ones, the feed-forward one and the attention's)
    keeps the first mask it draws: the model is then a fixed function for gradcheck."""
    n = 0
    for _, layer in model.named_layers():
        if hasattr(layer, "fix_mask"):
            layer.fix_mask = True
            n += 1
    return n


def seq(rng, T, N, D, batch_first):
    """x (T, N, D), (N, T, D) with batch_first, or (T, D) with N None."""
    if N is None:
        return rng.standard_normal((T, D))
    return rng.standard_normal((N, T, D) if batch_first else (T, N, D))


def layer_case(T, N, D, H, F=6, masks=None, dropout=0.0, **kw):
    """make(rng) for a TransformerEncoderLayer(D, H, F, dropout, **kw) on x of T positions and N
    sequences; masks(rng, T, N, H) -> dict of Masked's keyword arguments, or None."""
    def make(rng):
        layer = TransformerEncoderLayer(D, H, F, dropout, rng=rng, **kw)
        if dropout > 0:
            fix_masks(layer)
        x = seq(rng, T, N, D, layer.batch_first)
        if masks is None:
            return "layer", layer, [x]
        return "layer", Masked(layer, **masks(rng, T, N, H)), [x], {"input_names": ["src"]}
    return make


def causal(rng, T, N, H):
    return {"is_causal": True}


def bool_and_padding(rng, T, N, H):
    """A boolean (T, T) mask forbidding a few pairs and a padding mask hiding the last key of
    sequence 0; every query keeps at least one key."""
    m = rng.random((T, T)) < 0.4
    m[:, 0] = False                                        # key 0 stays visible to every query
    kpm = np.zeros((N, T), bool)
    kpm[0, -1] = True
    return {"src_mask": m, "src_key_padding_mask": kpm}


def additive_per_head(rng, T, N, H):
    """An additive float mask of shape (N·H, T, T): finite offsets, and −inf above the diagonal."""
    m = rng.standard_normal((N * H, T, T))
    m[:, causal_mask(T)] = -np.inf
    return {"src_mask": m}


def encoder_case(rng):
    layer = TransformerEncoderLayer(4, 2, 4, 0.0, "gelu", norm_first=True, batch_first=True, rng=rng)
    enc = TransformerEncoder(layer, 2, norm=LayerNorm(4))
    for p in enc.parameters():                      # the clones start equal: make them differ
        p.value[...] += 0.1 * rng.standard_normal(p.shape)
    return "layer", Masked(enc, is_causal=True), [rng.standard_normal((2, 3, 4))], {"input_names": ["src"]}


def positional_case(cls, T, N, D, batch_first, **kw):
    def make(rng):
        layer = cls(D, 6, batch_first=batch_first, **kw) if cls is SinusoidalPositionalEncoding \
            else cls(6, D, batch_first=batch_first, rng=rng)
        return "layer", layer, [seq(rng, T, N, D, batch_first)]
    return make


def gpt_case(N, T, n_layer, dropout=0.0):
    def make(rng):
        model = GPT(7, 4, n_layer=n_layer, n_head=2, n_embd=4, dropout=dropout, rng=rng)
        for p in model.parameters():          # GPT-2's small initial values, made O(1) for the check
            p.value[...] += 0.5 * rng.standard_normal(p.shape)
        if dropout > 0:
            fix_masks(model)
        return "layer", model, [rng.integers(0, 7, (N, T))]
    return make


CASES = [
    ("encoder layer/post-LN,relu,1 head,T3,N2", layer_case(3, 2, 4, 1)),
    ("encoder layer/pre-LN,gelu,2 heads,batch_first", layer_case(3, 2, 4, 2, activation="gelu",
                                                                norm_first=True, batch_first=True)),
    ("encoder layer/post-LN,gelu,4 heads,d8", layer_case(4, 2, 8, 4, F=5, activation="gelu")),
    ("encoder layer/pre-LN,4 heads,d8,batch_first", layer_case(2, 3, 8, 4, F=4, norm_first=True,
                                                               batch_first=True)),
    ("encoder layer/causal,post-LN,2 heads", layer_case(4, 2, 4, 2, masks=causal)),
    ("encoder layer/causal,pre-LN,gelu,batch_first", layer_case(3, 2, 4, 2, masks=causal, activation="gelu",
                                                                norm_first=True, batch_first=True)),
    ("encoder layer/T1,N1", layer_case(1, 1, 4, 2)),
    ("encoder layer/T1,N1,pre-LN,batch_first", layer_case(1, 1, 4, 1, norm_first=True, batch_first=True)),
    ("encoder layer/unbatched,pre-LN", layer_case(3, None, 4, 2, norm_first=True)),
    ("encoder layer/bool src_mask,key padding", layer_case(4, 2, 4, 2, masks=bool_and_padding)),
    ("encoder layer/additive (N*H,T,T) mask,pre-LN", layer_case(3, 2, 4, 2, masks=additive_per_head,
                                                                norm_first=True)),
    ("encoder layer/no bias,batch_first", layer_case(3, 2, 4, 2, bias=False, batch_first=True)),
    ("encoder layer/dropout 0.3 fixed masks,post-LN", layer_case(3, 2, 4, 2, dropout=0.3)),
    ("encoder layer/dropout 0.3 fixed masks,pre-LN,gelu,causal",
     layer_case(4, 2, 4, 2, dropout=0.3, masks=causal, activation="gelu", norm_first=True, batch_first=True)),
    ("encoder/2 layers,final norm,causal,pre-LN", encoder_case),
    ("positional/sinusoidal,time first", positional_case(SinusoidalPositionalEncoding, 3, 2, 5, False)),
    ("positional/sinusoidal,batch_first,unbatched", positional_case(SinusoidalPositionalEncoding, 4, None, 4, True)),
    ("positional/learned,time first", positional_case(LearnedPositionalEmbedding, 3, 2, 4, False)),
    ("positional/learned,batch_first", positional_case(LearnedPositionalEmbedding, 4, 3, 3, True)),
    ("positional/learned,unbatched", positional_case(LearnedPositionalEmbedding, 2, None, 3, False)),
    ("gpt/2 blocks,2 heads,tied head", gpt_case(2, 4, 2)),
    ("gpt/1 block,batch 1,dropout 0.2 fixed masks", gpt_case(1, 3, 1, dropout=0.2)),
]


if __name__ == "__main__":
    from check_gradients import main
    sys.exit(main(["transformer"]))
