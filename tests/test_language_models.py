"""layers.language_models (issue 12, item 9): the FF-NNLM and the recurrent LM against PyTorch in
float64, the state carried across chunks equal to one long forward, torch's state-dict keys,
refusals before anything changes, sampling, and scripts/train_char_lm.py at tiny settings.
Gradient checks: scripts/gradcases_language_models.py (tests/test_gradient_cases.py)."""
import json

import numpy as np
import pytest

from crosscheck import crosscheck
from engine.core import reference_kernels
from layers.language_models import FFNNLM, RecurrentLM
from layers.recurrent import detach_state


def torch_ffnnlm(torch, V, ctx, E, H):
    class TorchFFNNLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(V, E)
            self.hidden = torch.nn.Linear(ctx * E, H)
            self.output = torch.nn.Linear(H, V)

        def forward(self, c):
            x = self.embedding(c).reshape(c.shape[0], -1)
            return self.output(torch.tanh(self.hidden(x)))
    return TorchFFNNLM()


def torch_rlm(torch, V, E, H, L, mode):
    class TorchRLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = torch.nn.Embedding(V, E)
            self.rnn = getattr(torch.nn, mode)(E, H, num_layers=L)
            self.decoder = torch.nn.Linear(H, V)

        def forward(self, ids):
            y, state = self.rnn(self.encoder(ids))
            return self.decoder(y), state
    return TorchRLM()


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_ffnnlm_forward_and_gradients_match_torch(torch, reference):
    """Issue 12, item 9: one PyTorch float64 comparison of the FF-NNLM, every gradient."""
    V, ctx, E, H = 11, 4, 5, 7
    rng = np.random.default_rng(0)
    c = rng.integers(0, V, size=(9, ctx))
    c[0] = [3, 3, 3, 3]                                  # a token repeated inside one context
    with reference_kernels(reference):
        m = FFNNLM(V, ctx, E, H, rng=1)
        res = crosscheck(m, torch_ffnnlm(torch, V, ctx, E, H), c, rtol=1e-11, atol=1e-13)
    assert res.input_grads == [None]
    assert set(m.state_dict()) == {"embedding.weight", "hidden.weight", "hidden.bias", "output.weight",
                                   "output.bias"}


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_recurrent_lm_matches_torch_with_torch_state_dict_keys(torch, mode):
    V, E, H, L = 9, 4, 5, 2
    m = RecurrentLM(V, E, H, num_layers=L, mode=mode, rng=2)
    ids = np.random.default_rng(3).integers(0, V, size=(5, 3))
    crosscheck(m, torch_rlm(torch, V, E, H, L, mode), ids, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["GRU", "LSTM"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_state_carried_over_chunks_equals_one_long_forward(mode, batch_first):
    m = RecurrentLM(8, 3, 4, num_layers=2, mode=mode, batch_first=batch_first, rng=0)
    ids = np.random.default_rng(1).integers(0, 8, size=(2, 9) if batch_first else (9, 2))
    whole, s_whole = m.forward(ids, train=False)
    cut = (slice(None), slice(0, 4)) if batch_first else (slice(0, 4),)
    rest = (slice(None), slice(4, None)) if batch_first else (slice(4, None),)
    a, s = m.forward(ids[cut], train=False)
    b, s = m.forward(ids[rest], detach_state(s), train=False)
    np.testing.assert_allclose(np.concatenate([a, b], axis=1 if batch_first else 0), whole, rtol=1e-13, atol=1e-15)
    for x, y in zip(s_whole if mode == "LSTM" else (s_whole,), s if mode == "LSTM" else (s,)):
        np.testing.assert_allclose(x, y, rtol=1e-13, atol=1e-15)
    m.clear_saved()


def test_float32_models_run_in_float32():
    m = RecurrentLM(6, 3, 4, mode="LSTM", dtype=np.float32, rng=0)
    out, (h, c) = m.forward(np.zeros((3, 2), np.int64))
    assert out.dtype == h.dtype == c.dtype == np.float32
    m.backward(np.ones_like(out))
    assert all(p.grad.dtype == np.float32 for p in m.parameters())
    f = FFNNLM(6, 2, 3, 4, dtype=np.float32, rng=0)
    assert f.forward(np.zeros((2, 2), np.int64)).dtype == np.float32


def test_refusals_change_nothing():
    m = RecurrentLM(6, 3, 4, mode="LSTM", rng=0)
    before = m.state_dict()
    with pytest.raises(ValueError, match=r"ids: expected token ids in \[0, 5\]"):
        m.forward(np.array([[1, 6]]))
    with pytest.raises(ValueError, match="ids: expected a 2-dimensional"):
        m.forward(np.zeros((2, 2, 2), np.int64))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h_0\): expected shape \(1, 2, 4\).*ids of shape \(3, 2\)"):
        m.forward(np.zeros((3, 2), np.int64), (np.zeros((1, 3, 4)), np.zeros((1, 3, 4))))
    assert m.pending_calls() == 0 and m.encoder.pending_calls() == 0
    out, _ = m.forward(np.zeros((3, 2), np.int64))
    with pytest.raises(ValueError, match="dlogits"):
        m.backward(np.ones((3, 2, 5)))
    with pytest.raises(ValueError, match=r"dstate\[1\]"):
        m.backward(np.ones_like(out), (None, np.ones((1, 2, 3))))
    assert m.pending_calls() == 1 and all(not p.grad.any() for p in m.parameters())   # call kept, nothing added
    m.backward(np.ones_like(out))
    assert all(np.array_equal(before[k], v) for k, v in m.state_dict().items())
    with pytest.raises(ValueError, match="nonlinearity"):
        RecurrentLM(6, 3, 4, mode="GRU", nonlinearity="relu")
    with pytest.raises(ValueError, match="mode"):
        RecurrentLM(6, 3, 4, mode="lstm")
    f = FFNNLM(6, 3, 2, 4, rng=0)
    with pytest.raises(ValueError, match=r"ctx: expected shape \(N, 3\)"):
        f.forward(np.zeros((2, 4), np.int64))
    with pytest.raises(TypeError, match="ctx"):
        f.forward(np.zeros((2, 3)))


def test_step_functions_sample_reproducibly():
    from engine.sampling import generate
    for m in (RecurrentLM(6, 3, 4, mode="GRU", rng=0), RecurrentLM(6, 3, 4, batch_first=True, rng=0),
              FFNNLM(6, 2, 3, 4, rng=0)):
        a = generate(m.step_fn(), np.array([[1, 2, 3], [0, 0, 5]]), 7, temperature=0.7, rng=1)
        b = generate(m.step_fn(), np.array([[1, 2, 3], [0, 0, 5]]), 7, temperature=0.7, rng=1)
        assert a.shape == (2, 10) and np.array_equal(a, b) and m.pending_calls() == 0


def test_recurrent_step_fn_equals_one_forward_over_the_prefix():
    """Feeding one id at a time with the state kept gives the logits of a forward over the whole prefix."""
    m = RecurrentLM(6, 3, 4, num_layers=2, mode="LSTM", rng=0)
    ids = np.array([[1, 4, 2, 2, 5]])
    step = m.step_fn()
    for t in range(2, 6):
        got = step(ids[:, :t])
        want, _ = m.forward(np.ascontiguousarray(ids[:, :t].T), train=False)
        np.testing.assert_allclose(got, want[-1], rtol=1e-13, atol=1e-15)
    m.clear_saved()


def test_train_char_lm_script_tiny(tmp_path, capsys):
    """scripts/train_char_lm.py at tiny settings: every model trains through fit, the table and
    the JSON the figure reads are written, the neural models beat the uniform distribution."""
    import train_char_lm
    path = tmp_path / "lm.json"
    assert train_char_lm.main(["--tiny", "--json", str(path), "--sample-chars", "40"]) == 0
    out = capsys.readouterr().out
    assert "5-gram (KN)" in out and "LSTM" in out and "bits/char" in out
    data = json.loads(path.read_text())
    names = [r["name"] for r in data["results"]]
    assert names[:5] == [f"{n}-gram (KN)" for n in range(1, 6)]
    assert {"FF-NNLM", "RNN", "GRU", "LSTM"} <= set(names)
    for r in data["results"]:
        assert r["val_nats"] == pytest.approx(r["val_bits"] * np.log(2))
        if r["kind"] == "neural":
            assert len(r["curve_seconds"]) == len(r["curve_val_nats"]) >= 2
            assert r["val_nats"] == r["curve_val_nats"][-1] < np.log(65)


# ---- the token-table path: the first recurrent layer reads the embedding table (TokenLookup) ----
def _table_lm(mode, batch_first=False, dtype=np.float64):
    return RecurrentLM(4, 3, 5, num_layers=2, mode=mode, batch_first=batch_first, dtype=dtype, rng=1)


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
def test_token_table_path_matches_torch(torch, mode):
    """4 tokens over T·N = 18 positions: the fast path folds the embedding into the first layer."""
    m = _table_lm(mode)
    ids = np.random.default_rng(3).integers(0, 4, size=(6, 3))
    assert m._table_path(ids)
    crosscheck(m, torch_rlm(torch, 4, 3, 5, 2, mode), ids, rtol=1e-10, atol=1e-12)
    with reference_kernels():
        assert not m._table_path(ids)


@pytest.mark.parametrize("mode", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_token_table_path_equals_the_embedding_path_with_initial_state(mode, batch_first):
    """The table path (fast kernels) against the Embedding → layer path (reference kernels): logits,
    final state, every parameter's gradient and the initial state's, batch first or not."""
    rng = np.random.default_rng(4)
    T, N = 6, 3
    ids = rng.integers(0, 4, size=(N, T) if batch_first else (T, N))
    h = rng.standard_normal((2, N, 5))
    hx = (h, rng.standard_normal((2, N, 5))) if mode == "LSTM" else h
    dl = rng.standard_normal(ids.shape + (4,))
    ds = tuple(rng.standard_normal((2, N, 5)) for _ in range(2 if mode == "LSTM" else 1))
    ds = ds if mode == "LSTM" else ds[0]
    res = []
    for ref in (False, True):
        m = _table_lm(mode, batch_first)
        with reference_kernels(ref):
            assert m._table_path(ids) == (not ref)
            f, s = m.forward(ids, hx)
            _, dhx = m.backward(dl, ds)
        res.append((f, s, dhx, [p.grad.copy() for p in m.parameters()]))
    (f1, s1, d1, g1), (f2, s2, d2, g2) = res
    np.testing.assert_allclose(f1, f2, rtol=1e-12, atol=1e-13)
    for a, b in zip(leaves_of(s1) + leaves_of(d1) + g1, leaves_of(s2) + leaves_of(d2) + g2):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def leaves_of(x):
    return list(x) if isinstance(x, tuple) else [x]


def test_token_table_path_in_float32_close_to_float64():
    ids = np.random.default_rng(5).integers(0, 4, size=(8, 4))
    dl = np.random.default_rng(6).standard_normal(ids.shape + (4,))
    out = []
    for dt in (np.float32, np.float64):
        m = _table_lm("LSTM", dtype=dt)
        f, _ = m.forward(ids)
        m.backward(dl.astype(dt))
        assert f.dtype == dt and all(p.grad.dtype == dt for p in m.parameters())
        out.append([f] + [p.grad for p in m.parameters()])
    for a, b in zip(*out):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())
