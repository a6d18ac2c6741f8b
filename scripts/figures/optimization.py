"""Optimization: learning rates, the Gabor landscape, saddle points, optimizers, batch size
(003 Fig 1.7, 1.8, §1.3.9–1.3.10; 000 §5.1; 004 §3.4).

Every path is made by the engine's optimizers (`engine.optim.SGD`, `Adagrad`, `RMSprop`,
`Adam`) stepping a `Parameter`; the gradient is either an engine backward pass (linear
regression, batch-size variance) or, for 2-D test functions, written by hand in `grad`
functions next to the function.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

from engine.core import Parameter
from engine.data import gabor, gabor_model, linear_regression
from engine.losses import MSELoss
from engine.optim import SGD, Adagrad, Adam, RMSprop
from figures import style
from figures.registry import figure
from layers import MLP, Linear


def optimize_2d(grad, start, make_optimizer, steps, stop=None):
    """Run `steps` updates of `make_optimizer([p])` on a 2-vector Parameter p from `start`,
    with p.grad = grad(p.value) (hand-written gradient). Returns the path (steps+1, 2).
    `stop(value)` may end the run early (it returns True to stop); the path is then shorter."""
    p = Parameter(np.array(start, dtype=np.float64))
    opt = make_optimizer([p])
    path = [p.value.copy()]
    for _ in range(steps):
        p.zero_grad()
        p.grad += grad(p.value)
        opt.step()
        path.append(p.value.copy())
        if not np.all(np.isfinite(p.value)) or (stop is not None and stop(p.value)):
            break
    return np.array(path)


# ---- gd-learning-rates --------------------------------------------------------------------
def linreg_gd(x, y, lr, steps, start=(-2.0, 2.5)):
    """Full-batch gradient descent on the MSE of a Linear(1, 1) (engine forward, MSELoss,
    backward, SGD). Returns the (Φ0, Φ1) path and the losses; stops early when it blows up."""
    layer, loss = Linear(1, 1, rng=0), MSELoss()
    layer.bias.value[...] = start[0]
    layer.weight.value[...] = start[1]
    opt = SGD(layer.parameters(), lr=lr)
    path, losses = [], []
    for _ in range(steps + 1):
        layer.zero_grad()
        value = loss.forward(layer.forward(x), y)
        path.append((layer.bias.value[0], layer.weight.value[0, 0]))
        losses.append(value)
        if not np.isfinite(value) or value > 1e8:
            break
        layer.backward(loss.backward(), input_grad=False)
        opt.step()
    return np.array(path), np.array(losses)


@figure("gd-learning-rates", source="003 Fig 1.7",
        caption="Full-batch gradient descent on one linear-regression loss (engine Linear, "
                "MSELoss, SGD) with learning rates from too small to diverging; the Hessian's "
                "largest eigenvalue is λ_max = {lam_max:.2f}, so rates above 2/λ_max = "
                "{lr_limit:.2f} diverge. Final losses after {steps} steps: too small "
                "{final_too_small:.3f}, good {final_good:.4f}, too large {final_too_large:.3f}, "
                "diverging {final_diverging:.2e}.")
def gd_learning_rates(quick=False):
    x, y, _ = linear_regression(n=50, noise=0.3, seed=5, weight=[[1.0]], bias=[0.3])
    X = np.column_stack([np.ones(len(x)), x[:, 0]])
    lam = np.linalg.eigvalsh(2 * X.T @ X / len(x))          # Hessian of the MSE
    lam_max, lam_min = float(lam[-1]), float(lam[0])
    lr_opt = 2 / (lam_max + lam_min)
    rates = {"too small": 0.03 * lr_opt, "good": lr_opt, "too large": 0.97 * 2 / lam_max,
             "diverging": 1.08 * 2 / lam_max}
    steps = 30 if quick else 40
    runs = {name: linreg_gd(x, y, lr, steps) for name, lr in rates.items()}
    lmin = float(MSELoss().forward(X @ np.linalg.solve(X.T @ X, X.T @ y), y))

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"too small": "C0", "good": "C2", "too large": "C1", "diverging": "C3"}
    ax = axes[0]
    for name, (_, losses) in runs.items():
        ax.semilogy(losses - lmin + 1e-12, "o-", ms=2.5, color=colors[name],
                    label=f"{name}: lr = {rates[name]:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel(r"$L - L_{\min}$")
    ax.set_ylim(1e-6, 1e3)
    ax.set_title("Loss vs steps")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax = axes[1]
    phi_star = np.linalg.solve(X.T @ X, X.T @ y[:, 0])
    p0 = np.linspace(phi_star[0] - 3, phi_star[0] + 3, 120)
    p1 = np.linspace(phi_star[1] - 3, phi_star[1] + 3, 120)
    P0, P1 = np.meshgrid(p0, p1)
    L = np.mean((P0[..., None] + P1[..., None] * x[:, 0] - y[:, 0]) ** 2, axis=-1)
    ax.contour(P0, P1, L, levels=lmin + np.array([0.05, 0.2, 0.5, 1, 2, 4, 7]), cmap="Greys",
               linewidths=0.8)
    for name, (path, _) in runs.items():
        keep = np.all(np.abs(path - phi_star) < 3, axis=1)
        ax.plot(path[keep, 0], path[keep, 1], "o-", ms=2.5, lw=1, color=colors[name],
                label=name)
    ax.plot(*phi_star, "k*", ms=12)
    ax.set_xlim(p0[0], p0[-1])
    ax.set_ylim(p1[0], p1[-1])
    ax.set_xlabel("Φ0")
    ax.set_ylabel("Φ1")
    ax.set_title("Parameter paths")
    ax.legend(fontsize=8)
    fig.suptitle("Gradient descent with different learning rates")
    fig.tight_layout()
    data = {"rates": rates, "losses": {k: v[1] for k, v in runs.items()},
            "paths": {k: v[0] for k, v in runs.items()}, "loss_min": lmin, "steps": steps,
            "lam_max": lam_max, "lam_min": lam_min, "lr_limit": 2 / lam_max}
    for k, (_, losses) in runs.items():
        data["final_" + k.replace(" ", "_")] = float(losses[-1])
    return fig, data


# ---- gabor-landscape ----------------------------------------------------------------------
def gabor_loss_and_grad(phi, x, y):
    """L(φ) = mean((f[x, φ] − y)²) of the Gabor model and its gradient.

    The loss and ∂L/∂f come from the engine's MSELoss forward/backward; the model's
    derivative is by hand: with z = φ0 + 0.06 φ1 x and f = sin z · e^(−z²/32),
    ∂f/∂z = e^(−z²/32) (cos z − z sin z / 16), ∂z/∂φ0 = 1, ∂z/∂φ1 = 0.06 x."""
    loss = MSELoss()
    f = gabor_model(x, phi[0], phi[1])
    value = loss.forward(f, y)
    df = loss.backward()
    z = phi[0] + 0.06 * phi[1] * x
    dfdz = np.exp(-z * z / 32.0) * (np.cos(z) - z * np.sin(z) / 16.0)
    g = df * dfdz
    return value, np.array([g.sum(), (g * 0.06 * x).sum()])


def gabor_landscape_grid(x, y, phi0s, phi1s):
    """L(φ0, φ1) on a grid (vectorised over the grid with the data-set's Gabor model)."""
    P0, P1 = np.meshgrid(phi0s, phi1s)
    z = P0[..., None] + 0.06 * P1[..., None] * x[:, 0]
    f = np.sin(z) * np.exp(-z * z / 32.0)
    return np.mean((f - y[:, 0]) ** 2, axis=-1)


GABOR_STARTS = [(2.0, 12.0), (-2.0, 19.0), (-7.0, 20.0), (6.0, 18.0), (-3.0, 6.0), (4.0, 9.0)]


@figure("gabor-landscape", source="000 §5.1.1",
        caption="Least-squares loss of the Gabor model f[x, φ] = sin(φ0 + 0.06 φ1 x) "
                "exp(−(φ0 + 0.06 φ1 x)²/32) on {n} noisy samples: gradient descent (engine SGD, "
                "hand-written gradient) from {n_starts} starts ends in different minima — "
                "{n_local} of them in a local minimum (loss ≥ {local_ratio:.1f}× the global "
                "{global_loss:.4f}); stochastic gradient descent (minibatches of {batch}) "
                "paths in white.")
def gabor_landscape(quick=False):
    n = 50
    x, y = gabor(n=n, noise=0.1, seed=1)
    phi0s = np.linspace(-10, 10, 80 if quick else 200)
    phi1s = np.linspace(2.5, 22.5, 80 if quick else 200)
    grid = gabor_landscape_grid(x, y, phi0s, phi1s)
    lr = 1.0
    steps = 800

    def full_grad(phi):
        return gabor_loss_and_grad(phi, x, y)[1]

    gd_paths = [optimize_2d(full_grad, s, lambda ps: SGD(ps, lr=lr), steps)
                for s in GABOR_STARTS]
    final = np.array([gabor_loss_and_grad(p[-1], x, y)[0] for p in gd_paths])
    grad_norms = np.array([np.linalg.norm(full_grad(p[-1])) for p in gd_paths])
    # the global minimum: best end point of a dense set of GD runs from the grid's low points
    best = np.unravel_index(np.argmin(grid), grid.shape)
    glob = optimize_2d(full_grad, (phi0s[best[1]], phi1s[best[0]]),
                       lambda ps: SGD(ps, lr=lr), steps)[-1]
    global_loss = float(gabor_loss_and_grad(glob, x, y)[0])
    local = final > 1.5 * global_loss

    rng = np.random.default_rng(0)
    batch = 5

    def sgd_grad(phi):
        idx = rng.choice(n, batch, replace=False)
        return gabor_loss_and_grad(phi, x[idx], y[idx])[1]

    sgd_paths = [optimize_2d(sgd_grad, s, lambda ps: SGD(ps, lr=lr), steps // 2)
                 for s in (GABOR_STARTS[1], GABOR_STARTS[4])]

    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.8), gridspec_kw={"width_ratios": [1.25, 1]},
                             layout="constrained")
    ax = axes[0]
    P0, P1 = np.meshgrid(phi0s, phi1s)
    cf = ax.contourf(P0, P1, grid, levels=30, cmap="viridis")
    fig.colorbar(cf, ax=ax, label=r"$L(\phi)$")
    for k, path in enumerate(gd_paths):
        ax.plot(path[:, 0], path[:, 1], "-", color="C1" if local[k] else "C3", lw=1.8)
        ax.plot(*path[0], "o", color="w", mec="k", ms=6)
        ax.plot(*path[-1], "X", color="C1" if local[k] else "C3", mec="k", ms=9)
    for path in sgd_paths:
        ax.plot(path[:, 0], path[:, 1], "-", color="w", lw=0.8, alpha=0.8)
    ax.plot([], [], "-", color="C3", label="GD → global minimum")
    ax.plot([], [], "-", color="C1", label="GD → local minimum")
    ax.plot([], [], "-", color="w", label=f"SGD (batch {batch})")
    ax.set_xlabel(r"$\phi_0$ (offset)")
    ax.set_ylabel(r"$\phi_1$ (frequency)")
    ax.set_title("Gabor-model loss landscape")
    leg = ax.legend(loc="upper right", facecolor="0.6", frameon=True)  # grey: the SGD line is white
    leg.get_frame().set_alpha(0.9)
    ax = axes[1]
    xs = np.linspace(-15, 15, 400)
    ax.scatter(x[:, 0], y[:, 0], s=12, color="k", label="data")
    for k, path in enumerate(gd_paths):
        ax.plot(xs, gabor_model(xs, *path[-1]), color="C1" if local[k] else "C3", lw=1.3,
                alpha=0.8)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Fitted models at the GD end points")
    ax.grid(alpha=0.3)
    ratio = float(final[local].min() / global_loss) if local.any() else 1.0
    data = {"x": x, "y": y, "phi0s": phi0s, "phi1s": phi1s, "loss": grid, "starts": GABOR_STARTS,
            "gd_paths": gd_paths, "final_losses": final, "final_grad_norms": grad_norms,
            "global_phi": glob, "global_loss": global_loss, "is_local": local,
            "n_local": int(local.sum()), "n_starts": len(GABOR_STARTS), "local_ratio": ratio,
            "sgd_paths": sgd_paths, "batch": batch, "n": n}
    return fig, data


# ---- saddle-point -------------------------------------------------------------------------
def saddle(p):
    """f(x, y) = x² − y² + y⁴/2: a saddle at the origin, minima at (0, ±1)."""
    return p[0] ** 2 - p[1] ** 2 + 0.5 * p[1] ** 4


def saddle_grad(p):
    """∇f = (2x, −2y + 2y³)."""
    return np.array([2 * p[0], -2 * p[1] + 2 * p[1] ** 3])


def escape_step(path, threshold=0.5):
    """First step at which |y| exceeds the threshold (len(path) if never)."""
    far = np.nonzero(np.abs(path[:, 1]) > threshold)[0]
    return int(far[0]) if far.size else len(path)


@figure("saddle-point", source="003 Fig 1.8",
        caption="The function f(x, y) = x² − y² + y⁴/2 has a saddle point at the origin (+) and "
                "minima at (0, ±1) (stars). Both runs start at ({x0}, {y0:g}), just off the line "
                "y = 0 that leads straight into the saddle: the gradient first pulls them toward "
                "it, where it nearly vanishes, and only the tiny y offset grows. Plain gradient "
                "descent (engine SGD, lr {lr}) needs {steps_gd} steps to get |y| > 0.5, SGD with "
                "momentum {momentum} only {steps_momentum} (right: |y| against the step, log "
                "scale).")
def saddle_point(quick=False):
    start, lr, mom = (1.5, 1e-3), 0.05, 0.9
    steps = 150
    gd = optimize_2d(saddle_grad, start, lambda ps: SGD(ps, lr=lr), steps)
    mo = optimize_2d(saddle_grad, start, lambda ps: SGD(ps, lr=lr, momentum=mom), steps)
    s_gd, s_mo = escape_step(gd), escape_step(mo)

    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.3), layout="constrained",
                             gridspec_kw={"width_ratios": [1, 1]})
    ax = axes[0]
    g = np.linspace(-1.7, 1.7, 60 if quick else 120)
    X, Y = np.meshgrid(g, np.linspace(-1.4, 1.4, 60 if quick else 100))
    Z = saddle((X, Y))
    ax.contour(X, Y, Z, levels=np.linspace(-0.45, 2.5, 14), colors="0.7", linewidths=0.6)
    runs = (("GD", gd, f"GD (lr {lr})"), ("momentum", mo, f"momentum {mom}"))
    for name, path, label in runs:
        c = style.color(name)
        ax.plot(path[:, 0], path[:, 1], ".-", color=c, ms=2.5, lw=1, label=label)
        ax.plot(*path[-1], "X", color=c, mec="w", mew=0.5, ms=7, zorder=5)
    ax.plot(0, 0, "k+", ms=11, mew=2, label="saddle point")
    ax.plot([0, 0], [-1, 1], "k*", ms=9, ls="", label="minima")
    ax.plot(*start, "o", color="k", mfc="w", ms=6, zorder=6, label="start")
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_aspect("equal")
    ax.set_title("Paths (end points: crosses)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
    ax = axes[1]
    for name, path, label in runs:
        ax.semilogy(np.abs(path[:, 1]), "-", color=style.color(name), lw=1.4, label=label)
    ax.axhline(0.5, color="0.5", lw=0.6, ls="--")
    ax.text(len(gd) - 1, 0.45, "$|y|$ = 0.5", ha="right", va="top", fontsize=8, color="0.3")
    for name, s_esc in (("GD", s_gd), ("momentum", s_mo)):
        if s_esc < len(gd):
            ax.plot([s_esc], [abs((gd if name == "GD" else mo)[s_esc, 1])], "o",
                    color=style.color(name), ms=5)
    ax.set_xlabel("step")
    ax.set_ylabel("$|y|$ (distance from the ridge)")
    ax.set_title("Escape from the saddle")
    data = {"gd_path": gd, "momentum_path": mo, "steps_gd": s_gd, "steps_momentum": s_mo,
            "x0": start[0], "y0": start[1], "lr": lr, "momentum": mom}
    return fig, data


# ---- optimizers ---------------------------------------------------------------------------
#: the valley's curvatures along its axes (condition number 100) and the angle of its long axis
VALLEY_EIG = np.array([0.02, 2.0])
VALLEY_ANGLE = np.deg2rad(30.0)
_R = np.array([[np.cos(VALLEY_ANGLE), -np.sin(VALLEY_ANGLE)],
               [np.sin(VALLEY_ANGLE), np.cos(VALLEY_ANGLE)]])
VALLEY_H = _R @ np.diag(VALLEY_EIG) @ _R.T


def valley(p):
    """Ill-conditioned quadratic valley f = ½ θᵀHθ, H with eigenvalues 0.02 and 2 (condition
    number 100) along axes turned 30° from the coordinate axes, so that a per-coordinate step
    size (Adagrad, RMSProp, Adam) cannot undo the conditioning by itself."""
    x, y = p[0], p[1]
    return 0.5 * (VALLEY_H[0, 0] * x * x + 2 * VALLEY_H[0, 1] * x * y + VALLEY_H[1, 1] * y * y)


def valley_grad(p):
    return VALLEY_H @ np.asarray(p)


def rosenbrock(p):
    """f = (1 − x)² + 100 (y − x²)², minimum at (1, 1) at the end of a curved valley."""
    return (1 - p[0]) ** 2 + 100 * (p[1] - p[0] ** 2) ** 2


def rosenbrock_grad(p):
    return np.array([-2 * (1 - p[0]) - 400 * p[0] * (p[1] - p[0] ** 2),
                     200 * (p[1] - p[0] ** 2)])


#: name -> factory(params, lr); momentum 0.9 for the heavy-ball methods, RMSProp's α = 0.9,
#: Adam's default betas (0.9, 0.999)
OPTIMIZERS = {
    "SGD": lambda ps, lr: SGD(ps, lr=lr),
    "momentum": lambda ps, lr: SGD(ps, lr=lr, momentum=0.9),
    "Nesterov": lambda ps, lr: SGD(ps, lr=lr, momentum=0.9, nesterov=True),
    "Adagrad": lambda ps, lr: Adagrad(ps, lr=lr),
    "RMSProp": lambda ps, lr: RMSprop(ps, lr=lr, alpha=0.9),
    "Adam": lambda ps, lr: Adam(ps, lr=lr),
}
#: the learning rates tried for every method: on the valley 2^-6 … 2^3 in steps of √2 (fine
#: enough that SGD is not stuck between a rate that crawls and one at the edge of stability,
#: 2/λ_max = 1), on Rosenbrock 2^-10 … 2^0 in steps of 2 (longer runs)
VALLEY_LRS = 2.0 ** (np.arange(-12, 7) / 2)
ROSEN_LRS = 2.0 ** np.arange(-10, 1)
NEIGHBOURHOOD = 0.1


def tune(grad, start, minimum, make, steps, grid):
    """The same small search for every method: run `steps` steps at each learning rate of the
    grid and keep the rate whose run ends closest to the minimum, measured as the largest
    distance |θ_t − θ*| over the last 10 % of steps (a run that only passes by the minimum does
    not win; a run that diverges is out). Returns (lr, path, distances, scores)."""
    best, scores = None, []
    tail = max(1, steps // 10)
    with np.errstate(over="ignore", invalid="ignore"):
        for lr in grid:
            path = optimize_2d(grad, start, lambda ps: make(ps, lr), steps)
            d = np.linalg.norm(path - minimum, axis=1)
            ok = len(path) == steps + 1 and np.all(np.isfinite(d))
            score = float(d[-tail:].max()) if ok else np.inf
            scores.append(score)
            if ok and (best is None or score < best[0]):
                best = (score, float(lr), path, d)
    return best[1], best[2], best[3], np.array(scores)


def _paths_panel(ax, f, xgrid, ygrid, levels, paths, minimum, start, title):
    """Contours of f, one path per optimizer with its end point marked, the start and the minimum."""
    X, Y = np.meshgrid(np.linspace(*xgrid), np.linspace(*ygrid))
    ax.contour(X, Y, f((X, Y)), levels=levels, colors="0.75", linewidths=0.6)
    for name, path in paths.items():
        c = style.color(name)
        ax.plot(path[:, 0], path[:, 1], "-", color=c, lw=1.1, alpha=0.9)
        ax.plot(*path[-1], "X", color=c, mec="w", mew=0.5, ms=7, zorder=5)
    ax.plot(*start, "o", color="k", mfc="w", ms=6, zorder=6)
    ax.plot(*minimum, "*", color="k", ms=10, zorder=6)
    ax.set_xlim(xgrid[0], xgrid[1])
    ax.set_ylim(ygrid[0], ygrid[1])
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")


def _distance_panel(ax, dists, floor):
    for name, d in dists.items():
        ax.semilogy(np.arange(len(d)), np.maximum(d, floor), "-", color=style.color(name), lw=1.2)
    ax.axhline(NEIGHBOURHOOD, color="0.6", lw=0.6, ls="--")
    ax.set_ylim(floor, None)
    ax.set_xlabel("step")
    ax.set_ylabel(r"distance to minimum $|\theta_t - \theta^*|$")
    ax.grid(alpha=0.3, which="major")


@figure("optimizers", source="004 §3.4, 003 §1.3.9–1.3.10",
        caption="Engine optimizers on a quadratic valley of condition number {condition:.0f} "
                "(axes turned 30°; {valley_steps} steps) and on Rosenbrock's function "
                "({rosen_steps} steps), gradients by hand. Each method is tuned the same way: "
                "a grid of learning rates ({n_valley_rates} from 2^−6 to 2^3 on the valley, "
                "{n_rosen_rates} from 2^−10 to 1 on Rosenbrock), keeping the one whose run ends closest to "
                "the minimum (largest distance over the last 10 % of steps). Tuned rates — "
                "valley: {valley_lrs}; Rosenbrock: {rosen_lrs}. Crosses mark the end points, "
                "the dashed line the 0.1 neighbourhood. In the valley plain SGD is slowest "
                "(distance {valley_dist_SGD:.2f} after {valley_steps} steps) against "
                "{valley_dist_momentum:.1e} for momentum and {valley_dist_Adam:.1e} for Adam: "
                "its rate is capped by the steep direction (2/λ_max) and it crawls along the "
                "flat one. Within 0.1 of Rosenbrock's minimum: {rosen_reached}; not: "
                "{rosen_missed} (step sizes that do not decay: they hover at a distance set by "
                "the rate, or Adagrad's shrink too early).")
def optimizers(quick=False):
    valley_steps, rosen_steps = 200, (800 if quick else 1500)
    u = np.array([np.cos(VALLEY_ANGLE), np.sin(VALLEY_ANGLE)])        # the flat direction
    v = np.array([-u[1], u[0]])
    vstart, rstart = tuple(-8.0 * u + 1.0 * v), (-1.5, 2.0)
    vpaths, rpaths, vd, rd, vlr, rlr, vscores, rscores = {}, {}, {}, {}, {}, {}, {}, {}
    for name, make in OPTIMIZERS.items():
        vlr[name], vpaths[name], vd[name], vscores[name] = tune(valley_grad, vstart, np.zeros(2),
                                                                make, valley_steps, VALLEY_LRS)
        rlr[name], rpaths[name], rd[name], rscores[name] = tune(rosenbrock_grad, rstart, np.ones(2),
                                                                make, rosen_steps, ROSEN_LRS)
    vdist = {k: float(d[-1]) for k, d in vd.items()}
    rdist = {k: float(d[-1]) for k, d in rd.items()}

    fig, axes = plt.subplots(2, 2, figsize=(6.5, 6.4), layout="constrained",
                             gridspec_kw={"width_ratios": [1.1, 1]})
    _paths_panel(axes[0, 0], valley, (-8.5, 1.5, 200), (-5.5, 1.5, 140), np.geomspace(0.005, 12, 12),
                 vpaths, (0, 0), vstart, "Valley, condition number 100")
    _distance_panel(axes[0, 1], vd, 1e-8)
    axes[0, 1].set_title(f"Valley: {valley_steps} steps")
    _paths_panel(axes[1, 0], rosenbrock, (-2, 2, 240), (-1, 3, 240), np.geomspace(0.5, 2000, 14),
                 rpaths, (1, 1), rstart, "Rosenbrock $(1-x)^2 + 100(y-x^2)^2$")
    _distance_panel(axes[1, 1], rd, 1e-8)
    axes[1, 1].set_title(f"Rosenbrock: {rosen_steps} steps")
    handles = [Line2D([], [], color=style.color(k), lw=1.5, label=k) for k in OPTIMIZERS]
    handles += [Line2D([], [], ls="", marker="o", color="k", mfc="w", label="start"),
                Line2D([], [], ls="", marker="X", color="0.3", label="end"),
                Line2D([], [], ls="", marker="*", color="k", ms=9, label="minimum")]
    fig.legend(handles=handles, loc="outside lower center", ncol=5)
    reached = [k for k in OPTIMIZERS if rdist[k] < NEIGHBOURHOOD]
    missed = [k for k in OPTIMIZERS if rdist[k] >= NEIGHBOURHOOD]
    data = {"valley_paths": vpaths, "rosenbrock_paths": rpaths, "valley_dist": vdist,
            "rosen_dist": rdist, "valley_distances": vd, "rosen_distances": rd,
            "valley_lr": vlr, "rosen_lr": rlr, "valley_scores": vscores, "rosen_scores": rscores,
            "valley_lr_grid": VALLEY_LRS, "rosen_lr_grid": ROSEN_LRS,
            "n_valley_rates": len(VALLEY_LRS), "n_rosen_rates": len(ROSEN_LRS),
            "condition": float(VALLEY_EIG[1] / VALLEY_EIG[0]),
            "valley_steps": valley_steps, "rosen_steps": rosen_steps,
            "neighbourhood": NEIGHBOURHOOD, "rosen_reached": ", ".join(reached) or "none",
            "rosen_missed": ", ".join(missed) or "none",
            "valley_lrs": ", ".join(f"{k} {vlr[k]:.2g}" for k in OPTIMIZERS),
            "rosen_lrs": ", ".join(f"{k} {rlr[k]:.2g}" for k in OPTIMIZERS)}
    for k in OPTIMIZERS:
        data[f"valley_dist_{k}"] = vdist[k]
        data[f"rosen_dist_{k}"] = rdist[k]
    return fig, data


# ---- batch-size-variance ------------------------------------------------------------------
def minibatch_gradients(model, loss, X, y, B, repeats, rng):
    """Gradients (repeats, n_params) of the loss on `repeats` minibatches of size B drawn
    without replacement, at the model's fixed parameters (engine forward/backward)."""
    out = np.empty((repeats, sum(p.value.size for p in model.parameters())))
    for r in range(repeats):
        idx = rng.choice(len(X), B, replace=False)
        model.zero_grad()
        loss.forward(model.forward(X[idx]), y[idx])
        model.backward(loss.backward(), input_grad=False)
        out[r] = np.concatenate([p.grad.ravel() for p in model.parameters()])
    return out


@figure("batch-size-variance", source="004 §3.4.2",
        caption="Total variance of the minibatch gradient (trace of its covariance) of a small "
                "MLP's MSE, vs batch size |B| ({repeats} batches each, drawn without "
                "replacement from N = {N}). With the mean loss it falls as 1/|B| (log-log slope "
                "{slope_mean:.2f}; dashed: σ²/|B| · (N − |B|)/(N − 1)); with the sum loss it "
                "grows as |B| (slope {slope_sum:.2f}).")
def batch_size_variance(quick=False):
    N = 2000
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (N, 3))
    y = np.sin(2 * X[:, :1]) + X[:, 1:2] * X[:, 2:3] + 0.3 * rng.standard_normal((N, 1))
    model = MLP([3, 16, 1], activation="tanh", rng=1)
    sizes = [1, 2, 4, 8, 16, 32, 64, 128]
    repeats = 150 if quick else 600
    # per-example gradient variance σ² (B = 1 over the whole set, without sampling noise)
    per_example = np.empty((N, sum(p.value.size for p in model.parameters())))
    loss1 = MSELoss()
    for i in range(N):
        model.zero_grad()
        loss1.forward(model.forward(X[i:i + 1]), y[i:i + 1])
        model.backward(loss1.backward(), input_grad=False)
        per_example[i] = np.concatenate([p.grad.ravel() for p in model.parameters()])
    sigma2 = float(per_example.var(axis=0).sum())
    var_mean, var_sum = [], []
    for B in sizes:
        gm = minibatch_gradients(model, MSELoss(reduction="mean"), X, y, B, repeats, rng)
        gs = minibatch_gradients(model, MSELoss(reduction="sum"), X, y, B, repeats, rng)
        var_mean.append(float(gm.var(axis=0, ddof=1).sum()))
        var_sum.append(float(gs.var(axis=0, ddof=1).sum()))
    sizes_a = np.array(sizes, float)
    slope_mean = float(np.polyfit(np.log(sizes_a), np.log(var_mean), 1)[0])
    slope_sum = float(np.polyfit(np.log(sizes_a), np.log(var_sum), 1)[0])
    theory_mean = sigma2 / sizes_a * (N - sizes_a) / (N - 1)
    theory_sum = sigma2 * sizes_a * (N - sizes_a) / (N - 1)

    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    ax.loglog(sizes, var_mean, "o-", color="C0", label=r"mean loss $(1/|B|) \sum_i \ell_i$")
    ax.loglog(sizes, theory_mean, "--", color="C0", lw=1)
    ax.loglog(sizes, var_sum, "s-", color="C3", label=r"sum loss $\sum_i \ell_i$")
    ax.loglog(sizes, theory_sum, "--", color="C3", lw=1)
    ax.plot([], [], "--", color="k", lw=1, label="sampling theory from σ²")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(s) for s in sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size |B|")
    ax.set_ylabel("total gradient variance")
    ax.set_title("Minibatch gradient variance vs batch size")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    data = {"sizes": sizes, "var_mean": var_mean, "var_sum": var_sum, "sigma2": sigma2,
            "theory_mean": theory_mean, "theory_sum": theory_sum, "slope_mean": slope_mean,
            "slope_sum": slope_sum, "repeats": repeats, "N": N}
    return fig, data
