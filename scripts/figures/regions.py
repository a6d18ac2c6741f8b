"""Linear regions of ReLU networks (000 §2, §3.2, §4.1; 004 §2.4.10), drawn from the exact
enumeration of `analysis.regions`: every polygon / interval shown is one the counter found.
"""
import matplotlib
import matplotlib.ticker
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection

from analysis import bounds
from analysis.examples import shallow_network as shallow_seq, tent_network as tent_net
from analysis.regions import regions_1d, regions_2d
from engine.core import Sequential
from figures import style
from figures.registry import figure
from layers import MLP, Linear, ReLU


# ---- networks ---------------------------------------------------------------------------------

def compose(net1, net2):
    """The deep net net2 ∘ net1 for two shallow Sequentials with scalar output/input: the middle
    Linear(D1, 1) then Linear(1, D2) merge into one Linear(D1, D2) (000 §4.1)."""
    a, _, b = net1.layers
    c, _, d = net2.layers
    mid = Linear(a.out_features, c.out_features)
    mid.weight.value[:] = c.weight.value @ b.weight.value
    mid.bias.value[:] = c.weight.value @ b.bias.value + c.bias.value
    first = Linear(a.in_features, a.out_features)
    first.weight.value[:] = a.weight.value
    first.bias.value[:] = a.bias.value
    last = Linear(d.in_features, d.out_features)
    last.weight.value[:] = d.weight.value
    last.bias.value[:] = d.bias.value
    return Sequential(first, ReLU(), mid, ReLU(), last)


def generic_shallow_2d(D, rng):
    """A shallow 2-input net with D units in general position and a box holding every pairwise
    intersection of their lines (so all Σ_{j≤2} C(D, j) regions are inside)."""
    while True:           # redraw nearly parallel pairs, whose crossings would lie far away
        W, b = rng.normal(size=(D, 2)), rng.normal(size=D)
        R = 1.0
        for i in range(D):
            for j in range(i + 1, D):
                R = max(R, np.abs(np.linalg.solve(W[[i, j]], -b[[i, j]])).max() + 1.0)
        if R < 30:
            return shallow_seq(W, b, rng.normal(size=D)), ((-R, R), (-R, R))


def generic_shallow_1d(D, rng):
    """A shallow 1-input net with D units whose joints lie inside (−1, 1)."""
    joints = rng.uniform(-0.95, 0.95, D)
    w = rng.choice([-1.0, 1.0], D) * rng.uniform(0.5, 2.0, D)
    return shallow_seq(w[:, None], -w * joints, rng.normal(size=D) + 2.0)


# ---- drawing helpers --------------------------------------------------------------------------

def draw_polygons(ax, r, labels=None, edge="k", alpha=0.55, lw=0.6):
    """Fill each polygon of a Regions2D (coloured by `labels`, default one colour per piece)."""
    labels = np.arange(len(r.pieces)) if labels is None else labels
    palette = [c for name in ("tab20", "tab20b", "tab20c") for c in plt.get_cmap(name).colors]
    rng = np.random.default_rng(0)
    perm = rng.permutation(max(int(labels.max()) + 1, len(palette)))
    colors = [palette[perm[l] % len(palette)] for l in labels]
    pc = PolyCollection([p.vertices for p in r.pieces], facecolors=colors, edgecolors=edge,
                        linewidths=lw, alpha=alpha)
    ax.add_collection(pc)
    (s0, s1), (t0, t1) = r.extent
    ax.set_xlim(s0, s1)
    ax.set_ylim(t0, t1)
    ax.set_aspect("equal")


def draw_pieces_1d(ax, r, x, y, cmap="tab10", lw=2.0):
    """Plot y(x) coloured by linear region, with the joints marked."""
    cm = plt.get_cmap(cmap)
    s = (x - r.start[0]) / (r.end[0] - r.start[0])
    for i, (a, b) in enumerate(zip(r.linear_breaks[:-1], r.linear_breaks[1:])):
        m = (s >= a - 1e-12) & (s <= b + 1e-12)
        ax.plot(x[m], y[m], color=cm(i % cm.N), lw=lw)
    for jb in r.linear_breaks[1:-1]:
        ax.axvline(r.start[0] + jb * (r.end[0] - r.start[0]), color="0.7", lw=0.6, ls=":")


# three joint lines x₂ = −1, 2.5 x₁ − 1.2 x₂ = −1.8, 2.5 x₁ + 1.5 x₂ = 2.25 around the triangle
# (−1.2, −1), (1.5, −1), (0, 1.5): all seven regions wide enough to label inside [−3, 3]²
SHALLOW_2D = dict(W=[[0.0, 1.0], [2.5, -1.2], [-2.5, -1.5]], b=[1.0, 1.8, 2.25], w=[1.0, -1.5, 2.0], c=0.5)


# ---- figures ----------------------------------------------------------------------------------

@figure("shallow-2d-regions", source="000 §2, §3.2",
        caption="A 2-input ReLU net with 3 hidden units (generic weights): its 3 joint lines cut the "
                "plane into {n_regions} linear regions, the maximum Σ_{{j≤2}} C(3, j) = {bound}.")
def shallow_2d_regions(quick=False):
    net = shallow_seq(SHALLOW_2D["W"], SHALLOW_2D["b"], SHALLOW_2D["w"], SHALLOW_2D["c"])
    ext = ((-3.0, 3.0), (-3.0, 3.0))
    r = regions_2d(net, [0, 0], [1, 0], [0, 1], ext)
    (s0, s1), (t0, t1) = ext
    n = 120 if quick else 400
    S, T = np.meshgrid(np.linspace(s0, s1, n), np.linspace(t0, t1, n))
    Z = net.forward(np.stack([S.ravel(), T.ravel()], 1)).reshape(n, n)
    fig, axes = plt.subplots(1, 2, figsize=(6.5, 3.1), layout="constrained")
    im = axes[0].imshow(Z, origin="lower", extent=(s0, s1, t0, t1), cmap="viridis", aspect="equal")
    for p in r.pieces:
        V = np.vstack([p.vertices, p.vertices[:1]])
        axes[0].plot(V[:, 0], V[:, 1], color="w", lw=1.0)
    fig.colorbar(im, ax=axes[0], shrink=0.9, label="network output $y$")
    axes[0].set_title("Output and joint lines")
    draw_polygons(axes[1], r)
    for i, p in enumerate(r.pieces):
        c = p.centroid
        axes[1].text(c[0], c[1], "".join("1" if a else "0" for a in p.pattern), ha="center",
                     va="center", fontsize=8)
    axes[1].set_title(f"{r.n_activation_regions} regions: units on (1) / off (0)")
    for ax in axes:
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    return fig, {"n_regions": r.n_activation_regions, "n_linear_regions": r.n_linear_regions,
                 "bound": bounds.zaslavsky(2, 3), "area": r.total_area()}


@figure("regions-vs-width", source="000 §3.2, 004 §2.4.10",
        caption="Exact region counts of shallow ReLU nets against the maximum Σ_{{j≤D_i}} C(D, j): generic "
                "weights reach it (D + 1 for D_i = 1), default-initialised nets on a fixed box fall below.")
def regions_vs_width(quick=False):
    widths = np.arange(1, 7 if quick else 13)
    seeds = 2 if quick else 5
    out = {"widths": widths}
    fig, axes = plt.subplots(1, 3, figsize=(6.5, 3.3), gridspec_kw={"width_ratios": [1, 1, 0.9]},
                             layout="constrained")
    pic_D = 6
    # the pictured net: its 6 joint lines tangent to the unit circle, directions 30° apart
    # (general position, every crossing within 4 of the centre, shown with a margin: no slivers)
    ang = np.deg2rad(np.arange(pic_D) * 180.0 / pic_D + 8.0) + np.pi * (np.arange(pic_D) % 2)
    Wp = np.stack([np.cos(ang), np.sin(ang)], 1)
    net = shallow_seq(Wp, -np.ones(pic_D), np.linspace(1.0, 2.0, pic_D) * (-1.0) ** np.arange(pic_D))
    ext = ((-5.5, 5.5), (-5.5, 5.5))
    pic = regions_2d(net, [0, 0], [1, 0], [0, 1], ext)
    draw_polygons(axes[2], pic, lw=0.5, alpha=0.8)
    axes[2].set_title(f"$D$ = {pic_D}, $D_i$ = 2:\n{pic.n_linear_regions} regions "
                      f"(max {bounds.zaslavsky(2, pic_D)})")
    axes[2].set_xlabel("$x_1$")
    axes[2].set_ylabel("$x_2$")
    axes[2].set_xticks([-5, 0, 5])
    axes[2].set_yticks([-5, 0, 5])
    out["pictured"] = (pic.n_linear_regions, bounds.zaslavsky(2, pic_D))
    for ax, D_i in zip(axes, (1, 2)):
        bound = np.array([bounds.zaslavsky(D_i, D) for D in widths])
        generic = np.zeros((seeds, len(widths)), int)
        default = np.zeros((seeds, len(widths)), int)
        for s in range(seeds):
            rng = np.random.default_rng(100 * D_i + s)
            for i, D in enumerate(widths):
                if D_i == 1:
                    generic[s, i] = regions_1d(generic_shallow_1d(D, rng), [-1.0], [1.0]).n_linear_regions
                    default[s, i] = regions_1d(MLP([1, D, 1], rng=rng), [-1.0], [1.0]).n_linear_regions
                else:
                    net, ext = generic_shallow_2d(D, rng)
                    generic[s, i] = regions_2d(net, [0, 0], [1, 0], [0, 1], ext).n_linear_regions
                    default[s, i] = regions_2d(MLP([2, D, 1], rng=rng), [0, 0], [1, 0], [0, 1],
                                               ((-1, 1), (-1, 1))).n_linear_regions
        ax.plot(widths, bound, "k-", lw=2, label=r"max $\sum_{j\leq D_i} \binom{D}{j}$")
        ax.plot(widths, generic.mean(0), "o", color="C0", ms=7, label="generic weights (exact count)")
        ax.errorbar(widths, default.mean(0), yerr=default.std(0), fmt="s", color="C1", ms=5, capsize=2,
                    label=r"default init on $[-1, 1]^{D_i}$ (mean ± sd)")
        ax.set_xlabel("hidden width $D$")
        ax.set_ylabel("number of linear regions")
        ax.set_title(f"$D_i$ = {D_i}")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        out[f"bound_{D_i}d"] = bound
        out[f"generic_{D_i}d"] = generic
        out[f"default_{D_i}d"] = default
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3)
    axes[1].set_ylabel("")
    return fig, out


# the example of 000 Fig 4.1: network 1 folds [−1, 1] onto itself three times, network 2 has
# three pieces over [−1, 1]; their composition has 3 × 3 = 9 pieces
FOLD_NET1 = dict(W=[[1.0], [1.0], [1.0]], b=[1.0, 1 / 3, -1 / 3], w=[3.0, -6.0, 6.0], c=-1.0)
FOLD_NET2 = dict(W=[[1.0], [1.0], [1.0]], b=[1.0, 0.4, -0.3], w=[1.0, -2.5, 3.0], c=-0.4)


@figure("composition-folding", source="000 Fig 4.1",
        caption="Network 1 ({n1} pieces) folds [−1, 1] onto itself; network 2 has {n2} pieces; the composition "
                "y' = net2(net1(x)) has {n_comp} = {n1} × {n2} pieces (exact counts).")
def composition_folding(quick=False):
    p1, p2 = FOLD_NET1, FOLD_NET2
    net1 = shallow_seq(p1["W"], p1["b"], p1["w"], p1["c"])
    net2 = shallow_seq(p2["W"], p2["b"], p2["w"], p2["c"])
    comp = compose(net1, net2)
    r1 = regions_1d(net1, [-1.0], [1.0])
    r2 = regions_1d(net2, [-1.0], [1.0])
    rc = regions_1d(comp, [-1.0], [1.0])
    x = np.linspace(-1, 1, 601 if quick else 2001)[:, None]
    y1, y2, yc = net1.forward(x), net2.forward(x), comp.forward(x)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    for ax, r, y, title, xl, yl in [(axes[0], r1, y1, "network 1: y = f₁(x)", "x", "y"),
                                    (axes[1], r2, y2, "network 2: y' = f₂(y)", "y", "y'"),
                                    (axes[2], rc, yc, "composition: y' = f₂(f₁(x))", "x", "y'")]:
        draw_pieces_1d(ax, r, x[:, 0], y[:, 0])
        ax.set_title(f"{title}\n{r.n_linear_regions} linear pieces")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    fig.tight_layout()
    err = float(np.abs(yc - net2.forward(y1)).max())
    return fig, {"n1": r1.n_linear_regions, "n2": r2.n_linear_regions, "n_comp": rc.n_linear_regions,
                 "composition_error": err}


def spread_biases(net, box, rng, n=512):
    """Set every hidden bias of `net` from the spread of its unit's pre-activation over the box:
    unit j of layer k gets β_k[j] = −(Ω_k h_{k−1})[j] at one input point drawn uniformly from the
    box, so its joint passes through the box instead of outside it (default biases are too small
    for the deeper layers, whose units then never switch inside the box). The output bias is
    left alone."""
    rng = np.random.default_rng(rng)
    (a0, a1), (b0, b1) = box
    h = np.column_stack([rng.uniform(a0, a1, n), rng.uniform(b0, b1, n)])
    last = len(net.weights) - 1
    for k, (W, b) in enumerate(zip(net.weights, net.biases)):
        z = h @ W.T
        if k < last:
            b[...] = -z[rng.integers(0, n, b.shape[0]), np.arange(b.shape[0])]
        h = np.maximum(z + b, 0.0)
    return net


#: the four joint lines of the constructed net's last hidden layer in one folded cell [0, 1]²:
#: tangents of the circle of radius 0.15 about (½, ½) with outward normals at these angles
#: (general position, all six crossings inside the cell, the all-off region bounded)
_CELL_NORMALS = np.deg2rad([10.0, 100.0, 235.0, 325.0])
_CELL_RADIUS = 0.15
_CELL_OUT = [1.0, -1.3, 0.7, 1.9]


def folded_network(L):
    """A deep ReLU net [2, 4, …, 4, 1] (L hidden layers of width 4) built to reach Montúfar et
    al.'s attainable count on the box [−1, 1]² (004 §2.4.10): the first L − 1 layers fold each
    input coordinate with Telgarsky's tent map t(u) = 2 ReLU(u) − 4 ReLU(u − ½) (two units per
    coordinate), so the box is folded onto the cell [0, 1]² 4^(L−1) times; the last hidden layer
    draws 4 lines in general position in the cell (Σ_{j≤2} C(4, j) = 11 regions), which every fold
    copies: 4^(L−1) · 11 = montufar_lower(2, [4]·L) regions, with 20 L − 3 parameters."""
    mods = []
    N = np.stack([np.cos(_CELL_NORMALS), np.sin(_CELL_NORMALS)], 1)        # (4, 2)
    if L == 1:
        U, c = 0.5 * np.eye(2), np.full(2, 0.5)          # cell coordinates u = (x + 1)/2
    else:
        first = Linear(2, 4)
        first.weight.value[:] = [[0.5, 0], [0.5, 0], [0, 0.5], [0, 0.5]]
        first.bias.value[:] = [0.5, 0.0, 0.5, 0.0]       # ReLU(u_i), ReLU(u_i − ½)
        mods += [first, ReLU()]
        tent = np.array([[2.0, -4.0, 0, 0], [0, 0, 2.0, -4.0]])           # u_i = t(previous u_i)
        for _ in range(L - 2):
            fold = Linear(4, 4)
            fold.weight.value[:] = np.repeat(tent, 2, axis=0)
            fold.bias.value[:] = [0.0, -0.5, 0.0, -0.5]
            mods += [fold, ReLU()]
        U, c = tent, np.zeros(2)
    lines = Linear(U.shape[1], 4)                        # z_j = n_j·(u − ½) − r
    lines.weight.value[:] = N @ U
    lines.bias.value[:] = N @ (c - 0.5) - _CELL_RADIUS
    out = Linear(4, 1)
    out.weight.value[:] = [_CELL_OUT]
    out.bias.value[:] = 0.0
    return Sequential(*mods, lines, ReLU(), out)


@figure("deep-vs-shallow-regions", source="004 §2.4.10",
        caption="Exact region counts of ReLU nets with 2 inputs on the box [−1, 1]² against their "
                "parameter counts. Top: three nets with {pic_params} parameters each — a random "
                "shallow net ({pic_shallow} regions), a random deep one ({pic_deep} regions) and a "
                "deep one built by folding (Montúfar et al. 2014; {pic_folded} regions). Random "
                "nets (biases set from each unit's pre-activation spread so every unit switches "
                "inside the box) stay far below the attainable maximum and deep ones do not beat "
                "shallow ones: random initialisation is not the attainable maximum (Hanin & "
                "Rolnick 2019 show that a random net's count grows like the number of units squared "
                "(for 2 inputs), not exponentially with depth). The constructed deep nets reach 4^(L−1)·11 regions, "
                "{folded_max} at {folded_max_params} parameters against at most "
                "{shallow_at_folded_max} for a shallow net of as many; Telgarsky's tent map of "
                "depth L has 2^L pieces on a line (L ≤ {L_max}).")
def deep_vs_shallow_regions(quick=False):
    from analysis.theory import mlp_param_count

    box = ((-1, 1), (-1, 1))
    origin, u, v = [0, 0], [1, 0], [0, 1]
    width = 4        # the constructed nets' width: random and constructed deep nets alike
    folded_L = [1, 2, 3] if quick else [1, 2, 3, 4]
    depths = folded_L
    shallow_H = [4, 9, 14] if quick else [4, 9, 14, 19, 24]      # 4H + 1 = 20L − 3 parameters
    seeds = 1 if quick else 3
    rows = []
    for kind, archs in (("shallow", [[2, H, 1] for H in shallow_H]),
                        ("deep", [[2] + [width] * L + [1] for L in depths])):
        for w in archs:
            c2, c1 = [], []
            for s in range(seeds):
                net = spread_biases(MLP(w, rng=1000 * s + sum(w)), box, 10 * s + len(w))
                c2.append(regions_2d(net, origin, u, v, box).n_linear_regions)
                c1.append(regions_1d(net, [-1, -0.4], [1, 0.6]).n_linear_regions)
            hidden = w[1:-1]
            rows.append(dict(kind=kind, widths=w, params=mlp_param_count(w), H=sum(hidden),
                             count_2d=float(np.mean(c2)), count_1d=float(np.mean(c1)),
                             max_2d=max(c2), max_1d=max(c1),
                             two_h=bounds.two_to_h(hidden), serra_2d=bounds.serra_upper(2, hidden),
                             serra_1d=bounds.serra_upper(1, hidden),
                             zaslavsky=bounds.zaslavsky(2, hidden[0]) if kind == "shallow" else None,
                             montufar=bounds.montufar_lower(2, hidden)))
    folded = []
    for L in folded_L:
        w = [2] + [4] * L + [1]
        P = mlp_param_count(w)
        r = regions_2d(folded_network(L), origin, u, v, box)
        H_eq = (P - 1) // 4                                 # shallow [2, H, 1] with ≤ P parameters
        folded.append(dict(L=L, widths=w, params=P, count_2d=r.n_linear_regions,
                           activation_regions=r.n_activation_regions,
                           montufar=bounds.montufar_lower(2, [4] * L),
                           serra_2d=bounds.serra_upper(2, [4] * L),
                           shallow_H=H_eq, shallow_params=mlp_param_count([2, H_eq, 1]),
                           shallow_max=bounds.zaslavsky(2, H_eq)))
    L_max = 6 if quick else 10
    tent = [(L, mlp_param_count([1] + [2] * L + [1]), regions_1d(tent_net(L), [0.0], [1.0]).n_linear_regions)
            for L in range(1, L_max + 1)]

    fig = plt.figure(figsize=(6.5, 6.9), layout="constrained")
    gs = fig.add_gridspec(2, 6, height_ratios=[1.0, 1.45])
    top = [fig.add_subplot(gs[0, 2 * i:2 * i + 2]) for i in range(3)]
    axes = [fig.add_subplot(gs[1, :3]), fig.add_subplot(gs[1, 3:])]
    # the polygons of three nets with the same number of parameters
    L_pic = folded_L[-1]
    w_deep, w_shallow = [2] + [4] * L_pic + [1], [2, 5 * L_pic - 1, 1]
    assert mlp_param_count(w_deep) == mlp_param_count(w_shallow)
    pics = {}
    for ax, (name, net, title) in zip(top, (
            ("shallow", spread_biases(MLP(w_shallow, rng=7), box, 50), f"random shallow {w_shallow}"),
            ("deep", spread_biases(MLP(w_deep, rng=7), box, 50), "random deep [2, 4, …, 4, 1]"),
            ("folded", folded_network(L_pic), "constructed deep (folding)"))):
        r = regions_2d(net, origin, u, v, box)
        draw_polygons(ax, r, r.linear_labels, lw=0.25, alpha=0.85)
        ax.set_title(f"{title}:\n{r.n_linear_regions} regions", fontsize=8)
        ax.set_xticks([-1, 0, 1])
        ax.set_yticks([-1, 0, 1])
        ax.set_xlabel("$x_1$")
        pics[name] = r.n_linear_regions
    top[0].set_ylabel("$x_2$")
    for ax in top[1:]:
        ax.set_yticklabels([])
    cs, cd, cf = style.OKABE_ITO["blue"], style.OKABE_ITO["vermillion"], style.OKABE_ITO["bluish green"]
    ax = axes[0]
    sh = [r for r in rows if r["kind"] == "shallow"]
    dp = [r for r in rows if r["kind"] == "deep"]
    Hs = np.arange(2, max(r["H"] for r in sh) + 1)
    ax.plot(4 * Hs + 1, [bounds.zaslavsky(2, int(H)) for H in Hs], "-", color=cs, lw=1,
            label="shallow: maximum (Zaslavsky)")
    ax.plot([r["params"] for r in sh], [r["count_2d"] for r in sh], "o", color=cs, ms=5, mfc="none",
            label="shallow: random")
    ax.plot([r["params"] for r in dp], [r["count_2d"] for r in dp], "s--", color=cd, ms=4, lw=1,
            label="deep: random")
    ax.plot([f["params"] for f in folded], [f["count_2d"] for f in folded], "D-", color=cf, ms=4,
            label="deep: constructed (Montúfar)")
    ax.set_yscale("log")
    ax.set_xlabel("number of parameters")
    ax.set_ylabel("linear regions in $[-1, 1]^2$")
    ax.set_title("2 inputs: exact counts")
    ax.set_ylim(3, 3e3)
    ax.set_xlim(0, max(r["params"] for r in rows) + 5)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    Ls, Ps, Ns = zip(*tent)
    ax = axes[1]
    ax.semilogy(Ps, Ns, "D-", color=cf, ms=4, label="tent map $t^L$: pieces on [0, 1]")
    ax.semilogy(Ps, [2 ** L for L in Ls], "k:", lw=1, label="$2^L$")
    ax.semilogy(Ps, [P // 3 + 1 for P in Ps], "-", color=cs, lw=1,
                label="shallow, as many parameters:\nat most H + 1")
    ax.set_xlabel("number of parameters")
    ax.set_ylabel("linear pieces")
    ax.set_title("1 input: Telgarsky's tent map")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    for ax in axes:
        ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    big = folded[-1]
    return fig, {"rows": rows, "tent": tent, "L_max": L_max, "pictured": pics,
                 "folded": folded, "pic_params": mlp_param_count(w_deep),
                 "pic_shallow": pics["shallow"], "pic_deep": pics["deep"],
                 "pic_folded": pics["folded"], "folded_max": big["count_2d"],
                 "folded_max_params": big["params"], "shallow_at_folded_max": big["shallow_max"]}
