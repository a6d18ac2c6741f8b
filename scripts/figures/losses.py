"""Losses, softmax with temperature, and the θ₁θ₂x backpropagation example
(000 §5, 002 "Loss functions" and "Backpropagation example", 003, 004 §2.4.6 and §3.3.1).

Every value is an engine forward (`engine.losses`, `layers.Softmax`, `layers.Linear`) and every
derivative an engine backward.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyBboxPatch

from engine.losses import (BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, L1Loss, MSELoss,
                           MultiMarginLoss)
from figures.registry import figure
from layers import Linear, Softmax


def pointwise(loss, preds, target, *extra):
    """ℓ(pred_i, target) for each prediction row, one engine forward per row (a curve of
    the loss as a function of the prediction)."""
    return np.array([loss.forward(p[None, :], target, *extra) for p in preds])


# ---- losses -------------------------------------------------------------------------------
@figure("losses", source="000 §5, 002, 003",
        caption="Losses as functions of the prediction, each from the engine's loss forward: "
                "MSE and MAE for a target y = 0; the Gaussian negative log-likelihood with "
                "variance σ² is MSE/(2σ²) + ½ log σ² (largest gap {nll_mse_gap:.1e}); for a "
                "binary label t = ±1 the BCE on the logit z (logistic loss log(1 + e^(−tz))) "
                "and the hinge max(0, 1 − tz) vs the margin tz; the softmax cross-entropy "
                "−log p_y vs the true class's probability.")
def losses(quick=False):
    n = 121 if quick else 401
    f = np.linspace(-3, 3, n)[:, None]
    y0 = np.zeros((1, 1))
    mse = pointwise(MSELoss(), f, y0)
    mae = pointwise(L1Loss(), f, y0)

    nll = {}
    gap = 0.0
    for var in (0.5, 1.0, 2.0):
        v = pointwise(GaussianNLLLoss(), f, y0, np.full((1, 1), var))
        nll[var] = v
        gap = max(gap, float(np.max(np.abs(v - (mse / (2 * var) + 0.5 * np.log(var))))))

    m = f  # margin t·z; for t = +1 the logit z equals the margin
    bce = pointwise(BCEWithLogitsLoss(), m, np.ones((1, 1)))
    # MultiMarginLoss on the two logits (0, m) with label 1: (1/C) max(0, 1 − m), C = 2
    two = np.column_stack([np.zeros(n), m[:, 0]])
    hinge = 2 * pointwise(MultiMarginLoss(), two, np.array([1]))
    zero_one = (m[:, 0] <= 0).astype(float)

    # cross-entropy over 3 classes with logits (η, 0, 0), label 0: p_0 = e^η / (e^η + 2)
    eta = np.linspace(-6, 8, n)
    logits = np.column_stack([eta, np.zeros(n), np.zeros(n)])
    ce = pointwise(CrossEntropyLoss(), logits, np.array([0]))
    p0 = Softmax().forward(logits)[:, 0]

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.9))
    ax = axes[0]
    ax.plot(f, mse, lw=2, label="MSE (f − y)²")
    ax.plot(f, mae, lw=2, label="MAE |f − y|")
    ax.set_title("Regression (target y = 0)")
    ax.set_xlabel("prediction f")
    ax.set_ylim(0, 4)
    ax = axes[1]
    for k, (var, v) in enumerate(nll.items()):
        ax.plot(f, v, lw=2, color=f"C{k + 2}", label=f"Gaussian NLL, σ² = {var}")
        ax.plot(f, mse / (2 * var) + 0.5 * np.log(var), ":", color="k", lw=1)
    ax.plot([], [], ":", color="k", label="MSE/(2σ²) + ½ log σ²")
    ax.set_title("MSE ↔ Gaussian negative log-likelihood")
    ax.set_xlabel("prediction f (mean of the Gaussian)")
    ax.set_ylim(-0.5, 4)
    ax = axes[2]
    ax.plot(m, bce, lw=2, label=r"BCE on logits: $\log(1 + e^{-tz})$")
    ax.plot(m, hinge, lw=2, label="hinge max(0, 1 − tz)")
    ax.plot(m, zero_one, lw=1.5, color="0.5", ls="--", label="0–1 loss")
    ax.set_title("Binary classification")
    ax.set_xlabel("margin t·z (label t = ±1, logit z)")
    ax.set_ylim(0, 4)
    ax = axes[3]
    ax.plot(p0, ce, lw=2, color="C5", label=r"CE = $-\log p_y$")
    ax.set_title("Multi-class cross-entropy (3 classes)")
    ax.set_xlabel(r"softmax probability of the true class $p_y$")
    ax.set_ylim(0, 6)
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("loss")
    fig.tight_layout()
    data = {"f": f[:, 0], "mse": mse, "mae": mae, "gaussian_nll": nll, "nll_mse_gap": gap,
            "margin": m[:, 0], "bce": bce, "hinge": hinge, "zero_one": zero_one,
            "p_true": p0, "cross_entropy": ce}
    return fig, data


# ---- softmax-temperature ------------------------------------------------------------------
ETA = np.array([3.0, 0.0, 1.0])


def softmax_at(eta, temperatures):
    """S(η/T) for each T with the engine's Softmax layer: (len(temperatures), len(eta))."""
    return np.array([Softmax(temperature=float(T)).forward(eta[None, :])[0] for T in temperatures])


@figure("softmax-temperature", source="004 §2.4.6",
        caption="Softmax with temperature S(η/T) for η = (3, 0, 1) (engine Softmax layer): "
                "low T concentrates the mass on the largest logit (T = {t_low:g}, the first bar "
                "group's darkest bar and the curves' left dots: max 1 − {low_gap:.0e}), high T "
                "spreads it evenly (T = {t_high:g}, the right end of the curves: largest "
                "deviation from 1/3 is {high_dev:.1e}); at T = 1 it is the plain softmax.")
def softmax_temperature(quick=False):
    bars_T = [0.1, 0.5, 1.0, 2.0, 10.0]
    curve_T = np.logspace(-2, 3, 61 if quick else 241)
    bars = softmax_at(ETA, bars_T)
    curves = softmax_at(ETA, curve_T)
    sums = np.concatenate([bars.sum(1), curves.sum(1)])

    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.2), layout="constrained")
    ax = axes[0]
    width = 0.8 / len(bars_T)
    shades = plt.cm.viridis(np.linspace(0.0, 0.85, len(bars_T)))   # dark = cold, no pale bar
    for k, T in enumerate(bars_T):
        ax.bar(np.arange(3) + (k - (len(bars_T) - 1) / 2) * width, bars[k], width,
               label=f"$T$ = {T:g}", color=shades[k], edgecolor="k", linewidth=0.3)
    ax.set_xticks(range(3))
    ax.set_xticklabels([f"$\\eta_{i + 1}$ = {e:g}" for i, e in enumerate(ETA)])
    ax.set_ylabel(r"$S(\eta/T)_i$")
    ax.set_title(r"Softmax of $\eta$ = (3, 0, 1)")
    ax.axhline(1 / 3, color="k", lw=0.7, ls=":")
    ax.legend(loc="upper right", frameon=False)
    ax = axes[1]
    t_low, t_high = bars_T[0], float(curve_T[-1])
    low, high = softmax_at(ETA, [t_low])[0], softmax_at(ETA, [t_high])[0]
    for i in range(3):
        ax.semilogx(curve_T, curves[:, i], lw=1.6, color=f"C{i}",
                    label=f"$i$ = {i + 1} ($\\eta_{i + 1}$ = {ETA[i]:g})")
        ax.plot([t_low], [low[i]], "o", color=f"C{i}", ms=4)
    ax.axhline(1 / 3, color="k", lw=0.7, ls=":", label="uniform 1/3")
    ax.set_xlabel("temperature $T$")
    ax.set_ylabel(r"$S(\eta/T)_i$")
    ax.set_title(r"$T \to 0$: one-hot; $T \to \infty$: uniform")
    ax.legend(loc="center right", frameon=False)
    ax.grid(alpha=0.3, which="major")
    sums = np.concatenate([sums, low[None].sum(1), high[None].sum(1)])
    data = {"eta": ETA, "bar_temperatures": bars_T, "bars": bars, "temperatures": curve_T,
            "probs": curves, "max_sum_error": float(np.max(np.abs(sums - 1))),
            "t_low": t_low, "p_low": low, "p_low_max": float(low.max()), "low_gap": float(1 - low.max()),
            "t_high": t_high, "p_high": high, "high_dev": float(np.max(np.abs(high - 1 / 3)))}
    return fig, data


# ---- backprop-toy -------------------------------------------------------------------------
def backprop_toy_values(theta1, theta2, x, y):
    """Forward and backward pass of L = (θ₁θ₂x − y)² through engine layers.

    a = θ₁θ₂ is a bias-free Linear(1, 1) with weight θ₂ applied to the input θ₁; b = a·x a
    bias-free Linear(1, 1) with weight x applied to a; c = b − y and L = c² are MSELoss(b, y)
    on one element. The backward kernels give ∂L/∂b (= ∂L/∂c = 2c), ∂L/∂a = ∂L/∂b · x,
    ∂L/∂θ₂ (the first layer's weight gradient) = ∂L/∂a · θ₁ and ∂L/∂θ₁ (its input gradient)
    = ∂L/∂a · θ₂."""
    mul_theta2 = Linear(1, 1, bias=False, rng=0)
    mul_theta2.weight.value[...] = theta2
    mul_x = Linear(1, 1, bias=False, rng=0)
    mul_x.weight.value[...] = x
    loss = MSELoss()
    t1 = np.array([[theta1]], float)
    a = mul_theta2.forward(t1)
    b = mul_x.forward(a)
    L = loss.forward(b, np.array([[y]], float))
    dL_db = loss.backward()
    dL_da = mul_x.backward(dL_db)
    dL_dtheta1 = mul_theta2.backward(dL_da)
    return {"a": float(a[0, 0]), "b": float(b[0, 0]), "c": float(b[0, 0] - y), "L": float(L),
            "dL_dc": float(dL_db[0, 0]), "dL_db": float(dL_db[0, 0]),
            "dL_da": float(dL_da[0, 0]), "dL_dtheta1": float(dL_dtheta1[0, 0]),
            "dL_dtheta2": float(mul_theta2.weight.grad[0, 0])}


def backprop_toy_closed_form(theta1, theta2, x, y):
    """The notes' closed forms (002): c = θ₁θ₂x − y, ∂L/∂c = ∂L/∂b = 2c, ∂L/∂a = 2cx,
    ∂L/∂θ₁ = 2cxθ₂, ∂L/∂θ₂ = 2cxθ₁."""
    c = theta1 * theta2 * x - y
    return {"a": theta1 * theta2, "b": theta1 * theta2 * x, "c": c, "L": c * c,
            "dL_dc": 2 * c, "dL_db": 2 * c, "dL_da": 2 * c * x,
            "dL_dtheta1": 2 * c * x * theta2, "dL_dtheta2": 2 * c * x * theta1}


TOY = dict(theta1=0.5, theta2=3.0, x=2.0, y=1.0)


@figure("backprop-toy", source="002 (θ₁θ₂x example), 004 §3.3.1",
        caption="Compute graph of L = (θ₁θ₂x − y)² with θ₁ = {theta1:g}, θ₂ = {theta2:g}, "
                "x = {x:g}, y = {y:g}: forward values (blue, left to right) and gradients ∂L/∂· "
                "(red, right to left) from the engine's Linear and MSELoss kernels; "
                "∂L/∂θ₁ = {dL_dtheta1:g}, ∂L/∂θ₂ = {dL_dtheta2:g}, equal to the closed forms "
                "2cxθ₂ and 2cxθ₁ (largest gap {max_gap:.1e}).")
def backprop_toy(quick=False):
    vals = backprop_toy_values(**TOY)
    closed = backprop_toy_closed_form(**TOY)
    gap = max(abs(vals[k] - closed[k]) for k in closed)

    fig, ax = plt.subplots(figsize=(12, 4.2))
    ax.set_xlim(-0.5, 10.5)
    ax.set_ylim(-0.2, 4.4)
    ax.axis("off")
    nodes = {  # name: (x, y, label, forward value, gradient key)
        "theta1": (0.5, 3.2, "θ₁", TOY["theta1"], "dL_dtheta1"),
        "theta2": (0.5, 1.0, "θ₂", TOY["theta2"], "dL_dtheta2"),
        "a": (3.0, 2.1, "a = θ₁θ₂", vals["a"], "dL_da"),
        "x": (3.0, 0.3, "x", TOY["x"], None),
        "b": (5.4, 2.1, "b = a·x", vals["b"], "dL_db"),
        "y": (5.4, 0.3, "y", TOY["y"], None),
        "c": (7.6, 2.1, "c = b − y", vals["c"], "dL_dc"),
        "L": (9.7, 2.1, "L = c²", vals["L"], None),
    }
    edges = [("theta1", "a"), ("theta2", "a"), ("a", "b"), ("x", "b"), ("b", "c"), ("y", "c"),
             ("c", "L")]
    for u, v in edges:
        (x0, y0), (x1, y1) = nodes[u][:2], nodes[v][:2]
        ax.annotate("", xy=(x1 - 0.75, y1), xytext=(x0 + 0.75, y0),
                    arrowprops=dict(arrowstyle="->", color="0.3", lw=1.2))
    for name, (cx, cy, label, value, gkey) in nodes.items():
        ax.add_patch(FancyBboxPatch((cx - 0.7, cy - 0.35), 1.4, 0.7,
                                    boxstyle="round,pad=0.05", fc="0.95", ec="0.3"))
        ax.text(cx, cy, label, ha="center", va="center", fontsize=11)
        ax.text(cx, cy + 0.55, f"{value:g}", ha="center", color="C0", fontsize=11,
                fontweight="bold")
        if gkey is not None:
            ax.text(cx, cy - 0.7, f"∂L/∂{label.split(' ')[0]} = {vals[gkey]:g}", ha="center",
                    color="C3", fontsize=10)
    ax.text(9.7, 1.4, "∂L/∂L = 1", ha="center", color="C3", fontsize=10)
    ax.text(0, 4.25, "forward values", color="C0", fontsize=11, fontweight="bold")
    ax.text(2.6, 4.25, "backward: ∂L/∂(node), chain rule from right to left", color="C3",
            fontsize=11)
    ax.set_title("Backpropagation on L = (θ₁θ₂x − y)²")
    fig.tight_layout()
    data = dict(TOY)
    data.update(vals)
    data["closed_form"] = closed
    data["max_gap"] = float(gap)
    return fig, data
