"""Input affinities of t-SNE: exact nearest neighbours, perplexity calibration, symmetrisation.

Notation of van der Maaten & Hinton (2008), "Visualizing data using t-SNE", JMLR 9, §2-3:

    p_{j|i} = exp(-β_i ‖x_i - x_j‖²) / Σ_{k≠i} exp(-β_i ‖x_i - x_k‖²),   β_i = 1 / (2σ_i²)
    Perp(P_i) = exp(H(P_i)),   H(P_i) = -Σ_j p_{j|i} log p_{j|i}          (nats; = 2^H in bits)
    p_ij = (p_{j|i} + p_{i|j}) / (2N)                                       (symmetrised, Σ p_ij = 1)

β_i is found per point by bisection so that Perp(P_i) equals the requested perplexity (§3.1 of
the 2008 paper). Following van der Maaten (2014), "Accelerating t-SNE using tree-based
algorithms", JMLR 15, §4.1, p_{j|i} is restricted to the k = ⌊3·perplexity⌋ nearest neighbours
of x_i (with β_i set for perplexity u, the Gaussian puts a negligible part of its mass beyond the
⌊3u⌋-th neighbour), which makes P sparse with at most 2·k·N non-zeros. The "exact" method
uses all N - 1 other points instead (k = N - 1), as in the 2008 paper.

The neighbours are found exactly (no approximate index): rows are processed in fixed blocks of
`_BLOCK` rows; for a block, the squared distances to all N points come from one `np.dot`
(‖x_j‖² - 2 x_i·x_j; the row constant ‖x_i‖² does not change the ranking) into a workspace of
`_BLOCK × N` numbers per thread, so memory is O(N·k + threads·_BLOCK·N), never O(N²); the k
smallest per row are kept in a bounded max-heap. The selected neighbours' distances are then
recomputed directly as Σ_d (x_id - x_jd)², free of the cancellation of the dot-product form.
Rows are arranged in the returned arrays by increasing neighbour index.

Scale: the affinities do not depend on the scale or the position of the data (β_i adapts to
the distances), but squared distances of data of size 1e-155 underflow and of size 1e155
overflow, and a common offset large against the spread cancels in ‖x_j‖² − 2 x_i·x_j.
`normalise` therefore centres X and divides it by powers of two (exact: no rounding) until its
largest coordinate lies in [0.5, 1) before any distance is taken: data scaled by any 2^k gives
bit-identical affinities, and by any other factor the same affinities up to the rounding of
X·c (~1e-15 relative, measured up to 3.5e-13 on the smallest p_ij, whose exponent βd is large).
Two places would turn that rounding into large differences, and are made robust to it: ties
between distances (integer data), which `knn_exact` ranks on a grid far coarser than the
rounding (ties by index) and `calibrate` resolves as exact ties with the nearest neighbour.

Snapping: t-SNE's descent is chaotic (a 1e-15 change in P grows about 2x per iteration, so two
inputs that differ only in the last bit end in different maps, with KL divergences 10-40 % apart
at 40 points). `joint_probabilities` therefore rounds P, after symmetrisation, to `SNAP_BITS` = 30
significant bits (`snap`, a change of at most 2^-30 ≈ 9.3e-10 relative) and renormalises it to
sum 1. The rounding noise of scaled data lies far below that precision, so data scaled by any
factor gives the bit-identical P and, with the initial map snapped as well (estimator), the
bit-identical embedding. The exception is a p_ij within its rounding noise of a rounding
boundary: measured over 1,000 fits of blobs scaled by 10^±50 and 10^±150, 2 were not
bit-identical, both from one of 125 data sets of 200 points (nnz(P) ≈ 7,700; none of 125 of 40
points; the chance grows with nnz); the digits gave the bit-identical P at those scales. P then
differs in the 30th bit of one value (≤ 1.9e-9 of it) and the map as the maps of two seeds do.

Data layout: X (N, D) float64, batch-first rows (the notes' column vectors x_i are rows here).
"""
import math

import numpy as np
from numba import njit, prange

from ._common import FASTMATH

_BLOCK = 32  # rows per distance block; fixed, so results do not depend on the thread count
SNAP_BITS = 30  # significant bits kept of P and of the initial map (see `snap`)


def _pow2_unit(A):
    """A / 2^e with e such that max |A / 2^e| lies in [0.5, 1) (A unchanged when it is all zeros).
    Division by a power of two is exact, so 2^k A gives the same bits for any k."""
    m = float(np.abs(A).max()) if A.size else 0.0
    if m == 0.0:
        return A
    return np.ldexp(A, -np.frexp(m)[1])


def snap(a, bits=SNAP_BITS):
    """a (float64 array) rounded to `bits` significant bits: with a = m·2^e, m in [0.5, 1),
    the result is round(m·2^bits)·2^(e − bits) (half to even; exact scalings by powers of two, so
    the only rounding is that of the mantissa: relative change ≤ 2^−bits; zeros stay zero).

    Why: t-SNE's gradient descent is chaotic, and inputs that differ in their last bits (P and
    the PCA map of X·10^k and of X agree only to ~1e-13) would end in different embeddings.
    Rounded to 30 bits they are equal, so the embedding no longer depends on the last-bit
    rounding of the data, only on the data (see the module docstring for the rare exception
    of a value at a rounding boundary). 2^-30 ≈ 9.3e-10 is far below anything t-SNE resolves.
    """
    m, e = np.frexp(np.asarray(a, np.float64))
    return np.ldexp(np.round(np.ldexp(m, bits)), e - bits)


def snap_grid(a, bits=SNAP_BITS):
    """a (float64 array) rounded to multiples of 2^(e − bits), where max |a| = m·2^e, m in [0.5, 1):
    a fixed-point grid `bits` bits below the largest magnitude (its largest entries keep `bits`
    significant bits, every entry an absolute precision of ≤ 2^−bits · 2 max |a|; all zeros
    stay zeros). For arrays whose rounding noise is absolute, a fraction of the largest entry,
    as in a PCA map (its near-zero coordinates come from cancellation and carry relative noise
    of 1e-12 and more, which `snap`'s relative grid would expose: measured 2 of 125 PCA maps
    of 200 points with a differing coordinate at scales 10^±50, 10^±150).
    """
    a = np.asarray(a, np.float64)
    m = float(np.abs(a).max()) if a.size else 0.0
    if m == 0.0:
        return a.copy()
    e = np.frexp(m)[1]
    return np.ldexp(np.round(np.ldexp(a, bits - e)), e - bits)


def normalise(X):
    """X (N, D) finite float64 → the centred X, scaled by a power of two to max |x| in [0.5, 1).

    First scaled (so that the mean cannot overflow at 1e308), then centred, then scaled again
    (so that the spread, not the offset, sets the scale). t-SNE's affinities, its PCA
    initialisation and trustworthiness are invariant under this map, and afterwards no
    squared distance under- or overflows.
    """
    X1 = _pow2_unit(np.asarray(X, np.float64))
    return np.ascontiguousarray(_pow2_unit(X1 - X1.mean(axis=0)))


@njit(cache=True, fastmath=FASTMATH)
def _sift_down(hd, hj, start, k):
    """Restore the max-heap property of (hd, hj)[0:k] below position `start`."""
    pos = start
    while True:
        left = 2 * pos + 1
        if left >= k:
            break
        big = left
        if left + 1 < k and hd[left + 1] > hd[left]:
            big = left + 1
        if hd[big] > hd[pos]:
            td = hd[big]
            hd[big] = hd[pos]
            hd[pos] = td
            tj = hj[big]
            hj[big] = hj[pos]
            hj[pos] = tj
            pos = big
        else:
            break


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def knn_exact(X, k, n_chunks):
    """Exact k nearest neighbours (Euclidean) of every row of X, itself excluded.

    X: (N, D) float64 C-contiguous;  k: 1 <= k <= N - 1;  n_chunks: number of prange chunks
    (the thread count); blocks of _BLOCK rows are dealt to chunks round-robin by index, so the
    result does not depend on n_chunks.
    Returns ind (N, k) int64, each row sorted by increasing neighbour index, and
    dist (N, k) float64, the squared distances ‖x_i - x_j‖² recomputed directly.

    Neighbours are ranked by ‖x_j‖² − 2 x_i·x_j rounded to a grid SNAP_BITS bits below the
    largest ‖x‖² (an absolute step of at most 2^−SNAP_BITS · 2 max ‖x‖²), ties broken by index:
    the k smallest of the distinct int64 keys round(·) · N + j (|round(·)| < 2^32, so exact
    for N < 2^31). Its rounding noise (~1e-16 max ‖x‖²) lies far below the step, so equal
    distances (integer data such as the digits are full of them) stay equal when X carries the
    last-bit noise of a rescaling, and the same neighbours are chosen at any scale (without
    the grid, digits·10^k chose the other of two tied neighbours in some rows, and P changed
    by 3e-3 of its largest entry). Distances closer than the step count as ties.
    """
    N, D = X.shape
    XT = np.ascontiguousarray(X.T)
    sq = np.empty(N)
    smax = 0.0
    for i in range(N):
        s = 0.0
        xi = X[i]
        for d in range(D):
            s += xi[d] * xi[d]
        sq[i] = s
        smax = max(smax, s)
    # keys in units of the grid step: multiplying by a power of two is exact
    grid = 1.0 if smax == 0.0 else math.ldexp(1.0, SNAP_BITS - math.frexp(smax)[1])
    ind = np.empty((N, k), np.int64)
    dist = np.empty((N, k))
    n_blocks = (N + _BLOCK - 1) // _BLOCK
    for c in prange(n_chunks):
        G = np.empty((_BLOCK, N))
        key = np.empty(N, np.int64)
        hd = np.empty(k, np.int64)
        hj = np.empty(k, np.int64)
        for b in range(c, n_blocks, n_chunks):
            r0 = b * _BLOCK
            r1 = min(N, r0 + _BLOCK)
            nb = r1 - r0
            Gb = G[:nb]
            np.dot(X[r0:r1], XT, Gb)
            for r in range(nb):
                i = r0 + r
                g = Gb[r]
                for jj in range(N):
                    key[jj] = np.int64(np.rint((sq[jj] - 2.0 * g[jj]) * grid)) * N + jj
                # fill the heap with the first k candidates (j != i), then keep the k smallest
                m = 0
                j = 0
                while m < k:
                    if j != i:
                        hd[m] = key[j]
                        hj[m] = j
                        m += 1
                    j += 1
                for s in range(k // 2 - 1, -1, -1):
                    _sift_down(hd, hj, s, k)
                top = hd[0]
                for jj in range(j, N):
                    v = key[jj]
                    if v < top and jj != i:
                        hd[0] = v
                        hj[0] = jj
                        _sift_down(hd, hj, 0, k)
                        top = hd[0]
                js = np.sort(hj)
                xi = X[i]
                for a in range(k):
                    jn = js[a]
                    xj = X[jn]
                    s = 0.0
                    for d in range(D):
                        t = xi[d] - xj[d]
                        s += t * t
                    ind[i, a] = jn
                    dist[i, a] = s
    return ind, dist


@njit(parallel=True, cache=True)
def calibrate(dist, perplexity, tol, max_steps):
    """Conditional affinities p_{j|i} with Perp(P_i) = perplexity, by bisection on β_i.

    dist: (N, k) squared distances to each point's neighbours.
    Solves H(P_i) = log(perplexity) to |error| < tol (nats) by the bisection of van der Maaten &
    Hinton (2008), §3.1: β is doubled (halved) while no upper (lower) bracket is known, then the
    bracket is halved. Distances are shifted by their row minimum before exp (does not change
    p_{j|i} or H, avoids underflow). Starting value β = 1 / mean(d - d_min), the scale of the row.

    Ties with the nearest: d_j − d_min ≤ 2^−30 d_min counts as 0. When more than `perplexity`
    neighbours share the smallest distance (integer data), the target entropy lies below
    H(∞) = log(number tied) and β grows until max_steps with p_{j|i} uniform over the tied ones;
    if rounding noise (~1e-16 d_min: X·10^k) separated them, β would instead grow until the
    noise decides, and p_{j|i} would follow the noise (measured: 60 integer points at
    perplexity 5 scaled by 10^-150 moved p_ij by 65 %). The bound is far above such noise and
    far below any real gap.
    Returns P (N, k) with rows summing to 1, beta (N,) = 1/(2σ_i²), and H (N,) the reached entropy.
    """
    N, k = dist.shape
    P = np.empty((N, k))
    beta = np.empty(N)
    H_out = np.empty(N)
    target = np.log(perplexity)
    for i in prange(N):
        d = dist[i]
        p = P[i]
        dmin = d[0]
        for j in range(k):
            if d[j] < dmin:
                dmin = d[j]
        tie = math.ldexp(dmin, -30)
        sh = np.empty(k)                # d − d_min, ties with the nearest set to 0
        mean = 0.0
        for j in range(k):
            t = d[j] - dmin
            sh[j] = 0.0 if t <= tie else t
            mean += sh[j]
        mean /= k
        b = 1.0 / mean if mean > 0.0 else 1.0
        lo = 0.0
        hi = np.inf
        H = 0.0
        s = 1.0
        for step in range(max_steps):
            s = 0.0
            sd = 0.0
            for j in range(k):
                e = np.exp(-sh[j] * b)
                p[j] = e
                s += e
                sd += sh[j] * e
            H = np.log(s) + b * sd / s
            if abs(H - target) < tol:
                break
            if H > target:  # too flat: increase precision
                lo = b
                b = b * 2.0 if hi == np.inf else 0.5 * (b + hi)
            else:
                hi = b
                b = 0.5 * (b + lo)
        for j in range(k):
            p[j] /= s
        beta[i] = b
        H_out[i] = H
    return P, beta, H_out


@njit(cache=True)
def symmetrize(ind, P):
    """p_ij = (p_{j|i} + p_{i|j}) / (2N) as CSR (indptr int64, indices int32, data float64).

    ind (N, k): neighbour indices, each row increasing; P (N, k): p_{j|i}. The transpose is built
    by a counting sort over rows in index order (its rows come out sorted), and row i of the
    result is the sorted merge of row i of P and row i of Pᵀ; deterministic and O(N·k).
    """
    N, k = ind.shape
    tptr = np.zeros(N + 1, np.int64)
    for i in range(N):
        for a in range(k):
            tptr[ind[i, a] + 1] += 1
    for i in range(N):
        tptr[i + 1] += tptr[i]
    tind = np.empty(N * k, np.int64)
    tval = np.empty(N * k)
    fill = tptr[:-1].copy()
    for i in range(N):
        for a in range(k):
            j = ind[i, a]
            q = fill[j]
            tind[q] = i
            tval[q] = P[i, a]
            fill[j] = q + 1
    # pass 1: row lengths of the merge
    indptr = np.zeros(N + 1, np.int64)
    for i in range(N):
        a = 0
        q = tptr[i]
        qe = tptr[i + 1]
        n = 0
        while a < k or q < qe:
            if q >= qe or (a < k and ind[i, a] < tind[q]):
                a += 1
            elif a >= k or tind[q] < ind[i, a]:
                q += 1
            else:
                a += 1
                q += 1
            n += 1
        indptr[i + 1] = indptr[i] + n
    nnz = indptr[N]
    indices = np.empty(nnz, np.int32)
    data = np.empty(nnz)
    scale = 1.0 / (2.0 * N)
    for i in range(N):
        a = 0
        q = tptr[i]
        qe = tptr[i + 1]
        o = indptr[i]
        while a < k or q < qe:
            if q >= qe or (a < k and ind[i, a] < tind[q]):
                indices[o] = ind[i, a]
                data[o] = P[i, a] * scale
                a += 1
            elif a >= k or tind[q] < ind[i, a]:
                indices[o] = tind[q]
                data[o] = tval[q] * scale
                q += 1
            else:
                indices[o] = ind[i, a]
                data[o] = (P[i, a] + tval[q]) * scale
                a += 1
                q += 1
            o += 1
    return indptr, indices, data


def joint_probabilities(X, perplexity, k, n_chunks, tol=1e-5, max_steps=200):
    """Sparse symmetric P of t-SNE for float64 C-contiguous X (N, D) using k neighbours
    (X as given: the callers pass `normalise(X)`).

    Returns (indptr, indices, data, H) where H (N,) holds the entropies reached by calibration
    (exp(H) is each row's perplexity). k = N - 1 gives the dense P of the exact method.
    data is `snap`ped to SNAP_BITS significant bits and renormalised (divided by its sum, a
    function of the snapped values only), so that the last-bit rounding of X does not reach the
    descent; it differs from the unrounded p_ij by at most ~1e-9 relative.
    """
    ind, dist = knn_exact(X, k, n_chunks)
    P, _beta, H = calibrate(dist, float(perplexity), tol, max_steps)
    indptr, indices, data = symmetrize(ind, P)
    data = snap(data)
    data /= data.sum()
    return indptr, indices, data, H
