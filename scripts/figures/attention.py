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


# ---------------------------------------------------------------------------------------------
# 000 §9.1, Fig 9.1–9.3: queries, keys, values, attention weights
# ---------------------------------------------------------------------------------------------
SENTENCE = ["the", "cat", "sat", "on", "the", "mat"]


def _heat(ax, a, cmap, vmin, vmax, rows=None, title=None, cols=None):
    im = ax.imshow(a, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(a.shape[0]))
    ax.set_yticklabels(rows if rows is not None else [])
    ax.set_xticks(range(a.shape[1]))
    ax.set_xticklabels(cols if cols is not None else [])
    ax.tick_params(length=0)
    if title:
        ax.set_title(title)
    return im


@figure("attention-weights", source="000 Fig 9.1–9.3, 003 §2.6.2",
        caption="Self-attention of one head over the {n_tokens} tokens of \"the cat sat on the mat\" "
                "(token embeddings plus the sinusoidal positions, D = {d_model}), computed by the engine's "
                "MultiheadAttention (one head): queries q_n = β_q + Ω_q x_n, keys k_m, values v_m "
                "(top), the attention weights a[x_m, x_n] = softmax_m(k_m·q_n/√D) of every query n (rows) "
                "over the keys m (columns), and with the causal mask, where query n sees keys m ≤ n only "
                "(bottom; grey cells are masked). Top right: the causal outputs y_n = Σ_m a[x_m, x_n] v_m. "
                "Every row sums to 1 (largest deviation {row_sum_err:.1e}); "
                "the masked weights are exactly {masked_max:.0f}; the weights equal those of "
                "layers.attention.scaled_dot_product_attention on the same q, k, v "
                "(difference {sdpa_diff:.1e}).")
def attention_weights(quick=False):
    from layers.attention import MultiheadAttention, scaled_dot_product_attention
    from layers.embedding import Embedding
    from layers.transformer import SinusoidalPositionalEncoding

    D = 4
    words = sorted(set(SENTENCE))
    ids = np.array([words.index(w) for w in SENTENCE])
    T = len(ids)
    emb = Embedding(len(words), D, rng=3)
    pos = SinusoidalPositionalEncoding(D, max_len=T)
    x = pos.forward(emb.forward(ids))                          # (T, D) token rows x_n
    mha = MultiheadAttention(D, 1, rng=4)
    # larger projections than torch's Xavier start (×2.5): a trained head's sharper weights
    mha.in_proj_weight.value[:] *= 2.5
    mha.in_proj_bias.value[:] = np.random.default_rng(5).normal(0, 0.3, 3 * D)
    W, b = mha.in_proj_weight.value, mha.in_proj_bias.value
    q, k, v = (x @ W[i * D:(i + 1) * D].T + b[i * D:(i + 1) * D] for i in range(3))
    data = {"n_tokens": T, "d_model": D, "tokens": SENTENCE, "x": x, "q": q, "k": k, "v": v}
    for causal in (False, True):
        key = "causal" if causal else "full"
        _, w = mha.forward(x, x, x, is_causal=causal, train=False)      # unbatched (T, D)
        y, p = scaled_dot_product_attention(q, k, v, is_causal=causal)
        data[f"p_{key}"], data[f"y_{key}"] = w, y
        data[f"sdpa_diff_{key}"] = float(np.abs(w - p).max())
    mha.zero_grad()
    data["causal_mask"] = np.triu(np.ones((T, T), dtype=bool), 1)
    data["row_sum_err"] = float(max(np.abs(data["p_full"].sum(1) - 1).max(),
                                    np.abs(data["p_causal"].sum(1) - 1).max()))
    data["masked_max"] = float(np.abs(data["p_causal"][data["causal_mask"]]).max())
    data["sdpa_diff"] = max(data["sdpa_diff_full"], data["sdpa_diff_causal"])

    fig = plt.figure(figsize=(6.5, 5.0))
    gs = fig.add_gridspec(2, 6, width_ratios=[1, 1, 1, 1, 1, 0.08], height_ratios=[1, 1.25],
                          hspace=0.45, wspace=0.3)
    low = gs[1, :5].subgridspec(1, 2, wspace=0.12)
    m = max(np.abs(a).max() for a in (x, q, k, v, data["y_causal"]))
    rows = [f"{w} ({n})" for n, w in enumerate(SENTENCE)]
    dims = [str(i + 1) for i in range(D)]
    top = [("inputs $x_n$", x), ("queries $q_n$", q), ("keys $k_m$", k), ("values $v_m$", v),
           ("outputs $y_n$", data["y_causal"])]
    for j, (title, a) in enumerate(top):
        ax = fig.add_subplot(gs[0, j])
        im = _heat(ax, a, "RdBu_r", -m, m, rows if j == 0 else None, title, dims)
        ax.set_xlabel("dimension")
    fig.colorbar(im, cax=fig.add_subplot(gs[0, 5]))
    bottom = [("weights $a[x_m, x_n]$", data["p_full"], None),
              ("causal weights (grey: masked)", data["p_causal"], data["causal_mask"])]
    for j, (title, p, mask) in enumerate(bottom):
        ax = fig.add_subplot(low[0, j])
        shown = np.ma.masked_array(p, mask) if mask is not None else p
        cmap = plt.get_cmap("Blues").with_extremes(bad=(0.5, 0.5, 0.5, 0.35))   # masked: grey
        _heat(ax, shown, cmap, 0, 1, [f"$q_{n}$ {w}" for n, w in enumerate(SENTENCE)] if j == 0 else None,
              title, [f"$k_{n}$" for n in range(T)])
        ax.set_xlabel("key m")
        if j == 0:
            ax.set_ylabel("query n")
        for n in range(T):
            for mm in range(T):
                if mask is not None and mask[n, mm]:
                    continue
                ax.text(mm, n, f"{p[n, mm]:.2f}".lstrip("0"), ha="center", va="center", fontsize=8,
                        color="white" if p[n, mm] > 0.55 else "black")
    fig.subplots_adjust(left=0.12, right=0.93, top=0.94, bottom=0.1)
    return fig, data


# ---------------------------------------------------------------------------------------------
# 003 §2.6.1: the sinusoidal positional encoding
# ---------------------------------------------------------------------------------------------
def positional_formula(max_len, d_model):
    """PE[pos, 2i] = sin(pos/10000^{2i/d}), PE[pos, 2i+1] = cos(pos/10000^{2i/d}), written here
    with NumPy (the engine's table is checked against it)."""
    pos = np.arange(max_len)[:, None]
    two_i = 2 * (np.arange(d_model) // 2)[None, :]
    angle = pos / 10000.0 ** (two_i / d_model)
    return np.where(np.arange(d_model)[None, :] % 2 == 0, np.sin(angle), np.cos(angle))


@figure("positional-encoding", source="003 §2.6.1",
        caption="The sinusoidal positional encoding PE (d_model = {d_model}, {max_len} positions) of the "
                "engine's SinusoidalPositionalEncoding (its output for a zero input): column 2i is "
                "sin(pos/10000^(2i/d_model)), column 2i + 1 the cosine, with wavelengths from 2π to about "
                "{max_wavelength:.0f} positions here (largest difference from the formula {formula_err:.1e}). "
                "Right: PE[pos]·PE[pos + k] = Σ_i cos(k ω_i) depends on the offset k only, not on pos "
                "(largest spread over pos {offset_spread:.1e}): relative positions are a linear function of "
                "the encoding.")
def positional_encoding(quick=False):
    from layers.transformer import SinusoidalPositionalEncoding

    max_len, d_model = (64, 32) if quick else (128, 64)
    layer = SinusoidalPositionalEncoding(d_model, max_len=max_len)
    pe = layer.forward(np.zeros((max_len, d_model)), train=False)        # y = 0 + PE
    layer.zero_grad()
    ref = positional_formula(max_len, d_model)
    data = {"max_len": max_len, "d_model": d_model, "pe": pe, "formula": ref,
            "formula_err": float(np.abs(pe - ref).max()),
            "max_wavelength": float(2 * np.pi * 10000.0 ** ((d_model - 2) / d_model))}
    offsets = np.arange(max_len // 2)
    starts = [0, max_len // 4, max_len // 2 - 1]
    dots = np.array([[pe[s] @ pe[s + k] for k in offsets] for s in starts])
    omegas = 1.0 / 10000.0 ** (2 * np.arange(d_model // 2) / d_model)
    dots_theory = np.array([np.cos(k * omegas).sum() for k in offsets])
    data.update(offsets=offsets, starts=np.array(starts), dots=dots, dots_theory=dots_theory,
                offset_spread=float(np.ptp(dots, axis=0).max()))

    fig = plt.figure(figsize=(6.5, 4.6))
    gs = fig.add_gridspec(2, 2, width_ratios=[1.25, 1], hspace=0.85, wspace=0.3)
    ax = fig.add_subplot(gs[:, 0])
    im = ax.imshow(pe, cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto", interpolation="nearest")
    ax.set_xlabel("dimension $j$")
    ax.set_ylabel("position pos")
    ax.set_title("PE[pos, $j$]")
    fig.colorbar(im, ax=ax, fraction=0.06, pad=0.03, ticks=[-1, 0, 1])
    ax = fig.add_subplot(gs[0, 1])
    for c, j in enumerate([4, 10, 20] if quick else [10, 20, 30]):
        ax.plot(np.arange(max_len), pe[:, j], color=style.PALETTE[c], lw=1.1, label=f"$j$ = {j}")
    ax.set_xlabel("position pos")
    ax.set_title("columns $j$ = 2$i$: sin(pos $\\omega_i$)")
    ax.set_ylim(-1.1, 1.1)
    ax.legend(ncol=3, loc="lower left", bbox_to_anchor=(-0.05, -0.5), frameon=False, columnspacing=0.8,
              handlelength=1.2)
    ax = fig.add_subplot(gs[1, 1])
    ax.plot(offsets, dots_theory, "-", color=style.color("theory"), lw=2.2, alpha=0.35,
            label=r"$\Sigma_i \cos(k\omega_i)$")
    for c, s in enumerate(starts):
        if c == 0:
            ax.plot(offsets, dots[c], "-", color=style.PALETTE[c], lw=1.1, label=f"pos = {s}")
        else:      # markers on every 4th offset, staggered, so that the coinciding curves show
            sel = slice(2 * c - 2, None, 4)
            ax.plot(offsets[sel], dots[c][sel], "o" if c == 1 else "x", color=style.PALETTE[c], ms=3.5,
                    mfc="none", label=f"pos = {s}")
    ax.set_xlabel("offset $k$")
    ax.set_title("PE[pos]·PE[pos + $k$]")
    ax.legend(loc="upper right")
    return fig, data
