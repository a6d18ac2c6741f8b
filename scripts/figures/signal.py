"""Signal propagation at initialisation and gradient norms (000 §9.2, 003 §1.3.2, 004 §3.6, §3.8).

Theory from `analysis.signal` (variance recursions), measurements on the engine's `MLP`, gradient
norms from `analysis.gradients`.
"""
import math

import matplotlib
import matplotlib.ticker
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from analysis.gradients import GradientTrace, vanishing_profile
from analysis.signal import measure_variance, predict_variance
from figures import style
from figures.registry import figure
from layers import MLP

INIT_LABELS = {"normal": "normal(1)", "small": "0.01·normal", "xavier": "Xavier", "he": "He"}
ACT_NAMES = {"relu": "ReLU", "tanh": "tanh", "sigmoid": "sigmoid"}


@figure("init-variance", source="000 §9.2, 003 §1.3.2, 004 §3.8",
        caption="Variance of the pre-activations f_k through depth (width {width}): theory (lines, "
                "analysis.signal) and the engine's MLP over {seeds} draws (markers). Top: every "
                "initialisation on one log scale — normal(1) explodes and 0.01·normal vanishes by "
                "dozens of decades. Bottom, zoomed on Var f_k / Var f_0 on a log₂ axis for the two "
                "that matter: with ReLU, He keeps the variance flat (ratio {he_relu_ratio:.3f} per "
                "layer) while Xavier halves it ({xavier_relu_ratio:.3f}), {xavier_relu_last:.1e}× "
                "after {depth} layers; with tanh the variance settles instead of decaying "
                "geometrically (after {depth} layers: He {tanh_he_last:.2f}×, Xavier "
                "{tanh_xavier_last:.3f}×).")
def init_variance(quick=False):
    width, depth, seeds = (32, 6, 4) if quick else (128, 12, 20)
    widths = [width] * (depth + 1) + [width]
    fig, axes = plt.subplots(2, 2, figsize=(6.5, 5.6), sharex=True, layout="constrained",
                             gridspec_kw={"height_ratios": [1, 1]})
    data = {"width": width, "depth": depth, "seeds": seeds}
    for col, act in enumerate(("relu", "tanh")):
        ax, zoom = axes[0, col], axes[1, col]
        for i, init in enumerate(("normal", "small", "xavier", "he")):
            p = predict_variance(widths, act, init)
            m = measure_variance(widths, act, init, n_seeds=seeds, batch_size=64, rng=i)
            k = np.arange(len(p.forward))
            c = style.color(INIT_LABELS[init])
            ax.semilogy(k, p.forward, "-", color=c, lw=1.3)
            ax.semilogy(k, m.forward, "o", color=c, ms=3.5)
            if init in ("xavier", "he"):
                zoom.plot(k, p.forward / p.forward[0], "-", color=c, lw=1.3)
                zoom.plot(k, m.forward / m.forward[0], "o", color=c, ms=3.5)
                data[f"{act}_{init}_ratio"] = m.forward / m.forward[0]
            data[f"{act}_{init}_predicted"] = p.forward
            data[f"{act}_{init}_measured"] = m.forward
            data[f"{act}_{init}_sem"] = m.forward_sem
        ax.set_title(f"{ACT_NAMES[act]}: all four initialisations")
        zoom.set_title(f"{ACT_NAMES[act]}: He and Xavier, zoomed")
        zoom.set_yscale("log", base=2)
        zoom.set_xlabel("layer $k$")
        zoom.axhline(1.0, color="0.6", lw=0.6, ls=":")
    lo = min(min(data[f"{a}_{i}_ratio"].min() for i in ("xavier", "he")) for a in ("relu", "tanh"))
    for zoom in axes[1]:
        zoom.set_ylim(2.0 ** (np.floor(np.log2(lo)) - 0.5), 2.0 ** 1.5)
        zoom.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(
            2.0 ** np.arange(np.floor(np.log2(lo)) // 2 * 2, 2, 2)))
        zoom.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        zoom.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(
            lambda v, _: "1" if v == 1 else (f"$2^{{{int(round(np.log2(v)))}}}$")))
        zoom.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    axes[0, 0].set_ylabel(r"Var $f_k$")
    axes[1, 0].set_ylabel(r"Var $f_k$ / Var $f_0$")
    handles = [Line2D([], [], color=style.color(INIT_LABELS[i]), lw=1.5, label=INIT_LABELS[i])
               for i in ("normal", "small", "xavier", "he")]
    handles += [Line2D([], [], color="k", lw=1.3, label="theory"),
                Line2D([], [], color="k", ls="", marker="o", ms=3.5, label="measured")]
    fig.legend(handles=handles, loc="outside lower center", ncol=6)
    for name in ("he", "xavier"):
        m = data[f"relu_{name}_measured"]
        data[f"{name}_relu_ratio"] = float(np.exp(np.mean(np.diff(np.log(m)))))
    data["xavier_relu_last"] = float(data["relu_xavier_ratio"][-1])
    data["tanh_he_last"] = float(data["tanh_he_ratio"][-1])
    data["tanh_xavier_last"] = float(data["tanh_xavier_ratio"][-1])
    return fig, data


def _glorot_uniform_net(widths, scheme, rng):
    """tanh MLP with Glorot & Bengio's "standard" U[±1/√n_in] or "normalized" U[±√6/√(n_in + n_out)]."""
    net = MLP(widths, activation="tanh", rng=rng)
    for k, (W, b) in enumerate(zip(net.weights, net.biases)):
        n_in, n_out = widths[k], widths[k + 1]
        a = 1 / math.sqrt(n_in) if scheme == "standard" else math.sqrt(6 / (n_in + n_out))
        W[...] = rng.uniform(-a, a, W.shape)
        b[...] = 0.0
    return net


@figure("activation-histograms", source="004 §3.8, Glorot & Bengio 2010",
        caption="Histograms of the tanh activations h_k of a 5-hidden-layer MLP: with the standard U[±1/√n] "
                "initialisation they shrink towards 0 layer after layer (std {standard_last:.3f} at the top), with "
                "normalised (Xavier) initialisation they keep their spread (std {normalized_last:.3f}).")
def activation_histograms(quick=False):
    width, n = (100, 500) if quick else (300, 2000)
    widths = [width] * 6 + [10]
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (n, width))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), sharey=True)
    data = {}
    bins = np.linspace(-1, 1, 61)
    for ax, scheme in zip(axes, ("standard", "normalized")):
        net = _glorot_uniform_net(widths, scheme, rng)
        net.forward(X)
        stds = []
        for k, h in enumerate(net.activations):
            hist, _ = np.histogram(h.ravel(), bins=bins, density=True)
            ax.plot(0.5 * (bins[1:] + bins[:-1]), hist, label=f"layer {k + 1}", color=plt.cm.viridis(k / 5))
            stds.append(float(h.std()))
        ax.set_title(f"{scheme} initialisation")
        ax.set_xlabel("activation value $h_k$")
        ax.set_yscale("log")
        ax.legend(fontsize=8)
        data[f"{scheme}_std"] = np.array(stds)
        data[f"{scheme}_last"] = stds[-1]
    axes[0].set_ylabel("density")
    fig.tight_layout()
    return fig, data


@figure("vanishing-gradients-depth", source="004 §3.6, 003 §1.3.2",
        caption="‖∂ℓ/∂f_k‖ per layer at initialisation for {depth}-hidden-layer MLPs (width {width}, default "
                "U(±1/√n) init, He for ReLU): sigmoid's gradient shrinks by ×{sigmoid_rate:.2f} per layer towards "
                "the input, tanh's more slowly, ReLU with He keeps it.")
def vanishing_gradients_depth(quick=False):
    depth, width = (20, 32) if quick else (50, 64)
    fig, ax = plt.subplots(figsize=(8, 4.4))
    data = {"depth": depth, "width": width}
    for i, (act, init) in enumerate((("sigmoid", "default"), ("tanh", "default"), ("relu", "default"),
                                     ("relu", "he"))):
        norms = vanishing_profile(act, depth=depth, width=width, init=init, rng=i)["preact"]
        label = ACT_NAMES[act] + (" (He init)" if init == "he" else "")
        ax.semilogy(np.arange(len(norms)), norms, "s--" if init == "he" else "o-", ms=3,
                    color=style.color(act), label=label)
        data[f"{act}_{init}"] = norms
    s = data["sigmoid_default"]
    data["sigmoid_rate"] = float(np.exp(-np.polyfit(np.arange(len(s) - 1), np.log(s[:-1]), 1)[0]))  # factor per layer towards the input
    ax.set_xlabel("layer k (0 = first hidden pre-activation, right = output)")
    ax.set_ylabel(r"$\Vert\partial\ell/\partial f_k\Vert$ (per-example RMS)")
    ax.set_title("gradient norms through depth at initialisation")
    ax.legend()
    fig.tight_layout()
    return fig, data


@figure("gradient-norms-training", source="004 §3.6",
        caption="Per-layer ‖∂ℓ/∂Ω_k‖ over training on the digits (6 hidden layers of 32, Adam) recorded by "
                "analysis.gradients.GradientTrace through engine.fit's callback: at the start sigmoid's first "
                "layers get gradients orders of magnitude smaller than its last; ReLU's are balanced.")
def gradient_norms_training(quick=False):
    from engine import fit
    from engine.data import digits_split
    from engine.losses import CrossEntropyLoss
    from engine.optim import Adam

    (X, y), _ = digits_split()
    if quick:
        X, y = X[:300], y[:300]
    epochs = 2 if quick else 15
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    data = {"epochs": epochs}
    for ax, act in zip(axes, ("sigmoid", "relu")):
        net = MLP([64] + [32] * 6 + [10], activation=act, rng=0)
        trace = GradientTrace(every=2)
        hist = fit(net, CrossEntropyLoss(), Adam(net.parameters(), lr=1e-3), X, y, epochs=epochs,
                   batch_size=32, seed=0, progress=False, callbacks=[trace.callback])
        a = trace.arrays()
        K = a["weight"].shape[1]
        for k in range(K):
            ax.semilogy(a["step"], a["weight"][:, k], color=plt.cm.plasma(k / (K - 1)), lw=1,
                        label=f"$\\Omega_{k}$")
        ax.set_title(f"{act}: final train loss {hist['loss'][-1]:.3f}")
        ax.set_xlabel("optimizer step")
        ax.legend(fontsize=7, ncol=2)
        data[f"{act}_steps"] = a["step"]
        data[f"{act}_weight_norms"] = a["weight"]
        data[f"{act}_preact_norms"] = a["preact"]
        data[f"{act}_loss"] = np.array(hist["loss"])
    axes[0].set_ylabel(r"$\Vert\partial\ell/\partial\Omega_k\Vert$")
    fig.tight_layout()
    return fig, data
