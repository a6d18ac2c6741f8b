"""Transformer layers (issue 13, items 3 and 5): TransformerEncoderLayer and TransformerEncoder
against torch.nn's in float64 (forward and every gradient) for every option: 1, 2 and 4 heads,
both batch_first, both norm_first, ReLU and GELU, T = 1, batch 1, unbatched, causal attention,
boolean and additive masks with key padding, no bias; dropout at 0 (torch cannot take our masks;
the dropouts with fixed masks are proven by finite differences in scripts/gradcases_transformer.py);
the positional encodings (the table against the formula, the learned one against an
nn.Embedding's rows); both kernel paths; per-call state; float32; bad input.
Finite-difference cases live in scripts/gradcases_transformer.py."""
import numpy as np
import pytest

import engine
from engine import no_grad
from engine.core import Layer
from layers.attention import causal_mask as attention_causal_mask
from layers.norm import LayerNorm
from layers.transformer import (LayerList, LearnedPositionalEmbedding, SinusoidalPositionalEncoding,
                                TransformerEncoder, TransformerEncoderLayer, causal_mask, sinusoidal_encoding)

from crosscheck import crosscheck


class Masked(Layer):
    """forward(src) = layer.forward(src, mask, key padding mask, is_causal) (masks are not
    gradients crosscheck could drive)."""

    def __init__(self, layer, mask=None, kpm=None, causal=False):
        self.layer = layer
        object.__setattr__(self, "_args", (mask, kpm, causal))
        self.dtype = layer.dtype

    def forward(self, src, train=True):
        return self.layer.forward(src, *self._args, train=train)

    def backward(self, dy, *, input_grad=True):
        return self.layer.backward(dy, input_grad=input_grad)


def torch_masked(torch, module, mask=None, kpm=None, causal=False, encoder=False):
    """The torch side of Masked. torch's is_causal is a hint that needs the causal mask itself,
    so with causal=True and no mask the causal mask is passed too."""
    first = module.layers[0] if encoder else module
    batch_first = first.self_attn.batch_first

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = module

        def forward(self, src):
            L = src.shape[1] if (batch_first and src.dim() == 3) else src.shape[0]
            m = causal_mask(L) if (causal and mask is None) else mask
            m = None if m is None else torch.from_numpy(np.asarray(m))
            k = None if kpm is None else torch.from_numpy(kpm)
            if encoder:
                return self.layer(src, mask=m, src_key_padding_mask=k, is_causal=causal or None)
            return self.layer(src, src_mask=m, src_key_padding_mask=k, is_causal=causal)
    return M()


def torch_layer(torch, D, H, F, activation="relu", batch_first=False, norm_first=False, bias=True):
    return torch.nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation=activation, batch_first=batch_first,
                                            norm_first=norm_first, bias=bias, dtype=torch.float64)


def src_of(rng, T, N, D, batch_first):
    if N is None:
        return rng.standard_normal((T, D))
    return rng.standard_normal((N, T, D) if batch_first else (T, N, D))


# (T, N, D, H, F, options): every option of issue 13 item 5 that the layer has
CONFIGS = [
    (3, 2, 4, 1, 6, {}),
    (4, 2, 8, 2, 6, {"activation": "gelu"}),
    (3, 3, 8, 4, 5, {"norm_first": True}),
    (4, 2, 8, 4, 7, {"batch_first": True, "norm_first": True, "activation": "gelu"}),
    (1, 2, 4, 2, 3, {"batch_first": True}),                           # T = 1
    (3, 1, 4, 2, 3, {"norm_first": True}),                            # batch 1
    (1, 1, 4, 1, 3, {"batch_first": True, "activation": "gelu"}),     # T = 1, batch 1
    (4, None, 6, 3, 5, {"norm_first": True}),                         # unbatched
    (3, 2, 4, 2, 6, {"bias": False, "batch_first": True}),
]
CONFIG_IDS = [f"T{c[0]},N{c[1]},D{c[2]},H{c[3]}," + ",".join(f"{k}={v}" for k, v in c[5].items()) for c in CONFIGS]


@pytest.mark.parametrize("T,N,D,H,F,opts", CONFIGS, ids=CONFIG_IDS)
def test_encoder_layer_matches_torch(torch, T, N, D, H, F, opts):
    rng = np.random.default_rng(T * 100 + D)
    layer = TransformerEncoderLayer(D, H, F, 0.0, rng=rng, **opts)
    _perturb_norms(layer, rng)
    tl = torch_layer(torch, D, H, F, **opts)
    crosscheck(layer, tl, src_of(rng, T, N, D, layer.batch_first))


def _perturb_norms(layer, rng):
    """LayerNorm starts at γ = 1, β = 0 and the attention's biases at 0: move them, so that a
    swapped or dropped term cannot hide."""
    for name, p in layer.named_parameters():
        if "norm" in name or name.endswith("bias"):
            p.value[...] += 0.3 * rng.standard_normal(p.shape)


MASKS = ["causal", "bool+padding", "additive", "additive per head", "causal+padding"]


def _masks(kind, rng, T, N, H):
    if kind == "causal":
        return None, None, True
    if kind == "causal+padding":
        kpm = np.zeros((N, T), bool)
        kpm[1, -2:] = True                           # the first key of every row stays visible
        return None, kpm, True
    if kind == "bool+padding":
        m = rng.random((T, T)) < 0.4
        m[:, 0] = False
        kpm = np.zeros((N, T), bool)
        kpm[0, -1] = True
        return m, kpm, False
    if kind == "additive":
        m = rng.standard_normal((T, T))
        m[causal_mask(T)] = -np.inf
        return m, None, False
    m = rng.standard_normal((N * H, T, T))
    return m, None, False


@pytest.mark.parametrize("kind,batch_first", [(k, i % 2 == 1) for i, k in enumerate(MASKS)] + [("causal", True)])
def test_encoder_layer_with_masks_matches_torch(torch, kind, batch_first):
    T, N, D, H = 4, 2, 8, 2
    rng = np.random.default_rng(len(kind))
    mask, kpm, causal = _masks(kind, rng, T, N, H)
    opts = {"batch_first": batch_first, "norm_first": not batch_first, "activation": "gelu" if causal else "relu"}
    layer = TransformerEncoderLayer(D, H, 6, 0.0, rng=rng, **opts)
    _perturb_norms(layer, rng)
    tl = torch_layer(torch, D, H, 6, **opts)
    crosscheck(Masked(layer, mask, kpm, causal), torch_masked(torch, tl, mask, kpm, causal),
               src_of(rng, T, N, D, batch_first))


@pytest.mark.parametrize("norm", [False, True])
def test_encoder_stack_matches_torch(torch, norm):
    """Two layers (made different after the deep copies), a final LayerNorm, causal, batch_first."""
    rng = np.random.default_rng(5)
    layer = TransformerEncoderLayer(6, 3, 8, 0.0, "gelu", batch_first=True, norm_first=True, rng=rng)
    enc = TransformerEncoder(layer, 2, norm=LayerNorm(6) if norm else None)
    assert np.array_equal(enc.layers[0].linear1.weight.value, enc.layers[1].linear1.weight.value)   # clones
    assert enc.layers[0].linear1.weight is not enc.layers[1].linear1.weight
    for p in enc.parameters():
        p.value[...] += 0.2 * rng.standard_normal(p.shape)
    tl = torch_layer(torch, 6, 3, 8, "gelu", batch_first=True, norm_first=True)
    tenc = torch.nn.TransformerEncoder(tl, 2, norm=torch.nn.LayerNorm(6, dtype=torch.float64) if norm else None,
                                       enable_nested_tensor=False)
    assert set(enc.state_dict()) == set(tenc.state_dict())
    crosscheck(Masked(enc, causal=True), torch_masked(torch, tenc, causal=True, encoder=True),
               rng.standard_normal((2, 5, 6)))


def test_reference_kernels_match_torch(torch):
    """The reference path (every part on its reference kernels) against torch, causal and not."""
    rng = np.random.default_rng(11)
    with engine.reference_kernels():
        for causal, opts in ((False, {"norm_first": True}), (True, {"batch_first": True, "activation": "gelu"})):
            layer = TransformerEncoderLayer(8, 2, 6, 0.0, rng=rng, **opts)
            _perturb_norms(layer, rng)
            tl = torch_layer(torch, 8, 2, 6, **opts)
            crosscheck(Masked(layer, causal=causal), torch_masked(torch, tl, causal=causal),
                       src_of(rng, 4, 3, 8, layer.batch_first))


def test_state_dict_keys_are_torchs(torch):
    layer = TransformerEncoderLayer(8, 2, 16, rng=0)
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16)
    assert list(layer.state_dict()) == list(tl.state_dict())
    for k, v in layer.state_dict().items():
        assert v.shape == tuple(tl.state_dict()[k].shape), k
    enc = TransformerEncoder(layer, 3)
    assert list(enc.state_dict()) == list(torch.nn.TransformerEncoder(tl, 3, enable_nested_tensor=False).state_dict())
    assert layer.dropout.p == layer.dropout1.p == layer.dropout2.p == layer.self_attn.dropout == 0.1


@pytest.mark.parametrize("norm_first", [False, True])
def test_both_kernel_paths_agree(norm_first):
    rng = np.random.default_rng(3)
    layer = TransformerEncoderLayer(8, 4, 12, 0.0, "gelu", norm_first=norm_first, rng=rng)
    _perturb_norms(layer, rng)
    x = rng.standard_normal((5, 3, 8))
    G = rng.standard_normal((5, 3, 8))
    out = []
    for ref in (False, True):
        layer.zero_grad()
        with engine.reference_kernels(ref):
            y = layer.forward(x, is_causal=True)
            dx = layer.backward(G)
        out.append((y, dx, {n: p.grad.copy() for n, p in layer.named_parameters()}))
    (y0, dx0, g0), (y1, dx1, g1) = out
    np.testing.assert_allclose(y0, y1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx0, dx1, rtol=1e-10, atol=1e-12)
    for n in g0:
        np.testing.assert_allclose(g0[n], g1[n], rtol=1e-10, atol=1e-12, err_msg=n)


def test_two_uses_in_one_forward_accumulate_and_backward_twice_doubles():
    """The layer used twice (weights shared, y = L(L(x))): per-call state, backwards in reverse;
    a second identical forward/backward doubles every parameter gradient."""
    rng = np.random.default_rng(4)
    layer = TransformerEncoderLayer(4, 2, 6, 0.0, rng=rng)
    x, G = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))

    def run():
        y = layer.forward(layer.forward(x))
        return y, layer.backward(layer.backward(G))
    layer.zero_grad()
    y, dx = run()
    once = {n: p.grad.copy() for n, p in layer.named_parameters()}
    assert layer.pending_calls() == 0
    _, dx2 = run()
    np.testing.assert_array_equal(dx, dx2)
    for n, p in layer.named_parameters():
        # (the key bias's gradient is 0 up to round-off: softmax ignores a shift shared by a row)
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-14, atol=1e-15, err_msg=n)
    # against central differences of L(L(x)) on x (the parameters are the gradient cases' job)
    from engine.gradcheck import numeric_grad, rel_error

    def loss():
        with no_grad():
            return float(np.sum(layer.forward(layer.forward(x)) * G))
    assert rel_error(dx, numeric_grad(loss, x)) < 1e-6


def test_input_grad_false_gives_the_same_parameter_gradients():
    rng = np.random.default_rng(8)
    for norm_first in (False, True):
        layer = TransformerEncoderLayer(4, 2, 6, 0.0, norm_first=norm_first, rng=rng)
        x, G = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 2, 4))
        layer.zero_grad()
        layer.forward(x)
        assert layer.backward(G) is not None
        want = {n: p.grad.copy() for n, p in layer.named_parameters()}
        layer.zero_grad()
        layer.forward(x)
        assert layer.backward(G, input_grad=False) is None
        for n, p in layer.named_parameters():
            np.testing.assert_array_equal(p.grad, want[n], err_msg=n)


def test_dropout_train_and_eval_and_seeded_streams():
    x = np.random.default_rng(0).standard_normal((4, 2, 8))
    a = TransformerEncoderLayer(8, 2, 16, 0.5, rng=7)
    b = TransformerEncoderLayer(8, 2, 16, 0.5, rng=7)
    with no_grad():
        ya, yb = a.forward(x), b.forward(x)
        np.testing.assert_array_equal(ya, yb)                    # one seed, one stream of masks
        assert not np.allclose(ya, a.forward(x))                 # a new mask each train forward
        np.testing.assert_array_equal(a.forward(x, train=False), b.forward(x, train=False))
        np.testing.assert_array_equal(a.forward(x, train=False), a.forward(x, train=False))


def test_float32_runs_and_agrees_with_float64():
    rng = np.random.default_rng(9)
    l64 = TransformerEncoderLayer(8, 2, 16, 0.0, "gelu", norm_first=True, rng=rng)
    l32 = TransformerEncoderLayer(8, 2, 16, 0.0, "gelu", norm_first=True, dtype=np.float32, rng=0)
    l32.load_state_dict(l64.state_dict())
    x, G = rng.standard_normal((70, 3, 8)), rng.standard_normal((70, 3, 8))      # several chunks
    y64, y32 = l64.forward(x, is_causal=True), l32.forward(x.astype(np.float32), is_causal=True)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    d64, d32 = l64.backward(G), l32.backward(G.astype(np.float32))
    assert d32.dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=1e-3, atol=1e-3)
    for (n, p64), (_, p32) in zip(l64.named_parameters(), l32.named_parameters()):
        np.testing.assert_allclose(p32.grad, p64.grad, rtol=1e-3, atol=2e-3 * np.abs(p64.grad).max(), err_msg=n)
    with pytest.raises(TypeError, match="src"):
        l32.forward(x)                                           # float64 into a float32 layer


# ---- positional encodings ------------------------------------------------------------------------
def test_sinusoidal_table_is_the_formula():
    """PE[pos, 2i] = sin(pos / 10000^{2i/d}), PE[pos, 2i+1] = cos(…): written here as one
    vectorised expression, against the kernel's loops; odd widths end with a sine column."""
    for max_len, d in ((50, 16), (7, 5), (1, 1)):
        pos = np.arange(max_len)[:, None]
        i = np.arange(d)[None, :] // 2
        angle = pos / np.power(10000.0, 2 * i / d)
        want = np.where(np.arange(d)[None, :] % 2 == 0, np.sin(angle), np.cos(angle))
        np.testing.assert_allclose(sinusoidal_encoding(max_len, d), want, rtol=1e-13, atol=1e-15)
    pe = sinusoidal_encoding(100, 8)
    assert np.allclose(pe[0, 0::2], 0) and np.allclose(pe[0, 1::2], 1)
    assert np.all(np.abs(pe) <= 1)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_positional_layers_add_the_table_per_position(batch_first, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 5, 4) if batch_first else (5, 3, 4)).astype(dtype)
    sin = SinusoidalPositionalEncoding(4, max_len=9, batch_first=batch_first, dtype=dtype)
    lrn = LearnedPositionalEmbedding(9, 4, batch_first=batch_first, dtype=dtype, rng=2)
    for layer, table in ((sin, sin.pe), (lrn, lrn.weight.value)):
        y = layer.forward(x)
        want = x + (table[None, :5] if batch_first else table[:5, None])
        assert y.dtype == dtype
        np.testing.assert_allclose(y, want, rtol=1e-6)
        G = rng.standard_normal(x.shape).astype(dtype)
        np.testing.assert_array_equal(layer.backward(G), G)
    g = lrn.weight.grad
    want = G.sum(axis=0) if batch_first else G.sum(axis=1)
    np.testing.assert_allclose(g[:5], want, rtol=1e-5)
    assert not g[5:].any()
    assert list(sin.state_dict()) == [] and list(lrn.state_dict()) == ["weight"]


def test_learned_positions_match_torch_embedding_rows(torch):
    rng = np.random.default_rng(2)
    layer = LearnedPositionalEmbedding(6, 4, batch_first=True, rng=rng)

    class TorchLearned(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(6, 4, dtype=torch.float64)
            self.weight = self.emb.weight

        def forward(self, x):
            return x + self.emb(torch.arange(x.shape[1]))[None]
    t = TorchLearned()
    t.emb.weight.data = torch.from_numpy(layer.weight.value.copy())
    res = crosscheck(layer, t, rng.standard_normal((2, 5, 4)), load=False)
    assert res.param_grads["weight"][5:].sum() == 0


def test_causal_mask_is_the_attention_modules():
    assert causal_mask is attention_causal_mask
    m = causal_mask(4)
    assert m.dtype == np.bool_ and m.shape == (4, 4)
    np.testing.assert_array_equal(m, np.triu(np.ones((4, 4), bool), k=1))


# ---- bad input -----------------------------------------------------------------------------------
def test_constructor_refuses_bad_arguments_by_name():
    with pytest.raises(ValueError, match="nhead"):
        TransformerEncoderLayer(6, 4)
    with pytest.raises(ValueError, match="activation"):
        TransformerEncoderLayer(8, 2, activation="tanh")
    with pytest.raises(TypeError, match="activation"):
        TransformerEncoderLayer(8, 2, activation=len)
    with pytest.raises(ValueError, match="dropout"):
        TransformerEncoderLayer(8, 2, dropout=1.5)
    with pytest.raises(TypeError, match="encoder_layer"):
        TransformerEncoder(LayerNorm(4), 2)
    with pytest.raises(ValueError, match="num_layers"):
        TransformerEncoder(TransformerEncoderLayer(4, 2, 4), 0)
    with pytest.raises(TypeError, match="norm"):
        TransformerEncoder(TransformerEncoderLayer(4, 2, 4), 2, norm=LayerNorm(4, dtype=np.float32))
    with pytest.raises(TypeError, match="LayerList"):
        LayerList([LayerNorm(2)]).forward(np.zeros(2))


def _state(layer):
    return ({n: (p.value.copy(), p.grad.copy()) for n, p in layer.named_parameters()},
            [lay.pending_calls() for _, lay in layer.named_layers()])


@pytest.mark.parametrize("call,name", [
    (lambda l, x: l.forward(x[..., :3]), "src"),
    (lambda l, x: l.forward(x[None]), "src"),
    (lambda l, x: l.forward(x.astype(np.float32)), "src"),
    (lambda l, x: l.forward(x, src_mask=np.zeros((4, 5), bool)), "src_mask"),
    (lambda l, x: l.forward(x, src_mask=np.zeros((5, 5), np.int64)), "src_mask"),
    (lambda l, x: l.forward(x, src_mask=np.full((5, 5), np.nan)), "src_mask"),
    (lambda l, x: l.forward(x, src_mask=[[False] * 5] * 5), "src_mask"),
    (lambda l, x: l.forward(x, src_key_padding_mask=np.zeros((5, 2), bool)), "src_key_padding_mask"),
    (lambda l, x: l.forward(x, src_key_padding_mask=np.zeros((2, 5), np.float32)), "src_key_padding_mask"),
    (lambda l, x: l.forward(x, is_causal=1), "is_causal"),
    (lambda l, x: l.forward(x, train="yes"), "train"),
], ids=["width", "rank", "dtype", "mask shape", "mask dtype", "mask NaN", "mask list", "padding shape",
        "padding dtype", "is_causal", "train"])
def test_forward_refuses_bad_input_by_name_and_changes_nothing(call, name):
    rng = np.random.default_rng(0)
    layer = TransformerEncoderLayer(4, 2, 6, rng=rng)
    x = rng.standard_normal((5, 2, 4))                           # (T, N, D) = (5, 2, 4)
    before = _state(layer)
    with pytest.raises((TypeError, ValueError), match=name):
        call(layer, x)
    after = _state(layer)
    assert after[1] == before[1]
    for n in before[0]:
        np.testing.assert_array_equal(after[0][n][0], before[0][n][0])


def test_backward_refuses_a_bad_gradient_and_keeps_the_call():
    rng = np.random.default_rng(0)
    layer = TransformerEncoderLayer(4, 2, 6, 0.0, rng=rng)
    x = rng.standard_normal((3, 2, 4))
    layer.forward(x)
    with pytest.raises(ValueError, match="dy"):
        layer.backward(np.zeros((3, 2, 5)))
    assert layer.pending_calls() == 1 and layer.self_attn.pending_calls() == 1
    assert layer.backward(np.ones((3, 2, 4))).shape == x.shape


def test_encoder_names_its_own_mask_argument():
    enc = TransformerEncoder(TransformerEncoderLayer(4, 2, 4, rng=0), 2)
    with pytest.raises(ValueError, match="mask: expected shape"):
        enc.forward(np.zeros((3, 2, 4)), mask=np.zeros((2, 2), bool))
    with pytest.raises(TypeError, match="is_causal"):
        enc.forward(np.zeros((3, 2, 4)), is_causal="yes")
    assert all(layer.pending_calls() == 0 for _, layer in enc.named_layers())


def test_positional_refuses_a_sequence_longer_than_the_table():
    with pytest.raises(ValueError, match="x: a sequence of 6 positions is longer"):
        SinusoidalPositionalEncoding(4, max_len=5).forward(np.zeros((6, 1, 4)))
    with pytest.raises(ValueError, match="x: a sequence of 6 positions is longer"):
        LearnedPositionalEmbedding(5, 4, batch_first=True, rng=0).forward(np.zeros((1, 6, 4)))
    with pytest.raises(ValueError, match="x: expected 4 features"):
        SinusoidalPositionalEncoding(4).forward(np.zeros((6, 1, 3)))
