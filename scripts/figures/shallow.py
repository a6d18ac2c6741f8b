"""Shallow networks (000 §2, Fig 2.2–2.4; 000 §3.1 universal approximation; 003 §1.2.2).

The network of 000 §2.1.2,

    y = φ0 + φ1 a[θ10 + θ11 x] + φ2 a[θ20 + θ21 x] + φ3 a[θ30 + θ31 x],

is the engine's `MLP([1, 3, 1], "relu")` with Ω_0 = (θ11, θ21, θ31)ᵀ, β_0 = (θ10, θ20, θ30),
Ω_1 = (φ1, φ2, φ3), β_1 = φ0; its `preactivations` [f_0, f_1] and `activations` [h_1] are the
panels of the computation-flow figure.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from engine import fit
from engine.losses import MSELoss
from engine.optim import Adam
from figures.registry import figure
from layers import MLP, Sigmoid

# (θ10, θ11), (θ20, θ21), (θ30, θ31), (φ0, φ1, φ2, φ3): the running example's parameters
FLOW_PARAMS = dict(theta=[(0.3, -1.0), (-1.0, 2.0), (-0.5, 0.65)], phi=(-0.3, 2.0, -1.0, 7.0))

# three members of the family F (000 Fig 2.2), x in [0, 1]
FAMILY_PARAMS = [
    dict(theta=[(0.3, -1.0), (-1.0, 2.0), (-0.5, 0.65)], phi=(-0.3, 2.0, -1.0, 7.0)),
    dict(theta=[(-0.2, 1.0), (0.6, -1.0), (-0.8, 1.0)], phi=(0.5, -1.5, 1.2, 4.0)),
    dict(theta=[(0.1, 1.0), (-0.45, 1.0), (0.7, -1.0)], phi=(0.0, 1.0, -2.5, -1.4)),
]


def shallow_net(theta, phi, n_out=None):
    """MLP([1, D, n_out], "relu") holding θ (D pairs (θ_i0, θ_i1)) and φ ((φ0, φ1..φD) for one
    output, or a list of such tuples, one per output)."""
    theta = np.asarray(theta, float)
    phis = [phi] if np.ndim(phi[0]) == 0 else list(phi)
    D, K = len(theta), len(phis)
    net = MLP([1, D, K], activation="relu", rng=0)
    net.weights[0][:, 0] = theta[:, 1]
    net.biases[0][:] = theta[:, 0]
    for k, p in enumerate(phis):
        net.weights[1][k, :] = p[1:]
        net.biases[1][k] = p[0]
    return net


def activation_pieces(net, x):
    """Number of linear pieces of the net on the sorted inputs x: the number of runs of
    constant activation pattern 𝕀[f_0 > 0] (inside a run the net is affine)."""
    net.forward(x)
    pattern = net.preactivations[0] > 0
    changes = np.any(pattern[1:] != pattern[:-1], axis=1)
    return int(changes.sum()) + 1, pattern


def kink_positions(x, y, tol=1e-9):
    """Grid intervals where the slope of y(x) changes: indices i with |Δ²y_i| > tol, merged
    into the x of each cluster (a joint between grid points shows as 1–2 adjacent indices)."""
    d2 = np.abs(np.diff(y, 2))
    idx = np.nonzero(d2 > tol * max(1.0, np.abs(y).max()))[0]
    if idx.size == 0:
        return np.array([])
    groups = np.split(idx, np.nonzero(np.diff(idx) > 1)[0] + 1)
    return np.array([x[g[0] + 1] for g in groups])


def hidden_joints(theta, lo, hi):
    """x = −θ_i0/θ_i1 of each hidden unit inside (lo, hi), sorted."""
    j = np.array([-t0 / t1 for t0, t1 in theta if t1 != 0])
    return np.sort(j[(j > lo) & (j < hi)])


# ---- shallow-family -----------------------------------------------------------------------
@figure("shallow-family", source="000 Fig 2.2",
        caption="Three members of the family y = φ0 + Σ_i φ_i ReLU[θ_i0 + θ_i1 x] (engine "
                "MLP [1, 3, 1]): each is continuous and piecewise linear with at most 4 pieces "
                "(here {pieces_0}, {pieces_1}, {pieces_2}); dots mark the joints.")
def shallow_family(quick=False):
    x = np.linspace(0, 1, 501 if quick else 2001)[:, None]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    data = {"x": x[:, 0], "ys": [], "pieces": [], "max_curvature_in_pieces": []}
    for i, (ax, params) in enumerate(zip(axes, FAMILY_PARAMS)):
        net = shallow_net(**params)
        y = net.forward(x)[:, 0]
        pieces, pattern = activation_pieces(net, x)
        # affine inside each run of constant pattern: second differences vanish there
        same = np.all(pattern[2:] == pattern[:-2], axis=1)
        curv = float(np.max(np.abs(np.diff(y, 2))[same])) if same.any() else 0.0
        data["ys"].append(y)
        data["pieces"].append(pieces)
        data[f"pieces_{i}"] = pieces
        data["max_curvature_in_pieces"].append(curv)
        ax.plot(x[:, 0], y, color="C0", lw=2)
        j = hidden_joints(params["theta"], 0, 1)
        ax.plot(j, net.forward(j[:, None])[:, 0], "o", color="C3", ms=5, label="joints")
        ax.set_title(f"φ = {tuple(float(v) for v in params['phi'])}: {pieces} pieces", fontsize=9)
        ax.set_xlabel("input x")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("output y")
    axes[0].legend(fontsize=8)
    fig.suptitle("Family of functions F of a shallow ReLU network with 3 hidden units")
    fig.tight_layout()
    return fig, data


# ---- shallow-flow -------------------------------------------------------------------------
@figure("shallow-flow", source="000 Fig 2.3",
        caption="Computation flow of a shallow network (engine MLP [1, 3, 1]): pre-activations "
                "θ_i0 + θ_i1 x (f_0), activations h_i = ReLU (clipped at 0), weighted "
                "activations φ_i h_i, and their sum φ0 + Σ φ_i h_i, equal to the network output "
                "to {sum_error:.1e}.")
def shallow_flow(quick=False):
    x = np.linspace(0, 1, 201 if quick else 801)[:, None]
    net = shallow_net(**FLOW_PARAMS)
    out = net.forward(x)[:, 0]
    f0 = np.array(net.preactivations[0])
    h1 = np.array(net.activations[0])
    phi = np.asarray(FLOW_PARAMS["phi"])
    weighted = h1 * net.weights[1][0][None, :]
    total = net.biases[1][0] + weighted.sum(axis=1)

    fig, axes = plt.subplots(3, 4, figsize=(13, 8.5))
    rows = [(r"pre-activation $\theta_{{{i}0}} + \theta_{{{i}1}} x$", f0),
            (r"activation $h_{i}$ = ReLU[·]", h1),
            (r"weighted $\phi_{i} h_{i}$", weighted)]
    for r, (title, vals) in enumerate(rows):
        for i in range(3):
            ax = axes[r, i]
            ax.plot(x[:, 0], vals[:, i], color=f"C{i}", lw=2)
            ax.axhline(0, color="k", lw=0.5)
            ax.set_ylim(-1.5 if r < 2 else -2.5, 1.5 if r < 2 else 2.5)
            ax.set_title(title.format(i=i + 1), fontsize=9)
            ax.grid(alpha=0.3)
            if r == 2:
                ax.set_xlabel("x")
        axes[r, 3].axis("off")
    ax = axes[1, 3]
    ax.axis("on")
    for i in range(3):
        ax.plot(x[:, 0], weighted[:, i], color=f"C{i}", lw=1, ls="--")
    ax.plot(x[:, 0], total, color="k", lw=2.5, label=r"$\phi_0 + \Sigma\, \phi_i h_i$")
    ax.plot(x[:, 0], out, color="y", lw=1, label="network output")
    ax.set_title("sum = output y", fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax.set_xlabel("x")
    for j in hidden_joints(FLOW_PARAMS["theta"], 0, 1):
        for a in axes.ravel():
            if a.axison:
                a.axvline(j, color="0.6", lw=0.7, ls=":")
    fig.suptitle(r"Computation flow of a shallow network: $y = \phi_0 + \sum_i \phi_i$"
                 r" ReLU$[\theta_{i0} + \theta_{i1} x]$, "
                 f"φ = {tuple(float(v) for v in phi)}")
    fig.tight_layout()
    data = {"x": x[:, 0], "preactivations": f0, "activations": h1, "weighted": weighted,
            "sum": total, "output": out, "sum_error": float(np.max(np.abs(total - out)))}
    return fig, data


# ---- shallow-multi-output -----------------------------------------------------------------
MULTI_PARAMS = dict(theta=[(-0.5, 2.0), (0.6, -1.0), (-1.4, 2.0), (-0.9, 2.0)],
                    phi=[(0.2, 1.5, -1.0, -3.0, -0.4), (-0.5, -1.0, 0.8, 2.5, 1.0)])


@figure("shallow-multi-output", source="000 Fig 2.4",
        caption="Two outputs y1, y2 of one shallow network (engine MLP [1, 4, 2]) share the "
                "hidden units, so both have their joints at the same inputs x = −θ_i0/θ_i1 "
                "({n_joints} joints in [0, 1], positions agree to {joint_gap:.1e}).")
def shallow_multi_output(quick=False):
    x = np.linspace(0, 1, 501 if quick else 2001)[:, None]
    net = shallow_net(**MULTI_PARAMS)
    y = net.forward(x)
    joints = hidden_joints(MULTI_PARAMS["theta"], 0, 1)
    k1 = kink_positions(x[:, 0], y[:, 0])
    k2 = kink_positions(x[:, 0], y[:, 1])
    step = float(x[1, 0] - x[0, 0])
    gap = float(np.max(np.abs(k1 - k2))) if k1.shape == k2.shape else np.inf

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for k, ax in enumerate(axes):
        ax.plot(x[:, 0], y[:, k], color=f"C{k}", lw=2)
        for j in joints:
            ax.axvline(j, color="0.5", lw=0.8, ls="--")
        ax.set_title(f"output y{k + 1}")
        ax.set_xlabel("x")
        ax.grid(alpha=0.3)
    axes[0].plot([], [], color="0.5", ls="--", label=r"joints $x = -\theta_{i0}/\theta_{i1}$")
    axes[0].legend(fontsize=8)
    fig.suptitle("Two outputs sharing 4 hidden ReLU units: joints at the same x")
    fig.tight_layout()
    data = {"x": x[:, 0], "y": y, "joints": joints, "kinks_y1": k1, "kinks_y2": k2,
            "grid_step": step, "n_joints": len(joints), "joint_gap": gap}
    return fig, data


# ---- universal-approximation --------------------------------------------------------------
def target_function(x):
    """The 1-D function approximated: smooth, with a few bumps on [−1, 1]."""
    return np.sin(np.pi * x) + 0.5 * np.sin(3 * np.pi * x) * np.exp(-x * x)


def spread_joint_init(net, rng):
    """Put the hidden units' joints −θ_i0/θ_i1 evenly over (−1, 1), with random slopes
    ±U(1, 3) (so no unit is dead on the data); the output layer keeps its default init."""
    D = net.widths[1]
    slopes = rng.uniform(1.0, 3.0, D) * rng.choice([-1.0, 1.0], D)
    joints = np.linspace(-1, 1, D + 2)[1:-1]
    net.weights[0][:, 0] = slopes
    net.biases[0][:] = -slopes * joints


def least_squares_output(net, x, y):
    """Set the output layer (β_1, Ω_1) to the least-squares fit of y on the hidden activations
    h_1 of the engine's forward pass (a linear problem once the joints are fixed)."""
    net.forward(x)
    H = np.column_stack([np.ones(len(x)), net.activations[0]])
    coef = np.linalg.lstsq(H, y[:, 0], rcond=None)[0]
    net.biases[1][0] = coef[0]
    net.weights[1][0, :] = coef[1:]


@figure("universal-approximation", source="000 §3.1, 002, 003",
        caption="Shallow ReLU networks of growing width D fitted to a 1-D function by the engine "
                "(joints spread over [−1, 1], output layer by least squares, then all "
                "parameters trained with Adam, full batch): the fit improves with D; RMS error {err_first:.3f} at "
                "D = {width_first} down to {err_last:.4f} at D = {width_last}.")
def universal_approximation(quick=False):
    widths = [2, 4, 8, 16, 32] if quick else [2, 4, 8, 16, 32, 64]
    epochs = 600 if quick else 3000
    x = np.linspace(-1, 1, 128)[:, None]
    y = target_function(x)
    xt = np.linspace(-1, 1, 1001)[:, None]
    yt = target_function(xt)
    errors, fits, losses = [], [], []
    for i, D in enumerate(widths):
        net = MLP([1, D, 1], activation="relu", rng=i)
        spread_joint_init(net, np.random.default_rng(100 + i))
        least_squares_output(net, x, y)
        opt = Adam(net.parameters(), lr=0.003)
        hist = fit(net, MSELoss(), opt, x, y, epochs=epochs, batch_size=len(x), seed=i,
                   progress=False)
        pred = net.forward(xt)
        errors.append(float(np.sqrt(np.mean((pred - yt) ** 2))))
        fits.append(pred[:, 0])
        losses.append(np.array(hist["loss"]))

    # one small panel per width (curves on one panel hid each other), the error on the right
    fig = plt.figure(figsize=(6.5, 3.9), layout="constrained")
    gs = fig.add_gridspec(2, 3, width_ratios=[1, 1, 1.25])
    show = [0, 1, 2, len(widths) - 1]
    small = [fig.add_subplot(gs[r, c]) for r in range(2) for c in range(2)]
    for k, (ax, i) in enumerate(zip(small, show)):
        ax.plot(xt[:, 0], yt[:, 0], color="0.6", lw=2.6, alpha=0.6)
        ax.plot(xt[:, 0], fits[i], color="C0", lw=1.2)
        ax.set_title(f"$D$ = {widths[i]}: RMS error {errors[i]:.1g}", fontsize=8)
        ax.set_xticks([-1, 0, 1])
        ax.set_yticks([-1, 0, 1])
        ax.grid(alpha=0.3)
        if k >= 2:
            ax.set_xlabel("$x$")
        else:
            ax.set_xticklabels([])
        if k % 2 == 0:
            ax.set_ylabel("$y$")
        else:
            ax.set_yticklabels([])
    small[0].plot([], [], color="0.6", lw=2.6, alpha=0.6, label="target $f(x)$")
    small[0].plot([], [], color="C0", lw=1.2, label="trained net")
    fig.legend(*small[0].get_legend_handles_labels(), loc="outside lower left", ncol=2,
               frameon=False)
    axes = [None, fig.add_subplot(gs[:, 2])]
    ax = axes[1]
    ax.loglog(widths, errors, "o-", color="C3", label="trained networks")
    ax.loglog(widths, errors[0] * (widths[0] / np.array(widths, float)) ** 2, ":", color="0.5",
              label="$\\propto 1/D^2$ (piecewise-linear\ninterpolation rate)")
    ax.set_xticks(widths)
    ax.set_xticklabels([str(w) for w in widths])
    ax.minorticks_off()
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2))
    ax.set_xlabel("hidden width $D$")
    ax.set_ylabel("RMS error on [−1, 1]")
    ax.set_title("Approximation error vs width")
    ax.grid(alpha=0.3, which="both")
    data = {"widths": widths, "errors": errors, "fits": fits, "x": xt[:, 0], "target": yt[:, 0],
            "losses": losses, "err_first": errors[0], "err_last": errors[-1],
            "width_first": widths[0], "width_last": widths[-1]}
    return fig, data


# ---- random-mlp-2d ------------------------------------------------------------------------
@figure("random-mlp-2d", source="003 §1.2.2",
        caption="A random 2-layer MLP (engine MLP [2, {hidden}, 1], tanh hidden units, "
                "random normal weights, sigmoid output) on a {n_grid}×{n_grid} grid: unlike "
                "the perceptron its decision regions are curved (black: the level σ = 0.5, the "
                "decision boundary; red above it, blue below). Output range "
                "[{out_min:.2f}, {out_max:.2f}].")
def random_mlp_2d(quick=False):
    n = 80 if quick else 200
    hidden = 400
    xs = np.linspace(-1, 1, n)
    Xg, Yg = np.meshgrid(xs, xs)
    points = np.column_stack([Xg.ravel(), Yg.ravel()])
    rng = np.random.default_rng(11)
    net = MLP([2, hidden, 1], activation="tanh", rng=rng)
    # the notes' torch.randn weights and biases (inputs scaled by 3 to show more structure on
    # [−1, 1]); the output layer scaled by 3/√hidden so the sigmoid is not saturated everywhere
    net.weights[0][...] = 3 * rng.standard_normal((hidden, 2))
    net.biases[0][...] = rng.standard_normal(hidden)
    net.weights[1][...] = rng.standard_normal((1, hidden)) * 3 / np.sqrt(hidden)
    net.biases[1][...] = rng.standard_normal(1) * 0.5
    z = Sigmoid().forward(net.forward(points)).reshape(Xg.shape)

    fig, ax = plt.subplots(figsize=(4.4, 3.6), layout="constrained")
    # a diverging map centred at the decision value 0.5 (never jet)
    cf = ax.contourf(Xg, Yg, z, levels=np.linspace(0, 1, 21), cmap="RdBu_r", vmin=0, vmax=1)
    fig.colorbar(cf, ax=ax, label="σ(output)", ticks=np.linspace(0, 1, 6))
    ax.contour(Xg, Yg, z, levels=[0.5], colors="k", linewidths=1.2)
    ax.set_xlabel("$x$")
    ax.set_ylabel("$y$")
    ax.set_aspect("equal")
    ax.set_title(f"Random MLP [2, {hidden}, 1], sigmoid output")
    data = {"z": z, "xs": xs, "hidden": hidden, "n_grid": n, "out_min": float(z.min()),
            "out_max": float(z.max())}
    return fig, data
