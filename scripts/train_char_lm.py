"""Character language models on the bundled corpus (issue 12, item 9; notes 000 §8): count-based
n-gram baselines against the FF-NNLM and RNN, GRU and LSTM language models trained through
engine.fit, compared by validation cross-entropy (nats and bits per character) and training time,
with text sampled from each at a temperature.

    python scripts/train_char_lm.py                   # small and fast: 154 s on 2 cores (25 s per neural model)
    python scripts/train_char_lm.py --full            # the LSTM beats the best n-gram: 74 min on 2 cores

Measured 2026-12-06 on the 2-core Intel Xeon VM, shared with other jobs (load average 10-14):
--full: 5-gram KN 1.561 nats/char; the 2 x 256 LSTM 1.498 after 3,301 s of training (3,252 steps
of 32 x 64 characters, 6.6 epochs; below the 5-gram from about 1,700 s on); the FF-NNLM, RNN and
GRU with 180 s each 2.048, 1.928, 1.847. Default: the neural models with 25 s each stay above
the 3-gram.
    python scripts/train_char_lm.py --json lm.json    # the results, with each model's validation
                                                      # curve against training time (figure ngram-vs-neural-lm)
    python scripts/train_char_lm.py --models lstm ngram --budget 60

Data: engine.data.text.char_corpus(), the 65 characters of tiny Shakespeare, first 90 % for
training, last 10 % for validation. The n-grams (engine.ngram) are interpolated modified
Kneser–Ney, n = 1 … 5 (an add-k 5-gram is printed too, as the weaker baseline it is). The neural
models train with Adam, gradient clipping and a cosine learning-rate decay over their step
budget, each within a training-time budget (fit's time_budget: evaluations not counted); the
recurrent ones on B parallel streams with the state carried (truncated BPTT, fit on a
BPTTBatches), the FF-NNLM on (previous n − 1 characters, next character) windows. Every neural
model's validation loss is measured on the whole validation text (the recurrent models with their
state carried through it) every `val_every` steps and at the end.

`run_models(budget_seconds, models=...)` is what a figure calls; it returns the rows the JSON holds.
"""
import argparse
import datetime
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.data.text import bptt_batches, char_corpus, ngram_windows  # noqa: E402
from engine.losses import CrossEntropyLoss  # noqa: E402
from engine.ngram import AddKLM, KneserNeyLM  # noqa: E402
from engine.optim import Adam  # noqa: E402
from engine.sampling import generate  # noqa: E402
from engine.schedules import CosineAnnealingLR  # noqa: E402
from engine.train import fit  # noqa: E402
from layers.language_models import FFNNLM, RecurrentLM  # noqa: E402

NEURAL = ("ffnnlm", "rnn", "gru", "lstm")
MODELS = ("ngram",) + NEURAL
LABEL = {"ffnnlm": "FF-NNLM", "rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}

# Per preset: data (None = all), the n-gram orders, and per neural model its architecture, batch
# layout, optimiser settings, training budget in seconds (--budget overrides it) and the number of
# steps between validation points. With "steps" the run stops there (or at the budget) and the
# cosine decay spans those steps (tiny: reproducible); without, it spans the time budget.
PRESETS = {
    "tiny": dict(train_chars=20_000, valid_chars=1_500, dtype="float64", orders=(1, 2, 3, 4, 5), models={
        "ffnnlm": dict(context=4, emb=8, hidden=16, batch=64, lr=1e-2, budget=60.0, steps=12, val_every=6),
        "rnn": dict(emb=8, hidden=16, layers=1, batch=8, T=16, lr=1e-2, budget=60.0, steps=12, val_every=6),
        "gru": dict(emb=8, hidden=16, layers=1, batch=8, T=16, lr=1e-2, budget=60.0, steps=12, val_every=6),
        "lstm": dict(emb=8, hidden=16, layers=1, batch=8, T=16, lr=1e-2, budget=60.0, steps=12, val_every=6),
    }),
    "default": dict(train_chars=None, valid_chars=None, dtype="float32", orders=(1, 2, 3, 4, 5), models={
        "ffnnlm": dict(context=4, emb=16, hidden=256, batch=256, lr=2e-3, budget=25.0, val_every=300),
        "rnn": dict(emb=32, hidden=128, layers=1, batch=32, T=64, lr=3e-3, budget=25.0, val_every=100),
        "gru": dict(emb=32, hidden=128, layers=1, batch=32, T=64, lr=3e-3, budget=25.0, val_every=60),
        "lstm": dict(emb=32, hidden=128, layers=1, batch=32, T=64, lr=3e-3, budget=25.0, val_every=60),
    }),
    "full": dict(train_chars=None, valid_chars=None, dtype="float32", orders=(1, 2, 3, 4, 5), models={
        "ffnnlm": dict(context=7, emb=24, hidden=512, batch=256, lr=2e-3, budget=180.0, val_every=1000),
        "rnn": dict(emb=32, hidden=256, layers=1, batch=32, T=64, lr=2e-3, budget=180.0, val_every=200),
        "gru": dict(emb=32, hidden=256, layers=1, batch=32, T=64, lr=2e-3, budget=180.0, val_every=200),
        "lstm": dict(emb=64, hidden=256, layers=2, batch=32, T=64, lr=2e-3, budget=3300.0, val_every=300),
    }),
}


class BudgetCosine:
    """Cosine decay of the learning rate over a time budget, stepped by fit after every optimizer
    step: lr = η_min + (lr_0 − η_min)(1 + cos(π min(1, t / budget)))/2 with t the wall seconds
    since the first step (evaluations included, so η_min is reached a little before the training
    clock hits the budget). A step-count schedule would end wherever the machine's load puts the
    last step; this one ends at η_min whatever the load (the run is then not bit-reproducible,
    as no run under a time budget is)."""

    def __init__(self, optimizer, budget, eta_min):
        self.optimizer, self.budget, self.eta_min = optimizer, float(budget), float(eta_min)
        self.base_lr = float(optimizer.lr)
        self.start = None

    def step(self):
        now = time.perf_counter()
        if self.start is None:
            self.start = now
        frac = min(1.0, (now - self.start) / self.budget)
        self.optimizer.lr = self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * frac)) / 2


def machine():
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"cpu": cpu, "cores": os.cpu_count(), "load_at_start": load, "python": platform.python_version()}


def _data(preset):
    vocab, train, valid = char_corpus()
    if preset["train_chars"]:
        train = train[:preset["train_chars"]]
    if preset["valid_chars"]:
        valid = valid[:preset["valid_chars"]]
    return vocab, train, valid


def _row(name, kind, nats, seconds, **extra):
    return dict(name=name, kind=kind, val_nats=float(nats), val_bits=float(nats) / math.log(2),
                seconds=float(seconds), **extra)


def _sample(vocab, step_fn, prompt, n, temperature, seed):
    if n <= 0:
        return ""
    ids = generate(step_fn, vocab.encode(prompt), n, temperature=temperature, rng=seed)
    return vocab.decode(ids, sep="")


def run_ngrams(vocab, train, valid, orders, sample_chars=0, temperature=0.8, prompt="ROMEO:\n", seed=0):
    """Kneser–Ney rows for each order, and the add-k 5-gram (k = 0.1) as a comparison row."""
    rows = []
    for n in orders:
        t0 = time.perf_counter()
        lm = KneserNeyLM(n, len(vocab)).fit(train)
        nats = lm.cross_entropy(valid)
        rows.append(_row(f"{n}-gram (KN)", "ngram", nats, time.perf_counter() - t0, order=n,
                         sample=_sample(vocab, lm.step_fn(), prompt, sample_chars, temperature, seed)))
    if 5 in orders:
        t0 = time.perf_counter()
        nats = AddKLM(5, len(vocab), k=0.1).fit(train).cross_entropy(valid)
        rows.append(_row("5-gram (add-0.1)", "ngram-addk", nats, time.perf_counter() - t0, order=5))
    return rows


def train_neural(kind, cfg, vocab, train, valid, dtype, budget=None, seed=0, progress=False, sample_chars=0,
                 temperature=0.8, prompt="ROMEO:\n"):
    """Train one neural model within its budget through engine.fit; its row (with the curve)."""
    V = len(vocab)
    rng = np.random.default_rng(seed)
    budget = cfg["budget"] if budget is None else budget
    loss = CrossEntropyLoss()
    if kind == "ffnnlm":
        model = FFNNLM(V, cfg["context"], cfg["emb"], cfg["hidden"], dtype=dtype, rng=rng)
        X, y = ngram_windows(train, cfg["context"])
        data = dict(X=X, y=y, batch_size=cfg["batch"], validation_data=ngram_windows(valid, cfg["context"]))
    else:
        model = RecurrentLM(V, cfg["emb"], cfg["hidden"], num_layers=cfg["layers"], mode=kind.upper(),
                            dropout=cfg.get("dropout", 0.0), dtype=dtype, rng=rng)
        data = dict(X=bptt_batches(train, cfg["batch"], cfg["T"]),
                    validation_data=bptt_batches(valid, min(cfg["batch"], 32), cfg["T"]))
    opt = Adam(model.parameters(), lr=cfg["lr"])
    if cfg.get("steps"):        # a fixed number of steps: cosine over them (reproducible)
        sched = CosineAnnealingLR(opt, T_max=cfg["steps"], eta_min=cfg["lr"] / 20)
    else:                       # a time budget: cosine over it
        sched = BudgetCosine(opt, budget, eta_min=cfg["lr"] / 20)
    h = fit(model, loss, opt, epochs=None, time_budget=budget, max_steps=cfg.get("steps"), scheduler=sched,
            clip_grad_norm=1.0, val_every=cfg["val_every"], seed=seed, progress=progress, **data)
    prompt_ids = prompt if kind != "ffnnlm" or len(prompt) >= cfg["context"] else prompt.rjust(cfg["context"])
    params = int(sum(p.value.size for p in model.parameters()))
    return _row(LABEL[kind], "neural", h["curve_val_loss"][-1], h.train_seconds, steps=h.steps,
                stopped=h.stopped, epochs=h.steps / (len(data["X"]) if kind != "ffnnlm" else
                                                     math.ceil(len(data["y"]) / cfg["batch"])),
                params=params, config=cfg, curve_seconds=[float(s) for s in h["curve_seconds"]],
                curve_steps=list(h["curve_step"]), curve_val_nats=[float(v) for v in h["curve_val_loss"]],
                wall_seconds=h.seconds,
                sample=_sample(vocab, model.step_fn(), prompt_ids, sample_chars, temperature, seed))


def run_models(budget_seconds=None, models=MODELS, preset="default", seed=0, progress=False, sample_chars=0,
               temperature=0.8, log=None):
    """Train and evaluate `models` (a subset of MODELS, run in that order) on the bundled corpus
    with `preset`'s settings; `budget_seconds` (if given) replaces every neural model's training
    budget. Returns the rows: name, kind, val_nats, val_bits, seconds (training; for the n-grams
    counting and evaluating), and for neural models steps, params, the curve (curve_seconds,
    curve_val_nats) and the settings. `log` (a callable) gets each row as it is done."""
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise ValueError(f"models: expected names from {list(MODELS)}, got {bad}")
    if budget_seconds is not None and not budget_seconds > 0:
        raise ValueError(f"budget_seconds: expected a positive number of seconds, got {budget_seconds!r}")
    P = PRESETS[preset]
    vocab, train, valid = _data(P)
    dtype = np.dtype(P["dtype"]).type
    rows = []
    for m in models:
        if m == "ngram":
            new = run_ngrams(vocab, train, valid, P["orders"], sample_chars, temperature, seed=seed)
        else:
            new = [train_neural(m, P["models"][m], vocab, train, valid, dtype, budget_seconds, seed, progress,
                                sample_chars, temperature)]
        for r in new:
            rows.append(r)
            if log is not None:
                log(r)
    return rows


def table(rows):
    order = {name: i for i, name in enumerate(
        [f"{n}-gram (KN)" for n in range(1, 10)] + ["5-gram (add-0.1)"] + [LABEL[k] for k in NEURAL])}
    lines = [f"{'model':18s} {'val nats/char':>13s} {'bits/char':>9s} {'train s':>8s} {'steps':>6s} {'params':>8s}"]
    for r in sorted(rows, key=lambda r: order.get(r["name"], 99)):
        lines.append(f"{r['name']:18s} {r['val_nats']:13.4f} {r['val_bits']:9.4f} {r['seconds']:8.1f} "
                     f"{r.get('steps', ''):>6} {r.get('params', ''):>8}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--full", action="store_true", help="the long setting (tens of minutes): the LSTM beats the n-grams")
    g.add_argument("--tiny", action="store_true", help="seconds, on a slice of the corpus (smoke test)")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="what to run, in this order")
    ap.add_argument("--budget", type=float, default=None, help="training seconds per neural model (overrides the preset)")
    ap.add_argument("--sample-chars", type=int, default=200, help="characters sampled from each model (0: none)")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results (with the validation curves) here")
    ap.add_argument("--progress", action="store_true", help="a progress bar per model")
    args = ap.parse_args(argv)
    preset = "full" if args.full else "tiny" if args.tiny else "default"
    info = dict(date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                machine=machine(), preset=preset)
    print(f"{preset} setting, {info['date']}, {info['machine']['cpu']} ({info['machine']['cores']} cores, "
          f"load {info['machine']['load_at_start']})", flush=True)

    def log(r):
        extra = f", {r['steps']} steps ({r['stopped']}), {r['params']} parameters" if r["kind"] == "neural" else ""
        print(f"{r['name']}: {r['val_nats']:.4f} nats/char, {r['val_bits']:.4f} bits/char, "
              f"{r['seconds']:.1f} s{extra}", flush=True)
        if r.get("sample"):
            print("  sample: " + r["sample"].replace("\n", "\n          "), flush=True)
    t0 = time.perf_counter()
    rows = run_models(args.budget, args.models, preset, args.seed, args.progress, args.sample_chars,
                      args.temperature, log=log)
    info["total_seconds"] = time.perf_counter() - t0
    print()
    print(table(rows))
    best = min((r for r in rows if r["kind"] == "ngram"), key=lambda r: r["val_nats"], default=None)
    lstm = next((r for r in rows if r["name"] == "LSTM"), None)
    if best and lstm:
        verdict = "below" if lstm["val_nats"] < best["val_nats"] else "NOT below"
        print(f"\nLSTM {lstm['val_nats']:.4f} nats/char: {verdict} the best n-gram ({best['name']}, "
              f"{best['val_nats']:.4f})")
    print(f"total {info['total_seconds']:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(info, results=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
