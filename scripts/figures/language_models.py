"""Language-model figures (notes 000 §8 n-grams, FF-NNLM, RNNs; 000 §9.3.2 decoder-only GPT).

transformer-lm: validation loss against training time and samples of the engine's GPT
    (layers.gpt), trained during the figure run by scripts/train_gpt.py's `figure_run` within a
    stated time budget.
ngram-vs-neural-lm: validation loss of interpolated Kneser–Ney n-grams (engine.ngram), the FF-NNLM,
    an RNN and an LSTM (scripts/train_char_lm.py's `run_ngrams` and `train_neural`, its default
    preset) and the GPT (scripts/train_gpt.py's `train`), on the bundled text and the whole
    validation split, against training time, each neural model within the same small budget.

Both compare with the unigram entropy H = −Σ_c p(c) ln p(c) of the training characters' frequencies:
the loss of the best model that ignores the context.

Quick mode (tests) trains fixed numbers of steps instead of time budgets, so that its numbers do
not depend on the machine's load: the same training functions (train_char_lm.train_neural,
train_char_lm.run_ngrams) with small settings, and a one-layer GPT through engine.fit, on the
first 100,000 training and 4,096 validation characters.

In default mode every model first runs two steps at a tiny size (`_compile_gpt`, `_compile_lm`),
so that Numba's compilation of its float32 kernels is not counted in the budget, and every model
trains on one thread (`engine.threads.num_threads_set_to(1)`): these models are small, and on the shared 2-vCPU machine under
load (~3) a step of the small GPT took 0.2-0.9 s at two Numba threads against 0.04-0.07 s at one.
The GPT's warm-up + cosine schedule is sized to its budget from a measured step time
(train_gpt.budget_steps): with the small config's fixed 600-step schedule and 50-step warm-up, a
3 s run stopped inside the warm-up, above the unigram entropy (3.74 nats/char).

The training scripts and the GPT are imported inside the figure functions: this module loads
(and the other figures draw) where they are missing.
"""
import functools
import math
import textwrap

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine.threads import num_threads_set_to
from figures import style
from figures.registry import figure

#: training-clock budgets of the default mode, seconds
GPT_BUDGET = 8.0          # transformer-lm
NEURAL_BUDGET = 3.0       # ngram-vs-neural-lm: each of FF-NNLM, RNN, LSTM, GPT
#: quick mode: steps per neural model, corpus slices
QUICK_STEPS, QUICK_TRAIN, QUICK_VALID = 60, 100_000, 4096
#: samples: temperature and top-k (train_gpt's)
TEMPERATURE, TOP_K = 0.8, 20

COLORS = {"FF-NNLM": style.OKABE_ITO["orange"], "RNN": style.color("RNN"), "LSTM": style.color("LSTM"),
          "transformer": style.color("transformer"), "n-gram": style.color("n-gram")}


def unigram_entropy(ids):
    """H = −Σ_c p(c) ln p(c) of the token frequencies of ``ids`` (nats)."""
    p = np.bincount(ids) / ids.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def _corpus(quick):
    from engine.data.text import char_corpus
    vocab, train, valid = char_corpus()
    H = unigram_entropy(train)                       # of the whole training split in both modes
    if quick:
        train, valid = train[:QUICK_TRAIN], valid[:QUICK_VALID]
    return vocab, train, valid, H


def _text(sample):
    """A sample as one string ($ escaped: it would start mathtext)."""
    s = "".join(sample) if isinstance(sample, (list, tuple)) else str(sample)
    return s.replace("$", r"\$")


@functools.lru_cache(maxsize=None)
def _quick_gpt(seed=0):
    """A one-layer GPT (2 heads, width 32, context 32, float64) trained QUICK_STEPS steps of
    AdamW with warm-up + cosine and clipping through engine.fit on the quick slices; the result
    in figure_run's form (curves on the quick validation slice)."""
    from engine.data.text import lm_windows
    from engine.optim import AdamW
    from engine.schedules import WarmupCosineLR
    from engine.train import fit
    from layers.gpt import GPT
    from train_gpt import TokenCrossEntropy

    vocab, train, valid, H = _corpus(True)
    cfg = dict(n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=16, lr=1e-2, warmup=10,
               steps=QUICK_STEPS, weight_decay=0.01, dropout=0.0)
    T = cfg["block_size"]
    X, Y = lm_windows(train, T, stride=T // 2)
    Xv, Yv = lm_windows(valid, T)
    model = GPT(len(vocab), T, n_layer=cfg["n_layer"], n_head=cfg["n_head"], n_embd=cfg["n_embd"], rng=seed)
    opt = AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.99), weight_decay=cfg["weight_decay"])
    sched = WarmupCosineLR(opt, cfg["warmup"], cfg["steps"], min_factor=0.1)
    h = fit(model, TokenCrossEntropy(), opt, X, Y, batch_size=cfg["batch_size"], validation_data=(Xv, Yv),
            seed=seed, progress=False, scheduler=sched, clip_grad_norm=1.0, max_steps=cfg["steps"],
            val_every=cfg["steps"] // 6)
    rng = np.random.default_rng(seed)
    start = np.array(vocab.encode("\n"))
    samples = [vocab.decode(model.generate(start, 120, temperature=TEMPERATURE, top_k=TOP_K, rng=rng)[1:], sep="")
               for _ in range(2)]
    return {"curve_step": list(h["curve_step"]), "curve_seconds": list(h["curve_seconds"]),
            "curve_val_loss": list(h["curve_val_loss"]), "val_nats": float(h["curve_val_loss"][-1]),
            "unigram_nats": H, "samples": samples, "steps": h.steps, "seconds": h.train_seconds,
            "config": cfg, "params": model.num_parameters()}


def _compile_gpt():
    """Two steps of a tiny float32 GPT through fit (AdamW, WarmupCosineLR, clipping) and an
    evaluation: Numba compiles the kernels the budgeted run needs (by dtype, not shape) here, so
    that compilation is not counted in its training clock."""
    from engine.data.text import char_corpus, lm_windows
    from engine.optim import AdamW
    from engine.schedules import WarmupCosineLR
    from engine.train import evaluate, fit
    from layers.gpt import GPT
    from train_gpt import TokenCrossEntropy

    vocab, train, _ = char_corpus()
    X, Y = lm_windows(train[:400], 8)
    model = GPT(len(vocab), 8, n_layer=1, n_head=2, n_embd=16, dtype=np.float32, rng=0)
    opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    fit(model, TokenCrossEntropy(), opt, X, Y, batch_size=4, max_steps=2, progress=False, clip_grad_norm=1.0,
        scheduler=WarmupCosineLR(opt, 1, 2))
    evaluate(model, TokenCrossEntropy(), X[:4], Y[:4], batch_size=4)
    model.generate(np.array([0]), 2, temperature=0.8, top_k=5, rng=0)


def _compile_lm(kind):
    """As `_compile_gpt` for one of train_char_lm's float32 models (two steps on a slice)."""
    import train_char_lm as lm
    from engine.data.text import char_corpus
    vocab, train, valid = char_corpus()
    cfg = dict(lm.PRESETS["default"]["models"][kind], steps=2, val_every=1, budget=600.0)
    lm.train_neural(kind, cfg, vocab, train[:20_000], valid[:2_000], np.float32, seed=0)


def _gpt_run(quick, budget):
    if quick:
        return _quick_gpt()
    from train_gpt import figure_run
    with num_threads_set_to(1):
        _compile_gpt()
        return figure_run(time_budget=budget, val_every=5)


# ---------------------------------------------------------------------------------------------
# 000 §9.3.2: a small decoder-only transformer
# ---------------------------------------------------------------------------------------------
@figure("transformer-lm", source="000 §9.3.2",
        caption="A decoder-only transformer (the engine's GPT: pre-LN causal layers: {n_layer}, heads: {n_head}, "
                "width {n_embd}, context {block_size}, output head tied to the token embedding) trained on the "
                "bundled text during the figure run: {steps} AdamW steps with warm-up + cosine schedule and "
                "clipping in {seconds:.1f} s of training clock ({mode}). Top: validation loss (nats per "
                "character) against the optimizer step; it ends at {val_nats:.3f} nats/char, {vs_unigram} the "
                "unigram entropy {unigram_nats:.3f} (the best loss without context; ln V = {log_v:.3f} is "
                "uniform guessing). Bottom: text sampled from it (temperature 0.8, top-k 20), starting after "
                "a newline.")
def transformer_lm(quick=False):
    vocab, _, _, H = _corpus(quick)
    r = _gpt_run(quick, GPT_BUDGET)
    cfg = r["config"]
    data = {"curve_seconds": np.array(r["curve_seconds"], float), "curve_step": np.array(r["curve_step"]),
            "curve_val_loss": np.array(r["curve_val_loss"], float), "val_nats": float(r["val_nats"]),
            "unigram_nats": H, "log_v": math.log(len(vocab)), "steps": int(r["steps"]),
            "seconds": float(r["seconds"]), "samples": [_text(s) for s in r["samples"]],
            "n_layer": cfg["n_layer"], "n_head": cfg["n_head"], "n_embd": cfg["n_embd"],
            "block_size": cfg["block_size"],
            "mode": (f"quick mode: a fixed {QUICK_STEPS} steps" if quick else
                     f"budget {GPT_BUDGET:g} s on one thread, the schedule sized to it from a measured step "
                     f"time; the number of steps depends on the machine and its load")}
    data["below_unigram"] = bool(data["val_nats"] < H)
    data["vs_unigram"] = "below" if data["below_unigram"] else "NOT below (too few steps in the budget)"

    fig = plt.figure(figsize=(6.5, 4.2))
    gs = fig.add_gridspec(2, 2, height_ratios=[1.0, 0.62], hspace=0.55, wspace=0.1)
    ax = fig.add_subplot(gs[0, :])
    t, v = data["curve_step"], data["curve_val_loss"]
    ax.plot(t, v, "o-", color=COLORS["transformer"], ms=3.5)
    ax.plot(t[-1:], v[-1:], "s", color=COLORS["transformer"], ms=6)
    grey = style.color("n-gram")
    ax.axhline(H, color=grey, ls="--", lw=1)
    ax.axhline(data["log_v"], color=grey, ls=":", lw=1)
    ax.set_xlim(0, t[-1] * 1.03)
    ax.set_ylim(min(v.min(), H) - 0.15, data["log_v"] + 0.25)
    ax.annotate("unigram entropy", (t[-1] * 1.03, H), xytext=(-2, 3), textcoords="offset points",
                ha="right", va="bottom", color=grey)
    ax.annotate("ln V (uniform)", (t[-1] * 1.03, data["log_v"]), xytext=(-2, 3), textcoords="offset points",
                ha="right", va="bottom", color=grey)
    ax.set_xlabel(f"optimizer step ({data['seconds']:.1f} s of training in all)")
    ax.set_ylabel("nats per character")
    ax.set_title("validation loss of a small GPT")
    for j, s in enumerate(data["samples"][:2]):
        axs = fig.add_subplot(gs[1, j])
        axs.axis("off")
        lines = []
        for ln in s.strip("\n").split("\n"):
            lines += textwrap.wrap(ln, 34, drop_whitespace=False) or [""]
        axs.text(0.0, 1.0, "\n".join(lines[:7]), family="monospace", fontsize=8, va="top", ha="left",
                 transform=axs.transAxes)
        axs.set_title(f"sample {j + 1}", loc="left")
    return fig, data


# ---------------------------------------------------------------------------------------------
# 000 §8: n-grams against neural language models
# ---------------------------------------------------------------------------------------------
QUICK_CFGS = {
    "ffnnlm": dict(context=4, emb=16, hidden=64, batch=64, lr=1e-2),
    "rnn": dict(emb=16, hidden=64, layers=1, batch=16, T=32, lr=1e-2),
    "lstm": dict(emb=16, hidden=64, layers=1, batch=16, T=32, lr=1e-2),
}
NEURAL = ("ffnnlm", "rnn", "lstm")


#: default mode: steps between validation points (train_char_lm's default preset otherwise)
VAL_EVERY = {"ffnnlm": 100, "rnn": 20, "lstm": 20, "gpt": 10}


def _lm_rows(quick):
    """(n-gram rows, neural rows) in train_char_lm's row format. Default mode: the default preset of
    train_char_lm (float32, whole corpus) with NEURAL_BUDGET seconds per model and validation points
    every VAL_EVERY steps, on the whole validation split."""
    import train_char_lm as lm
    vocab, train, valid, _ = _corpus(quick)
    ngrams = [r for r in lm.run_ngrams(vocab, train, valid, (1, 2, 3, 4, 5)) if r["kind"] == "ngram"]
    neural = []
    for kind in NEURAL:
        if quick:
            cfg = dict(QUICK_CFGS[kind], budget=600.0, steps=QUICK_STEPS, val_every=QUICK_STEPS // 6)
            neural.append(lm.train_neural(kind, cfg, vocab, train, valid, np.float64, seed=0))
        else:
            with num_threads_set_to(1):
                _compile_lm(kind)
                cfg = dict(lm.PRESETS["default"]["models"][kind], val_every=VAL_EVERY[kind])
                neural.append(lm.train_neural(kind, cfg, vocab, train, valid, np.float32, budget=NEURAL_BUDGET,
                                              seed=0))
    return ngrams, neural


def _gpt_curve(quick):
    """The GPT's validation curve and final loss: quick, the one-layer GPT of `_quick_gpt`; default,
    train_gpt's small GPT for NEURAL_BUDGET seconds (its schedule sized to the budget) with its
    curve on the whole validation split (as the other models')."""
    if quick:
        return _quick_gpt()
    from train_gpt import train
    with num_threads_set_to(1):
        _compile_gpt()
        r = train("small", budget_seconds=NEURAL_BUDGET, seed=0, progress=False, val_every=VAL_EVERY["gpt"],
                  curve_windows=10 ** 9, samples=0, log=lambda *a: None)
    h = r["history"]
    return {"curve_seconds": list(h["curve_seconds"]), "curve_val_loss": list(h["curve_val_loss"]),
            "val_nats": r["val_nats"]}


@figure("ngram-vs-neural-lm", source="000 §8, §9.3.2",
        caption="Character language models on one corpus (the bundled text, {split}): validation loss in nats "
                "per character against training time. Grey squares: interpolated modified Kneser–Ney n-grams, "
                "n = 1 … 5 (time to count and evaluate; the 5-gram reaches {ngram_best:.3f}). Lines: the "
                "FF-NNLM, an RNN, an LSTM and a GPT, each trained {budget_text}; their final losses "
                "({ffnnlm:.3f}, {rnn:.3f}, {lstm:.3f}, {transformer:.3f}) are {vs_unigram} the unigram entropy "
                "{unigram_nats:.3f}{shortfall}. With such a small budget the n-grams win; with train_char_lm.py --full "
                "the LSTM beats the best n-gram (the README's table).")
def ngram_vs_neural_lm(quick=False):
    _, _, _, H = _corpus(quick)
    ngrams, neural = _lm_rows(quick)
    gpt = _gpt_curve(quick)
    data = {"unigram_nats": H, "quick": bool(quick),
            "split": ("first 100,000 training and 4,096 validation characters" if quick else
                      "90 % training, the whole 10 % validation split"),
            "budget_text": (f"for {QUICK_STEPS} steps (quick mode)" if quick else
                            f"for {NEURAL_BUDGET:g} s of training clock on one thread (machine-dependent; "
                            f"the GPT's warm-up + cosine schedule sized to it)"),
            "ngram_orders": np.array([r["order"] for r in ngrams]),
            "ngram_nats": np.array([r["val_nats"] for r in ngrams]),
            "ngram_seconds": np.array([r["seconds"] for r in ngrams])}
    data["ngram_best"] = float(data["ngram_nats"].min())
    curves = {}
    for r in neural:
        curves[r["name"]] = (np.array(r["curve_seconds"], float), np.array(r["curve_val_nats"], float))
        data[r["name"].lower().replace("-", "")] = float(r["val_nats"])
    curves["transformer"] = (np.array(gpt["curve_seconds"], float), np.array(gpt["curve_val_loss"], float))
    data["transformer"] = float(gpt["val_nats"])
    for name, (t, v) in curves.items():
        key = name.lower().replace("-", "")
        data[f"{key}_seconds"], data[f"{key}_curve"] = t, v
    data["neural_names"] = ["FF-NNLM", "RNN", "LSTM", "transformer"]
    data["neural_final"] = np.array([data[k] for k in ("ffnnlm", "rnn", "lstm", "transformer")])
    below = data["neural_final"] < H
    data["all_below_unigram"] = bool(below.all())
    data["vs_unigram"] = "all below" if below.all() else "not all below"
    data["shortfall"] = ("" if below.all() else " (too few steps within the budget on this machine for: " +
                         ", ".join(n for n, b in zip(data["neural_names"], below) if not b) + ")")

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for name, (t, v) in curves.items():
        label = "GPT (transformer)" if name == "transformer" else name
        ax.plot(t, v, "o-", color=COLORS[name], ms=3, lw=1.3, label=label)
    ax.plot(data["ngram_seconds"], data["ngram_nats"], "s", color=COLORS["n-gram"], ms=5,
            label="n-gram (KN)")
    for n, t, v in zip(data["ngram_orders"], data["ngram_seconds"], data["ngram_nats"]):
        ax.annotate(f"n = {n}", (t, v), xytext=(4, 2), textcoords="offset points", fontsize=8,
                    color=COLORS["n-gram"])
    ax.axhline(H, color=style.color("n-gram"), ls="--", lw=1, label="unigram entropy")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 3.0)))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("validation loss (nats per character)")
    ax.set_title("n-gram and neural language models")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig, data
