"""Linear regions of ReLU networks (000 §2, §3.2, §4.1; 004 §2.4.10), drawn from the exact
enumeration of `analysis.regions`: every polygon / interval shown is one the counter found.
"""
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PolyCollection

from analysis import bounds
from analysis.examples import shallow_network as shallow_seq, tent_network as tent_net
from analysis.regions import regions_1d, regions_2d
from engine.core import Sequential
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


SHALLOW_2D = dict(W=[[1.0, 0.0], [0.2, 1.0], [-1.0, -1.0]], b=[1.0, 0.8, 1.0], w=[1.0, -1.5, 2.0], c=0.5)


# ---- figures ----------------------------------------------------------------------------------

@figure("shallow-2d-regions", source="000 §2, §3.2",
        caption="A 2-input ReLU net with 3 hidden units (generic weights): its 3 joint lines cut the "
                "plane into {n_regions} linear regions, the maximum Σ_{{j≤2}} C(3, j) = {bound}.")
def shallow_2d_regions(quick=False):
    # three joint lines x₁ = −1, 0.2 x₁ + x₂ = −0.8, x₁ + x₂ = 1 in general position, all three
    # crossings inside the box
    net = shallow_seq(SHALLOW_2D["W"], SHALLOW_2D["b"], SHALLOW_2D["w"], SHALLOW_2D["c"])
    ext = ((-3.0, 3.0), (-3.0, 3.0))
    r = regions_2d(net, [0, 0], [1, 0], [0, 1], ext)
    (s0, s1), (t0, t1) = ext
    n = 120 if quick else 400
    S, T = np.meshgrid(np.linspace(s0, s1, n), np.linspace(t0, t1, n))
    Z = net.forward(np.stack([S.ravel(), T.ravel()], 1)).reshape(n, n)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    im = axes[0].imshow(Z, origin="lower", extent=(s0, s1, t0, t1), cmap="viridis", aspect="equal")
    for p in r.pieces:
        V = np.vstack([p.vertices, p.vertices[:1]])
        axes[0].plot(V[:, 0], V[:, 1], color="w", lw=1.0)
    fig.colorbar(im, ax=axes[0], shrink=0.8, label="network output y")
    axes[0].set_title("output y(x₁, x₂) and region boundaries")
    draw_polygons(axes[1], r)
    for i, p in enumerate(r.pieces):
        c = p.centroid
        axes[1].text(c[0], c[1], "".join("1" if a else "0" for a in p.pattern), ha="center", va="center", fontsize=8)
    axes[1].set_title(f"{r.n_activation_regions} regions (activation patterns)")
    for ax in axes:
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
    fig.tight_layout()
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
    net, ext = generic_shallow_2d(pic_D, np.random.default_rng(7))
    pic = regions_2d(net, [0, 0], [1, 0], [0, 1], ext)
    draw_polygons(axes[2], pic, lw=0.5, alpha=0.8)
    axes[2].set_title(f"generic D = {pic_D}, $D_i$ = 2:\n{pic.n_linear_regions} regions "
                      f"(max {bounds.zaslavsky(2, pic_D)})")
    axes[2].set_xlabel("x₁")
    axes[2].set_ylabel("x₂")
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
        ax.set_xlabel("hidden width D")
        ax.set_ylabel("number of linear regions")
        ax.set_title(f"$D_i$ = {D_i}")
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


@figure("deep-vs-shallow-regions", source="004 §2.4.10",
        caption="Exact region counts of random shallow and deep ReLU nets (2 inputs) against their parameter "
                "counts, on a 2-D box and a 1-D line, with the 2^H and Zaslavsky upper bounds and Montúfar et "
                "al.'s attainable lower bound; Telgarsky's tent map of depth L has 2^L pieces (L ≤ {L_max}).")
def deep_vs_shallow_regions(quick=False):
    from analysis.theory import mlp_param_count

    width = 8
    shallow_H = [4, 8, 16, 24, 32] if quick else [4, 8, 16, 32, 48, 64, 96]
    depths = [1, 2, 3] if quick else [1, 2, 3, 4, 5, 6]
    seeds = 1 if quick else 3
    box = ((-3, 3), (-3, 3))
    rows = []
    for kind, archs in (("shallow", [[2, H, 1] for H in shallow_H]),
                        ("deep", [[2] + [width] * L + [1] for L in depths])):
        for w in archs:
            c2, c1 = [], []
            for s in range(seeds):
                net = MLP(w, rng=1000 * s + sum(w))
                for k, b in enumerate(net.biases):     # spread the joints over the box
                    b[...] = np.random.default_rng(s + k).uniform(-1, 1, b.shape)
                c2.append(regions_2d(net, [0, 0], [1, 0], [0, 1], box).n_linear_regions)
                c1.append(regions_1d(net, [-3, -1], [3, 1.5]).n_linear_regions)
            hidden = w[1:-1]
            rows.append(dict(kind=kind, widths=w, params=mlp_param_count(w), H=sum(hidden),
                             count_2d=float(np.mean(c2)), count_1d=float(np.mean(c1)),
                             max_2d=max(c2), max_1d=max(c1),
                             two_h=bounds.two_to_h(hidden), serra_2d=bounds.serra_upper(2, hidden),
                             serra_1d=bounds.serra_upper(1, hidden),
                             zaslavsky=bounds.zaslavsky(2, hidden[0]) if kind == "shallow" else None,
                             montufar=bounds.montufar_lower(2, hidden)))
    L_max = 6 if quick else 12
    tent = [(L, mlp_param_count([1] + [2] * L + [1]), regions_1d(tent_net(L), [0.0], [1.0]).n_linear_regions)
            for L in range(1, L_max + 1)]
    fig = plt.figure(figsize=(6.5, 8.0), layout="constrained")
    gs = fig.add_gridspec(2, 2, height_ratios=[1.0, 1.1])
    top = [fig.add_subplot(gs[0, 0]), fig.add_subplot(gs[0, 1])]
    axes = [fig.add_subplot(gs[1, 0]), fig.add_subplot(gs[1, 1])]
    # the actual polygons of a shallow and a deep net with about the same number of parameters
    pics = {}
    for ax, w in zip(top, ([2, 48, 1], [2, 8, 8, 8, 1])):
        net = MLP(w, rng=7)
        for k, b in enumerate(net.biases):
            b[...] = np.random.default_rng(50 + k).uniform(-1, 1, b.shape)
        r = regions_2d(net, [0, 0], [1, 0], [0, 1], box)
        draw_polygons(ax, r, r.linear_labels, lw=0.3, alpha=0.8)
        ax.set_title(f"{w}: {mlp_param_count(w)} parameters, {r.n_linear_regions} linear regions")
        ax.set_xlabel("x₁")
        ax.set_ylabel("x₂")
        pics[str(w)] = r.n_linear_regions
    for kind, col in (("shallow", "C0"), ("deep", "C3")):
        rs = [r for r in rows if r["kind"] == kind]
        P = [r["params"] for r in rs]
        axes[0].plot(P, [r["count_2d"] for r in rs], "o-", color=col, label=f"{kind}: exact count, 2-D box")
        axes[0].plot(P, [r["count_1d"] for r in rs], "^--", color=col, ms=5, label=f"{kind}: exact count, 1-D line")
        axes[0].plot(P, [r["two_h"] for r in rs], ":", color=col, lw=1, label=f"{kind}: $2^H$")
        axes[0].plot(P, [r["serra_2d"] for r in rs], "-.", color=col, lw=1, label=f"{kind}: Serra et al. upper")
        if kind == "deep":
            axes[0].plot(P, [r["montufar"] for r in rs], "s:", color=col, ms=3, lw=1,
                         label="deep: Montúfar et al. (attainable max ≥)")
        else:
            axes[0].plot(P, [r["zaslavsky"] for r in rs], "k-", lw=1, label="shallow: Zaslavsky max")
    axes[0].set_yscale("log")
    axes[0].set_ylim(0.8, 1e10)
    axes[0].set_xlabel("number of parameters")
    axes[0].set_ylabel("linear regions")
    axes[0].set_title(f"random nets: shallow [2, H, 1] vs deep [2, {width}, …, {width}, 1]")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=2)
    Ls, Ps, Ns = zip(*tent)
    axes[1].semilogy(Ps, Ns, "o-", color="C2", label="tent map $t^L$: exact pieces on [0, 1]")
    axes[1].semilogy(Ps, [2 ** L for L in Ls], "k:", label="$2^L$")
    Hs = [bounds.zaslavsky(1, P // 3) for P in Ps]      # shallow 1-input net with ≈ as many params: H + 1 pieces
    axes[1].semilogy(Ps, Hs, "s--", color="C0", ms=4, label="shallow 1-input net, same #params: ≤ H + 1")
    axes[1].set_xlabel("number of parameters")
    axes[1].set_ylabel("linear pieces")
    axes[1].set_title("depth buys exponentially many pieces (Telgarsky)")
    axes[1].legend(loc="lower right")
    return fig, {"rows": rows, "tent": tent, "L_max": L_max, "pictured": pics}
