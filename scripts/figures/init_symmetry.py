"""Zero / constant initialization keeps hidden units identical (004 §3.8.1).

With every row of Ω_0 equal (and equal output weights), all hidden units compute the same
function, receive the same gradient ∂ℓ/∂f_0[:, i] and so stay equal after every update:
the layer behaves like a single unit however long it trains. A random init breaks the tie.
The runs are engine.fit on the engine's MLP; a callback records Ω_0 after every step.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine import fit
from engine.data import moons
from engine.losses import BCEWithLogitsLoss
from engine.optim import SGD
from figures import style
from figures.registry import figure
from layers import MLP


def train_recording(net, X, y, epochs, lr=0.5, seed=0):
    """Train `net` with engine.fit (SGD, minibatches of 32) and record Ω_0 after each step.
    Returns (history, array (steps, D_1, D_0) of Ω_0 snapshots)."""
    snaps = []
    hist = fit(net, BCEWithLogitsLoss(), SGD(net.parameters(), lr=lr), X,
               y[:, None].astype(np.float64), epochs=epochs, batch_size=32, seed=seed,
               progress=False, metrics=["accuracy"],
               callbacks=[lambda info: snaps.append(info["model"].weights[0].copy())])
    return hist, np.array(snaps)


def row_spread(snaps):
    """Largest difference between any hidden unit's weight row and the first unit's, per step."""
    return np.max(np.abs(snaps - snaps[:, :1, :]), axis=(1, 2))


@figure("zero-init-symmetry", source="004 §3.8.1",
        caption="A [2, {hidden}, 1] tanh MLP trained on two moons by the engine (SGD, "
                "{epochs} epochs). With zero or constant initialization every hidden unit keeps "
                "the same weights (largest row difference of Ω_0 over training: "
                "{spread_constant:.1e} for constant, {spread_zero:.1e} for zero init). Zero init "
                "is stuck for good: tanh(0) = 0 and the zero output weights give every hidden "
                "weight a zero gradient, so only the output bias moves and the accuracy stays at "
                "{acc_zero:.0%}, chance on two balanced moons. Constant init trains, but its {hidden} "
                "identical units act like one (accuracy {acc_constant:.0%}); a random init breaks "
                "the symmetry (row spread {spread_random:.2f}, accuracy {acc_random:.0%}).")
def zero_init_symmetry(quick=False):
    hidden, epochs = 8, (30 if quick else 80)
    X, y = moons(n=200, noise=0.1, seed=0)
    runs = {}
    for name in ("zero", "constant", "random"):
        net = MLP([2, hidden, 1], activation="tanh", rng=0)
        if name != "random":
            c = 0.0 if name == "zero" else 0.3
            for W in net.weights:
                W[...] = c
            for b in net.biases:
                b[...] = 0.0
        hist, snaps = train_recording(net, X, y, epochs)
        runs[name] = dict(hist=hist, snaps=snaps, spread=row_spread(snaps), net=net)

    fig, axes = plt.subplots(2, 2, figsize=(6.5, 4.9), layout="constrained")
    axes = axes.ravel()
    unit_colors = plt.cm.viridis(np.linspace(0, 0.9, hidden))
    for ax, name in zip(axes[:3], ("zero", "constant", "random")):
        snaps = runs[name]["snaps"]
        steps = np.arange(1, len(snaps) + 1)
        for i in range(hidden):
            ax.plot(steps, snaps[:, i, 0], lw=1.2, color=unit_colors[i])
        ax.set_title(f"{name.capitalize()} init: $\\Omega_0[i, 0]$, {hidden} units")
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
        ax.set_ylabel("weight from input $x_1$")
    ax = axes[3]
    for name in ("zero", "constant", "random"):
        ax.plot(runs[name]["hist"]["loss"], lw=1.6, color={"zero": style.OKABE_ITO["grey"], "constant": style.OKABE_ITO["orange"],
                       "random": style.OKABE_ITO["blue"]}[name],
                ls={"zero": "-", "constant": "--", "random": "-"}[name],
                label=f"{name}: accuracy {runs[name]['hist']['accuracy'][-1]:.0%}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (BCE)")
    ax.set_title("Training loss")
    ax.legend(loc="upper right", frameon=False)
    ax.grid(alpha=0.3)
    data = {"hidden": hidden, "epochs": epochs,
            "snapshots": {k: v["snaps"] for k, v in runs.items()},
            "row_spread": {k: v["spread"] for k, v in runs.items()},
            "losses": {k: np.array(v["hist"]["loss"]) for k, v in runs.items()}}
    for k, v in runs.items():
        data[f"spread_{k}"] = float(v["spread"].max() if k != "random" else v["spread"][-1])
        data[f"acc_{k}"] = float(v["hist"]["accuracy"][-1])
    return fig, data
