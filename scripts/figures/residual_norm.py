"""Residual connections and normalization (notes 003 §2.2, 004 §3.7, 000 §9.2).

residual-gradients: ‖∂ℓ/∂h_l‖ through a deep stack with and without the identity path
    (004 §3.7.2: δ^in = δ^out + δ^update_L + … + δ^update_1, so δ^out always gets through).
residual-variance: the residual stream x_{l+1} = x_l + f(x_l) grows exponentially in variance;
    with a normalization in front of f, x_{l+1} = x_l + f(norm(x_l)), only linearly (000 §9.2).
norm-invariances: 004 §3.7.5's table (Ba, Kiros & Hinton 2016, Table 1) checked numerically.

All forward and backward passes run through the engine's layers (Linear, ReLU, Tanh, Residual,
Sequential, LayerNorm, BatchNorm1d, MSELoss).
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine.core import Sequential
from figures import style
from figures.registry import figure
from layers.activations import ReLU, Tanh
from layers.containers import Residual
from layers.dense import Linear
from layers.norm import BatchNorm1d, LayerNorm


# ---------------------------------------------------------------------------------------------
# 003 §2.2, 004 §3.7.2: gradient norms with and without residual connections
# ---------------------------------------------------------------------------------------------
ACTS = {"ReLU": ReLU, "tanh": Tanh}


def make_stack(depth, width, act, residual, seed=0, branch_scale=1.0):
    """depth blocks Linear(width, width) → act (torch's default init, the same weights for the plain
    and the residual stack); a residual stack wraps each block as h_l = h_{l−1} + block(h_{l−1}).
    branch_scale ≠ 1 multiplies each residual branch by that factor (a fixed Linear α·I after the
    activation): h_l = h_{l−1} + α block(h_{l−1}), e.g. α = 1/√L."""
    blocks = []
    for l in range(depth):
        mods = [Linear(width, width, rng=seed + l), ACTS[act]()]
        if branch_scale != 1.0:
            scale = Linear(width, width, bias=False)
            scale.weight.value[...] = branch_scale * np.eye(width)
            mods.append(scale)
        blocks.append(Sequential(*mods))
    return [Residual(b) if residual else b for b in blocks]


def hidden_gradient_norms(blocks, x, seed=0):
    """Forward x through the blocks, an MSE loss against a random target, backward block by block.
    Returns ‖∂ℓ/∂h_l‖ (Frobenius over the batch) for l = 0 (input) … L (output)."""
    from engine.losses import MSELoss
    h = x
    for b in blocks:
        h = b.forward(h)
    loss = MSELoss()
    loss.forward(h, np.random.default_rng(seed).normal(size=h.shape))
    dy = loss.backward()
    norms = [np.linalg.norm(dy)]
    for b in reversed(blocks):
        dy = b.backward(dy)
        norms.append(np.linalg.norm(dy))
    return np.array(norms[::-1])


@figure("residual-gradients", source="003 §2.2, 004 §3.7.2",
        caption="‖∂ℓ/∂h_l‖ relative to the output gradient through {depth} blocks Linear({width}) → "
                "activation, the same weights in every variant. Without skip connections it vanishes "
                "(ReLU: {plain_relu_first:.1e} at the input). With h_l = h_(l−1) + f(h_(l−1)) it "
                "never drops below the output gradient (δ^in = δ^out + Σ δ^update: minimum "
                "{residual_min:.2f}×) but it explodes: each block multiplies it by I + J_l, so "
                "ReLU's grows {residual_relu_first:.1e}× toward the input (tanh's "
                "{residual_tanh_first:.1e}×), as the forward variance does in residual-variance. "
                "Scaling every branch by 1/√L, h_l = h_(l−1) + f(h_(l−1))/√L, keeps it between "
                "{scaled_min:.2f}× and {scaled_max:.1f}×.")
def residual_gradients(quick=False):
    depth, width, batch = (20, 32, 32) if quick else (50, 64, 128)
    x = np.random.default_rng(1).normal(size=(batch, width))
    curves = {}
    for act in ACTS:
        for kind in ("plain", "residual", "scaled"):
            blocks = make_stack(depth, width, act, kind != "plain",
                                branch_scale=1 / np.sqrt(depth) if kind == "scaled" else 1.0)
            g = hidden_gradient_norms(blocks, x)
            curves[(act, kind)] = g / g[-1]

    fig, ax = plt.subplots(figsize=(6.5, 3.6), layout="constrained")
    layers = np.arange(depth + 1)
    styles = {"residual": ("-", "residual"), "scaled": ("o-", "residual, branch × 1/√L"),
              "plain": ("--", "plain")}
    for act in ACTS:
        for kind, (ls, name) in styles.items():
            ax.plot(layers, curves[(act, kind)], ls, color=style.color(act), lw=1.6, ms=3.5,
                    markevery=max(1, depth // 10), mfc="w" if act == "tanh" else None,
                    label=f"{act}, {name}")
    ax.axhline(1.0, color="0.5", lw=0.6, ls=":")
    ax.set_yscale("log")
    ax.set_xlabel("layer $l$ (0 = input, $L$ = output)")
    ax.set_ylabel(r"$\Vert\partial\ell/\partial h_l\Vert\, /\, \Vert\partial\ell/\partial h_L\Vert$")
    ax.set_title(f"Gradient norm through {depth} blocks of width {width}")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    res_min = min(curves[(a, "residual")].min() for a in ACTS)
    scaled = np.concatenate([curves[(a, "scaled")] for a in ACTS])
    return fig, {"depth": depth, "width": width, "layers": layers,
                 "curves": {f"{a}, {k}": v for (a, k), v in curves.items()},
                 "residual_min": float(res_min), "plain_relu_first": float(curves[("ReLU", "plain")][0]),
                 "plain_tanh_first": float(curves[("tanh", "plain")][0]),
                 "residual_relu_first": float(curves[("ReLU", "residual")][0]),
                 "residual_tanh_first": float(curves[("tanh", "residual")][0]),
                 "scaled_min": float(scaled.min()), "scaled_max": float(scaled.max())}


# ---------------------------------------------------------------------------------------------
# 000 §9.2: variance of the residual stream with and without normalization
# ---------------------------------------------------------------------------------------------
def residual_stream(depth, width, norm, sigma2, seed=0):
    """depth residual blocks x ← x + W₂ ReLU(W₁ n(x)), n = identity, LayerNorm or BatchNorm1d (no
    affine parameters); W₁ ~ N(0, 2/width) (He), W₂ ~ N(0, σ²/width), no biases. Then
    Var f = σ² E[n(x)²]: σ² Var(x) without normalization (x grows by 1 + σ² per block) and σ² with
    it (x grows by σ² per block)."""
    from engine import init
    rng = np.random.default_rng(seed)
    blocks = []
    for _ in range(depth):
        l1, l2 = Linear(width, width, bias=False), Linear(width, width, bias=False)
        l1.weight.value[...] = init.normal((width, width), std=np.sqrt(2.0 / width), rng=rng)
        l2.weight.value[...] = init.normal((width, width), std=np.sqrt(sigma2 / width), rng=rng)
        pre = {"none": [], "LayerNorm": [LayerNorm(width, elementwise_affine=False)],
               "BatchNorm": [BatchNorm1d(width, affine=False)]}[norm]
        blocks.append(Residual(Sequential(*pre, l1, ReLU(), l2)))
    return blocks


def stream_variances(blocks, x):
    v = [float(np.mean(x ** 2))]
    for b in blocks:
        x = b.forward(x)
        v.append(float(np.mean(x ** 2)))
    return np.array(v)


def _fit(t, y):
    """Least-squares line y ≈ a + b t -> (b, R²)."""
    A = np.stack([np.ones_like(t), t], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    r2 = 1 - np.sum((y - A @ coef) ** 2) / np.sum((y - y.mean()) ** 2)
    return float(coef[1]), float(r2)


@figure("residual-variance", source="000 §9.2",
        caption="Variance of the residual stream after l blocks x ← x + f(x) (width {width}): without normalization "
                "it grows exponentially, by ×{rate_none:.3f} per block (theory 1 + σ² = {theory_rate:.2f}); with a "
                "normalization before f it grows linearly, by +{slope_layernorm:.3f} (LayerNorm) and "
                "+{slope_batchnorm:.3f} (BatchNorm) per block (theory σ² = {sigma2:.2f}).")
def residual_variance(quick=False):
    depth, width, batch = (16, 64, 128) if quick else (40, 128, 512)
    sigma2 = 0.5
    x = np.random.default_rng(0).normal(size=(batch, width))
    var = {n: stream_variances(residual_stream(depth, width, n, sigma2, seed=1), x)
           for n in ("none", "LayerNorm", "BatchNorm")}
    l = np.arange(depth + 1, dtype=np.float64)
    log_slope, log_r2 = _fit(l, np.log(var["none"]))
    lin = {n: _fit(l, var[n]) for n in var}

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, logy in zip(axes, (True, False)):
        ax.plot(l, var["none"], "o-", ms=3, color=style.color("none"), label="no normalization")
        ax.plot(l, var["LayerNorm"], "s-", ms=3, color=style.color("layer norm"),
                label="LayerNorm before f")
        ax.plot(l, var["BatchNorm"], "^-", ms=3, color=style.color("batch norm"),
                label="BatchNorm before f")
        ax.plot(l, (1 + sigma2) ** l, "k:", lw=1, label=r"$(1 + \sigma^2)^l$")
        ax.plot(l, 1 + sigma2 * l, "k--", lw=1, label="1 + σ² l")
        ax.set_xlabel("block l")
        ax.set_ylabel("Var($x_l$)")
        if logy:
            ax.set_yscale("log")
            ax.set_title("log scale: exponential growth is a straight line", fontsize=10)
        else:
            ax.set_ylim(0, 1.6 * var["LayerNorm"].max())
            ax.set_title("linear scale: normalized streams grow linearly", fontsize=10)
        ax.legend(fontsize=8)
    fig.suptitle(f"Residual stream variance, σ² = {sigma2} (Var f = σ² E[n(x)²])", fontsize=11)
    fig.tight_layout()
    return fig, {"depth": depth, "width": width, "sigma2": sigma2, "variances": var,
                 "rate_none": float(np.exp(log_slope)), "log_fit_r2_none": log_r2,
                 "linear_fit_r2_none": lin["none"][1], "theory_rate": 1 + sigma2,
                 "slope_layernorm": lin["LayerNorm"][0], "r2_layernorm": lin["LayerNorm"][1],
                 "slope_batchnorm": lin["BatchNorm"][0], "r2_batchnorm": lin["BatchNorm"][1]}


# ---------------------------------------------------------------------------------------------
# 004 §3.7.5: invariance table of batch, weight and layer normalization
# ---------------------------------------------------------------------------------------------
TRANSFORMS = ["weight matrix re-scaling", "weight matrix re-centering", "weight vector re-scaling",
              "dataset re-scaling", "dataset re-centering", "single training case re-scaling"]
NORMS = ["Batch norm", "Weight norm", "Layer norm"]
#: the notes' table (004 §3.7.5): True = "Invariant", False = "No"
NOTES_TABLE = {
    "Batch norm": [True, False, True, True, True, False],
    "Weight norm": [True, False, True, False, False, False],
    "Layer norm": [True, True, False, True, False, True],
}


def normalized_output(norm, W, X, eps=1e-12):
    """h = norm applied to the summed inputs a = X Wᵀ of a Linear layer without bias (as in Ba et al.),
    with no learned gain/bias: batch norm over the batch, layer norm over the hidden units, weight
    norm as a Linear layer whose weight rows are w_i/‖w_i‖."""
    H, D = W.shape
    lin = Linear(D, H, bias=False)
    if norm == "Weight norm":
        lin.weight.value[...] = W / np.linalg.norm(W, axis=1, keepdims=True)
        return lin.forward(X)
    lin.weight.value[...] = W
    a = lin.forward(X)
    layer = BatchNorm1d(H, eps=eps, affine=False) if norm == "Batch norm" else \
        LayerNorm(H, eps=eps, elementwise_affine=False)
    return layer.forward(a, train=True)


def transformed(name, W, X, rng):
    """(W', X') for one of the table's transformations."""
    N, D = X.shape
    H = W.shape[0]
    if name == "weight matrix re-scaling":
        return 3.7 * W, X
    if name == "weight matrix re-centering":              # the same vector γ added to every row w_i
        return W + rng.normal(size=(1, D)), X
    if name == "weight vector re-scaling":                # each w_i scaled by its own δ_i
        return rng.uniform(0.3, 3.0, size=(H, 1)) * W, X
    if name == "dataset re-scaling":
        return W, 2.5 * X
    if name == "dataset re-centering":                    # the same vector γ added to every case
        return W, X + rng.normal(size=(1, D))
    if name == "single training case re-scaling":         # each x_n scaled by its own δ_n
        return W, rng.uniform(0.3, 3.0, size=(N, 1)) * X
    raise ValueError(name)


@figure("norm-invariances", source="004 §3.7.5 table",
        caption="Relative change of the normalized summed inputs under each transformation, computed with the "
                "engine's BatchNorm1d, LayerNorm and a weight-normalized Linear (eps = 10⁻¹²): green cells are "
                "invariant to rounding (< 10⁻⁸). {n_match} of the {n_cells} cells match the notes' table.")
def norm_invariances(quick=False):
    rng = np.random.default_rng(0)
    N, D, H = 16, 10, 8
    W = rng.normal(size=(H, D))
    X = rng.normal(size=(N, D)) + 0.5
    rel = np.zeros((len(NORMS), len(TRANSFORMS)))
    for i, norm in enumerate(NORMS):
        base = normalized_output(norm, W, X)
        for j, t in enumerate(TRANSFORMS):
            W2, X2 = transformed(t, W, X, np.random.default_rng(10 + j))
            out = normalized_output(norm, W2, X2)
            rel[i, j] = np.abs(out - base).max() / np.abs(base).max()
    invariant = rel < 1e-8
    table = np.array([NOTES_TABLE[n] for n in NORMS])

    fig, ax = plt.subplots(figsize=(12, 3.8))
    ax.imshow(np.where(invariant, 1.0, 0.0), cmap="RdYlGn", vmin=-0.4, vmax=1.4, aspect="auto")
    for i in range(len(NORMS)):
        for j in range(len(TRANSFORMS)):
            word = "Invariant" if table[i, j] else "No"
            ax.text(j, i - 0.12, f"notes: {word}", ha="center", va="center", fontsize=9, weight="bold")
            ax.text(j, i + 0.18, f"change {rel[i, j]:.1e}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(len(TRANSFORMS)), [t.replace(" re-", "\nre-") for t in TRANSFORMS], fontsize=9)
    ax.set_yticks(range(len(NORMS)), NORMS)
    ax.set_title("Invariances of batch, weight and layer normalization: measured (colour) vs the notes' table (text)",
                 fontsize=11)
    fig.tight_layout()
    return fig, {"norms": NORMS, "transforms": TRANSFORMS, "relative_change": rel, "invariant": invariant,
                 "notes_table": table, "matches_table": bool(np.array_equal(invariant, table)),
                 "n_cells": int(table.size),
                 "n_match": int(np.sum(invariant == table))}
