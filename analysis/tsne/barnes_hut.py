"""Barnes-Hut repulsion for t-SNE: a space-partitioning tree built and traversed in Numba.

Van der Maaten (2014), "Accelerating t-SNE using tree-based algorithms", JMLR 15, §4.2: the map
points are put in a tree whose cells split into 2^d equal sub-cells (a binary tree for d = 1, a
quadtree for d = 2, an octree for d = 3); every cell stores its number of points N_cell and
their centre of mass y_cell. In the repulsive force of point i,

    F_rep,i = Σ_{j≠i} w_ij² (y_i - y_j),   Z = Σ_i Σ_{j≠i} w_ij,   w_ij = (1 + ‖y_i - y_j‖²)⁻¹,

a whole cell far enough from y_i is replaced by N_cell points at y_cell:

    F_rep,i += N_cell w² (y_i - y_cell),   Z_i += N_cell w,   w = (1 + ‖y_i - y_cell‖²)⁻¹,

when  r_cell / ‖y_i - y_cell‖ < θ  (θ = `angle`). As r_cell we take the side length of the
(square, cubic) cell, the convention of the reference implementation released with the 2014
paper and of scikit-learn and openTSNE, so that a given `angle` trades accuracy for speed alike
in all three. A cell that contains y_i itself is always opened (so the self-pair never enters);
with θ = 0 no cell is summarised and the result is the exact sum up to rounding.

Layout, all flat arrays (no Python objects), nodes in depth-first preorder:
    start, end (M,) int64  the node's points are perm[start:end] (Ys[start:end] in tree order)
    skip (M,) int64        index of the next node after this node's subtree (stackless walk)
    leaf (M,) bool         leaves hold at most `leaf_size` points (more only at `_MAX_DEPTH`)
    w2 (M,) float64        squared side length of the cell
    com (M, d) float64     centre of mass
The walk for point i: at node n, if n's cell does not contain i and w2[n] < θ² ‖y_i - com[n]‖²,
summarise n and jump to skip[n]; else if n is a leaf, add its points exactly and jump to
skip[n]; else step to n + 1 (its first child). Points are processed in tree order (neighbours
in the map walk similar paths, which keeps the tree in cache); each writes only its own row.
"""
import numpy as np
from numba import njit, prange

from ._common import FASTMATH

_MAX_DEPTH = 40  # cells 2^-40 of the map's extent; deeper only for coincident points


@njit(cache=True)
def _sort_by_code(perm, codes, a, b, n_codes, counts, offs, tmp):
    """Stable counting sort of perm[a:b] by codes[a:b] (a point's sub-cell, 0 … n_codes − 1).
    Afterwards sub-cell q holds perm[offs[q]:offs[q + 1]]. counts, tmp: scratch."""
    for q in range(n_codes):
        counts[q] = 0
    for p in range(a, b):
        counts[codes[p]] += 1
    offs[0] = a
    for q in range(n_codes):
        offs[q + 1] = offs[q] + counts[q]
        counts[q] = offs[q]
    for p in range(a, b):
        code = codes[p]
        tmp[counts[code]] = perm[p]
        counts[code] += 1
    for p in range(a, b):
        perm[p] = tmp[p]


@njit(cache=True)
def _grown(a, cap):
    """A copy of `a` with room for `cap` entries along axis 0 (the tree's arrays double when full)."""
    b = np.empty((cap,) + a.shape[1:], a.dtype)
    b[:a.shape[0]] = a
    return b


@njit(cache=True)
def build_tree(Y, leaf_size):
    """Build the 2^d-ary tree of the rows of Y (N, d), d in {1, 2, 3}, top-down.

    Returns (perm, Ys, start, end, skip, leaf, w2, com): perm (N,) the points in tree order,
    Ys = Y[perm]; node arrays as in the module docstring. O(N · depth) time.
    """
    N, dim = Y.shape
    nch = 1 << dim
    lo = Y[0].copy()
    hi = Y[0].copy()
    for i in range(N):
        for d in range(dim):
            v = Y[i, d]
            if v < lo[d]:
                lo[d] = v
            if v > hi[d]:
                hi[d] = v
    width = 0.0
    for d in range(dim):
        width = max(width, hi[d] - lo[d])
    width = width * (1.0 + 1e-7) + 1e-300
    root_c = np.empty(dim)
    for d in range(dim):
        root_c[d] = 0.5 * (lo[d] + hi[d])

    cap = 2 * N + 16
    start = np.empty(cap, np.int64)
    end = np.empty(cap, np.int64)
    parent = np.empty(cap, np.int64)
    wid = np.empty(cap)
    leaf = np.empty(cap, np.bool_)

    stack_n = _MAX_DEPTH * (nch - 1) + 2
    s_start = np.empty(stack_n, np.int64)
    s_end = np.empty(stack_n, np.int64)
    s_parent = np.empty(stack_n, np.int64)
    s_depth = np.empty(stack_n, np.int64)
    s_w = np.empty(stack_n)
    s_c = np.empty((stack_n, dim))

    perm = np.arange(N)
    tmp = np.empty(N, np.int64)
    codes = np.empty(N, np.int64)
    counts = np.empty(nch, np.int64)
    offs = np.empty(nch + 1, np.int64)

    sp = 0
    s_start[0] = 0
    s_end[0] = N
    s_parent[0] = -1
    s_depth[0] = 0
    s_w[0] = width
    for d in range(dim):
        s_c[0, d] = root_c[d]
    sp = 1
    M = 0
    while sp > 0:
        sp -= 1
        a = s_start[sp]
        b = s_end[sp]
        par = s_parent[sp]
        depth = s_depth[sp]
        w = s_w[sp]
        c = s_c[sp].copy()
        if M == cap:  # grow the node arrays
            cap = 2 * cap
            start, end, parent = _grown(start, cap), _grown(end, cap), _grown(parent, cap)
            wid, leaf = _grown(wid, cap), _grown(leaf, cap)
        n = M
        M += 1
        start[n] = a
        end[n] = b
        parent[n] = par
        wid[n] = w
        if b - a <= leaf_size or depth >= _MAX_DEPTH:
            leaf[n] = True
            continue
        leaf[n] = False
        for p in range(a, b):                   # the sub-cell of each point
            i = perm[p]
            code = 0
            for d in range(dim):
                if Y[i, d] >= c[d]:
                    code |= 1 << d
            codes[p] = code
        _sort_by_code(perm, codes, a, b, nch, counts, offs, tmp)
        # push non-empty children, last first, so that they are popped (numbered) in order
        for q in range(nch - 1, -1, -1):
            if offs[q + 1] > offs[q]:
                s_start[sp] = offs[q]
                s_end[sp] = offs[q + 1]
                s_parent[sp] = n
                s_depth[sp] = depth + 1
                s_w[sp] = 0.5 * w
                for d in range(dim):
                    s_c[sp, d] = c[d] + (0.25 * w if (q >> d) & 1 else -0.25 * w)
                sp += 1

    Ys = np.empty((N, dim))
    for p in range(N):
        for d in range(dim):
            Ys[p, d] = Y[perm[p], d]
    # subtree sizes -> skip; centres of mass bottom-up (children follow their parent)
    size = np.ones(M, np.int64)
    sums = np.zeros((M, dim))
    for n in range(M - 1, -1, -1):
        if leaf[n]:
            for p in range(start[n], end[n]):
                for d in range(dim):
                    sums[n, d] += Ys[p, d]
        if n > 0:
            pn = parent[n]
            size[pn] += size[n]
            for d in range(dim):
                sums[pn, d] += sums[n, d]
    skip = np.empty(M, np.int64)
    com = np.empty((M, dim))
    w2 = np.empty(M)
    for n in range(M):
        skip[n] = n + size[n]
        inv = 1.0 / (end[n] - start[n])
        for d in range(dim):
            com[n, d] = sums[n, d] * inv
        w2[n] = wid[n] * wid[n]
    return perm, Ys, start[:M].copy(), end[:M].copy(), skip, leaf[:M].copy(), w2, com


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def repulsive_bh(perm, Ys, start, end, skip, leaf, w2, com, theta, F, zrow):
    """Barnes-Hut estimate of F[i] = Σ_{j≠i} w_ij² (y_i - y_j) and zrow[i] = Σ_{j≠i} w_ij;
    returns Z = Σ_i zrow[i] (summed in index order). Tree from `build_tree`; F (N, d), zrow (N,)
    are indexed by the original point index and overwritten."""
    N, dim = Ys.shape
    M = start.shape[0]
    th2 = theta * theta
    for p in prange(N):
        i = perm[p]
        yi = Ys[p]
        fi = F[i]
        for d in range(dim):
            fi[d] = 0.0
        z = 0.0
        n = 0
        while n < M:
            a = start[n]
            b = end[n]
            inside = a <= p and p < b
            if not inside:
                cn = com[n]
                d2 = 0.0
                for d in range(dim):
                    t = yi[d] - cn[d]
                    d2 += t * t
                if w2[n] < th2 * d2:
                    cnt = b - a
                    w = 1.0 / (1.0 + d2)
                    z += cnt * w
                    f = cnt * w * w
                    for d in range(dim):
                        fi[d] += f * (yi[d] - cn[d])
                    n = skip[n]
                    continue
            if leaf[n]:
                for q in range(a, b):
                    if q == p:
                        continue
                    yq = Ys[q]
                    d2 = 0.0
                    for d in range(dim):
                        t = yi[d] - yq[d]
                        d2 += t * t
                    w = 1.0 / (1.0 + d2)
                    z += w
                    f = w * w
                    for d in range(dim):
                        fi[d] += f * (yi[d] - yq[d])
                n = skip[n]
            else:
                n += 1
        zrow[i] = z
    Z = 0.0
    for i in range(N):
        Z += zrow[i]
    return Z


# ---------------------------------------------------------------------------------------------
# Two-dimensional maps (the common case): the same tree and walk with scalar coordinates and
# packed node records, fused with the attractive forces so that one parallel loop per iteration
# does all the O(N) work per point (each parallel region is a synchronisation point of the
# threads; on a busy machine every one of them costs).
#   nf (M, 4) float64: centre of mass x, y; squared side w²; number of points
#   ni (M, 3) int64:   start, end, skip     (a leaf is a node with skip == n + 1)


@njit(cache=True)
def build_quadtree(Y, leaf_size):
    """Quadtree of Y (N, 2): returns (perm, Ys, nf, ni) as described above. O(N · depth)."""
    N = Y.shape[0]
    lo0 = Y[0, 0]
    hi0 = lo0
    lo1 = Y[0, 1]
    hi1 = lo1
    for i in range(N):
        v0 = Y[i, 0]
        v1 = Y[i, 1]
        lo0 = min(lo0, v0)
        hi0 = max(hi0, v0)
        lo1 = min(lo1, v1)
        hi1 = max(hi1, v1)
    width = max(hi0 - lo0, hi1 - lo1) * (1.0 + 1e-7) + 1e-300

    cap = 2 * N + 16
    ni = np.empty((cap, 3), np.int64)
    parent = np.empty(cap, np.int64)
    wid = np.empty(cap)
    isleaf = np.empty(cap, np.bool_)

    stack_n = _MAX_DEPTH * 3 + 2
    s_i = np.empty((stack_n, 4), np.int64)  # start, end, parent, depth
    s_f = np.empty((stack_n, 3))            # centre x, y, width

    perm = np.arange(N)
    tmp = np.empty(N, np.int64)
    codes = np.empty(N, np.int64)
    offs = np.empty(5, np.int64)
    fill = np.empty(4, np.int64)

    s_i[0, 0] = 0
    s_i[0, 1] = N
    s_i[0, 2] = -1
    s_i[0, 3] = 0
    s_f[0, 0] = 0.5 * (lo0 + hi0)
    s_f[0, 1] = 0.5 * (lo1 + hi1)
    s_f[0, 2] = width
    sp = 1
    M = 0
    while sp > 0:
        sp -= 1
        a = s_i[sp, 0]
        b = s_i[sp, 1]
        par = s_i[sp, 2]
        depth = s_i[sp, 3]
        c0 = s_f[sp, 0]
        c1 = s_f[sp, 1]
        w = s_f[sp, 2]
        if M == cap:
            cap = 2 * cap
            ni, parent, wid, isleaf = _grown(ni, cap), _grown(parent, cap), _grown(wid, cap), _grown(isleaf, cap)
        n = M
        M += 1
        ni[n, 0] = a
        ni[n, 1] = b
        parent[n] = par
        wid[n] = w
        if b - a <= leaf_size or depth >= _MAX_DEPTH:
            isleaf[n] = True
            continue
        isleaf[n] = False
        for p in range(a, b):                   # the quadrant of each point
            i = perm[p]
            codes[p] = (1 if Y[i, 0] >= c0 else 0) + (2 if Y[i, 1] >= c1 else 0)
        _sort_by_code(perm, codes, a, b, 4, fill, offs, tmp)
        h = 0.25 * w
        for q in range(3, -1, -1):
            if offs[q + 1] > offs[q]:
                s_i[sp, 0] = offs[q]
                s_i[sp, 1] = offs[q + 1]
                s_i[sp, 2] = n
                s_i[sp, 3] = depth + 1
                s_f[sp, 0] = c0 + (h if q & 1 else -h)
                s_f[sp, 1] = c1 + (h if q & 2 else -h)
                s_f[sp, 2] = 0.5 * w
                sp += 1

    Ys = np.empty((N, 2))
    for p in range(N):
        Ys[p, 0] = Y[perm[p], 0]
        Ys[p, 1] = Y[perm[p], 1]
    nf = np.zeros((M, 4))
    size = np.ones(M, np.int64)
    for n in range(M - 1, -1, -1):
        if isleaf[n]:
            s0 = 0.0
            s1 = 0.0
            for p in range(ni[n, 0], ni[n, 1]):
                s0 += Ys[p, 0]
                s1 += Ys[p, 1]
            nf[n, 0] += s0
            nf[n, 1] += s1
        if n > 0:
            pn = parent[n]
            size[pn] += size[n]
            nf[pn, 0] += nf[n, 0]
            nf[pn, 1] += nf[n, 1]
    for n in range(M):
        cnt = ni[n, 1] - ni[n, 0]
        nf[n, 0] /= cnt
        nf[n, 1] /= cnt
        nf[n, 2] = wid[n] * wid[n]
        nf[n, 3] = cnt
        ni[n, 2] = n + size[n]
    return perm, Ys, nf, ni[:M].copy()


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def forces_2d(Y, indptr, indices, data, perm, Ys, nf, ni, theta, Fa, Fr, zrow, klrow, want_kl):
    """Attractive and Barnes-Hut repulsive forces of a 2-d map in one parallel loop.

    Fa[i] = Σ_j p_ij w_ij (y_i - y_j) (CSR row i), Fr[i] ≈ Σ_{j≠i} w_ij² (y_i - y_j),
    zrow[i] ≈ Σ_{j≠i} w_ij, and if want_kl klrow[i] = Σ_j p_ij log(1 + ‖y_i - y_j‖²).
    Returns Z = Σ_i zrow[i] (index order). Tree from `build_quadtree(Y, ...)`.
    """
    N = Y.shape[0]
    M = ni.shape[0]
    th2 = theta * theta
    for p in prange(N):
        i = perm[p]
        y0 = Ys[p, 0]
        y1 = Ys[p, 1]
        # attraction over the sparse row of P
        a0 = 0.0
        a1 = 0.0
        acc = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            t0 = y0 - Y[j, 0]
            t1 = y1 - Y[j, 1]
            d2 = t0 * t0 + t1 * t1
            pw = data[e] / (1.0 + d2)
            a0 += pw * t0
            a1 += pw * t1
            if want_kl:
                acc += data[e] * np.log1p(d2)
        Fa[i, 0] = a0
        Fa[i, 1] = a1
        klrow[i] = acc
        # repulsion: stackless walk of the tree
        f0 = 0.0
        f1 = 0.0
        z = 0.0
        n = 0
        while n < M:
            a = ni[n, 0]
            b = ni[n, 1]
            s = ni[n, 2]
            t0 = y0 - nf[n, 0]
            t1 = y1 - nf[n, 1]
            d2 = t0 * t0 + t1 * t1
            if (p < a or p >= b) and nf[n, 2] < th2 * d2:
                w = 1.0 / (1.0 + d2)
                cw = nf[n, 3] * w
                z += cw
                cw *= w
                f0 += cw * t0
                f1 += cw * t1
                n = s
            elif s == n + 1:
                # a leaf: its points exactly, in a branch-free (vectorisable) loop; if the leaf
                # holds y_i itself, that term is w = 1 with zero force: take it out of z after
                for q in range(a, b):
                    t0 = y0 - Ys[q, 0]
                    t1 = y1 - Ys[q, 1]
                    w = 1.0 / (1.0 + t0 * t0 + t1 * t1)
                    z += w
                    w2 = w * w
                    f0 += w2 * t0
                    f1 += w2 * t1
                if a <= p and p < b:
                    z -= 1.0
                n = s
            else:
                n += 1
        Fr[i, 0] = f0
        Fr[i, 1] = f1
        zrow[i] = z
    Z = 0.0
    for i in range(N):
        Z += zrow[i]
    return Z
