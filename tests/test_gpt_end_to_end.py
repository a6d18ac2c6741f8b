"""Issue 13, item 6: end to end, as llm.c checks its GPT-2 against PyTorch but in float64. The same
small GPT (2 layers, 2 heads, width 32, context 16, the bundled corpus's 65 characters) built in
this engine (layers.gpt.GPT) and in PyTorch from torch.nn modules (nn.Embedding for tokens and
positions, nn.TransformerEncoderLayer(norm_first=True, activation="gelu") blocks called causally,
nn.LayerNorm, an nn.Linear head tied to the token embedding), with the same weights (state dict
copied across), trained 25 steps on the same batches with AdamW, the linear warm-up + cosine
schedule (engine.schedules.WarmupCosineLR; torch: LambdaLR with the same function) and gradient
clipping (max_norm 1.0; the loss summed over the 64 tokens of a batch, so every step is clipped):
the losses agree to 1e-9 relative at every step, the gradient norms before clipping to 1e-8, the
learning rates exactly, and the final weights to 1e-7. On both kernel paths."""
import numpy as np
import pytest

from engine.core import reference_kernels
from engine.data.text import char_corpus, lm_windows
from engine.losses import CrossEntropyLoss
from engine.optim import AdamW, clip_grad_norm
from engine.schedules import WarmupCosineLR, warmup_cosine_factor
from layers.gpt import GPT
from torch_peers import torch_gpt

V, BLOCK, LAYERS, HEADS, WIDTH = 65, 16, 2, 2, 32
B, STEPS = 4, 25
ADAMW = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
WARMUP, MIN_FACTOR = 5, 0.1
MAX_NORM = 1.0
RTOL = 1e-9


def pair(torch, seed, **kw):
    """(engine GPT, torch GPT) with the engine's initial weights copied into torch's."""
    cfg = dict(vocab_size=V, block_size=BLOCK, n_layer=LAYERS, n_head=HEADS, n_embd=WIDTH)
    cfg.update(kw)
    ours = GPT(**cfg, rng=seed)
    theirs = torch_gpt(torch, **cfg).double()
    sd = ours.state_dict()
    assert list(sd) == list(theirs.state_dict())                 # torch's keys, tied head under both names
    theirs.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
    assert theirs.lm_head.weight is theirs.wte.weight
    return ours, theirs


@pytest.fixture(scope="module")
def corpus():
    vocab, train, _ = char_corpus()
    assert len(vocab) == V
    return train


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "reference"])
def test_gpt_25_adamw_steps_with_warmup_cosine_and_clipping_match_torch(torch, corpus, reference):
    X, Y = lm_windows(corpus[:30_000], BLOCK)
    order = np.random.default_rng(3).permutation(X.shape[0])
    ours, theirs = pair(torch, seed=1)
    opt = AdamW(ours.parameters(), **ADAMW)
    sched = WarmupCosineLR(opt, WARMUP, STEPS, MIN_FACTOR)
    topt = torch.optim.AdamW(theirs.parameters(), **ADAMW)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda t: warmup_cosine_factor(t, WARMUP, STEPS, MIN_FACTOR))
    loss_fn = CrossEntropyLoss(reduction="sum")
    losses, lrs, clipped = [], [], 0
    with reference_kernels(reference):
        for step in range(STEPS):
            rows = order[step * B:(step + 1) * B]
            x, y = X[rows], Y[rows]                              # (B, T) windows and next tokens
            assert opt.lr == topt.param_groups[0]["lr"], f"step {step}: learning rate"
            lrs.append(opt.lr)
            # engine
            opt.zero_grad()
            logits = ours.forward(x)
            loss = loss_fn.forward(logits.reshape(-1, V), y.reshape(-1))
            ours.backward(loss_fn.backward().reshape(logits.shape))
            norm = clip_grad_norm(ours.parameters(), MAX_NORM)
            opt.step()
            sched.step()
            # torch
            t_logits = theirs(torch.from_numpy(x))
            t_loss = torch.nn.functional.cross_entropy(t_logits.reshape(-1, V), torch.from_numpy(y.reshape(-1)),
                                                       reduction="sum")
            topt.zero_grad()
            t_loss.backward()
            t_norm = float(torch.nn.utils.clip_grad_norm_(theirs.parameters(), MAX_NORM))
            topt.step()
            tsched.step()

            assert loss == pytest.approx(t_loss.item(), rel=RTOL), f"step {step}"
            assert norm == pytest.approx(t_norm, rel=1e-8), f"step {step}: gradient norm"
            losses.append(loss)
            clipped += norm > MAX_NORM
    tsd = theirs.state_dict()
    for k, v in ours.state_dict().items():
        np.testing.assert_allclose(v, tsd[k].detach().numpy(), rtol=1e-7, atol=1e-10, err_msg=k)
    assert clipped == STEPS                                       # every step clipped
    assert lrs[0] == ADAMW["lr"] / WARMUP and max(lrs) == ADAMW["lr"]          # warm-up, then the peak
    assert lrs[-1] < lrs[WARMUP] and lrs == sorted(lrs[:WARMUP]) + lrs[WARMUP:]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])               # and the model learned something
    assert ours.pending_calls() == 0 and all(b.pending_calls() == 0 for b in ours.blocks)
