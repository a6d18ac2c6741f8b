"""t-SNE of the digits (004 §4.2), with `analysis.tsne`.

The map is computed by `analysis.tsne.TSNE` (Barnes-Hut, perplexity 30, 1,000 iterations) and
scored by its trustworthiness (5 neighbours) and KL divergence; drawing is separate.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from analysis.tsne import TSNE, kl_divergence, trustworthiness
from figures.registry import figure


def _digits():
    try:
        from engine.data import load_digits
        X, y = load_digits()
    except ImportError:  # engine.data not there: scikit-learn's copy of the same rows
        from sklearn.datasets import load_digits as sk_load
        X, y = sk_load(return_X_y=True)
    return np.asarray(X, dtype=np.float64), np.asarray(y)


@figure("tsne-digits", source="004 §4.2",
        caption="t-SNE of the {n} handwritten digits (8×8 pixels, 64 dimensions), coloured by class; "
                "perplexity {perplexity:g}, {iterations} iterations, Barnes-Hut θ = 0.5. Points close in "
                "64 dimensions stay close: trustworthiness (5 neighbours) {trustworthiness:.3f}, "
                "KL(P‖Q) {kl:.3f}. Distances between clusters and cluster sizes carry no meaning.")
def tsne_digits(quick=False):
    X, y = _digits()
    perplexity, iterations = 30.0, 1000
    if quick:
        X, y = X[:400], y[:400]
        perplexity, iterations = 20.0, 300
    model = TSNE(perplexity=perplexity, max_iter=iterations, init="pca", random_state=0)
    Y = model.fit_transform(X)
    t = trustworthiness(X, Y, n_neighbors=5)
    kl = kl_divergence(model.affinities_, Y)  # exact Z over all pairs

    fig, ax = plt.subplots(figsize=(7.2, 6.6))
    cmap = plt.get_cmap("tab10")
    for c in range(10):
        m = y == c
        ax.scatter(Y[m, 0], Y[m, 1], s=6, color=cmap(c), label=str(c), alpha=0.8, linewidths=0)
        if m.any():
            cx, cy = np.median(Y[m], axis=0)
            ax.text(cx, cy, str(c), fontsize=15, weight="bold", ha="center", va="center",
                    color=cmap(c), bbox=dict(boxstyle="circle,pad=0.15", fc="white", ec=cmap(c), alpha=0.85))
    ax.set_title(f"t-SNE of the digits (N = {len(y)}): trustworthiness {t:.3f}, KL {kl:.3f}")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_aspect("equal", adjustable="datalim")
    ax.legend(title="class", markerscale=3, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
              frameon=False)
    fig.tight_layout()
    data = {"embedding": Y, "labels": y, "trustworthiness": float(t), "kl": float(kl),
            "kl_barnes_hut": float(model.kl_divergence_), "n": int(len(y)),
            "perplexity": perplexity, "iterations": iterations}
    return fig, data
