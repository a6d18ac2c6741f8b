"""Recurrent networks (004 §5.1–5.2, 000 §8 Fig 8.3, 003 §2.3–2.5): sensitivity to distant inputs,
LSTM gates along a line of text, and the three ways of wiring an RNN to a task.

Every number comes from the engine: Jacobians through time from `analysis.gradients`
(`input_jacobian_trace`, one forward and backward of the layer itself), gates from
`analysis.recurrent.lstm_gates` (recomputed from the LSTM's parameters and checked against its
outputs), models trained by `engine.fit` or a plain Adam loop on the bundled corpus.
"""
import functools
import time

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from analysis.gradients import input_jacobian_trace, log_slope, orthogonal_rnn
from analysis.recurrent import lstm_gates
from engine.core import Layer, no_grad
from engine.threads import num_threads_set_to
from figures import style
from figures.registry import figure
from layers.recurrent import GRU, LSTM, RNN

_O = style.OKABE_ITO

# The figures train and run small recurrent layers (batches of 8–50 rows, 16–32 units) on one thread
# (`num_threads_set_to(1)`): a second thread has little to do and, on a busy machine, makes every
# step wait for it (lstm-gates: 26 s on two threads, 4–5 s on one, 2-vCPU VM under load, 2026-12-06).


# ---------------------------------------------------------------------------------------------
# rnn-sensitivity
# ---------------------------------------------------------------------------------------------
RHOS = (0.8, 0.9, 1.0, 1.1)


def _num(v, digits=3):
    """v with a typographic minus and no negative zero."""
    return f"{v:.{digits}f}".replace("-", "−").replace("−0.000", "0.000")


def _key(rho):
    return f"{int(round(rho * 100)):03d}"


def _lstm_with_forget_bias(I, H, bias, rng):
    """torch's default LSTM with the forget gate's two biases set so that b_if + b_hf = bias."""
    lstm = LSTM(I, H, rng=rng)
    sd = lstm.state_dict()
    for k in ("bias_ih_l0", "bias_hh_l0"):
        sd[k][H:2 * H] = bias / 2
    lstm.load_state_dict(sd)
    return lstm


def sensitivity_data(quick=False):
    """‖∂h_T/∂x_t‖_F against T − t: RNNs with Ω_h = ρQ in the linear regime (inputs ~1e-4) for
    ρ in RHOS, and, on unit-scale inputs, a default tanh RNN and LSTMs with forget bias 0 and +3."""
    T, H, I, N = (25, 16, 4, 4) if quick else (60, 32, 8, 16)
    rng = np.random.default_rng(0)
    x_small = 1e-4 * rng.normal(size=(T, N, I))
    x_unit = rng.normal(size=(T, N, I))
    out = {"T": T, "H": H, "I": I, "N": N, "rhos": np.array(RHOS)}
    for rho in RHOS:
        tr = input_jacobian_trace(orthogonal_rnn(H, rho, input_size=I, rng=1), x_small)
        out["lag"] = tr.lag
        out[f"rnn_{_key(rho)}"] = tr.norm / tr.norm[-1]          # relative to T − t = 0
        out[f"slope_{_key(rho)}"] = round(log_slope(tr.lag, tr.norm), 6) + 0.0   # no −0 in the caption
        out[f"lnrho_{_key(rho)}"] = float(np.log(rho))
    out["max_slope_error"] = max(abs(out[f"slope_{_key(r)}"] - np.log(r)) for r in RHOS)
    models = {"rnn_default": RNN(I, H, rng=2), "rnn_q_unit": orthogonal_rnn(H, 1.0, input_size=I, rng=1),
              "lstm_default": _lstm_with_forget_bias(I, H, 0.0, 3),
              "lstm_forget3": _lstm_with_forget_bias(I, H, 3.0, 3)}
    for name, layer in models.items():
        tr = input_jacobian_trace(layer, x_unit)
        out[name] = tr.norm / tr.norm[-1]
        out[f"slope_{name}"] = log_slope(tr.lag[:-1], tr.norm[:-1])      # the step t = T itself aside
        if name.startswith("lstm"):
            out[f"mean_forget_{name}"] = float(lstm_gates(layer, x_unit).forget.mean())
    return out


@figure("rnn-sensitivity", source="004 §5.1.3",
        caption="How strongly the last hidden state h_T still depends on the input x_t, t steps back: "
                "‖∂h_T/∂x_t‖ (Frobenius norm, exact from the layer's backward, RMS over {N} sequences, "
                "relative to t = T). Left, an RNN with recurrent weights ρQ (Q orthogonal) on tiny inputs, "
                "where tanh is linear: the log-norm falls on a line of slope ln ρ (measured {slope_080:.4f}, "
                "{slope_090:.4f}, {slope_100:.4f}, {slope_110:.4f} against ln ρ = −0.2231, −0.1054, 0, 0.0953), "
                "vanishing for ρ < 1, exploding for ρ > 1. Right, unit-scale inputs: saturated tanh "
                "(tanh′ < 1) forgets even at ρ = 1 (slope {slope_rnn_q_unit:.3f} per step) and so does "
                "a default RNN ({slope_rnn_default:.3f}); an LSTM forgets at the pace of its forget gates, "
                "slowly when they are held open by a bias of +3 (mean f {mean_forget_lstm_forget3:.2f}, "
                "slope {slope_lstm_forget3:.3f}) and fast at torch's default initialisation (mean f "
                "{mean_forget_lstm_default:.2f}, slope {slope_lstm_default:.3f}).")
def rnn_sensitivity(quick=False):
    with num_threads_set_to(1):
        d = sensitivity_data(quick)
    lag = d["lag"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(6.5, 3.3))
    colours = [_O["bluish green"], _O["blue"], _O["black"], _O["vermillion"]]
    for rho, c in zip(RHOS, colours):
        k = _key(rho)
        a1.semilogy(lag, rho ** lag.astype(float), "-", color=c, lw=0.9, alpha=0.7)
        a1.semilogy(lag[::3], d[f"rnn_{k}"][::3], "o", color=c, ms=3.5)
        a1.annotate(rf"$\rho$ = {rho:g}" + f"\nslope {_num(d[f'slope_{k}'])}", (lag[0], d[f"rnn_{k}"][0]),
                    xytext=(5, 0), textcoords="offset points", color=c, fontsize=8, va="center")
    a1.set_xlim(-2, 1.3 * lag[0])
    a1.text(0.03, 0.04, "markers: measured\n" + r"lines: $\rho^{T-t}$", transform=a1.transAxes, fontsize=8)
    a1.set_title(r"RNN, $\Omega_h = \rho Q$, linear regime")
    a1.set_xlabel(r"$T - t$ (steps back)")
    a1.set_ylabel(r"$\Vert\partial h_T/\partial x_t\Vert_F$ (relative to $t = T$)")
    # right: labels inline (line, label, colour, style, where the label sits: a fraction of the
    # lags or the level the line crosses, and the side of the line)
    lines = (("lstm_forget3", "LSTM, forget bias +3", style.color("lstm"), "--", ("x", 0.45), "above"),
             ("rnn_q_unit", r"RNN, $\Omega_h = Q$", style.color("rnn"), "--", ("x", 0.7), "below"),
             ("lstm_default", "LSTM,\ndefault init", style.color("lstm"), "-", ("y", 1e-8), "right"),
             ("rnn_default", "RNN,\ndefault init", style.color("rnn"), "-", ("y", 1e-10), "left"))
    for name, label, c, ls, (how, where), side in lines:
        v = d[name][::-1]                                     # by lag 0, 1, …
        a2.semilogy(lag[::-1], v, ls, color=c)
        sep = "\n" if "\n" in label or how == "y" or side == "below" else ": "
        i = int(round(where * (len(v) - 1))) if how == "x" else int(np.argmin(np.abs(np.log(v) - np.log(where))))
        off = {"above": (0, 5), "below": (0, -8), "right": (8, 0), "left": (-12, 0)}[side]
        a2.annotate(f"{label}{sep}slope {_num(d['slope_' + name])}", (i, v[i]), xytext=off,
                    textcoords="offset points", color=c, fontsize=8,
                    ha={"right": "left", "left": "right"}.get(side, "center"),
                    va={"above": "bottom", "below": "top"}.get(side, "center"))
    a2.set_title("unit-scale inputs: RNN vs LSTM")
    a2.set_xlabel(r"$T - t$ (steps back)")
    a2.set_ylim(1e-13, 30)
    fig.tight_layout()
    return fig, d


# ---------------------------------------------------------------------------------------------
# lstm-gates
# ---------------------------------------------------------------------------------------------
class CharLSTM(Layer):
    """Embedding → LSTM → Linear, time-major: ids (T, N) -> logits (T·N, V)."""

    def __init__(self, V, E, H, rng, dtype=np.float64):
        from layers import Embedding, Linear
        rng = np.random.default_rng(rng)
        self.emb = Embedding(V, E, rng=rng, dtype=dtype)
        self.lstm = LSTM(E, H, rng=rng, dtype=dtype)
        self.head = Linear(H, V, rng=rng, dtype=dtype)
        self.V, self.H = V, H

    def forward(self, idx, train=True):
        y, _ = self.lstm.forward(self.emb.forward(idx, train=train), train=train)
        T, N, _ = y.shape
        self._save(T, N)
        return self.head.forward(y.reshape(T * N, self.H), train=train)

    def backward(self, dlogits, *, input_grad=True):
        T, N = self._saved()
        self._release()
        dy = self.head.backward(dlogits).reshape(T, N, self.H)
        self.emb.backward(self.lstm.backward(dy))


def _windows(ids, starts, T):
    idx = starts[None, :] + np.arange(T)[:, None]
    return ids[idx], ids[idx + 1]


@functools.lru_cache(maxsize=1)
def _char_corpus():
    """engine.data.text.char_corpus(), read and encoded once per process (about 1 s)."""
    from engine.data.text import char_corpus
    return char_corpus()


def train_char_lstm(steps, batch, T, H, E=16, lr=0.02, seed=0):
    """A character LSTM (float64) trained by Adam (gradients clipped to norm 1) on random windows
    of the bundled corpus's training split; returns (model, vocab, valid ids, record)."""
    from engine.losses import CrossEntropyLoss
    from engine.optim import Adam, clip_grad_norm
    vocab, train_ids, valid_ids = _char_corpus()
    model = CharLSTM(len(vocab), E, H, rng=seed)
    opt, loss = Adam(model.parameters(), lr=lr), CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    losses = []
    start = time.perf_counter()
    for _ in range(steps):
        x, y = _windows(train_ids, rng.integers(0, len(train_ids) - T - 1, batch), T)
        model.zero_grad()
        losses.append(float(loss.forward(model.forward(x), y.reshape(-1))))
        model.backward(loss.backward())
        clip_grad_norm(model.parameters(), 1.0)
        opt.step()
    seconds = time.perf_counter() - start
    x, y = _windows(valid_ids, np.arange(0, 64 * 100, 100), 100)       # 64 validation windows
    with no_grad():
        val = float(loss.forward(model.forward(x, train=False), y.reshape(-1)))
    counts = np.bincount(train_ids, minlength=len(vocab)).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return model, vocab, valid_ids, {"train_loss": np.array(losses), "val_loss": val, "seconds": seconds,
                                     "unigram_entropy": float(-(p * np.log(p)).sum())}


def _pick_line(text, lo, hi):
    """The first line of the text of lo..hi characters without '$' (mathtext) in it."""
    for line in text.split("\n"):
        if lo <= len(line) <= hi and "$" not in line and line.strip() == line:
            return line
    return text[:hi]


def _char_label(ch):
    return "␣" if ch == " " else ch


@figure("lstm-gates", source="004 §5.2",
        caption="Gates of a character LSTM ({H} units) along a line of the validation text, "
                "recomputed from its parameters (analysis.recurrent.lstm_gates, equal to the layer's own "
                "states). The model was trained here for {steps} Adam steps ({batch} windows of {T_train} "
                "characters, {seconds:.1f} s on this machine) to a validation loss of {val_loss:.2f} nats per "
                "character (unigram entropy {unigram_entropy:.2f}). Rows are units, sorted by their mean "
                "forget gate; every gate lies in (0, 1) (smallest {gate_min:.1e}, largest 1 − {gate_gap:.1e}). "
                "Forget gates near 1 keep a unit's cell across characters, an input gate near 1 writes the "
                "proposal into it, an output gate near 1 shows it in h_t. Mean forget gate over units and line: "
                "{mean_forget:.2f}.")
def lstm_gates_figure(quick=False):
    steps, batch, T, H = (20, 8, 32, 16) if quick else (300, 16, 48, 32)
    with num_threads_set_to(1):
        model, vocab, valid_ids, rec = train_char_lstm(steps, batch, T, H)
    text = vocab.decode(valid_ids[:20000], sep="")
    line = _pick_line(text, 40, 46)
    ids = vocab.encode(line)
    with no_grad():
        emb = model.emb.forward(ids[:, None], train=False)                 # (L, 1, E)
    g = lstm_gates(model.lstm, emb)
    gates = {"forget": g.forget[0, :, 0].T, "input": g.input[0, :, 0].T, "output": g.output_gate[0, :, 0].T}
    order = np.argsort(gates["forget"].mean(axis=1))[::-1]
    # the LSTM's own outputs for the same line: the recomputed hidden states must equal them
    with no_grad():
        y, _ = model.lstm.forward(emb, train=False)
    h_error = float(np.max(np.abs(g.hidden[0] - y)))
    fig, axes = plt.subplots(3, 1, figsize=(6.5, 5.4), sharex=True, layout="constrained")
    names = (("forget", r"forget gate $f_t$"), ("input", r"input gate $i_t$"), ("output", r"output gate $o_t$"))
    for ax, (k, title) in zip(axes, names):
        im = ax.imshow(gates[k][order], aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title)
        ax.set_ylabel("unit")
        ax.set_yticks([0, H - 1])
        ax.set_yticklabels(["1", str(H)])
        ax.tick_params(axis="x", length=0)
    axes[-1].set_xticks(np.arange(len(line)))
    axes[-1].set_xticklabels([_char_label(c) for c in line], fontsize=8, family="monospace")
    axes[-1].tick_params(axis="x", length=0)
    axes[-1].set_xlabel("character of the line (␣ = space)")
    fig.colorbar(im, ax=list(axes), fraction=0.03, pad=0.02, label="gate value")
    all_g = np.concatenate([gates[k].ravel() for k in gates])
    data = {"H": H, "steps": steps, "batch": batch, "T_train": T, "seconds": rec["seconds"],
            "val_loss": rec["val_loss"], "unigram_entropy": rec["unigram_entropy"],
            "train_loss": rec["train_loss"], "line": line, "forget": gates["forget"], "input": gates["input"],
            "output": gates["output"], "order": order, "gate_min": float(all_g.min()),
            "gate_max": float(all_g.max()), "gate_gap": float(1.0 - all_g.max()),
            "mean_forget": float(gates["forget"].mean()), "h_error": h_error}
    return fig, data


# ---------------------------------------------------------------------------------------------
# rnn-types
# ---------------------------------------------------------------------------------------------
class SeqNet(Layer):
    """A GRU read out by a Linear layer, wired as 000 Fig 8.3: x (N, T, I) batch-first ->
    logits (N, C) from the last step ("many-to-one") or (N, C, T) from every step ("one-to-many",
    "many-to-many"; the input of one-to-many is zero after its first step)."""

    def __init__(self, wiring, input_size, hidden_size, classes, rng):
        from layers import Linear
        rng = np.random.default_rng(rng)
        self.wiring = wiring
        self.rnn = GRU(input_size, hidden_size, batch_first=True, rng=rng)
        self.head = Linear(hidden_size, classes, rng=rng)
        self.H, self.C = hidden_size, classes

    def forward(self, x, train=True):
        y, _ = self.rnn.forward(x, train=train)                         # (N, T, H)
        N, T, H = y.shape
        self._save(N, T)
        if self.wiring == "many-to-one":
            return self.head.forward(np.ascontiguousarray(y[:, -1]), train=train)
        f = self.head.forward(y.reshape(N * T, H), train=train).reshape(N, T, self.C)
        return np.ascontiguousarray(f.transpose(0, 2, 1))                # (N, C, T)

    def backward(self, df, *, input_grad=True):
        N, T = self._saved()
        self._release()
        if self.wiring == "many-to-one":
            dy = np.zeros((N, T, self.H), df.dtype)
            dy[:, -1] = self.head.backward(df)
        else:
            dy = self.head.backward(np.ascontiguousarray(df.transpose(0, 2, 1)).reshape(N * T, self.C))
            dy = dy.reshape(N, T, self.H)
        return self.rnn.backward(dy, input_grad=input_grad)


IGNORE = -100      # CrossEntropyLoss's ignore_index: steps without a target
#: wiring -> (task, steps T, where the inputs are, where the outputs are)
TASKS = {
    "one-to-many": dict(T=6, title="bits of a number",
                        text=r"$x_1 = a \in [0, 1)$; $y_t$ = bit $t$ of $a$"),
    "many-to-one": dict(T=12, title="sign of a sum", text=r"$x_t \sim N(0, 1)$; $y = [\Sigma_t\, x_t > 0]$"),
    "many-to-many": dict(T=12, title="echo, 2 steps late", text=r"bits $x_t$; $y_t = x_{t-2}$"),
}


def make_task(wiring, n, rng):
    """(x (n, T, 1), labels): one-to-many (n,T) bits of a ∈ [0, 1) fed as 2a − 1 at step 1 only;
    many-to-one (n,) sign of Σ x_t; many-to-many (n, T) y_t = x_{t−2} for ±1 bits (IGNORE at
    the first two steps)."""
    T = TASKS[wiring]["T"]
    if wiring == "one-to-many":
        a = rng.random(n)
        x = np.zeros((n, T, 1))
        x[:, 0, 0] = 2 * a - 1
        y = (np.floor(a[:, None] * 2.0 ** np.arange(1, T + 1)) % 2).astype(np.int64)
    elif wiring == "many-to-one":
        x = rng.normal(size=(n, T, 1))
        y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    else:
        b = rng.integers(0, 2, (n, T))
        x = (2.0 * b - 1)[:, :, None]
        y = np.full((n, T), IGNORE, np.int64)
        y[:, 2:] = b[:, :-2]
    return x, y


def train_types(quick=False):
    """Each wiring trained by engine.fit on its task (Adam, GRU of 16 units), scored on fresh data:
    {wiring: {"accuracy", "per_step" (per output step, NaN where there is no target), "chance",
    "loss", "seconds"}}."""
    import engine
    from engine.losses import CrossEntropyLoss
    from engine.optim import Adam
    from engine.train import predict
    n_train, n_test, epochs = (400, 400, 3) if quick else (2000, 1000, 10)
    out = {}
    for k, wiring in enumerate(TASKS):
        rng = np.random.default_rng(10 + k)
        X, y = make_task(wiring, n_train, rng)
        Xt, yt = make_task(wiring, n_test, rng)
        net = SeqNet(wiring, 1, 16, 2, rng=k)
        start = time.perf_counter()
        hist = engine.fit(net, CrossEntropyLoss(ignore_index=IGNORE), Adam(net.parameters(), lr=0.02), X, y,
                          epochs=epochs, batch_size=50, seed=k, progress=False)
        seconds = time.perf_counter() - start
        pred = predict(net, Xt).argmax(axis=1)
        ok, m = (pred == yt), yt != IGNORE
        per = ok.astype(float)[None] if ok.ndim == 1 else \
            np.array([ok[:, t][m[:, t]].mean() if m[:, t].any() else np.nan for t in range(yt.shape[1])])
        out[wiring] = {"accuracy": float(ok[m].mean()), "per_step": per if ok.ndim == 2 else ok.mean(keepdims=True),
                       "chance": 0.5, "loss": float(hist["loss"][-1]), "seconds": seconds}
    return out


def _box(ax, x, y, text, colour, w=0.72, h=0.5):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                fc=colour, ec="none", alpha=0.9))
    ax.text(x, y, text, ha="center", va="center", fontsize=8, color="white")


def _arrow(ax, a, b):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=7, lw=0.8, color="0.3",
                                 shrinkA=0, shrinkB=0))


ROLE = {"input": _O["blue"], "hidden": _O["bluish green"], "output": _O["vermillion"]}


def draw_wiring(ax, wiring, steps=4):
    """Unrolled diagram: inputs x_t (bottom), hidden states h_t (middle), outputs y_t (top) for
    `steps` steps, with the arrows the wiring uses."""
    has_x = {"one-to-many": [0], "many-to-one": range(steps), "many-to-many": range(steps)}[wiring]
    has_y = {"one-to-many": range(steps), "many-to-one": [steps - 1], "many-to-many": range(steps)}[wiring]
    for t in range(steps):
        label = "T" if t == steps - 1 else str(t + 1)
        _box(ax, t, 1, rf"$h_{{{label}}}$", ROLE["hidden"])
        if t in has_x:
            _box(ax, t, 0, rf"$x_{{{label}}}$", ROLE["input"])
            _arrow(ax, (t, 0.25), (t, 0.75))
        if t in has_y:
            _box(ax, t, 2, rf"$y_{{{label}}}$", ROLE["output"])
            _arrow(ax, (t, 1.25), (t, 1.75))
        if t:
            _arrow(ax, (t - 1 + 0.36, 1), (t - 0.36, 1))
    ax.text(steps - 1.5, 1.08, "⋯", ha="center", va="bottom", fontsize=9, color="0.3")
    ax.set_xlim(-0.5, steps - 0.5)
    ax.set_ylim(-0.4, 2.4)
    ax.set_aspect("equal")
    ax.axis("off")


@figure("rnn-types", source="000 Fig 8.3",
        caption="Three ways to wire a recurrent network (top; arrows are the same weights at every step), "
                "each trained here by engine.fit (a GRU of 16 units, Adam) on a toy task and scored on fresh "
                "sequences (bottom: test accuracy per output step, dashed line chance). One-to-many: one number "
                "in, its first six binary digits out, accuracy {acc_one_to_many:.3f} (the later digits need more "
                "precision and approach chance). Many-to-one: the sign of a sum of 12 inputs, read from the "
                "last state, {acc_many_to_one:.3f}. Many-to-many: each output repeats the input of two steps "
                "earlier, {acc_many_to_many:.3f}. Chance is 0.5 for every task; training took "
                "{seconds:.1f} s in all.")
def rnn_types(quick=False):
    with num_threads_set_to(1):
        res = train_types(quick)
    fig, axes = plt.subplots(2, 3, figsize=(6.5, 4.6), gridspec_kw=dict(height_ratios=[1.0, 1.1]),
                             layout="constrained")
    for j, wiring in enumerate(TASKS):
        r, task = res[wiring], TASKS[wiring]
        draw_wiring(axes[0, j], wiring)
        axes[0, j].set_title(wiring)
        ax = axes[1, j]
        per = r["per_step"]
        steps = np.arange(1, len(per) + 1) if len(per) > 1 else np.array([task["T"]])
        ok = ~np.isnan(per)
        ax.bar(steps[ok], per[ok], width=0.7, color=ROLE["output"])
        ax.axhline(r["chance"], color="0.3", ls="--", lw=0.9)
        ax.set_ylim(0, 1.05)
        ax.set_xlim(0.3, task["T"] + 0.7)
        ax.set_xticks([1, task["T"]] if task["T"] > 6 else list(range(1, task["T"] + 1)))
        ax.set_xlabel("output step $t$")
        ax.set_title(f"{task['title']}: acc. {r['accuracy']:.3f}\n{task['text']}", fontsize=8)
        if j == 0:
            ax.set_ylabel("test accuracy")
        else:
            ax.set_yticklabels([])
    keys = [Patch(color=ROLE[k], label=lab) for k, lab in
            (("input", r"input $x_t$"), ("hidden", r"hidden state $h_t$"),
             ("output", r"output $y_t$ (bars: its accuracy)"))]
    keys.append(Line2D([], [], color="0.3", ls="--", lw=0.9, label="chance"))
    fig.legend(handles=keys, loc="outside lower center", ncol=4, frameon=False, fontsize=8)
    data = {"results": res, "seconds": sum(r["seconds"] for r in res.values())}
    for wiring in TASKS:
        key = wiring.replace("-", "_")
        data[f"acc_{key}"] = res[wiring]["accuracy"]
        data[f"per_step_{key}"] = res[wiring]["per_step"]
        data[f"chance_{key}"] = res[wiring]["chance"]
    return fig, data
