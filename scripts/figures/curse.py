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
    fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
    modes, hist_peaks, mc_means = [], [], []
    for i, D in enumerate(DIMS):
        col = f"C{i}"
        norms = np.linalg.norm(rng.normal(0, sigma, (n, D)), axis=1)
        h, edges = np.histogram(norms, bins=60, range=(0, 9), density=True)
        # Monte Carlo histogram as open markers at the bin centres (filled bars of six
        # dimensions overlapped into a muddle), the density as a line, the mode as a tick
        centres = 0.5 * (edges[1:] + edges[:-1])
        keep = h > 0.01
        ax.plot(centres[keep], h[keep], "o", color=col, ms=2.6, mfc="none", mew=0.8)
        p = gaussian_radial_density(r, D, sigma)
        ax.plot(r, p, color=col, lw=1.5)
        m = gaussian_radial_mode(D, sigma)
        ax.plot([m, m], [0, p.max()], color=col, ls=":", lw=1)
        ax.text(m, p.max() + 0.015, f"$D$ = {D}", color=col, ha="center", va="bottom", fontsize=8)
        modes.append(m)
        k = int(np.argmax(h))
        hist_peaks.append(0.5 * (edges[k] + edges[k + 1]))
        mc_means.append(float(norms.mean()))
    ax.plot([], [], "-", color="0.3", label="density $p(r)$")
    ax.plot([], [], "o", color="0.3", ms=2.6, mfc="none", label=f"histogram of {n:,} samples")
    ax.plot([], [], ":", color="0.3", label=r"mode $\sigma\sqrt{D-1}$")
    ax.set_xlabel(r"radius $r = \Vert x\Vert$")
    ax.set_ylabel("$p(r)$")
    ax.set_ylim(0, 0.9)
    ax.set_title("Radial density of a $D$-dimensional Gaussian")
    ax.legend(loc="upper right", frameon=False)
    numeric_modes = [float(r[np.argmax(gaussian_radial_density(r, D, sigma))]) for D in DIMS]
    return fig, {"dims": list(DIMS), "sigma": sigma, "modes": modes, "numeric_modes": numeric_modes,
                 "histogram_peaks": hist_peaks, "mc_means": mc_means}
