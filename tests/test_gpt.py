"""GPT (issue 13, item 4) and the warm-up + cosine schedule: the decoder-only model against the same
model written with torch.nn modules in float64 (forward and every gradient, the tied head's
gradient collecting both uses), causality, generation (seeded, greedy, long prompts cropped),
GPT-2's initial values, both kernel paths, float32, bad input (a context longer than the
model's among them); `WarmupCosineLR` against its formula and against torch's LambdaLR, and its
checkpoints. The 25-step training comparison is tests/test_gpt_end_to_end.py; finite
differences are in scripts/gradcases_transformer.py."""
import copy

import numpy as np
import pytest

import engine
from engine import no_grad
from engine.optim import SGD, AdamW
from engine.schedules import WarmupCosineLR, warmup_cosine_factor
from layers.gpt import GPT

from crosscheck import crosscheck
from torch_peers import torch_gpt

CFG = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8)


def small(seed=0, **kw):
    cfg = dict(CFG)
    cfg.update(kw)
    model = GPT(**cfg, rng=seed)
    rng = np.random.default_rng(seed + 100)
    for p in model.parameters():                 # away from GPT-2's tiny initial values: every term counts
        p.value[...] += 0.3 * rng.standard_normal(p.shape)
    return model


@pytest.mark.parametrize("N,T,reference", [(2, 5, False), (1, 1, False), (3, 6, True)],
                         ids=["N2,T5", "batch 1,T1", "N3,T6 (full context),reference"])
def test_gpt_matches_torch_forward_and_every_gradient(torch, N, T, reference):
    model = small(N + T)
    tm = torch_gpt(torch, **CFG).double()
    idx = np.random.default_rng(T).integers(0, CFG["vocab_size"], (N, T))
    with engine.reference_kernels(reference):
        res = crosscheck(model, tm, idx)
    assert tm.lm_head.weight is tm.wte.weight
    # the tied matrix's gradient has both parts: rows of tokens never fed in still get the head's
    unused = np.setdiff1d(np.arange(CFG["vocab_size"]), idx)
    assert np.abs(res.param_grads["wte.weight"][unused]).max() > 0


def test_tied_head_is_one_parameter_used_twice():
    model = small()
    assert model.lm_head.weight is model.wte.weight
    names = [n for n, _ in model.named_parameters()]
    assert "wte.weight" in names and "lm_head.weight" not in names          # optimizers see it once
    sd = model.state_dict()
    assert np.array_equal(sd["lm_head.weight"], sd["wte.weight"])           # both keys, as torch's
    assert model.num_parameters() == sum(p.value.size for p in model.parameters())
    # the tied gradient is the sum of the two uses': an untied twin (the head given its own copy
    # of the matrix) computes each part separately
    twin = copy.deepcopy(model)
    twin.lm_head.weight = engine.Parameter(twin.wte.weight.value.copy())
    idx = np.array([[1, 2, 3, 2]])
    G = np.random.default_rng(1).standard_normal((1, 4, CFG["vocab_size"]))
    for m in (model, twin):
        m.zero_grad()
        m.forward(idx)
        m.backward(G)
    assert np.abs(twin.lm_head.weight.grad).min() > 0 and not twin.wte.weight.grad[0].any()
    np.testing.assert_allclose(model.wte.weight.grad, twin.wte.weight.grad + twin.lm_head.weight.grad,
                               rtol=1e-13, atol=1e-15)


def test_causal_a_later_token_does_not_change_earlier_logits():
    model = small(3)
    idx = np.random.default_rng(0).integers(0, 11, (2, 6))
    with no_grad():
        a = model.forward(idx, train=False)
        idx2 = idx.copy()
        idx2[:, 4] = (idx2[:, 4] + 1) % 11
        b = model.forward(idx2, train=False)
    np.testing.assert_array_equal(a[:, :4], b[:, :4])
    assert not np.allclose(a[:, 4:], b[:, 4:])


def test_both_kernel_paths_agree():
    model = small(5, dropout=0.0)
    idx = np.random.default_rng(2).integers(0, 11, (3, 6))
    G = np.random.default_rng(3).standard_normal((3, 6, 11))
    out = []
    for ref in (False, True):
        model.zero_grad()
        with engine.reference_kernels(ref):
            y = model.forward(idx)
            model.backward(G)
        out.append((y, {n: p.grad.copy() for n, p in model.named_parameters()}))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-11, atol=1e-12)
    for n in out[0][1]:
        np.testing.assert_allclose(out[0][1][n], out[1][1][n], rtol=1e-9, atol=1e-11, err_msg=n)


def test_float32_model_agrees_with_float64():
    m64 = small(7)
    m32 = GPT(**CFG, dtype=np.float32, rng=0)
    m32.load_state_dict(m64.state_dict())
    idx = np.random.default_rng(0).integers(0, 11, (12, 6))
    G = np.random.default_rng(1).standard_normal((12, 6, 11))
    y64, y32 = m64.forward(idx), m32.forward(idx)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-4)
    m64.backward(G)
    m32.backward(G.astype(np.float32))
    for (n, p64), (_, p32) in zip(m64.named_parameters(), m32.named_parameters()):
        np.testing.assert_allclose(p32.grad, p64.grad, rtol=1e-3, atol=1e-3 * np.abs(p64.grad).max(), err_msg=n)


def test_gpt2_initial_values():
    m = GPT(50, 8, n_layer=4, n_head=2, n_embd=64, rng=0)
    sd = m.state_dict()
    assert abs(sd["wte.weight"].std() - 0.02) < 0.002 and abs(sd["wpe.weight"].std() - 0.02) < 0.004
    assert abs(sd["blocks.0.linear1.weight"].std() - 0.02) < 0.002
    resid = 0.02 / np.sqrt(8)
    assert abs(sd["blocks.3.linear2.weight"].std() - resid) < 0.1 * resid
    assert abs(sd["blocks.1.self_attn.out_proj.weight"].std() - resid) < 0.1 * resid
    assert not sd["blocks.0.self_attn.in_proj_bias"].any() and not sd["ln_f.bias"].any()
    assert (sd["blocks.2.norm1.weight"] == 1).all() and (sd["ln_f.weight"] == 1).all()
    a, b = GPT(**CFG, rng=4), GPT(**CFG, rng=4)
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k], err_msg=k)


def test_dropout_in_train_mode_only():
    model = small(1, dropout=0.3)
    idx = np.random.default_rng(0).integers(0, 11, (2, 5))
    with no_grad():
        e1, e2 = model.forward(idx, train=False), model.forward(idx, train=False)
        t1, t2 = model.forward(idx), model.forward(idx)
    np.testing.assert_array_equal(e1, e2)
    assert not np.allclose(t1, t2) and not np.allclose(t1, e1)


def test_dropout_streams_follow_rng_or_the_engines_default_generator():
    idx = np.random.default_rng(0).integers(0, 11, (2, 5))
    a, b = GPT(**CFG, dropout=0.3, rng=5), GPT(**CFG, dropout=0.3, rng=5)
    with no_grad():
        np.testing.assert_array_equal(a.forward(idx), b.forward(idx))
    m = GPT(**CFG, dropout=0.3)
    with no_grad():
        engine.manual_seed(3)
        y1 = m.forward(idx)
        engine.manual_seed(3)
        np.testing.assert_array_equal(m.forward(idx), y1)


# ---- generation ----------------------------------------------------------------------------------
def test_generate_is_seeded_crops_long_prompts_and_greedy_is_argmax():
    model = small(2)
    prompt = np.array([[1, 2, 3], [4, 5, 6]])
    a = model.generate(prompt, 8, temperature=0.9, top_k=5, rng=3)
    b = model.generate(prompt, 8, temperature=0.9, top_k=5, rng=3)
    assert a.shape == (2, 11) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :3], prompt)
    assert a.min() >= 0 and a.max() < 11
    # greedy (top_k=1) equals the arg-max of the last position, the context cropped to block_size
    long = np.random.default_rng(0).integers(0, 11, 9)           # longer than block_size = 6
    g = model.generate(long, 4, top_k=1, rng=0)
    ids = list(long)
    with no_grad():
        for _ in range(4):
            logits = model.forward(np.array([ids[-6:]]), train=False)
            ids.append(int(np.argmax(logits[0, -1])))
    np.testing.assert_array_equal(g, ids)
    assert model.pending_calls() == 0 and model.blocks[0].pending_calls() == 0


@pytest.mark.parametrize("call,err,name", [
    (lambda m: m.generate(np.array([[1, 11]]), 3), ValueError, "idx"),
    (lambda m: m.generate(np.array([[1.0, 2.0]]), 3), TypeError, "idx"),
    (lambda m: m.generate(np.array([[1, 2]]), 3, top_k=12), ValueError, "top_k"),
    (lambda m: m.generate(np.array([[1, 2]]), -1), ValueError, "max_new_tokens"),
    (lambda m: m.generate(np.array([[1, 2]]), 2, temperature=0), ValueError, "temperature"),
    (lambda m: m.generate(np.zeros((1, 1, 2), np.int64), 2), ValueError, "idx"),
])
def test_generate_refuses_bad_arguments_by_name(call, err, name):
    with pytest.raises(err, match=name):
        call(small())


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize("idx,err,match", [
    (np.zeros((2, 7), np.int64), ValueError, "idx: a context of 7 tokens is longer than the model's block_size=6"),
    (np.full((2, 3), 11), ValueError, "idx"),
    (np.full((2, 3), -1), ValueError, "idx"),
    (np.zeros((2, 3)), TypeError, "idx"),
    (np.zeros(3, np.int64), ValueError, "idx"),
    (np.zeros((0, 3), np.int64), ValueError, "idx"),
    ([[1, 2]], TypeError, "idx"),
])
def test_forward_refuses_bad_ids_before_any_kernel(idx, err, match):
    model = small()
    before = {n: p.value.copy() for n, p in model.named_parameters()}
    with pytest.raises(err, match=match):
        model.forward(idx)
    assert all(layer.pending_calls() == 0 for _, layer in model.named_layers())
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.value, before[n])


def test_constructor_and_backward_refuse_bad_arguments_by_name():
    with pytest.raises(ValueError, match="n_head"):
        GPT(11, 6, n_head=3, n_embd=8)
    with pytest.raises(ValueError, match="block_size"):
        GPT(11, 0)
    with pytest.raises(TypeError, match="vocab_size"):
        GPT(11.0, 6)
    model = small()
    model.forward(np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match="dlogits"):
        model.backward(np.zeros((2, 3, 10)))
    assert model.pending_calls() == 1
    model.backward(np.zeros((2, 3, 11)))
    assert model.pending_calls() == 0


# ---- the warm-up + cosine schedule ---------------------------------------------------------------
def test_warmup_cosine_factor_is_the_formula():
    W, S, m = 4, 12, 0.1
    f = [warmup_cosine_factor(t, W, S, m) for t in range(16)]
    np.testing.assert_allclose(f[:W], [(t + 1) / W for t in range(W)])
    assert f[W - 1] == f[W] == 1.0
    for t in range(W, S):
        assert f[t] == pytest.approx(m + (1 - m) * 0.5 * (1 + np.cos(np.pi * (t - W) / (S - W))), rel=1e-15)
    assert f[S:] == [m] * 4
    assert all(a >= b for a, b in zip(f[W:], f[W + 1:]))
    assert [warmup_cosine_factor(t, 0, 4) for t in range(5)] == pytest.approx([1, 0.8535533905932737, 0.5,
                                                                               0.14644660940672627, 0])


def test_schedule_equals_torch_lambda_lr_exactly(torch):
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    topt = torch.optim.AdamW([p], lr=0.3)
    tsched = torch.optim.lr_scheduler.LambdaLR(topt, lambda t: warmup_cosine_factor(t, 3, 10, 0.05))
    opt = AdamW([engine.Parameter(np.zeros(2))], lr=0.3)
    sched = WarmupCosineLR(opt, 3, 10, 0.05)
    for _ in range(14):
        assert opt.lr == topt.param_groups[0]["lr"]
        assert sched.get_last_lr() == tsched.get_last_lr()
        topt.step()
        tsched.step()
        sched.step()


def test_schedule_checkpoint_resumes_bit_identically_and_refuses_bad_state():
    def run(sched_state=None, steps=(0, 9)):
        opt = SGD([engine.Parameter(np.zeros(1))], lr=1.0)
        sched = WarmupCosineLR(opt, 2, 6, 0.2)
        if sched_state is not None:
            opt.lr, state = sched_state
            sched.load_state_dict(state)
        lrs = []
        for _ in range(*steps):
            lrs.append(opt.lr)
            sched.step()
        return lrs, (opt.lr, copy.deepcopy(sched.state_dict()))
    whole, _ = run()
    first, ck = run(steps=(0, 4))
    rest, _ = run(ck, steps=(4, 9))
    assert first + rest == whole
    assert set(ck[1]) == {"last_epoch", "base_lrs", "_last_lr", "warmup_steps", "total_steps", "min_factor"}
    opt = SGD([engine.Parameter(np.zeros(1))], lr=1.0)
    sched = WarmupCosineLR(opt, 2, 6)
    bad = dict(ck[1], warmup_steps=7)
    before = (opt.lr, sched.state_dict())
    with pytest.raises(ValueError, match="warmup_steps"):
        sched.load_state_dict(bad)
    assert (opt.lr, sched.state_dict()) == before


@pytest.mark.parametrize("kw,err,name", [
    (dict(warmup_steps=5, total_steps=4), ValueError, "warmup_steps"),
    (dict(warmup_steps=-1, total_steps=4), ValueError, "warmup_steps"),
    (dict(warmup_steps=1, total_steps=0), ValueError, "total_steps"),
    (dict(warmup_steps=1.5, total_steps=4), TypeError, "warmup_steps"),
    (dict(warmup_steps=1, total_steps=4, min_factor=1.5), ValueError, "min_factor"),
    (dict(warmup_steps=1, total_steps=4, min_factor=float("nan")), TypeError, "min_factor"),
])
def test_schedule_refuses_bad_arguments_by_name_and_leaves_the_lr(kw, err, name):
    opt = SGD([engine.Parameter(np.zeros(1))], lr=0.5)
    with pytest.raises(err, match=name):
        WarmupCosineLR(opt, **kw)
    assert opt.lr == 0.5


# ---- scripts/train_gpt.py (item 7): the library path it takes, at toy size ----------------------
def test_train_gpt_script_trains_through_fit_and_reports(tmp_path):
    import train_gpt
    res = train_gpt.train("tiny", steps=3, dtype=np.float64, progress=False, samples=1, sample_len=7,
                          log=lambda *a: None, eval_windows=3, train_windows=200, val_every=2, curve_windows=2)
    assert res["steps"] == 3 and res["stopped"] == "max_steps"
    assert res["val_bits"] == pytest.approx(res["val_nats"] / np.log(2))
    assert 0 < res["val_nats"] < 2 * np.log(65) and res["tokens_per_second"] > 0
    assert len(res["samples"]) == 1 and len(res["samples"][0]) == 7
    assert res["history"]["curve_step"] == [2, 3]
    fig = train_gpt.figure_run(time_budget=1e-3, val_every=1, eval_windows=2, sample_len=5, train_windows=100,
                               config="tiny")
    assert fig["steps"] == 1 and fig["curve_step"] == [1] and len(fig["samples"]) == 2
    assert 3.0 < fig["unigram_nats"] < np.log(65)         # the characters' entropy, below uniform
    loss = train_gpt.TokenCrossEntropy()
    with pytest.raises(ValueError, match="target"):
        loss.forward(np.zeros((2, 3, 5)), np.zeros((2, 4), np.int64))
