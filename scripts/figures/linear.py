"""Linear models (000 §1.2, Fig 1.1 and exercises; 000 §3 polar coordinates; 003 §1.2.1 perceptron).

Everything is computed with the engine: a `Linear(D, 1)` layer is the model, `MSELoss` /
`BCEWithLogitsLoss` the loss, `engine.optim.SGD`/`Adam` the gradient steps; the closed form
Φ = (XᵀX)⁻¹Xᵀy of the exercises is computed here with `np.linalg.solve` (a D×D system).
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine import fit
from engine.data import circles, linear_regression
from engine.losses import BCEWithLogitsLoss, MSELoss
from engine.optim import SGD, Adam
from figures.registry import figure
from layers import Heaviside, Linear

SEED = 3


# ---- computing ----------------------------------------------------------------------------
def least_squares(x, y):
    """Closed form of 000 §1.2 exercise 2: Φ = (XᵀX)⁻¹Xᵀy with X = [1, x] (N, 2).
    Returns (Φ0, Φ1). Solved as the 2×2 system XᵀX Φ = Xᵀy (never an explicit inverse)."""
    X = np.column_stack([np.ones(len(x)), np.ravel(x)])
    phi = np.linalg.solve(X.T @ X, X.T @ np.ravel(y))
    return float(phi[0]), float(phi[1])


def linear_model(phi0, phi1):
    """A Linear(1, 1) layer holding y = Φ0 + Φ1 x."""
    layer = Linear(1, 1, rng=0)
    layer.weight.value[...] = phi1
    layer.bias.value[...] = phi0
    return layer


def loss_and_grad(layer, loss, x, y):
    """L and (∂L/∂Φ0, ∂L/∂Φ1) at the layer's current parameters (engine forward/backward)."""
    layer.zero_grad()
    value = loss.forward(layer.forward(x), y)
    layer.backward(loss.backward(), input_grad=False)
    return value, np.array([layer.bias.grad[0], layer.weight.grad[0, 0]])


def gd_path(x, y, start, lr, steps):
    """Full-batch gradient descent on the MSE of y = Φ0 + Φ1 x with engine.optim.SGD.
    Returns the path (steps+1, 2) of (Φ0, Φ1) and the losses (steps+1,)."""
    layer, loss = linear_model(*start), MSELoss()
    opt = SGD(layer.parameters(), lr=lr)
    path, losses = [], []
    for _ in range(steps + 1):
        value, _ = loss_and_grad(layer, loss, x, y)
        path.append((layer.bias.value[0], layer.weight.value[0, 0]))
        losses.append(value)
        opt.step()
    return np.array(path), np.array(losses)


def loss_grid(x, y, phi0s, phi1s):
    """L(Φ0, Φ1) on a grid, each value an engine forward + MSELoss (grid[i, j]: Φ1 = phi1s[i],
    Φ0 = phi0s[j])."""
    layer, loss = linear_model(0.0, 0.0), MSELoss()
    grid = np.empty((len(phi1s), len(phi0s)))
    for i, p1 in enumerate(phi1s):
        for j, p0 in enumerate(phi0s):
            layer.weight.value[...] = p1
            layer.bias.value[...] = p0
            grid[i, j] = loss.forward(layer.forward(x), y)
    return grid


# ---- linreg-fit ---------------------------------------------------------------------------
@figure("linreg-fit", source="000 Fig 1.1",
        caption="Least-squares line y = {phi0:.3f} + {phi1:.3f} x (closed form (XᵀX)⁻¹Xᵀy) "
                "through {n} noisy points, with the vertical errors P_i − y_i. Gradient descent "
                "(engine SGD, {gd_steps} steps) reaches ({gd_phi0:.3f}, {gd_phi1:.3f}); "
                "MSE {mse:.4f}.")
def linreg_fit(quick=False):
    n = 20
    x, y, true = linear_regression(n=n, noise=0.3, seed=SEED, weight=[[0.8]], bias=[0.5])
    phi0, phi1 = least_squares(x, y)
    steps = 300 if quick else 1000
    path, losses = gd_path(x, y, start=(0.0, 0.0), lr=0.3, steps=steps)
    gd_phi0, gd_phi1 = path[-1]
    layer = linear_model(phi0, phi1)
    pred = layer.forward(x)

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for xi, yi, pi in zip(x[:, 0], y[:, 0], pred[:, 0]):
        ax.plot([xi, xi], [yi, pi], color="C3", lw=1, zorder=1)
    ax.scatter(x[:, 0], y[:, 0], color="C0", zorder=3, label=r"data $(x_i, y_i)$")
    xs = np.linspace(-1.05, 1.05, 50)[:, None]
    ax.plot(xs, layer.forward(xs), color="k", lw=2, zorder=2,
            label=f"least squares: y = {phi0:.2f} + {phi1:.2f} x")
    ax.plot([], [], color="C3", lw=1, label=r"errors $P_i - y_i$")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Linear model y = Φ0 + Φ1 x with its errors")
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    data = {"x": x, "y": y, "phi0": phi0, "phi1": phi1, "gd_phi0": float(gd_phi0),
            "gd_phi1": float(gd_phi1), "gd_path": path, "gd_losses": losses, "gd_steps": steps,
            "n": n, "mse": float(MSELoss().forward(pred, y)), "true": true}
    return fig, data


# ---- linreg-loss-surface ------------------------------------------------------------------
def level_line_tangents(x, phi_star, level_offset, n_points=24):
    """Points on a level line L = L_min + c of the quadratic loss and their exact tangents.

    L(Φ) = L_min + (Φ − Φ*)ᵀ H (Φ − Φ*) with H = XᵀX / N, so the level line is the ellipse
    Φ(t) = Φ* + √c H^(−1/2) (cos t, sin t), tangent Φ'(t) = √c H^(−1/2) (−sin t, cos t)."""
    X = np.column_stack([np.ones(len(x)), np.ravel(x)])
    H = X.T @ X / len(x)
    w, V = np.linalg.eigh(H)
    Hm12 = V @ np.diag(w ** -0.5) @ V.T
    t = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)])
    dcircle = np.stack([-np.sin(t), np.cos(t)])
    pts = np.asarray(phi_star)[:, None] + np.sqrt(level_offset) * Hm12 @ circle
    tangents = np.sqrt(level_offset) * Hm12 @ dcircle
    return pts.T, tangents.T


@figure("linreg-loss-surface", source="000 §1.2 exercises",
        caption="The MSE loss L(Φ0, Φ1) is a paraboloid: elliptic level lines around the "
                "minimum (Φ0, Φ1) = ({phi0:.2f}, {phi1:.2f}), −∇L arrows from the engine's backward "
                "pass, and a gradient-descent path (engine SGD, lr {lr}). The gradient is "
                "orthogonal to the level lines: largest |cos(∇L, tangent)| = {max_abs_cos:.1e}.")
def linreg_loss_surface(quick=False):
    x, y, _ = linear_regression(n=20, noise=0.3, seed=SEED, weight=[[0.8]], bias=[0.5])
    phi0, phi1 = least_squares(x, y)
    m = 40 if quick else 80
    phi0s = np.linspace(phi0 - 2.5, phi0 + 2.5, m)
    phi1s = np.linspace(phi1 - 2.5, phi1 + 2.5, m)
    grid = loss_grid(x, y, phi0s, phi1s)
    lmin = float(MSELoss().forward(linear_model(phi0, phi1).forward(x), y))

    # gradient arrows on a coarse grid, from the engine's backward pass
    layer, loss = linear_model(0, 0), MSELoss()
    a0 = np.linspace(phi0s[0] + 0.25, phi0s[-1] - 0.25, 9)
    a1 = np.linspace(phi1s[0] + 0.25, phi1s[-1] - 0.25, 9)
    A0, A1 = np.meshgrid(a0, a1)
    G = np.empty(A0.shape + (2,))
    for idx in np.ndindex(A0.shape):
        layer.bias.value[...] = A0[idx]
        layer.weight.value[...] = A1[idx]
        G[idx] = loss_and_grad(layer, loss, x, y)[1]

    # orthogonality check on exact level lines, gradients again from the engine
    cosines = []
    levels_c = [0.1, 0.5, 2.0]
    for c in levels_c:
        pts, tangents = level_line_tangents(x, (phi0, phi1), c)
        for p, tan in zip(pts, tangents):
            layer.bias.value[...] = p[0]
            layer.weight.value[...] = p[1]
            g = loss_and_grad(layer, loss, x, y)[1]
            cosines.append(g @ tan / (np.linalg.norm(g) * np.linalg.norm(tan)))
    cosines = np.array(cosines)

    lr = 0.4
    path, losses = gd_path(x, y, start=(phi0 - 2.0, phi1 + 2.2), lr=lr, steps=40)

    fig, ax = plt.subplots(figsize=(5.0, 5.4), layout="constrained")
    P0, P1 = np.meshgrid(phi0s, phi1s)
    levels = np.round(lmin + np.array([0.05, 0.25, 0.5, 1, 2, 3, 4.5, 6, 8]), 1)
    # (viridis without its pale yellow end, which vanishes on white)
    cs = ax.contour(P0, P1, grid, levels=levels, cmap="viridis",
                    norm=matplotlib.colors.Normalize(levels[0], levels[-1] / 0.8))
    # labels on every other level line, placed where the line crosses φ1 = Φ1* − 0.4 right of
    # the minimum (away from the descent path, which comes from the upper left)
    row = phi1 - 0.4
    line0 = np.linspace(phi0, phi0s[-1], 400)
    lrow = loss_grid(x, y, line0, np.array([row]))[0]
    spots = [(float(np.interp(v, lrow, line0)), row) for v in levels[1::2] if v < lrow[-1]]
    ax.clabel(cs, levels[1::2], fontsize=8, fmt=lambda v: f"{v:g}", inline_spacing=2,
              manual=spots)
    Gn = G / np.linalg.norm(G, axis=-1, keepdims=True)
    ax.quiver(A0, A1, -Gn[..., 0], -Gn[..., 1], color="0.4", angles="xy", scale=28,
              width=0.003, label="−∇L (direction)")
    ax.plot(path[:, 0], path[:, 1], "o-", color="C3", ms=3, lw=1.2,
            label=f"gradient descent, lr = {lr}")
    ax.plot(phi0, phi1, "k*", ms=12, label="minimum $(X^TX)^{-1}X^Ty$")
    ax.set_xlabel(r"$\phi_0$ (intercept)")
    ax.set_ylabel(r"$\phi_1$ (slope)")
    ax.set_title(r"Loss surface $L(\phi_0, \phi_1)$ of linear regression")
    ax.set_aspect("equal")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)
    data = {"phi0": phi0, "phi1": phi1, "phi0s": phi0s, "phi1s": phi1s, "loss": grid,
            "loss_min": lmin, "arrow_points": np.stack([A0, A1], -1), "gradients": G,
            "cosines": cosines, "max_abs_cos": float(np.max(np.abs(cosines))),
            "gd_path": path, "gd_losses": losses, "lr": lr}
    return fig, data


# ---- polar-coordinates --------------------------------------------------------------------
def to_polar(X):
    """(x1, x2) → (r, θ) with r = √(x1² + x2²), θ = atan2(x2, x1) (000 §3)."""
    return np.column_stack([np.hypot(X[:, 0], X[:, 1]), np.arctan2(X[:, 1], X[:, 0])])


def train_linear_classifier(X, y, epochs, seed=0):
    """Logistic regression Linear(2, 1) + BCEWithLogitsLoss trained by engine.fit with Adam.
    Returns (layer, accuracy on X)."""
    mu, sd = X.mean(0), X.std(0)
    Xs = (X - mu) / sd
    layer = Linear(2, 1, rng=seed)
    hist = fit(layer, BCEWithLogitsLoss(), Adam(layer.parameters(), lr=0.05), Xs,
               y[:, None].astype(np.float64), epochs=epochs, batch_size=32, seed=seed,
               progress=False)
    acc = float(np.mean((layer.forward(Xs)[:, 0] > 0) == (y > 0.5)))
    # boundary w·(x − μ)/σ + b = 0 back in the original coordinates: w' = w/σ, b' = b − w'·μ
    w = layer.weight.value[0] / sd
    b = layer.bias.value[0] - w @ mu
    return (w, b), acc, hist


def _draw_boundary(ax, w, b, xlim, ylim, **kw):
    xs = np.linspace(*xlim, 200)
    if abs(w[1]) > 1e-12:
        ys = -(b + w[0] * xs) / w[1]
        keep = (ys >= ylim[0]) & (ys <= ylim[1])
        ax.plot(xs[keep], ys[keep], **kw)
    else:
        ax.axvline(-b / w[0], **kw)


@figure("polar-coordinates", source="000 §3",
        caption="Concentric circles: a linear classifier (logistic regression trained by the "
                "engine) reaches only {acc_cartesian:.0%} accuracy on (x1, x2) but "
                "{acc_polar:.0%} on the polar coordinates (r, θ), where the classes are split by "
                "the line r = const.")
def polar_coordinates(quick=False):
    X, y = circles(n=200 if quick else 400, noise=0.05, factor=0.5, seed=SEED)
    epochs = 40 if quick else 100
    (wc, bc), acc_c, _ = train_linear_classifier(X, y, epochs)
    P = to_polar(X)
    (wp, bp), acc_p, _ = train_linear_classifier(P, y, epochs)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    cols = np.where(y == 1, "C1", "C0")
    for ax in axes:
        ax.scatter([], [], color="C0", s=10, label="class 0 (outer circle)")
        ax.scatter([], [], color="C1", s=10, label="class 1 (inner circle)")
    ax = axes[0]
    ax.scatter(X[:, 0], X[:, 1], c=cols, s=10)
    lim = (-1.35, 1.35)
    _draw_boundary(ax, wc, bc, lim, lim, color="k", lw=2, label="linear classifier")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title(f"Cartesian (x1, x2): accuracy {acc_c:.0%}")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    ax.scatter(P[:, 1], P[:, 0], c=cols, s=10)
    # the boundary in (θ, r) axes: w_r r + w_θ θ + b = 0
    thlim, rlim = (-np.pi, np.pi), (0, 1.35)
    _draw_boundary(ax, np.array([wp[1], wp[0]]), bp, thlim, rlim, color="k", lw=2,
                   label="linear classifier")
    ax.set_xlim(thlim)
    ax.set_ylim(rlim)
    ax.set_xlabel("θ = atan2(x2, x1)")
    ax.set_ylabel("r = √(x1² + x2²)")
    ax.set_title(f"Polar (r, θ): accuracy {acc_p:.0%}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    data = {"X": X, "y": y, "polar": P, "acc_cartesian": acc_c, "acc_polar": acc_p,
            "boundary_cartesian": (wc, bc), "boundary_polar": (wp, bp)}
    return fig, data


# ---- perceptron-2d ------------------------------------------------------------------------
def boundary_points(Z, xs, ys):
    """Midpoints between horizontally or vertically adjacent grid cells of different class.
    Z[i, j] is the value at (xs[j], ys[i])."""
    pts = []
    dh = Z[:, 1:] != Z[:, :-1]
    i, j = np.nonzero(dh)
    pts.append(np.column_stack([(xs[j] + xs[j + 1]) / 2, ys[i]]))
    dv = Z[1:, :] != Z[:-1, :]
    i, j = np.nonzero(dv)
    pts.append(np.column_stack([xs[j], (ys[i] + ys[i + 1]) / 2]))
    return np.concatenate(pts)


def line_fit_residual(pts):
    """Largest distance of the points from their total-least-squares line."""
    c = pts - pts.mean(0)
    _, _, Vt = np.linalg.svd(c, full_matrices=False)
    normal = Vt[-1]
    return float(np.max(np.abs(c @ normal)))


@figure("perceptron-2d", source="003 §1.2.1",
        caption="A perceptron z = Θ(w·x + b) with random w = ({w1:.2f}, {w2:.2f}), b = {b:.2f} "
                "(engine Linear + Heaviside layers) on a {n_grid}×{n_grid} grid: its two decision "
                "regions are split by a straight line (boundary points within {line_residual:.3f} "
                "of a line; grid step {step:.3f}).")
def perceptron_2d(quick=False):
    n = 60 if quick else 120
    xs = ys = np.linspace(-1, 1, n)
    Xg, Yg = np.meshgrid(xs, ys)
    points = np.column_stack([Xg.ravel(), Yg.ravel()])
    rng = np.random.default_rng(7)
    lin = Linear(2, 1, rng=rng)
    lin.weight.value[...] = rng.standard_normal((1, 2))
    lin.bias.value[...] = 0.5 * rng.standard_normal(1)
    Z = Heaviside().forward(lin.forward(points)).reshape(Xg.shape)
    bpts = boundary_points(Z, xs, ys)
    resid = line_fit_residual(bpts)

    fig, ax = plt.subplots(figsize=(5.5, 5))
    cf = ax.contourf(Xg, Yg, Z, levels=[-0.5, 0.5, 1.5], cmap="coolwarm")
    w, b = lin.weight.value[0], lin.bias.value[0]
    _draw_boundary(ax, w, b, (-1, 1), (-1, 1), color="k", lw=1.5, ls="--",
                   label="w·x + b = 0")
    cbar = fig.colorbar(cf, ax=ax, ticks=[0, 1])
    cbar.set_label("z = Θ(w·x + b)")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Random perceptron: a linear decision boundary")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    data = {"Z": Z, "xs": xs, "ys": ys, "w1": float(w[0]), "w2": float(w[1]), "b": float(b),
            "boundary_points": bpts, "line_residual": resid, "step": float(xs[1] - xs[0]),
            "n_grid": n}
    return fig, data
