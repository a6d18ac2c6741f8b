"""Curse of dimensionality (000 §3.2, Fig 3.1): the radial density of a D-dimensional Gaussian,

    p(r) = S_D r^{D−1} e^{−r²/2σ²} / (2πσ²)^{D/2},

concentrates in a thin shell around its mode r* = σ√(D − 1) (≈ σ√D), far from the origin where the
density p(x) itself peaks. Curves from `analysis.theory`, histograms of ‖x‖ for x ~ N(0, σ² I) on top.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from analysis.theory import gaussian_radial_density, gaussian_radial_mode
from figures.registry import figure

DIMS = (1, 2, 5, 10, 20, 50)


@figure("curse-of-dimensionality", source="000 Fig 3.1",
        caption="Radial density of N(0, σ²I_D) (σ = {sigma:.0f}) for D = 1 … 50 with Monte Carlo histograms of "
                "‖x‖: the mass sits in a shell at r* = σ√(D − 1), away from the origin.")
def curse_of_dimensionality(quick=False):
    sigma = 1.0
    n = 4000 if quick else 50000
    rng = np.random.default_rng(0)
    r = np.linspace(0, 9, 1801)
    fig, ax = plt.subplots(figsize=(8, 4.4))
    modes, hist_peaks, mc_means = [], [], []
    for i, D in enumerate(DIMS):
        col = f"C{i}"
        norms = np.linalg.norm(rng.normal(0, sigma, (n, D)), axis=1)
        h, edges = np.histogram(norms, bins=60, range=(0, 9), density=True)
        ax.bar(edges[:-1], h, width=np.diff(edges), align="edge", color=col, alpha=0.25)
        p = gaussian_radial_density(r, D, sigma)
        ax.plot(r, p, color=col, lw=2, label=f"D = {D}")
        m = gaussian_radial_mode(D, sigma)
        ax.axvline(m, color=col, ls=":", lw=1)
        modes.append(m)
        k = int(np.argmax(h))
        hist_peaks.append(0.5 * (edges[k] + edges[k + 1]))
        mc_means.append(float(norms.mean()))
    ax.set_xlabel("radius r = ‖x‖")
    ax.set_ylabel("p(r)")
    ax.set_title("radial density of a D-dimensional Gaussian; dotted: mode σ√(D − 1)")
    ax.legend()
    fig.tight_layout()
    numeric_modes = [float(r[np.argmax(gaussian_radial_density(r, D, sigma))]) for D in DIMS]
    return fig, {"dims": list(DIMS), "sigma": sigma, "modes": modes, "numeric_modes": numeric_modes,
                 "histogram_peaks": hist_peaks, "mc_means": mc_means}
