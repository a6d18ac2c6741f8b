"""Autoencoders (004 §2.3.5 linear autoencoder ≈ PCA; §2.4.4 binary threshold unit ≈ 2-means).

- Linear: the engine's `MLP([D, Z, D], activation="identity")` trained by `engine.fit` (Adam,
  MSE) to reproduce its input. Its decoder's columns span the same Z-dimensional subspace as
  the top-Z principal components (Baldi & Hornik 1989), which the figure checks with the
  principal angles between the two subspaces.
- Binary: encoder z = 𝕀(w·x + b ≥ 0) (engine `Linear` + `Heaviside`), decoder x̂ = c0 + z (c1 − c0)
  (engine `Linear(1, D)`). The step has zero derivative, so gradient descent cannot move the
  encoder; minimising the squared error alternates the two exact partial minimisations:
  decoder given the codes (trained by engine.fit: it converges to the two cluster means) and
  encoder given the decoder (the best hyperplane sends each x to its nearer reconstruction:
  w = c1 − c0, b = (‖c0‖² − ‖c1‖²)/2). The result is compared with 2-means (Lloyd's algorithm).
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.linalg import subspace_angles

from engine import fit
from engine.losses import MSELoss
from engine.optim import Adam
from figures.registry import figure
from layers import MLP, Heaviside, Linear


# ---- autoencoder-pca ----------------------------------------------------------------------
def low_rank_data(n, rng):
    """5-D Gaussian data whose variance sits mostly in 2 directions (std 3, 2 then 0.5, 0.3,
    0.2 along a random orthonormal basis), centred."""
    stds = np.array([3.0, 2.0, 0.5, 0.3, 0.2])
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    X = (rng.standard_normal((n, 5)) * stds) @ Q.T
    return X - X.mean(0), Q, stds


def pca(X, k):
    """Top-k principal directions (D, k) and all variances, from the SVD of the centred X."""
    Xc = X - X.mean(0)
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    return Vt[:k].T, s ** 2 / (len(X) - 1)


@figure("autoencoder-pca", source="004 §2.3.5",
        caption="A linear autoencoder 5 → 2 → 5 (engine MLP with identity activation, trained by "
                "full-batch Adam on the MSE) learns the same 2-D subspace as PCA: the principal angles "
                "between its decoder's column space and the top-2 principal components end at "
                "{angle_max_deg:.2e}°, and its reconstruction error {ae_mse:.4f} reaches PCA's "
                "optimum {pca_mse:.4f}.")
def autoencoder_pca(quick=False):
    rng = np.random.default_rng(0)
    X, _, _ = low_rank_data(500, rng)
    Z = 2
    V, variances = pca(X, Z)
    Xp = X @ V @ V.T
    pca_mse = float(np.mean((Xp - X) ** 2))
    net = MLP([5, Z, 5], activation="identity", rng=1)
    epochs = 250 if quick else 400
    angles_per_epoch = []

    def record(info):
        if info["step"] == 1:
            angles_per_epoch.append(subspace_angles(info["model"].weights[1], V))

    hist = fit(net, MSELoss(), Adam(net.parameters(), lr=0.05), X, X, epochs=epochs,
               batch_size=len(X), seed=0, progress=False, callbacks=[record])
    angles = subspace_angles(net.weights[1], V)
    recon = net.forward(X)
    ae_mse = float(np.mean((recon - X) ** 2))
    angles_per_epoch = np.degrees(np.array(angles_per_epoch))

    fig, axes = plt.subplots(1, 3, figsize=(6.5, 3.6), layout="constrained")
    ax = axes[0]
    ax.semilogy(hist["loss"], color="C0", lw=2, label="autoencoder (training MSE)")
    ax.axhline(pca_mse, color="k", ls="--", lw=1, label="PCA reconstruction (optimum)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("reconstruction MSE")
    ax.set_title("Reconstruction error")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3, which="both")
    ax = axes[1]
    for k in range(Z):
        ax.semilogy(np.arange(len(angles_per_epoch)), angles_per_epoch[:, k], lw=2,
                    label=f"principal angle {k + 1}")
    ax.set_xlabel("epoch")
    ax.set_ylabel("degrees")
    ax.set_title("Angles between decoder span\nand PCA subspace")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    ax = axes[2]
    P = X @ V                       # coordinates in the PCA plane
    ax.scatter(P[:, 0], P[:, 1], s=8, color="0.75", label="data (projected)")
    ax.scatter((Xp @ V)[:, 0], (Xp @ V)[:, 1], s=18, facecolors="none", edgecolors="C0",
               lw=0.8, label="PCA reconstruction")
    ax.scatter((recon @ V)[:, 0], (recon @ V)[:, 1], s=4, color="C3",
               label="autoencoder reconstruction")
    for k in range(Z):
        d = net.weights[1][:, k] @ V
        d = d / np.linalg.norm(d) * 6
        ax.annotate("", xy=d, xytext=(0, 0),
                    arrowprops=dict(arrowstyle="->", color="C2", lw=2))
    ax.plot([], [], color="C2", lw=2, label="decoder columns (in the PCA plane)")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_aspect("equal")
    ax.set_title("Reconstructions in\nthe PCA plane")
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2)
    fig.suptitle("Linear autoencoder 5 → 2 → 5 vs PCA")
    data = {"X": X, "pca_components": V, "variances": variances, "decoder": net.weights[1].copy(),
            "principal_angles": angles, "angle_max_deg": float(np.degrees(angles.max())),
            "angles_per_epoch_deg": angles_per_epoch, "losses": np.array(hist["loss"]),
            "ae_mse": ae_mse, "pca_mse": pca_mse}
    return fig, data


# ---- autoencoder-binary -------------------------------------------------------------------
def two_blobs(rng, n=300):
    """Two elongated Gaussian clusters in the plane, of unequal size."""
    a = rng.standard_normal((2 * n // 3, 2)) * [1.0, 0.6] + [-1.5, 0.5]
    b = rng.standard_normal((n - len(a), 2)) * [0.7, 0.9] + [2.0, -0.8]
    return np.concatenate([a, b])


def two_means(X, rng, iters=100):
    """Lloyd's algorithm for K = 2 from two random data points. Returns centroids (2, D)."""
    C = X[rng.choice(len(X), 2, replace=False)].copy()
    for _ in range(iters):
        lab = np.argmin(((X[:, None, :] - C[None]) ** 2).sum(-1), axis=1)
        newC = np.array([X[lab == k].mean(0) for k in range(2)])
        if np.allclose(newC, C):
            break
        C = newC
    return C


class BinaryAutoencoder:
    """Encoder z = 𝕀(w·x + b ≥ 0) (Linear(D, 1) + Heaviside), decoder Linear(1, D)."""

    def __init__(self, D, rng):
        self.encoder = Linear(D, 1, rng=rng)
        self.step = Heaviside()
        self.decoder = Linear(1, D, rng=rng)

    def encode(self, X):
        # Heaviside is 𝕀[s > 0]; the notes' threshold unit is 𝕀[s ≥ 0]: equal except on the
        # hyperplane itself (measure zero for continuous data)
        return self.step.forward(self.encoder.forward(X))

    def forward(self, X):
        return self.decoder.forward(self.encode(X))

    def centroids(self):
        """Decoder outputs for z = 0 and z = 1: c0 = β, c1 = β + Ω."""
        return np.stack([self.decoder.bias.value, self.decoder.bias.value +
                         self.decoder.weight.value[:, 0]])


def train_binary_autoencoder(X, rounds, rng, epochs=60):
    """Alternate: decoder by engine.fit on the current codes (MSE, Adam, warm-started), then
    the encoder's hyperplane set to the bisector of the two reconstructions. Returns the
    autoencoder and the reconstruction MSE after each round."""
    ae = BinaryAutoencoder(X.shape[1], rng)
    mses = []
    for _ in range(rounds):
        codes = ae.encode(X)
        fit(ae.decoder, MSELoss(), Adam(ae.decoder.parameters(), lr=0.05), codes, X,
            epochs=epochs, batch_size=len(X), seed=0, progress=False)
        c0, c1 = ae.centroids()
        ae.encoder.weight.value[0] = c1 - c0
        ae.encoder.bias.value[0] = 0.5 * (c0 @ c0 - c1 @ c1)
        mses.append(float(np.mean((ae.forward(X) - X) ** 2)))
    return ae, np.array(mses)


@figure("autoencoder-binary", source="004 §2.4.4",
        caption="An autoencoder with one binary threshold unit z = 𝕀(w·x + b ≥ 0) and a linear "
                "decoder (engine Linear, Heaviside; decoder trained by engine.fit, encoder set to "
                "the best hyperplane for it) reconstructs every point as one of two vectors: "
                "the centroids of a 2-means clustering (largest distance to Lloyd's centroids "
                "{centroid_gap:.1e}); the hyperplane w·x + b = 0 splits the clusters.")
def autoencoder_binary(quick=False):
    rng = np.random.default_rng(4)
    X = two_blobs(rng)
    ae, mses = train_binary_autoencoder(X, rounds=8 if quick else 12, rng=1,
                                        epochs=150 if quick else 300)
    C_ae = ae.centroids()
    C_km = two_means(X, np.random.default_rng(0))
    # match labels (the code 0/1 vs the k-means cluster index is arbitrary)
    if np.linalg.norm(C_ae - C_km) > np.linalg.norm(C_ae - C_km[::-1]):
        C_km = C_km[::-1]
    gap = float(np.max(np.linalg.norm(C_ae - C_km, axis=1)))
    codes = ae.encode(X)[:, 0]
    lab_km = np.argmin(((X[:, None, :] - C_km[None]) ** 2).sum(-1), axis=1)
    km_mse = float(np.mean((C_km[lab_km] - X) ** 2))

    fig, axes = plt.subplots(1, 2, figsize=(12, 5), gridspec_kw={"width_ratios": [1.4, 1]})
    ax = axes[0]
    ax.scatter(X[:, 0], X[:, 1], c=np.where(codes > 0.5, "C1", "C0"), s=10, alpha=0.7)
    w, b = ae.encoder.weight.value[0], ae.encoder.bias.value[0]
    xs = np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 100)
    ys = -(b + w[0] * xs) / w[1]
    keep = (ys > X[:, 1].min() - 1) & (ys < X[:, 1].max() + 1)
    ax.plot(xs[keep], ys[keep], "k--", lw=1.5, label="encoder hyperplane w·x + b = 0")
    ax.plot(C_ae[:, 0], C_ae[:, 1], "o", ms=14, mfc="none", mec="k", mew=2.5,
            label="autoencoder outputs for z = 0, 1")
    ax.plot(C_km[:, 0], C_km[:, 1], "x", ms=12, color="C3", mew=2.5,
            label="2-means centroids (Lloyd)")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_aspect("equal")
    ax.set_title("Binary-threshold autoencoder vs 2-means")
    ax.legend(fontsize=8, loc="lower left")
    ax = axes[1]
    ax.plot(np.arange(1, len(mses) + 1), mses, "o-", color="C0", label="autoencoder")
    ax.axhline(km_mse, color="C3", ls="--", label="2-means")
    ax.set_xlabel("round (decoder fit, then encoder hyperplane)")
    ax.set_ylabel("reconstruction MSE")
    ax.set_title("Reconstruction error")
    ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    data = {"X": X, "codes": codes, "centroids_ae": C_ae, "centroids_kmeans": C_km,
            "centroid_gap": gap, "mses": mses, "kmeans_mse": km_mse,
            "hyperplane": (w.copy(), float(b))}
    return fig, data
