"""Gradient-check cases for the attention family (ScaledDotProductAttention, MultiheadAttention),
read by tests/test_gradient_cases.py (both kernel paths), tests/test_bad_input.py and
scripts/check_gradients.py. Issue 13, items 1, 2, 5: every option in float64 with small sizes
(L, S ≤ 4, N ≤ 3, E ≤ 8): 1–4 heads, causal or not, boolean and additive attention masks, key
padding, kdim ≠ vdim, both batch_first, unbatched, T = 1, batch 1, self-attention (one array as
query, key and value: its gradient is the sum of the three), need_weights off, per-head weights,
and dropout on the probabilities with a fixed mask (`fix_mask=True`). The returned attention
weights (probabilities) get a random upstream gradient too, so their backward is checked.

The masks are not inputs of the check (they get no gradient): `MaskedMHA` (`MaskedSDPA`) holds them
and the call's options, and its forward(query, key, value) (forward(q, k, v)) passes them on. A mask that leaves a query
without any allowed key is in one case ("all-masked row"): that row's output and weights are zero
and constant, so its gradients are zero.

    python scripts/gradcases_attention.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.checks import check_bool  # noqa: E402
from engine.core import Layer  # noqa: E402
from layers.attention import MultiheadAttention, ScaledDotProductAttention  # noqa: E402


def _mask_or_none(name, m):
    if m is None:
        return None
    if not isinstance(m, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray or None, got {type(m).__name__}")
    return m


class MaskedMHA(Layer):
    """A MultiheadAttention with its masks and call options fixed: forward(query, key=None,
    value=None) runs it on (query, key, value) (key and value None: self-attention on query, whose
    gradient is then the sum of the three); backward(d_out, d_weights=None)."""

    def __init__(self, attention, attn_mask=None, key_padding_mask=None, is_causal=False, need_weights=True,
                 average_attn_weights=True):
        if not isinstance(attention, MultiheadAttention):
            raise TypeError(f"attention: expected a MultiheadAttention, got {type(attention).__name__}")
        self.attention = attention
        self.dtype = attention.dtype
        self.attn_mask = _mask_or_none("attn_mask", attn_mask)
        self.key_padding_mask = _mask_or_none("key_padding_mask", key_padding_mask)
        self.is_causal = check_bool("is_causal", is_causal)
        self.need_weights = check_bool("need_weights", need_weights)
        self.average_attn_weights = check_bool("average_attn_weights", average_attn_weights)
        self._self = []

    def forward(self, query, key=None, value=None, train=True):
        selfattn = key is None and value is None
        if selfattn:
            key = value = query
        out = self.attention.forward(query, key, value, key_padding_mask=self.key_padding_mask,
                                     need_weights=self.need_weights, attn_mask=self.attn_mask,
                                     average_attn_weights=self.average_attn_weights, is_causal=self.is_causal,
                                     train=train)
        self._self.append(selfattn)
        return out

    def backward(self, d_out, d_weights=None, *, input_grad=True):
        grads = self.attention.backward(d_out, d_weights, input_grad=input_grad)
        if self._self.pop():
            return sum(g for g in grads if g is not None) if any(g is not None for g in grads) else None
        return grads

    def clear_saved(self):
        super().clear_saved()
        self._self = []


class MaskedSDPA(Layer):
    """A ScaledDotProductAttention with its mask and causality fixed: forward(q, k, v) -> (y, p);
    backward(dy, dp=None) -> (dq, dk, dv)."""

    def __init__(self, attention, attn_mask=None, is_causal=False):
        if not isinstance(attention, ScaledDotProductAttention):
            raise TypeError(f"attention: expected a ScaledDotProductAttention, got {type(attention).__name__}")
        self.attention = attention
        self.dtype = attention.dtype
        self.attn_mask = _mask_or_none("attn_mask", attn_mask)
        self.is_causal = check_bool("is_causal", is_causal)

    def forward(self, q, k, v, train=True):
        return self.attention.forward(q, k, v, attn_mask=self.attn_mask, is_causal=self.is_causal, train=train)

    def backward(self, dy, dp=None, *, input_grad=True):
        return self.attention.backward(dy, dp, input_grad=input_grad)


def mha_case(E, H, L, S, N, kdim=None, vdim=None, selfattn=False, mask=None, kpm=None, **opts):
    """make(rng) for MultiheadAttention: N None means unbatched; mask "bool", "float", "bool3d"
    (one mask per batch and head), "allmasked"; kpm "bool", "float"."""
    ctor = {k: opts.pop(k) for k in ("dropout", "bias", "batch_first", "fix_mask") if k in opts}

    def make(rng):
        mha = MultiheadAttention(E, H, kdim=kdim, vdim=vdim, rng=rng, **ctor)
        # non-zero biases, so their gradients are not checked at a special point
        for name, p in mha.named_parameters():
            if "bias" in name:
                p.value[...] = rng.standard_normal(p.shape) * 0.1
        bf = mha.batch_first

        def seq(T, w):
            if N is None:
                return rng.standard_normal((T, w))
            return rng.standard_normal((N, T, w) if bf else (T, N, w))
        am = None
        if mask in ("bool", "allmasked"):
            am = rng.random((L, S)) < 0.3
            am[:, 0] = False                               # every query keeps a key
            if mask == "allmasked":
                am[L - 1] = True
        elif mask == "float":
            am = rng.standard_normal((L, S))
            am[0, S - 1] = -np.inf
        elif mask == "bool3d":
            am = rng.random(((1 if N is None else N) * H, L, S)) < 0.3
            am[..., 0] = False
            if N is None:
                am = am.reshape(H, L, S)
        kp = None
        if kpm is not None:
            n = 1 if N is None else N
            kp = rng.random((n, S)) < 0.4 if kpm == "bool" else np.where(rng.random((n, S)) < 0.3, -np.inf,
                                                                         rng.standard_normal((n, S)))
            kp[:, 0] = False if kpm == "bool" else 0.0
            if N is None:
                kp = kp[0]
        layer = MaskedMHA(mha, attn_mask=am, key_padding_mask=kp, **opts)
        if selfattn:
            return "layer", layer, [seq(L, E)], {"input_names": ["query"]}
        return "layer", layer, [seq(L, E), seq(S, mha.kdim), seq(S, mha.vdim)], \
            {"input_names": ["query", "key", "value"]}
    return make


def sdpa_case(lead, L, S, E, Ev, mask=None, is_causal=False, **kw):
    def make(rng):
        layer = ScaledDotProductAttention(rng=rng, **kw)
        am = None
        if mask == "bool":
            am = rng.random((L, S)) < 0.3
            am[:, 0] = False
        elif mask == "float":
            am = rng.standard_normal(lead + (L, S))
        q = rng.standard_normal(lead + (L, E))
        k = rng.standard_normal(lead + (S, E))
        v = rng.standard_normal(lead + (S, Ev))
        return "layer", MaskedSDPA(layer, attn_mask=am, is_causal=is_causal), [q, k, v], \
            {"input_names": ["q", "k", "v"]}
    return make


CASES = [
    ("sdpa/B2,L3,S4", sdpa_case((2,), 3, 4, 3, 2)),
    ("sdpa/causal,L4,S3", sdpa_case((2,), 4, 3, 2, 3, is_causal=True)),
    ("sdpa/bool mask,2x2 batch", sdpa_case((2, 2), 3, 4, 2, 2, mask="bool")),
    ("sdpa/float mask,causal", sdpa_case((1,), 4, 4, 3, 2, mask="float", is_causal=True)),
    ("sdpa/dropout 0.4 fixed mask", sdpa_case((2,), 3, 3, 2, 2, dropout=0.4, fix_mask=True)),
    ("sdpa/L1,S1", sdpa_case((1,), 1, 1, 2, 2)),
    ("mha/E4,H1,cross", mha_case(4, 1, 3, 4, 2)),
    ("mha/E6,H2,self", mha_case(6, 2, 3, 3, 2, selfattn=True)),
    ("mha/E8,H4,causal,self,batch_first", mha_case(8, 4, 4, 4, 2, selfattn=True, is_causal=True, batch_first=True)),
    ("mha/E6,H3,bool mask,key padding", mha_case(6, 3, 3, 4, 2, mask="bool", kpm="bool")),
    ("mha/E4,H2,float mask,float key padding", mha_case(4, 2, 3, 3, 2, mask="float", kpm="float")),
    ("mha/E4,H2,bool 3d mask,per-head weights", mha_case(4, 2, 3, 4, 2, mask="bool3d",
                                                         average_attn_weights=False)),
    ("mha/kdim 3,vdim 5,batch_first", mha_case(4, 2, 3, 2, 2, kdim=3, vdim=5, batch_first=True)),
    ("mha/kdim 3,no bias,causal L4 S3", mha_case(4, 2, 4, 3, 2, kdim=3, bias=False, is_causal=True)),
    ("mha/unbatched,kpm,3d mask", mha_case(4, 2, 3, 4, None, mask="bool3d", kpm="bool")),
    ("mha/T1,N1", mha_case(4, 2, 1, 1, 1)),
    ("mha/need_weights off", mha_case(4, 2, 3, 3, 2, need_weights=False)),
    ("mha/all-masked row", mha_case(4, 2, 3, 4, 2, mask="allmasked")),
    ("mha/dropout 0.3 fixed mask,self,causal", mha_case(4, 2, 4, 4, 2, selfattn=True, is_causal=True, dropout=0.3,
                                                        fix_mask=True)),
]


if __name__ == "__main__":
    from check_gradients import main
    sys.exit(main(["attention"]))
