"""Double descent (003 §1.3.12): regression with P random ReLU features and the minimum-norm
least-squares fit. The test error peaks where the number of parameters P equals the number of
training samples N (the interpolation threshold) and falls again beyond it.

Inputs x ∈ R^10 ~ N(0, I), targets a smooth nonlinear function plus noise. Features are the hidden
activations h_1 = ReLU(Ω_0 x) of the engine's MLP([10, P, 1]) with random, fixed first-layer weights; only the output layer is fitted, by φ = H⁺ y (pseudo-inverse:
the least-squares solution when P < N, the minimum-norm interpolant when P ≥ N).
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from figures.registry import figure
from layers import MLP


D_IN = 10


def _target(X):
    """A smooth nonlinear target on R^d: a linear part plus a quadratic bump."""
    return X[:, 0] + 0.5 * X[:, 1] * X[:, 2] + np.tanh(X[:, 3])


def random_features(P, X, rng):
    """ReLU features h_1 = ReLU(Ω_0 x) of X (N, d) from an MLP([d, P, 1]) whose first layer has
    fixed random weights Ω_0 ~ N(0, 1/d) and zero biases (the layer is never trained)."""
    d = X.shape[1]
    net = MLP([d, P, 1], rng=rng)
    net.weights[0][...] = rng.normal(0.0, 1.0 / np.sqrt(d), (P, d))
    net.biases[0][...] = 0.0
    net.forward(X)
    return net.activations[0].copy()


def double_descent_curve(n_train=100, P_values=None, noise=0.3, seeds=10, n_test=1000, rng=0):
    """Median test and train MSE over `seeds` draws of min-norm random-feature regression for each
    number of features P: φ = H⁺ y (np.linalg.lstsq, the minimum-norm solution when P ≥ N)."""
    if P_values is None:
        P_values = np.unique(np.round(np.geomspace(5, 20 * n_train, 32)).astype(int))
        P_values = np.unique(np.concatenate([P_values, [n_train]]))
    g = np.random.default_rng(rng)
    test = np.zeros((seeds, len(P_values)))
    train = np.zeros_like(test)
    for s in range(seeds):
        X = g.normal(size=(n_train, D_IN))
        y = _target(X) + noise * g.normal(size=n_train)
        Xt = g.normal(size=(n_test, D_IN))
        yt = _target(Xt)
        for i, P in enumerate(P_values):
            H = random_features(int(P), np.vstack([X, Xt]), np.random.default_rng(g.integers(2 ** 31)))
            phi = np.linalg.lstsq(H[:n_train], y, rcond=None)[0]
            train[s, i] = np.mean((H[:n_train] @ phi - y) ** 2)
            test[s, i] = np.mean((H[n_train:] @ phi - yt) ** 2)
    return np.asarray(P_values), np.median(test, axis=0), np.median(train, axis=0)


@figure("double-descent", source="003 §1.3.12",
        caption="Random ReLU-feature regression (N = {n_train} samples, minimum-norm least squares): the test "
                "error peaks at P = {peak_P} features, near the interpolation threshold P = N, then descends again.")
def double_descent(quick=False):
    n_train = 60 if quick else 100
    P, test, train = double_descent_curve(n_train=n_train, seeds=3 if quick else 10, n_test=300 if quick else 1000)
    peak = int(P[np.argmax(test)])
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.loglog(P, test, "o-", label="test MSE (median over draws)")
    ax.loglog(P, np.maximum(train, 1e-12), "s--", ms=4, label="train MSE")
    ax.axvline(n_train, color="k", ls=":", label="P = N (interpolation threshold)")
    ax.set_xlabel("number of random features P (= fitted parameters)")
    ax.set_ylabel("mean squared error")
    ax.set_ylim(1e-4, None)
    ax.set_title("double descent")
    ax.legend()
    fig.tight_layout()
    return fig, {"n_train": n_train, "P": P, "test": test, "train": train, "peak_P": peak}
