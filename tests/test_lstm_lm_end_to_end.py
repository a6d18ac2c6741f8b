"""Issue 12, item 8: end to end, a character-level LSTM language model (Embedding → 2-layer LSTM →
Linear) built in this engine and in PyTorch with the same weights (state_dict copied across),
trained on the same batches of the bundled corpus with Adam and gradient clipping (max_norm 1.0)
in float64: the losses agree to 1e-9 relative at every step, the gradient norms before clipping
to 1e-8, and the final weights to 1e-7. Once with every batch starting from the zero state (25
steps, windows from `lm_windows`, logits flattened to (T·N, C), the loss summed over the tokens so
that the norm exceeds max_norm and every step is clipped), once with truncated BPTT (10 steps of
`bptt_batches`, the state carried from batch to batch with `detach_state` / `.detach()` and
compared, the mean loss on torch's (N, C, T) form, whose norms stay below max_norm: the unclipped
path). Both kernel paths: the fast kernels and, for the 25-step run, the reference ones."""
import numpy as np
import pytest

from engine.core import Layer, reference_kernels
from engine.data.text import bptt_batches, char_corpus, lm_windows
from engine.losses import CrossEntropyLoss
from engine.optim import Adam, clip_grad_norm
from layers import LSTM, Embedding, Linear
from layers.recurrent import detach_state

V, E, H, T, B = 65, 8, 16, 12, 4          # vocabulary, embedding, hidden, steps per batch, batch
ADAM = dict(lr=0.02, betas=(0.9, 0.99), eps=1e-8)
MAX_NORM = 1.0
RTOL = 1e-9


class CharLSTM(Layer):
    """Embedding → 2-layer LSTM → Linear, time-major: idx (T, N) int -> logits (T, N, V)."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.emb = Embedding(V, E, rng=rng)
        self.lstm = LSTM(E, H, num_layers=2, rng=rng)
        self.head = Linear(H, V, rng=rng)

    def forward(self, idx, hx=None, train=True):
        x = self.emb.forward(idx, train=train)                      # (T, N, E)
        y, state = self.lstm.forward(x, hx, train=train)          # (T, N, H), ((2, N, H), (2, N, H))
        Tn, N, _ = y.shape
        self._save(Tn, N, hx is not None)
        logits = self.head.forward(y.reshape(Tn * N, H), train=train)
        return logits.reshape(Tn, N, V), state

    def backward(self, dlogits):
        Tn, N, has_hx = self._saved()
        self._release()
        dy = self.head.backward(np.ascontiguousarray(dlogits).reshape(Tn * N, V)).reshape(Tn, N, H)
        dx = self.lstm.backward(dy, None)
        if has_hx:
            dx, _ = dx                     # the carried state's gradient is dropped: truncated BPTT
        self.emb.backward(dx)


def _torch_model(torch):
    class TorchCharLSTM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(V, E)
            self.lstm = torch.nn.LSTM(E, H, num_layers=2)
            self.head = torch.nn.Linear(H, V)

        def forward(self, idx, hx=None):
            y, state = self.lstm(self.emb(idx), hx)
            return self.head(y), state
    return TorchCharLSTM().double()


def _pair(torch, seed=0):
    ours = CharLSTM(seed)
    theirs = _torch_model(torch)
    sd = ours.state_dict()
    assert set(sd) == set(theirs.state_dict())              # torch's keys, as the issue asks
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
    return ours, theirs


def _assert_weights_close(torch, ours, theirs, rtol=1e-7, atol=1e-10):
    tsd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, tsd[k].detach().numpy(), rtol=rtol, atol=atol, err_msg=k)


def _torch_step(torch, theirs, topt, x, target, hx, flat, reduction):
    """torch's training step: (loss, gradient norm before clipping, final state)."""
    logits, state = theirs(torch.from_numpy(x), hx)
    if flat:
        t_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(target.reshape(-1)),
                                                   reduction=reduction)
    else:
        t_loss = torch.nn.functional.cross_entropy(logits.permute(1, 2, 0), torch.from_numpy(target.T.copy()),
                                                   reduction=reduction)
    topt.zero_grad()
    t_loss.backward()
    t_norm = float(torch.nn.utils.clip_grad_norm_(theirs.parameters(), MAX_NORM))
    topt.step()
    return t_loss.item(), t_norm, state


def _train_step(ours, opt, loss_fn, x, target, hx, flat):
    opt.zero_grad()
    logits, state = ours.forward(x, hx)
    if flat:
        loss = loss_fn.forward(logits.reshape(-1, V), target.reshape(-1))
        dlogits = loss_fn.backward().reshape(logits.shape)
    else:                                                     # (N, C, T) logits, (N, T) targets
        loss = loss_fn.forward(np.ascontiguousarray(logits.transpose(1, 2, 0)), np.ascontiguousarray(target.T))
        dlogits = loss_fn.backward().transpose(2, 0, 1)
    ours.backward(dlogits)
    norm = clip_grad_norm(ours.parameters(), MAX_NORM)
    opt.step()
    return loss, norm, state


@pytest.fixture(scope="module")
def corpus():
    vocab, train, _ = char_corpus()
    assert len(vocab) == V
    return train


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_char_lstm_lm_25_adam_steps_with_clipping_match_torch(torch, corpus, reference):
    X, Y = lm_windows(corpus[:20_000], T)                       # (n, T) windows and next tokens
    order = np.random.default_rng(7).permutation(X.shape[0])
    ours, theirs = _pair(torch, seed=1)
    opt, topt = Adam(ours.parameters(), **ADAM), torch.optim.Adam(theirs.parameters(), **ADAM)
    loss_fn = CrossEntropyLoss(reduction="sum")     # summed over the 48 tokens: the norm exceeds 1
    losses, clipped = [], 0
    with reference_kernels(reference):
        for step in range(25):
            rows = order[step * B:(step + 1) * B]
            x, y = np.ascontiguousarray(X[rows].T), np.ascontiguousarray(Y[rows].T)   # (T, B), time first
            loss, norm, _ = _train_step(ours, opt, loss_fn, x, y, None, flat=True)
            t_loss, t_norm, _ = _torch_step(torch, theirs, topt, x, y, None, True, "sum")
            assert loss == pytest.approx(t_loss, rel=RTOL), f"step {step}"
            assert norm == pytest.approx(t_norm, rel=1e-8), f"step {step}: gradient norm"
            losses.append(loss)
            clipped += norm > MAX_NORM
    _assert_weights_close(torch, ours, theirs)
    assert clipped == 25                                    # every step clipped
    assert losses[-1] < losses[0]                           # and the model learned something
    assert ours.pending_calls() == 0 and ours.lstm.pending_calls() == 0


def test_char_lstm_lm_truncated_bptt_matches_torch(torch, corpus):
    batches = iter(bptt_batches(corpus[:5_000], B, T))       # (T, B) pairs; row b continues row b
    ours, theirs = _pair(torch, seed=2)
    opt, topt = Adam(ours.parameters(), **ADAM), torch.optim.Adam(theirs.parameters(), **ADAM)
    loss_fn = CrossEntropyLoss()                    # the mean: norms below 1, the unclipped path
    state, t_state = None, None
    for step in range(10):
        x, y = next(batches)
        loss, norm, new_state = _train_step(ours, opt, loss_fn, x, y, state, flat=False)
        t_loss, t_norm, t_new = _torch_step(torch, theirs, topt, x, y, t_state, False, "mean")
        assert loss == pytest.approx(t_loss, rel=RTOL), f"step {step}"
        assert norm == pytest.approx(t_norm, rel=1e-8), f"step {step}: gradient norm"
        assert norm < MAX_NORM                               # not clipped: the other branch
        # the carried state agrees too (it is each side's next initial state)
        for a, b in zip(new_state, t_new):
            np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-7, atol=1e-12)
        state = detach_state(new_state)
        t_state = tuple(s.detach() for s in t_new)
    _assert_weights_close(torch, ours, theirs)
    assert state[0].shape == (2, B, H) and not np.shares_memory(state[0], new_state[0])
