"""Scaled dot-product and multi-head attention (issue 13, items 1, 2, 5, 11): PyTorch float64 for
every option (forward, attention weights, every gradient including the weights' own upstream
gradient) on both kernel paths, the reference against the fast kernels (several blocks of causal
rows, several thread chunks, float32), all-masked rows, dropout, shared use, torch's parameters
and initial values, bad input. Finite differences for every option are the case table
scripts/gradcases_attention.py."""
import contextlib
import math

import numpy as np
import pytest

import engine
from crosscheck import crosscheck
from engine.core import Layer
from engine.numerics import exp_shifted_kernel
from gradcases_attention import MaskedMHA, MaskedSDPA
from layers.attention import (MultiheadAttention, ScaledDotProductAttention, causal_mask,
                              scaled_dot_product_attention)


# ---- PyTorch counterparts ------------------------------------------------------------------------
def torch_masked_mha(torch, mha, attn_mask=None, key_padding_mask=None, is_causal=False, need_weights=True,
                     average_attn_weights=True, self_attention=False):
    """torch.nn.MultiheadAttention with the same options, as gradcases' MaskedMHA: causal by an
    explicit boolean mask (torch wants one with is_causal); parameter names under `attention.`."""
    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = mha

        def forward(self, query, key=None, value=None):
            if self_attention:
                key = value = query
            L, S = query.shape[-2 if (mha.batch_first or query.dim() == 2) else 0], \
                key.shape[-2 if (mha.batch_first or key.dim() == 2) else 0]
            am = None if attn_mask is None else torch.from_numpy(attn_mask)
            if is_causal:
                cm = torch.from_numpy(np.triu(np.ones((L, S), bool), 1))
                am = cm if am is None else (am | cm if am.dtype == torch.bool else am.masked_fill(cm, -math.inf))
            kp = None if key_padding_mask is None else torch.from_numpy(key_padding_mask)
            out, w = self.attention(query, key, value, key_padding_mask=kp, need_weights=need_weights, attn_mask=am,
                                    average_attn_weights=average_attn_weights)
            return (out, w) if need_weights else out
    return M()


class OutOnly(Layer):
    """A MaskedMHA MultiheadAttention run with need_weights=False, returning the output alone (torch's
    counterpart returns (out, None), which crosscheck cannot compare)."""

    def __init__(self, masked):
        object.__setattr__(self, "masked", masked)      # not a child: the parameters are named
        self.attention = masked.attention               # attention.*, as on the torch side
        self.dtype = masked.dtype

    def forward(self, *inputs, train=True):
        out, w = self.masked.forward(*inputs, train=train)
        assert w is None
        return out

    def backward(self, d_out, *, input_grad=True):
        return self.masked.backward(d_out, None, input_grad=input_grad)


def build_mha(rng, E, H, L, S, N, kdim=None, vdim=None, bias=True, batch_first=False, mask=None, kpm=None):
    """An MultiheadAttention with random biases, its inputs and masks (module-level for reuse)."""
    mha = MultiheadAttention(E, H, bias=bias, kdim=kdim, vdim=vdim, batch_first=batch_first, rng=rng)
    for name, p in mha.named_parameters():
        if "bias" in name:
            p.value[...] = rng.standard_normal(p.shape) * 0.1

    def seq(T, w):
        if N is None:
            return rng.standard_normal((T, w))
        return rng.standard_normal((N, T, w) if batch_first else (T, N, w))
    am = None
    if mask == "bool":
        am = rng.random((L, S)) < 0.3
        am[:, 0] = False
    elif mask == "float":
        am = rng.standard_normal((L, S))
        am[0, -1] = -np.inf
    elif mask == "bool3d":
        am = rng.random(((1 if N is None else N) * H, L, S)) < 0.3
        am[..., 0] = False
    elif mask == "float3d":
        am = rng.standard_normal(((1 if N is None else N) * H, L, S))
    kp = None
    if kpm is not None:
        n = 1 if N is None else N
        kp = rng.random((n, S)) < 0.4 if kpm == "bool" else rng.standard_normal((n, S))
        kp[:, 0] = False if kpm == "bool" else 0.0
        if N is None:
            kp = kp[0]
    return mha, [seq(L, E), seq(S, mha.kdim), seq(S, mha.vdim)], am, kp


# (E, H, L, S, N, options)
MHA_OPTIONS = [
    (4, 1, 3, 4, 2, {}),
    (6, 2, 3, 3, 2, {"self_attention": True}),
    (8, 4, 5, 5, 2, {"self_attention": True, "is_causal": True, "batch_first": True}),
    (6, 3, 3, 4, 2, {"mask": "bool", "kpm": "bool"}),
    (4, 2, 3, 3, 2, {"mask": "float", "kpm": "float"}),
    (4, 2, 3, 4, 3, {"mask": "bool3d", "average_attn_weights": False}),
    (4, 2, 4, 3, 2, {"mask": "float3d", "is_causal": True}),
    (4, 2, 3, 2, 2, {"kdim": 3, "vdim": 5, "batch_first": True}),
    (4, 2, 4, 3, 1, {"kdim": 3, "bias": False, "is_causal": True, "kpm": "bool"}),
    (4, 2, 3, 4, None, {"mask": "bool3d", "kpm": "bool"}),
    (4, 4, 3, 4, None, {"vdim": 2, "average_attn_weights": False}),
    (4, 2, 1, 1, 1, {}),
    (4, 2, 3, 3, 2, {"need_weights": False, "is_causal": True}),
]
MHA_IDS = [f"E{o[0]}H{o[1]}L{o[2]}S{o[3]}N{o[4]}-" + ",".join(f"{k}={v}" for k, v in o[5].items()) for o in MHA_OPTIONS]


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("opt", MHA_OPTIONS, ids=MHA_IDS)
def test_multihead_attention_matches_torch(torch, opt, path, rng):
    E, H, L, S, N, o = opt
    o = dict(o)
    build = {k: o.pop(k) for k in ("kdim", "vdim", "bias", "batch_first", "mask", "kpm") if k in o}
    selfattn = o.pop("self_attention", False)
    mha, inputs, am, kp = build_mha(rng, E, H, L, S, N, **build)
    layer = MaskedMHA(mha, attn_mask=am, key_padding_mask=kp, **o)
    tm = torch.nn.MultiheadAttention(E, H, bias=mha.bias, kdim=mha.kdim, vdim=mha.vdim,
                                     batch_first=mha.batch_first, dtype=torch.float64)
    tmod = torch_masked_mha(torch, tm, am, kp, self_attention=selfattn, **o)
    if not o.get("need_weights", True):
        layer = OutOnly(layer)
    with engine.reference_kernels(path == "reference"):
        res = crosscheck(layer, tmod, *(inputs[:1] if selfattn else inputs), rtol=1e-10, atol=1e-12)
    if o.get("need_weights", True):                 # the weights and their upstream gradient took part
        assert len(res.outputs) == 2 and res.upstream[1] is not None


def torch_sdpa(torch, attn_mask=None, is_causal=False):
    """F.scaled_dot_product_attention, with the probabilities computed beside it (torch's function
    returns y alone) so that they and their gradient are compared too."""
    class M(torch.nn.Module):
        def forward(self, q, k, v):
            am = None if attn_mask is None else torch.from_numpy(attn_mask)
            # F.scaled_dot_product_attention's boolean mask is True where attention IS allowed
            tam = ~am if am is not None and am.dtype == torch.bool else am
            y = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=tam, is_causal=is_causal)
            s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
            if is_causal:
                s = s.masked_fill(torch.from_numpy(causal_mask(max(s.shape[-2:]))[:s.shape[-2], :s.shape[-1]]),
                                  -math.inf)
            if am is not None:
                s = s.masked_fill(am, -math.inf) if am.dtype == torch.bool else s + am
            return y, torch.softmax(s, -1)
    return M()


SDPA_OPTIONS = [((2,), 3, 4, 3, 2, None, False), ((2, 3), 4, 4, 2, 3, None, True),
                ((2,), 5, 3, 2, 2, None, True), ((2, 2), 3, 4, 2, 2, "bool", False),
                ((3,), 3, 3, 2, 2, "float", False), ((1,), 1, 1, 2, 2, None, False),
                ((2,), 3, 5, 2, 2, "float4d", False)]


@pytest.mark.parametrize("path", ["fast", "reference"])
@pytest.mark.parametrize("opt", SDPA_OPTIONS, ids=[f"{o[0]}L{o[1]}S{o[2]}-{o[5]}-causal{o[6]}" for o in SDPA_OPTIONS])
def test_scaled_dot_product_attention_matches_torch(torch, opt, path, rng):
    lead, L, S, E, Ev, mask, causal = opt
    am = None
    if mask == "bool":
        am = rng.random((L, S)) < 0.3
        am[:, 0] = False
    elif mask == "float":
        am = rng.standard_normal((1, L, S))
    elif mask == "float4d":
        am = rng.standard_normal(lead + (1, S))       # one additive bias per key, broadcast over queries
    inputs = [rng.standard_normal(lead + shape) for shape in ((L, E), (S, E), (S, Ev))]
    layer = MaskedSDPA(ScaledDotProductAttention(), attn_mask=am, is_causal=causal)
    with engine.reference_kernels(path == "reference"):
        res = crosscheck(layer, torch_sdpa(torch, am, causal), *inputs, rtol=1e-10, atol=1e-12)
    assert res.upstream[1] is not None                # dp, the probabilities' own gradient


def test_all_masked_query_gives_zeros_not_nan(torch, rng):
    """A query whose every key is masked (by attn_mask and key padding together) gets zero weights
    and the output b_o (zero attention through out_proj), on both paths; torch gives NaN there, and
    the other rows agree with torch."""
    mha, (q, k, v), _, _ = build_mha(rng, 4, 2, 3, 4, 2)
    am = np.zeros((3, 4), bool)
    am[1, 1:] = True
    kp = np.zeros((2, 4), bool)
    kp[0, 0] = True                                    # batch 0: query 1 has no key left
    tm = torch.nn.MultiheadAttention(4, 2, dtype=torch.float64)
    tm.load_state_dict({kk: torch.from_numpy(vv) for kk, vv in mha.state_dict().items()})
    to, tw = tm(*(torch.from_numpy(a) for a in (q, k, v)), key_padding_mask=torch.from_numpy(kp),
                attn_mask=torch.from_numpy(am))
    to, tw = to.detach().numpy(), tw.detach().numpy()
    assert np.isnan(to[1, 0]).all()                    # torch's NaN row
    for ref in (False, True):
        with engine.reference_kernels(ref):
            out, w = mha.forward(q, k, v, key_padding_mask=kp, attn_mask=am)
            dq, dk, dv = mha.backward(rng.standard_normal(out.shape), rng.standard_normal(w.shape))
        assert np.isfinite(out).all() and all(np.isfinite(g).all() for g in (dq, dk, dv))
        assert np.array_equal(w[0, 1], np.zeros(4))
        np.testing.assert_allclose(out[1, 0], mha.out_proj.bias.value, rtol=1e-12, atol=1e-15)
        keep = np.ones((3, 2), bool)
        keep[1, 0] = False
        np.testing.assert_allclose(out[keep], to[keep], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(w[1], tw[1], rtol=1e-10, atol=1e-12)
        assert np.array_equal(dq[1, 0], np.zeros(4))   # nothing reaches a query that attends to nothing
    mha.zero_grad()


# ---- the two kernel paths, threads, float32 -------------------------------------------------------
def _run_mha(mha, inputs, dy, dw, **kw):
    mha.zero_grad()
    out, w = mha.forward(*inputs, **kw)
    grads = mha.backward(dy, dw)
    return [out, w, *grads] + [p.grad.copy() for p in mha.parameters()]


def _long_causal_case(rng, dtype):
    """Causal rows in several blocks (L = 70 > CAUSAL_ROWS), L ≠ S, an additive mask, key padding and
    dropout with a fixed mask, B = N·H = 6 problems on two thread chunks."""
    E, H, N, L, S = 8, 2, 3, 70, 66
    mha = MultiheadAttention(E, H, dropout=0.25, fix_mask=True, dtype=dtype, rng=0)
    q = rng.standard_normal((L, N, E))
    k = rng.standard_normal((S, N, E))
    am = rng.standard_normal((L, S))
    kp = rng.random((N, S)) < 0.2
    kp[:, 0] = False
    dy = rng.standard_normal((L, N, E))
    dw = rng.standard_normal((N, L, S))
    c = [a.astype(dtype) for a in (q, k, am, dy, dw)]
    return mha, (c[0], c[1], c[1]), c[3], c[4], dict(attn_mask=c[2], key_padding_mask=kp, is_causal=True)


def test_reference_and_fast_kernels_agree(rng):
    mha, inputs, dy, dw, kw = _long_causal_case(rng, np.float64)
    fast = _run_mha(mha, inputs, dy, dw, **kw)
    with engine.reference_kernels():
        ref = _run_mha(mha, inputs, dy, dw, **kw)
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12 * np.abs(b).max())


def test_float32_fast_kernels_match_float64(rng):
    """The fast kernels in float32 (the case above: several causal blocks, masks, dropout, two
    chunks) against float64 from the same weights, seed and mask."""
    m64, inputs, dy, dw, kw = _long_causal_case(rng, np.float64)
    r64 = _run_mha(m64, inputs, dy, dw, **kw)
    m32, inputs32, dy32, dw32, kw32 = _long_causal_case(np.random.default_rng(12345), np.float32)
    r32 = _run_mha(m32, inputs32, dy32, dw32, **kw32)
    for a, b in zip(r32, r64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5 * np.abs(b).max())


def test_parallel_and_serial_agree(with_threads, rng):
    mha = MultiheadAttention(8, 4, rng=0)
    x = rng.standard_normal((40, 4, 8))
    dy = rng.standard_normal((40, 4, 8))
    dw = rng.standard_normal((4, 40, 40))
    one = with_threads(1, _run_mha, mha, (x, x, x), dy, dw, is_causal=True)
    two = with_threads(2, _run_mha, mha, (x, x, x), dy, dw, is_causal=True)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_vectorised_exp_is_accurate_to_three_ulp(dtype):
    """The fast softmax's e^{x − m} against NumPy's exp (in float64): within 3 ulp wherever the result
    is a normal number, below the smallest normal where it is not, exactly 0 for −∞ (a masked key)."""
    x = np.concatenate([-np.linspace(0, 800, 40001), [-np.inf, 0.0, -1e-30, -0.3465, -0.3466]]).astype(dtype)
    for m in (0.0, 2.5, -3.0):
        row = (x + m).astype(dtype)
        shifted = (row - dtype(m)).astype(np.float64)         # x − m as the kernel forms it, in the dtype
        exp_shifted_kernel(row, row.size - 1, dtype(m))   # the last one untouched
        assert row[-1] == dtype(x[-1] + m)
        got, want = row[:-1].astype(np.float64), np.exp(shifted[:-1])
        tiny = np.finfo(dtype).tiny
        normal = want >= 2 * tiny
        rel = np.abs(got - want)[normal] / want[normal]
        assert rel.max() <= 3 * np.finfo(dtype).eps
        assert np.all(np.abs(got[~normal]) <= 2 * tiny)
        assert got[np.isneginf(x[:-1])][0] == 0.0


# ---- parameters, state, shared use ---------------------------------------------------------------
def test_parameters_keys_and_initial_values_are_torchs(torch):
    E = 64
    for kw, keys in [({}, ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]),
                     ({"kdim": 24, "vdim": 40}, ["q_proj_weight", "k_proj_weight", "v_proj_weight", "in_proj_bias",
                                                 "out_proj.weight", "out_proj.bias"]),
                     ({"bias": False}, ["in_proj_weight", "out_proj.weight"])]:
        mha = MultiheadAttention(E, 4, rng=0, **kw)
        tm = torch.nn.MultiheadAttention(E, 4, dtype=torch.float64, **kw)
        assert [n for n, _ in mha.named_parameters()] == [n for n, _ in tm.named_parameters()] == keys
        assert list(mha.state_dict()) == list(tm.state_dict())
        for n, p in mha.named_parameters():
            assert p.shape == tuple(tm.state_dict()[n].shape)
        sd = mha.state_dict()
        for n, v in sd.items():
            if "bias" in n:
                assert np.array_equal(v, np.zeros_like(v))
        w = sd.get("in_proj_weight")
        if w is not None:                               # xavier_uniform on (3E, E): bound √(6/(E + 3E))
            bound = math.sqrt(6 / (4 * E))
            assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
            assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound
        else:
            for n, fan in (("q_proj_weight", E), ("k_proj_weight", 24), ("v_proj_weight", 40)):
                bound = math.sqrt(6 / (E + fan))
                assert bound * 0.9 < np.abs(sd[n]).max() <= bound
        ow = sd["out_proj.weight"]                      # a Linear's U(±1/√E)
        assert 0.95 / math.sqrt(E) < np.abs(ow).max() <= 1 / math.sqrt(E)


def test_embed_dim_must_divide_by_heads_and_arguments_are_named():
    with pytest.raises(ValueError, match="embed_dim, num_heads"):
        MultiheadAttention(6, 4)
    with pytest.raises(TypeError, match="kdim"):
        MultiheadAttention(6, 2, kdim=2.5)
    with pytest.raises(ValueError, match="dropout"):
        MultiheadAttention(6, 2, dropout=1.5)
    with pytest.raises(TypeError):                     # torch's positional add_bias_kv: refused loudly
        MultiheadAttention(6, 2, 0.0, True, False)


def test_backward_accumulates_and_layer_used_twice(rng):
    """Parameter gradients add up over backwards; two calls in one forward (shared weights) each
    take their own backward, newest first."""
    mha = MultiheadAttention(4, 2, rng=0)
    a, b = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    da, db = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 4))
    mha.forward(a, a, a)
    ga = mha.backward(da, None)
    pa = [p.grad.copy() for p in mha.parameters()]
    mha.zero_grad()
    mha.forward(b, a, a, need_weights=False)
    gb = mha.backward(db)
    pb = [p.grad.copy() for p in mha.parameters()]
    mha.zero_grad()
    mha.forward(a, a, a)
    mha.forward(b, a, a, need_weights=False)
    assert mha.pending_calls() == 2
    gb2 = mha.backward(db)
    ga2 = mha.backward(da, None)
    for x, y in zip(ga + gb, ga2 + gb2):
        np.testing.assert_array_equal(x, y)
    for x, y, z in zip(pa, pb, mha.parameters()):
        np.testing.assert_allclose(z.grad, x + y, rtol=1e-13, atol=1e-15)


def test_input_grad_flags_and_sdpa_function(rng):
    mha = MultiheadAttention(4, 2, rng=0)
    x = rng.standard_normal((3, 2, 4))
    out, _ = mha.forward(x, x, x)
    g = mha.backward(np.ones_like(out), input_grad=(True, False, False))
    assert g[0] is not None and g[1] is None and g[2] is None
    assert mha.in_proj_weight.grad[4:].any()           # the key and value weights still get theirs
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4)), rng.standard_normal((2, 5, 3))
    y, p = scaled_dot_product_attention(q, k, v, is_causal=True)
    s = q @ k.transpose(0, 2, 1) / 2.0
    s[:, causal_mask(5)[:3]] = -np.inf
    want = np.exp(s - s.max(-1, keepdims=True))
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(p, want, rtol=1e-13)
    np.testing.assert_allclose(y, want @ v, rtol=1e-13)
    assert np.array_equal(causal_mask(3), np.array([[0, 1, 1], [0, 0, 1], [0, 0, 0]], bool))


@pytest.mark.parametrize("bf,bias", [(False, True), (True, False)])
def test_self_attention_one_projection_and_summed_gradient(rng, bf, bias):
    """forward(x, x, x) runs Q, K, V as one (rows, 3E) projection on the fast path: its output and
    gradients equal those of the three-projection path (x passed as three arrays) and of the
    reference kernels; backward(summed=True) returns the sum of the three input gradients."""
    E, H, N, T = 8, 2, 3, 37
    mha = MultiheadAttention(E, H, bias=bias, batch_first=bf, dropout=0.2, fix_mask=True, rng=0)
    x = rng.standard_normal((N, T, E) if bf else (T, N, E))
    dy = rng.standard_normal(x.shape)

    def run(inputs, summed, ref=False):
        mha.zero_grad()
        with engine.reference_kernels() if ref else contextlib.nullcontext():
            out, _ = mha.forward(*inputs, is_causal=True, need_weights=False)
            g = mha.backward(dy, summed=summed)
        return out, g, [p.grad.copy() for p in mha.parameters()]

    out3, three, p3 = run((x, x.copy(), x.copy()), False)
    want = three[0] + three[1] + three[2]
    for out, g, params in (run((x, x, x), False), run((x, x, x), True), run((x, x, x), True, ref=True)):
        np.testing.assert_allclose(out, out3, rtol=1e-12, atol=1e-13)
        if isinstance(g, tuple):
            for a, b in zip(g, three):
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
        else:
            np.testing.assert_allclose(g, want, rtol=1e-12, atol=1e-13)
        for a, b in zip(params, p3):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    mha.forward(x, x, x)
    assert mha.backward(dy, summed=True, input_grad=False) is None
    assert mha.in_proj_weight.grad.any()


# ---- dropout -------------------------------------------------------------------------------------
def test_dropout_on_weights_train_only_seeded_and_as_torch_in_eval(torch, rng):
    x = rng.standard_normal((5, 2, 8))
    m1 = MultiheadAttention(8, 2, dropout=0.5, rng=3)
    m2 = MultiheadAttention(8, 2, dropout=0.5, rng=3)
    o1, w1 = m1.forward(x, x, x, average_attn_weights=False)
    o2, w2 = m2.forward(x, x, x, average_attn_weights=False)
    np.testing.assert_array_equal(o1, o2)               # the same seed, the same mask
    _, p = m1.forward(x, x, x, average_attn_weights=False, train=False)
    kept = w1 != 0
    assert 0.3 < kept.mean() < 0.7
    np.testing.assert_allclose(w1[kept], 2 * p[kept], rtol=1e-13)   # the weights after dropout, as torch
    o3, _ = m1.forward(x, x, x)
    assert not np.allclose(o3, o1)                      # a new mask per forward without fix_mask
    m1.clear_saved()
    tm = torch.nn.MultiheadAttention(8, 2, dropout=0.5, dtype=torch.float64).eval()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in m1.state_dict().items()})
    tx = torch.from_numpy(x)
    to, tw = tm(tx, tx, tx)
    oe, we = m1.forward(x, x, x, train=False)
    np.testing.assert_allclose(oe, to.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(we, tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    s = ScaledDotProductAttention(dropout=0.5, fix_mask=True, rng=1)
    y1, _ = s.forward(x, x, x)
    y2, _ = s.forward(x, x, x)
    np.testing.assert_array_equal(y1, y2)               # fix_mask: the same mask until resample()
    s.resample()
    y3, _ = s.forward(x, x, x)
    assert not np.array_equal(y1, y3)


# ---- bad input (item 11) ---------------------------------------------------------------------------
def _bad_calls(rng):
    q = rng.standard_normal((3, 2, 4))
    k = rng.standard_normal((5, 2, 4))
    return q, k, [
        ("key batch", dict(key=rng.standard_normal((5, 3, 4))), ValueError, "key"),
        ("value length", dict(value=rng.standard_normal((4, 2, 4))), ValueError, "value"),
        ("query width", dict(query=rng.standard_normal((3, 2, 5))), ValueError, "query"),
        ("key width (kdim)", dict(key=rng.standard_normal((5, 2, 3))), ValueError, "key"),
        ("unbatched query with batched key", dict(query=rng.standard_normal((3, 4))), ValueError, "query"),
        ("float32 query", dict(query=q.astype(np.float32)), TypeError, "query"),
        ("attn_mask shape", dict(attn_mask=np.zeros((3, 4), bool)), ValueError, "attn_mask"),
        ("attn_mask 3d shape", dict(attn_mask=np.zeros((2, 3, 5), bool)), ValueError, "attn_mask"),
        ("attn_mask int", dict(attn_mask=np.zeros((3, 5), np.int64)), TypeError, "attn_mask"),
        ("attn_mask float32", dict(attn_mask=np.zeros((3, 5), np.float32)), TypeError, "attn_mask"),
        ("attn_mask NaN", dict(attn_mask=np.full((3, 5), np.nan)), ValueError, "attn_mask"),
        ("attn_mask list", dict(attn_mask=[[True] * 5] * 3), TypeError, "attn_mask"),
        ("key_padding_mask shape", dict(key_padding_mask=np.zeros((5, 2), bool)), ValueError, "key_padding_mask"),
        ("key_padding_mask dtype", dict(key_padding_mask=np.zeros((2, 5), np.int32)), TypeError, "key_padding_mask"),
        ("need_weights", dict(need_weights=1), TypeError, "need_weights"),
        ("is_causal", dict(is_causal="yes"), TypeError, "is_causal"),
    ]


def test_bad_forward_input_is_named_before_anything_runs(rng):
    mha = MultiheadAttention(4, 2, dropout=0.1, rng=0)
    q, k, calls = _bad_calls(rng)
    mha.forward(q, k, k)                                # one pending call that must survive
    before = {n: p.value.copy() for n, p in mha.named_parameters()}
    state = mha.generator.bit_generator.state
    for label, change, err, name in calls:
        args = dict(query=q, key=k, value=k)
        args.update(change)
        with pytest.raises(err, match=rf"(^|\W){name}\W") as e:
            mha.forward(**args)
        assert mha.pending_calls() == 1, label
        assert mha.generator.bit_generator.state == state, f"{label}: a dropout mask was drawn ({e.value})"
    for n, p in mha.named_parameters():
        np.testing.assert_array_equal(p.value, before[n])
        assert not p.grad.any()


def test_bad_gradients_are_refused_and_keep_the_call(rng):
    mha = MultiheadAttention(4, 2, rng=0)
    x = rng.standard_normal((3, 2, 4))
    out, w = mha.forward(x, x, x)
    for dout, dw, name in [(out[:2], None, "d_out"), (out.astype(np.float32), None, "d_out"),
                           (out, w[:, :2], "d_weights"), (out, "w", "d_weights")]:
        with pytest.raises((ValueError, TypeError), match=name):
            mha.backward(dout, dw)
        assert mha.pending_calls() == 1
    for kw, err, name in [(dict(summed=1), TypeError, "summed"),
                          (dict(summed=True, input_grad=(True, False, True)), TypeError, "input_grad")]:
        with pytest.raises(err, match=name):
            mha.backward(out, w, **kw)
        assert mha.pending_calls() == 1
    mha.backward(out, w)
    mha.forward(x, x, x, need_weights=False)
    with pytest.raises(ValueError, match="d_weights"):
        mha.backward(out, w)
    mha.forward(rng.standard_normal((5, 2, 4)), x, x, need_weights=False)
    with pytest.raises(ValueError, match="summed"):                 # query and key of different lengths
        mha.backward(out, summed=True)
    assert mha.pending_calls() == 2
    s = ScaledDotProductAttention()
    with pytest.raises(ValueError, match="q, k"):
        s.forward(rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5)))
    with pytest.raises(ValueError, match="q, k, v"):
        s.forward(rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 3, 4)), rng.standard_normal((3, 3, 4)))
    with pytest.raises(ValueError, match="attn_mask"):
        s.forward(x, x, x, attn_mask=np.zeros((4, 3), bool))
