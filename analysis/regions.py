"""Exact linear regions of ReLU / leaky-ReLU networks on a segment and on a 2-D slice of input space.

A network with piecewise-linear activations is a piecewise-affine function of its input (notes 000
§2–§4, 004 §2.4.10). Each hidden unit j of layer k is active (f_k[j] > 0) or not; an *activation
pattern* fixes every unit's state, and on the set of inputs with one pattern the network is affine:

    h_{k+1} = D_k (β_k + Ω_k h_k),   D_k = diag(1 where f_k > 0, negative_slope elsewhere)

so  f_K = J x + c  there.  An *activation region* is a connected set of inputs with one pattern; a
*linear region* is a maximal connected set on which the network is one affine map (adjacent
activation regions with equal maps merged: this happens when a unit is dead, has zero outgoing
weights, or the pattern change is invisible on the slice).

Exact method (no sampling): restrict the input to the slice x(s) = start + s (end − start),
s ∈ [0, 1] (1-D), or x(s, t) = origin + s u + t v, (s, t) in a rectangle (2-D). Start from the whole
slice as one piece whose map h_0 = A·(s, t) + c is known. For each layer, every unit's
pre-activation on a piece is affine in (s, t): z_j = g_j·(s, t) + e_j with g = Ω_k A,
e = Ω_k c + β_k, so its zero set is a point (1-D) or a line (2-D). Split each piece by the zero
sets that cross it, give every sub-piece its unit signs, and compose D_k into its map. Pieces stay
intervals / convex polygons because each split is by a line.

Tolerances (explicit, all in slice coordinates): a zero set is treated as *crossing* a piece only
if the signed distance of some vertex is > `tol·diam` on both sides, where `diam` is the slice's
diameter; vertices within that distance count as lying on the line. So a unit that is exactly zero
at a vertex or along an edge, or a boundary parallel to / coincident with an existing edge,
splits nothing. A unit whose pre-activation is (within tolerance) zero on a whole piece is counted
inactive. Affine maps are equal when they differ by ≤ `map_tol` relative to the largest map.

Entry points: `regions_1d(net, start, end)`, `regions_2d(net, origin, u, v, extent)`,
`count_patterns(net, X)` (sampled estimate), and the bounds in `analysis.bounds`.
"""
from dataclasses import dataclass, field

import numpy as np

from engine.checks import check_array, check_float, check_int, check_real_array, check_rng


__all__ = ["regions_1d", "regions_2d", "count_patterns", "activation_patterns", "affine_map", "estimate_vs_exact", "pattern_estimate_1d", "pattern_estimate_2d",
           "network_stages", "Piece1D", "Regions1D", "Polygon", "Regions2D", "slice_through"]

DEFAULT_TOL = 1e-9
DEFAULT_MAP_TOL = 1e-8


# --------------------------------------------------------------------------------------------
# Network → list of affine stages (public API only)
# --------------------------------------------------------------------------------------------

def network_stages(net):
    """The network as [(Ω_k, β_k, slope_k), …] in float64, where slope_k is the negative slope of
    the activation after layer k (0 for ReLU, a for LeakyReLU(a)) or None for no activation (the
    output layer, a Linear followed directly by another Linear, or LeakyReLU(1), the identity).

    Accepts the notes' `MLP` (activation "relu", "leaky_relu", "identity" or "linear") or a
    `Sequential` of `Linear`, `ReLU`, `LeakyReLU` and `Identity`. An MLP is read through its
    `to_sequential()`, so both give the same stages and the same regions. Anything else raises
    TypeError (unsupported layer type) or ValueError (an activation that is not piecewise linear
    with two pieces); non-finite weights or biases raise ValueError naming them."""
    from engine.core import Sequential
    from layers.activations import Activation, Identity, LeakyReLU, ReLU
    from layers.dense import Linear
    from layers.mlp import MLP

    if isinstance(net, MLP):
        if net.activation not in ("relu", "leaky_relu", "identity", "linear"):
            raise ValueError(f"net: exact region counting needs ReLU or LeakyReLU activations, "
                             f"got MLP(activation={net.activation!r})")
        for k, (W, b) in enumerate(zip(net.weights, net.biases)):     # before to_sequential copies them
            check_array(f"net.weights[{k}]", W)
            check_array(f"net.biases[{k}]", b)
        net = net.to_sequential()
    if isinstance(net, Sequential):
        stages = []
        for i, layer in enumerate(net.layers):
            if isinstance(layer, Linear):
                W = check_array(f"net.layers[{i}].weight", layer.weight.value)
                b = check_array(f"net.layers[{i}].bias", layer.bias.value) if layer.has_bias \
                    else np.zeros(layer.out_features)
                stages.append([np.array(W, np.float64), np.array(b, np.float64), None])
            elif isinstance(layer, (ReLU, LeakyReLU, Identity)):
                if not stages or stages[-1][2] is not None:
                    raise ValueError(f"net.layers[{i}]: expected a Linear before the activation "
                                     f"{type(layer).__name__}, got an activation first or two in a row")
                if isinstance(layer, LeakyReLU):
                    stages[-1][2] = float(layer.negative_slope)
                elif isinstance(layer, ReLU):
                    stages[-1][2] = 0.0
            elif isinstance(layer, Activation):
                raise ValueError(f"net.layers[{i}]: exact region counting needs ReLU or LeakyReLU "
                                 f"activations, got {type(layer).__name__}")
            else:
                raise TypeError(f"net.layers[{i}]: unsupported layer type {type(layer).__name__} "
                                "(expected Linear, ReLU, LeakyReLU or Identity)")
        if not stages:
            raise ValueError("net: expected at least one Linear layer, got none")
        for k in range(1, len(stages)):
            if stages[k][0].shape[1] != stages[k - 1][0].shape[0]:
                raise ValueError(f"net: layer sizes do not chain at Linear {k}")
        for k in range(len(stages)):
            if stages[k][2] == 1.0:        # LeakyReLU(1) is the identity
                stages[k][2] = None
        return [tuple(s) for s in stages]
    raise TypeError(f"net: expected an MLP or a Sequential of Linear/ReLU/LeakyReLU, got {type(net).__name__}")


def _hidden_sizes(stages):
    return [W.shape[0] for W, b, s in stages if s is not None]


def affine_map(stages, pattern):
    """The network's affine map f = J x + c in *input* space on the region with activation
    `pattern` (the concatenated hidden-unit states): J (D_out, D_in), c (D_out,)."""
    D_in = stages[0][0].shape[1]
    J, c, i = np.eye(D_in), np.zeros(D_in), 0
    for W, b, slope in stages:
        J, c = W @ J, W @ c + b
        if slope is not None:
            n = W.shape[0]
            d = np.where(pattern[i:i + n], 1.0, slope)
            J, c = d[:, None] * J, d * c
            i += n
    return J, c


# --------------------------------------------------------------------------------------------
# 1-D
# --------------------------------------------------------------------------------------------

@dataclass
class Piece1D:
    """One activation region on the segment: s in [s0, s1] (x = start + s (end − start)).
    On it the output is slope·s + intercept (both (D_out,)) and, in input space,
    f = jacobian @ x + offset when the network's input map is tracked; `pattern` is the boolean
    activation pattern of all hidden units, layer by layer."""
    s0: float
    s1: float
    slope: np.ndarray
    intercept: np.ndarray
    pattern: np.ndarray


@dataclass
class Regions1D:
    """Result of `regions_1d`: `pieces` (activation regions, in order along the segment),
    `linear_labels[i]` the linear region of piece i, the counts, and the breakpoints in s of
    activation regions (`breaks`) and of linear regions (`linear_breaks`, joints of the function)."""
    start: np.ndarray
    end: np.ndarray
    pieces: list
    linear_labels: np.ndarray
    n_activation_regions: int
    n_linear_regions: int
    breaks: np.ndarray = field(default=None)
    linear_breaks: np.ndarray = field(default=None)
    stages: list = field(default=None, repr=False)

    def input_map(self, i):
        """(J, c) with f = J x + c in input space on piece i (the maps stored on the pieces are in s)."""
        return affine_map(self.stages, self.pieces[i].pattern)

    def points(self, s):
        """Input points x(s) for parameters s (any shape) → (..., D_in)."""
        s = check_real_array("s", s)
        return self.start + s[..., None] * (self.end - self.start)

    def evaluate(self, s):
        """The network's output at parameters s ∈ [0, 1] from the pieces' affine maps, (len(s), D_out)."""
        s = np.atleast_1d(check_real_array("s", s))
        idx = np.clip(np.searchsorted(self.breaks, s, side="right") - 1, 0, len(self.pieces) - 1)
        slopes = np.array([p.slope for p in self.pieces])
        icpts = np.array([p.intercept for p in self.pieces])
        return slopes[idx] * s[:, None] + icpts[idx]


def _point(name, v, D_in):
    """An input point or direction (D_in,) (any array-like of D_in real numbers)."""
    return check_array(name, check_real_array(name, v).reshape(-1), shape=(D_in,))


def _segment_args(net, start, end):
    stages = network_stages(net)
    D_in = stages[0][0].shape[1]
    start = _point("start", start, D_in)
    end = _point("end", end, D_in)
    if np.allclose(start, end, rtol=0, atol=1e-14 * (1 + np.abs(start).max())):
        raise ValueError("end: expected a point different from start (degenerate segment), got end == start")
    return stages, start, end


def regions_1d(net, start, end, tol=DEFAULT_TOL, map_tol=DEFAULT_MAP_TOL):
    """Exact linear pieces of `net` on the segment from `start` to `end` (input vectors, (D_in,)).

    Returns a `Regions1D` with the activation regions (intervals in s ∈ [0, 1], each with its affine
    map and pattern), `n_activation_regions` and `n_linear_regions` (adjacent intervals with equal
    maps merged). `tol` is the relative width below which a split is ignored (a unit zero at an
    endpoint, or touching zero without changing sign, splits nothing); `map_tol` the relative
    tolerance for equal affine maps."""
    stages, start, end = _segment_args(net, start, end)
    tol = check_float("tol", tol, low=0.0)
    map_tol = check_float("map_tol", map_tol, low=0.0)
    # piece = (s0, s1, A (d,), c (d,), pattern list); h = A s + c
    pieces = [(0.0, 1.0, end - start, start.copy(), [])]
    for W, b, slope in stages:
        new = []
        for s0, s1, A, c, pat in pieces:
            g = W @ A
            e = W @ c + b
            if slope is None:
                new.append((s0, s1, g, e, pat))
                continue
            width = s1 - s0
            with np.errstate(divide="ignore", invalid="ignore"):
                roots = -e / g
            inside = (g != 0) & (roots > s0 + tol) & (roots < s1 - tol)
            cuts = np.unique(roots[inside])
            bounds = np.concatenate([[s0], cuts, [s1]])
            mids = 0.5 * (bounds[:-1] + bounds[1:])
            z = mids[:, None] * g[None, :] + e[None, :]                       # (n_sub, d)
            # a unit that is zero on the whole piece (within tolerance) is inactive
            scale = np.abs(g) * max(width, 1e-300) + np.abs(e)
            active = z > tol * np.maximum(scale, 1e-300)
            # merge consecutive sub-intervals whose signs agree (roots where z touches 0 without crossing)
            keep = np.ones(len(mids), bool)
            keep[1:] = np.any(active[1:] != active[:-1], axis=1)
            starts = np.flatnonzero(keep)
            for a, i0 in enumerate(starts):
                i1 = starts[a + 1] if a + 1 < len(starts) else len(mids)
                act = active[i0]
                dvec = np.where(act, 1.0, slope)
                new.append((bounds[i0], bounds[i1], dvec * g, dvec * e, pat + [act]))
        pieces = new
    out = []
    for s0, s1, A, c, pat in pieces:
        p = np.concatenate(pat) if pat else np.zeros(0, bool)
        out.append(Piece1D(float(s0), float(s1), A, c, p))
    # linear regions: merge consecutive pieces with equal affine maps (restricted to the segment)
    maps = np.array([np.concatenate([p.slope, p.intercept]) for p in out])
    mscale = max(np.abs(maps).max(), 1e-300)
    labels = np.zeros(len(out), np.int64)
    for i in range(1, len(out)):
        same = np.abs(maps[i] - maps[i - 1]).max() <= map_tol * mscale
        labels[i] = labels[i - 1] + (0 if same else 1)
    breaks = np.array([p.s0 for p in out] + [1.0])
    lb = [out[0].s0] + [out[i].s0 for i in range(1, len(out)) if labels[i] != labels[i - 1]] + [1.0]
    return Regions1D(start, end, out, labels, len(out), int(labels[-1]) + 1, breaks, np.array(lb), stages)


# --------------------------------------------------------------------------------------------
# 2-D
# --------------------------------------------------------------------------------------------

@dataclass
class Polygon:
    """One activation region of the slice: a convex polygon with `vertices` (m, 2) in slice
    coordinates (s, t), counter-clockwise. On it the output is `M @ (s, t) + offset`
    (M (D_out, 2), offset (D_out,)); `pattern` is the boolean activation pattern of all hidden units."""
    vertices: np.ndarray
    M: np.ndarray
    offset: np.ndarray
    pattern: np.ndarray

    @property
    def area(self):
        return _area(self.vertices)

    @property
    def centroid(self):
        return self.vertices.mean(axis=0)


@dataclass
class Regions2D:
    """Result of `regions_2d`: `pieces` (activation regions as convex `Polygon`s), `linear_labels[i]`
    the linear region of piece i (0 … n_linear_regions − 1), and the counts. `to_input(st)` maps
    slice coordinates to input space."""
    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    extent: tuple
    pieces: list
    linear_labels: np.ndarray
    n_activation_regions: int
    n_linear_regions: int
    stages: list = field(default=None, repr=False)

    def input_map(self, i):
        """(J, c) with f = J x + c in input space on piece i (the maps stored on the pieces are in (s, t))."""
        return affine_map(self.stages, self.pieces[i].pattern)

    def to_input(self, st):
        st = _slice_points(st)
        return self.origin + st[..., 0:1] * self.u + st[..., 1:2] * self.v

    def total_area(self):
        return float(sum(p.area for p in self.pieces))

    def locate(self, st):
        """Index of the piece containing each slice point st (n, 2) (−1 if none), by half-plane tests."""
        st = np.atleast_2d(_slice_points(st))
        idx = np.full(len(st), -1, np.int64)
        for i, p in enumerate(self.pieces):
            inside = _inside(p.vertices, st, 1e-12)
            idx[(idx < 0) & inside] = i
        return idx

    def evaluate(self, st):
        """The output at slice points st (n, 2) from the pieces' affine maps, (n, D_out)."""
        st = np.atleast_2d(_slice_points(st))
        idx = self.locate(st)
        out = np.full((len(st), self.pieces[0].M.shape[0]), np.nan)
        for i in np.unique(idx[idx >= 0]):
            m = idx == i
            out[m] = st[m] @ self.pieces[i].M.T + self.pieces[i].offset
        return out


def _slice_points(st):
    """Slice coordinates (..., 2)."""
    st = check_real_array("st", st)
    if st.ndim == 0 or st.shape[-1] != 2:
        raise ValueError(f"st: expected slice coordinates of shape (..., 2), got {st.shape}")
    return st


def _area(P):
    """Signed (shoelace) area of a polygon given as an (m, 2) array or a list of (x, y) pairs."""
    a = 0.0
    m = len(P)
    for i in range(m):
        x0, y0 = P[i]
        x1, y1 = P[i + 1 if i + 1 < m else 0]
        a += x0 * y1 - x1 * y0
    return 0.5 * float(a)


def _inside(P, pts, eps):
    ok = np.ones(len(pts), bool)
    m = len(P)
    for i in range(m):
        a, b = P[i], P[(i + 1) % m]
        cross = (b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0])
        ok &= cross >= -eps * max(1.0, np.hypot(*(b - a)))
    return ok


def _clip(P, vals, tol):
    """Split convex polygon P (list of (x, y) tuples, CCW) by the line vals = 0, where vals[i] is
    the signed distance of vertex i. Vertices with |val| ≤ tol lie on the line and go to both
    sides. Returns (positive part, negative part) as vertex lists."""
    pos, neg = [], []
    m = len(P)
    for i in range(m):
        p, vp = P[i], vals[i]
        j = i + 1 if i + 1 < m else 0
        q, vq = P[j], vals[j]
        if vp > tol:
            pos.append(p)
        elif vp < -tol:
            neg.append(p)
        else:
            pos.append(p)
            neg.append(p)
        if (vp > tol and vq < -tol) or (vp < -tol and vq > tol):
            r = vp / (vp - vq)
            x = (p[0] + r * (q[0] - p[0]), p[1] + r * (q[1] - p[1]))
            pos.append(x)
            neg.append(x)
    return pos, neg


def _split_cell(P, G, E, tol):
    """All pieces of convex polygon P (list of tuples) cut by the lines G[j]·(s,t) + E[j] = 0
    (G, E normalised so values are signed distances). Returns [(vertices list, signs (d,) bool)]."""
    V = np.array(P)
    vals = V @ G.T + E                                         # (m, d)
    vmax, vmin = vals.max(axis=0), vals.min(axis=0)
    signs = np.where(np.abs(vmax) >= np.abs(vmin), vmax, vmin) > tol
    crossing = np.flatnonzero((vmax > tol) & (vmin < -tol))
    cells = [(P, signs)]
    for j in crossing:
        g0, g1, e = G[j, 0], G[j, 1], E[j]
        nxt = []
        for Q, sg in cells:
            vq = [g0 * x + g1 * y + e for x, y in Q]
            hi, lo = max(vq), min(vq)
            if hi > tol and lo < -tol:
                a, b = _clip(Q, vq, tol)
                sa = sg.copy()
                sa[j] = True
                sb = sg.copy()
                sb[j] = False
                nxt.append((a, sa))
                nxt.append((b, sb))
            else:
                s = sg.copy()
                s[j] = (hi if abs(hi) >= abs(lo) else lo) > tol
                nxt.append((Q, s))
        cells = nxt
    return cells


def slice_through(p0, p1, p2, margin=0.25):
    """(origin, u, v, extent) of the 2-D slice through three input points: origin = p0,
    u = p1 − p0, v = p2 − p0, so the points sit at (s, t) = (0, 0), (1, 0), (0, 1); the extent
    adds `margin` around the unit square."""
    p0 = check_real_array("p0", p0).reshape(-1)
    p1, p2 = (check_array(n, check_real_array(n, p).reshape(-1), shape=p0.shape) for n, p in (("p1", p1), ("p2", p2)))
    margin = check_float("margin", margin, low=0.0)
    return p0, p1 - p0, p2 - p0, ((-margin, 1 + margin), (-margin, 1 + margin))


def _slice_args(stages, origin, u, v, extent):
    D_in = stages[0][0].shape[1]
    origin, u, v = _point("origin", origin, D_in), _point("u", u, D_in), _point("v", v, D_in)
    try:
        (s0, s1), (t0, t1) = extent
    except (TypeError, ValueError):
        raise ValueError(f"extent: expected ((s0, s1), (t0, t1)), got {extent!r}") from None
    s0, s1, t0, t1 = (check_float(f"extent[{i // 2}][{i % 2}]", a) for i, a in enumerate((s0, s1, t0, t1)))
    if not (s1 > s0 and t1 > t0):
        raise ValueError(f"extent: expected finite s0 < s1 and t0 < t1, got {extent!r}")
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        raise ValueError(f"{'u' if nu == 0 else 'v'}: expected a non-zero direction (degenerate slice)")
    cos = abs(float(u @ v)) / (nu * nv)
    if cos > 1 - 1e-12:
        raise ValueError("v: expected a direction not parallel to u (degenerate slice), got parallel u and v")
    return origin, u, v, ((s0, s1), (t0, t1))


def regions_2d(net, origin, u, v, extent, tol=DEFAULT_TOL, map_tol=DEFAULT_MAP_TOL):
    """Exact activation and linear regions of `net` on the slice x = origin + s·u + t·v,
    (s, t) ∈ extent = ((s0, s1), (t0, t1)); inputs of any dimension D_in (origin, u, v are (D_in,)).

    Returns a `Regions2D`: the activation regions as convex polygons (vertices in (s, t)) with their
    affine maps and patterns, `n_activation_regions`, and `n_linear_regions` (edge-adjacent polygons
    with equal maps merged, transitively). Maps are compared as functions of (s, t), i.e. the linear
regions of the network restricted to the slice; `input_map(i)` gives a piece's map in input space.
See the module docstring for the tolerances."""
    stages = network_stages(net)
    origin, u, v, extent = _slice_args(stages, origin, u, v, extent)
    tol = check_float("tol", tol, low=0.0)
    map_tol = check_float("map_tol", map_tol, low=0.0)
    (s0, s1), (t0, t1) = extent
    diam = float(np.hypot(s1 - s0, t1 - t0))
    dtol = tol * diam
    square = [(s0, t0), (s1, t0), (s1, t1), (s0, t1)]
    A0 = np.stack([u, v], axis=1)                                   # (D_in, 2): h_0 = A0 (s,t) + origin
    cells = [(square, A0, origin.copy(), [])]
    for W, b, slope in stages:
        new = []
        for P, A, c, pat in cells:
            G = W @ A
            E = W @ c + b
            if slope is None:
                new.append((P, G, E, pat))
                continue
            norm = np.hypot(G[:, 0], G[:, 1])
            flat = norm <= 1e-300
            inv = np.where(flat, 1.0, 1.0 / np.where(flat, 1.0, norm))
            Gn = G * inv[:, None]
            # a unit constant on the slice (g = 0): sign of e measured against |e| scale only
            En = np.where(flat, np.where(E != 0, np.copysign(np.inf, E), 0.0), E * inv)
            for Q, sg in _split_cell(P, Gn, En, dtol):
                if len(Q) < 3 or abs(_area(Q)) <= dtol * diam * 1e-3:
                    continue                      # a sliver thinner than the tolerance
                d = np.where(sg, 1.0, slope)
                new.append((Q, d[:, None] * G, d * E, pat + [sg]))
        cells = new
    pieces = []
    for P, M, o, pat in cells:
        V = np.array(P)
        if _area(V) < 0:
            V = V[::-1]
        pieces.append(Polygon(V, M, o, np.concatenate(pat) if pat else np.zeros(0, bool)))
    labels = _merge_equal_maps(pieces, map_tol, dtol)
    return Regions2D(origin, u, v, extent, pieces, labels, len(pieces),
                     int(labels.max()) + 1 if len(labels) else 0, stages)


def _merge_equal_maps(pieces, map_tol, dtol):
    """Union-find over edge-adjacent polygons whose affine maps agree within map_tol (relative)."""
    from scipy.spatial import cKDTree

    n = len(pieces)
    parent = np.arange(n)

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    if n > 1:
        keys = np.array([np.concatenate([p.M.ravel(), p.offset]) for p in pieces])
        scale = max(np.abs(keys).max(), 1e-300)
        pairs = cKDTree(keys / scale).query_pairs(map_tol, p=np.inf, output_type="ndarray")
        for i, j in pairs:
            if _share_edge(pieces[i].vertices, pieces[j].vertices, dtol):
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([find(i) for i in range(n)])
    _, labels = np.unique(roots, return_inverse=True)
    return labels.astype(np.int64)


def _share_edge(P, Q, tol):
    """True when convex polygons P and Q share a boundary segment of length > tol."""
    m, k = len(P), len(Q)
    for i in range(m):
        a, b = P[i], P[(i + 1) % m]
        d = b - a
        L = np.hypot(d[0], d[1])
        if L <= tol:
            continue
        n_ = np.array([-d[1], d[0]]) / L
        for j in range(k):
            c, e = Q[j], Q[(j + 1) % k]
            if abs(n_ @ (c - a)) > tol or abs(n_ @ (e - a)) > tol:
                continue
            tc, te = (d @ (c - a)) / L, (d @ (e - a)) / L
            lo, hi = max(0.0, min(tc, te)), min(L, max(tc, te))
            if hi - lo > tol:
                return True
    return False


# --------------------------------------------------------------------------------------------
# Sampled estimate
# --------------------------------------------------------------------------------------------

def activation_patterns(net, X):
    """Boolean activation patterns (N, H) of the hidden units at input points X (N, D_in)."""
    stages = network_stages(net)
    X = check_real_array("X", X, ndim=2)
    if X.shape[1] != stages[0][0].shape[1]:
        raise ValueError(f"X: expected shape (N, {stages[0][0].shape[1]}), got {X.shape}")
    h, pats = X, []
    for W, b, slope in stages:
        z = h @ W.T + b
        if slope is None:
            h = z
        else:
            pats.append(z > 0)
            h = np.where(z > 0, z, slope * z)
    return np.concatenate(pats, axis=1) if pats else np.zeros((len(X), 0), bool)


def count_patterns(net, X):
    """Number of distinct activation patterns among the sample points X (N, D_in).

    An *estimate* of the number of regions, usable in any input dimension, that can err both ways:
    it misses regions no sample falls in (under-count, the usual case: small regions are many),
    counts one pattern once even when it occurs in several disconnected regions (under-count), and
    counts a point exactly on a boundary (z = 0, inactive) as its own pattern (over-count), and
    counts patterns, not linear regions, so regions that merge into one affine piece (dead units,
    zero outgoing weights) count several times (over-count of linear regions)."""
    P = activation_patterns(net, X)
    return int(len(np.unique(np.packbits(P, axis=1), axis=0)))


def pattern_estimate_1d(net, start, end, n_samples=1000, rng=0):
    """(sampled count of distinct patterns on n_samples uniform random points of the segment, exact
    Regions1D). Random, not evenly spaced, points: a grid can land exactly on boundaries (dyadic
    joints of the tent map, for instance), where z = 0 gives a pattern of no region (over-count)."""
    n_samples = check_int("n_samples", n_samples, low=1)
    gen = check_rng("rng", rng)
    r = regions_1d(net, start, end)
    s = gen.uniform(0.0, 1.0, n_samples)
    return count_patterns(net, r.points(s)), r


def pattern_estimate_2d(net, origin, u, v, extent, n_samples=10000, rng=0):
    """(sampled count of distinct patterns on n_samples uniform points of the slice, exact Regions2D)."""
    n_samples = check_int("n_samples", n_samples, low=1)
    g = check_rng("rng", rng)
    r = regions_2d(net, origin, u, v, extent)
    (s0, s1), (t0, t1) = r.extent
    st = np.stack([g.uniform(s0, s1, n_samples), g.uniform(t0, t1, n_samples)], axis=1)
    return count_patterns(net, r.to_input(st)), r


def estimate_vs_exact(net, origin, u, v, extent, n_samples=(100, 1000, 10000), rng=0):
    """Compare the sampled estimate with the exact count on one 2-D slice: returns
    {"exact_activation", "exact_linear", "estimates": {n: distinct patterns among n uniform samples}}.
    Typical outcome: the estimate climbs towards the exact activation count from below as n grows
    (small regions are hit last) and can exceed the linear-region count (merged regions)."""
    if not isinstance(n_samples, (list, tuple, np.ndarray)):
        raise TypeError(f"n_samples: expected a list of sample sizes, got {type(n_samples).__name__}")
    n_samples = [check_int(f"n_samples[{i}]", n, low=1) for i, n in enumerate(n_samples)]
    g = check_rng("rng", rng)
    r = regions_2d(net, origin, u, v, extent)
    (s0, s1), (t0, t1) = r.extent
    est = {}
    for n in n_samples:
        st = np.stack([g.uniform(s0, s1, n), g.uniform(t0, t1, n)], axis=1)
        est[int(n)] = count_patterns(net, r.to_input(st))
    return {"exact_activation": r.n_activation_regions, "exact_linear": r.n_linear_regions, "estimates": est}
