"""Activation functions and their derivatives (000 Fig 2.1, 002 activation list, 003 Fig 1.6).

Values come from each layer's forward kernel and derivatives from its backward kernel
(∂ℓ/∂f = a'[f] ⊙ ∂ℓ/∂h with ∂ℓ/∂h = 1), checked against central finite differences.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from figures import style
from figures.registry import figure
from layers import GELU, Heaviside, Identity, LeakyReLU, ReLU, Sigmoid, Softplus, Tanh

#: (title, layer factory) in the order drawn
ACTIVATION_LAYERS = [
    ("ReLU", lambda: ReLU()),
    ("leaky ReLU (α = 0.1)", lambda: LeakyReLU(0.1)),
    ("sigmoid", lambda: Sigmoid()),
    ("tanh", lambda: Tanh()),
    ("GELU", lambda: GELU()),
    ("softplus", lambda: Softplus()),
    ("Heaviside", lambda: Heaviside()),
    ("identity", lambda: Identity()),
]


def activation_curves(z, eps=1e-5):
    """For every activation: a[z] (forward kernel), a'[z] (backward kernel with upstream 1)
    and the central difference (a[z+ε] − a[z−ε]) / 2ε (forward kernel again)."""
    out = {}
    for name, make in ACTIVATION_LAYERS:
        layer = make()
        value = layer.forward(z)
        deriv = layer.backward(np.ones_like(z))
        fd = (layer.forward(z + eps) - layer.forward(z - eps)) / (2 * eps)
        out[name] = (value, deriv, fd)
    return out


@figure("activations", source="000 Fig 2.1, 002, 003 Fig 1.6",
        caption="Activation functions a[z] (solid) and their derivatives a'[z] from the engine's "
                "backward kernels (dashed). Largest gap to central finite differences away from "
                "the kinks: {max_fd_error:.1e}.")
def activations(quick=False):
    n = 401 if quick else 1201
    z = np.linspace(-4.0, 4.0, n)
    curves = activation_curves(z)
    # Kinks (ReLU, leaky ReLU, Heaviside) at 0: finite differences straddling 0 are meaningless.
    smooth = np.abs(z) > 1e-3
    errors = {name: float(np.max(np.abs(d - fd)[smooth])) for name, (_, d, fd) in curves.items()}

    fig, axes = plt.subplots(2, 4, figsize=(6.5, 4.6), sharex=True, layout="constrained")
    for ax, (name, (v, d, _)) in zip(axes.ravel(), curves.items()):
        if name == "Heaviside":  # draw the jump as a step, not a steep line
            ax.plot(z[z <= 0], v[z <= 0], color=style.color(name), lw=2, label="a[z]")
            ax.plot(z[z > 0], v[z > 0], color=style.color(name), lw=2)
        else:
            ax.plot(z, v, color=style.color(name), lw=2, label="a[z]")
        ax.plot(z, d, color="0.25", lw=1.2, ls="--", label="a'[z] (backward kernel)")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(name)
        if name == "identity":
            ax.set_ylim(-4.2, 4.2)
        else:
            ax.set_ylim(-1.5, 4.2 if name in ("ReLU", "leaky ReLU (α = 0.1)", "GELU",
                                              "softplus") else 1.5)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
    for ax in axes[1]:
        ax.set_xlabel("z")
        ax.set_xticks([-4, 0, 4])
    fig.suptitle("Activation functions and their derivatives (from the backward kernels)")
    data = {"z": z, "curves": curves, "fd_errors": errors,
            "max_fd_error": max(errors.values())}
    return fig, data
