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
            cap2 = 2 * cap
            start2 = np.empty(cap2, np.int64)
            start2[:cap] = start
            start = start2
            end2 = np.empty(cap2, np.int64)
            end2[:cap] = end
            end = end2
            parent2 = np.empty(cap2, np.int64)
            parent2[:cap] = parent
            parent = parent2
            wid2 = np.empty(cap2)
            wid2[:cap] = wid
            wid = wid2
            leaf2 = np.empty(cap2, np.bool_)
            leaf2[:cap] = leaf
            leaf = leaf2
            cap = cap2
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
        # partition perm[a:b] by sub-cell (counting sort, stable)
        for q in range(nch):
            counts[q] = 0
        for p in range(a, b):
            i = perm[p]
            code = 0
            for d in range(dim):
                if Y[i, d] >= c[d]:
                    code |= 1 << d
            codes[p] = code
            counts[code] += 1
        offs[0] = a
        for q in range(nch):
            offs[q + 1] = offs[q] + counts[q]
        for q in range(nch):
            counts[q] = offs[q]
        for p in range(a, b):
            code = codes[p]
            tmp[counts[code]] = perm[p]
            counts[code] += 1
        for p in range(a, b):
            perm[p] = tmp[p]
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
