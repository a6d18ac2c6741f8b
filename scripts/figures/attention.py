"""Attention figures (notes 000 §9.1 Fig 9.1–9.3, 003 §2.6.1–2.6.2 eq. 2.8).

attention-scaling: the variance argument for the 1/√d_k of eq. 2.8 and softmax saturation with
    and without it, theory and measured (analysis.attention).
attention-weights: queries, keys, values and the attention matrix of a short sequence, causal
    and not, computed by the engine's scaled dot-product attention (layers.attention).
positional-encoding: the sinusoidal encoding matrix of the engine's SinusoidalPositionalEncoding
    (layers.transformer) against the formula.

The engine's attention and transformer modules are imported inside the figure functions, so this
module (and the figures that do not need them) loads even where they are missing.
"""
import math

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from analysis.attention import measure_dot_products, measure_saturation, saturation_theory
from figures import style
from figures.registry import figure

SCALED, PLAIN = style.OKABE_ITO["blue"], style.OKABE_ITO["vermillion"]


# ---------------------------------------------------------------------------------------------
# 003 eq. 2.8: why 1/√d_k
# ---------------------------------------------------------------------------------------------
@figure("attention-scaling", source="003 eq. 2.8, 000 §9",
        caption="One query against N = {n_keys} keys, q and k with unit-variance Gaussian components. "
                "Top left: the measured variance of q·k grows as d_k (measured/theory between "
                "{var_ratio_min:.3f} and {var_ratio_max:.3f}, every point within {var_max_z:.1f} "
                "standard errors of d_k); divided by √d_k it stays 1. Without the scale the softmax "
                "saturates: at d_k = {d_max} a row puts {maxp_plain:.2f} of its weight on one key "
                "(entropy {ent_plain:.2f} nats, against {ent_scaled:.2f} with the scale and ln N = "
                "{log_n:.2f} for a uniform row) and the gradient that reaches the scores, ‖J‖_F with "
                "J = diag(p) − ppᵀ, is {jac_ratio:.1f}× smaller than with the scale. Markers: "
                "{n_rows} sampled rows per point; dotted: small-σ series; dashed: the large-σ "
                "asymptotes (∝ 1/σ, σ² the scores' variance), from analysis.attention.")
def attention_scaling(quick=False):
    d_ks = np.array([1, 4, 16, 64, 256]) if quick else 2 ** np.arange(0, 11)
    n_keys = 32
    n_rows, n_pairs = (300, 2000) if quick else (1500, 20000)
    data = {"n_keys": n_keys, "n_rows": n_rows, "n_pairs": n_pairs, "d_k": d_ks,
            "d_max": int(d_ks[-1]), "log_n": math.log(n_keys)}

    # the variance of q·k, and of q·k/√d_k: the same draws divided by √d_k (variance by d_k)
    ms = [measure_dot_products(int(d), n=n_pairs, rng=int(d)) for d in d_ks]
    for key, f in (("plain", np.ones(len(d_ks))), ("scaled", 1.0 / d_ks)):
        data[f"var_{key}_measured"] = np.array([m.measured for m in ms]) * f
        data[f"var_{key}_theory"] = np.array([m.theory for m in ms]) * f
        data[f"var_{key}_se"] = np.array([m.se for m in ms]) * f
        data[f"var_{key}_z"] = np.array([m.z for m in ms])
    ratio = data["var_plain_measured"] / d_ks
    data["var_ratio_min"], data["var_ratio_max"] = float(ratio.min()), float(ratio.max())
    data["var_max_z"] = float(np.abs(np.concatenate([data["var_plain_z"], data["var_scaled_z"]])).max())

    # saturation, measured and asymptotic
    stats = {}
    for scale in (True, False):
        key = "scaled" if scale else "plain"
        ms = measure_saturation(d_ks, n_keys=n_keys, n_rows=n_rows, scale=scale, rng=7)
        th = saturation_theory(d_ks, n_keys=n_keys, scale=scale)
        stats[key] = (ms, th)
        for name in ("max_prob", "entropy", "jacobian"):
            data[f"{name}_{key}"] = np.array([getattr(m, name) for m in ms])
            data[f"{name}_{key}_se"] = np.array([getattr(m, name + "_se") for m in ms])
        data[f"sigma2_{key}"] = th.sigma2
    data["maxp_plain"] = float(data["max_prob_plain"][-1])
    data["ent_plain"] = float(data["entropy_plain"][-1])
    data["ent_scaled"] = float(data["entropy_scaled"][-1])
    data["jac_ratio"] = float(data["jacobian_scaled"][-1] / data["jacobian_plain"][-1])

    fig, axes = plt.subplots(2, 2, figsize=(6.5, 5.4), sharex=True)
    ax = axes[0, 0]
    ax.loglog(d_ks, d_ks, "-", color=style.color("theory"), lw=1, label="theory")
    ax.loglog(d_ks, np.ones(len(d_ks)), "-", color=style.color("theory"), lw=1)
    ax.loglog(d_ks, data["var_plain_measured"], "o", color=PLAIN, label=r"Var$(q\cdot k)$")
    ax.loglog(d_ks, data["var_scaled_measured"], "s", color=SCALED,
              label=r"Var$(q\cdot k/\sqrt{d_k})$")
    ax.set_title("variance of the scores")
    ax.legend(loc="upper left")

    panels = [(axes[0, 1], "max_prob", "largest weight in a row, max $p_j$", 1 / n_keys, "$1/N$"),
              (axes[1, 0], "entropy", "entropy of a row (nats)", math.log(n_keys), r"$\ln N$"),
              (axes[1, 1], "jacobian", r"gradient to the scores, $\Vert J\Vert_F$", None, None)]
    for ax, name, title, ref, ref_label in panels:
        for key, colour, marker, label in (("plain", PLAIN, "o", r"$q\cdot k$"),
                                           ("scaled", SCALED, "s", r"$q\cdot k/\sqrt{d_k}$")):
            ms, th = stats[key]
            y, se = data[f"{name}_{key}"], data[f"{name}_{key}_se"]
            ax.errorbar(d_ks, y, yerr=2 * se, fmt=marker, color=colour, ms=3.5, lw=0.8,
                        label=label if name == "max_prob" else None)
            small = {"max_prob": th.small_max_prob, "entropy": th.small_entropy,
                     "jacobian": np.sqrt(th.small_jacobian_sq)}[name]
            large = {"max_prob": th.large_max_prob, "entropy": th.large_entropy,
                     "jacobian": th.large_jacobian}[name]
            ok_small = th.sigma2 <= 1.0 + 1e-9
            # the asymptotes where their corrections are small (‖J‖_F's, O(1/σ), is larger)
            ok_large = th.sigma2 >= (64.0 if name == "jacobian" else 16.0)
            if ok_small.any():
                ax.plot(d_ks[ok_small], small[ok_small], ":", color=colour, lw=1.2)
            if ok_large.any():
                ax.plot(d_ks[ok_large], large[ok_large], "--", color=colour, lw=1.2)
        if ref is not None:
            ax.axhline(ref, color=style.color("data"), lw=0.8, ls="-", zorder=0)
            ax.annotate(ref_label, (d_ks[-1], ref), xytext=(0, 3), textcoords="offset points",
                        ha="right", va="bottom", color=style.color("data"))
        ax.set_xscale("log")
        ax.set_title(title)
    axes[0, 1].set_ylim(0, 1.05)
    axes[1, 0].set_ylim(0, math.log(n_keys) * 1.12)
    top = max(data["jacobian_plain"].max(), data["jacobian_scaled"].max())
    axes[1, 1].set_ylim(0, 1.35 * top)
    grey = style.color("data")
    axes[1, 0].plot([], [], ":", color=grey, label=r"small-$\sigma$ series")
    axes[1, 0].plot([], [], "--", color=grey, label=r"large-$\sigma$ asymptote")
    axes[1, 0].legend(loc="center right")
    axes[0, 1].legend(loc="upper left")
    for ax in axes[1]:
        ax.set_xlabel("$d_k$")
    for ax in axes.flat:
        ax.set_xticks([1, 4, 16, 64, 256, 1024][:len([t for t in (1, 4, 16, 64, 256, 1024) if t <= d_ks[-1]])])
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    fig.tight_layout()
    return fig, data
