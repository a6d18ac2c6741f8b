"""Quality measures of an embedding: trustworthiness and the KL divergence of t-SNE.

Trustworthiness (Venna & Kaski, 2001; the definition scikit-learn's `trustworthiness` uses):

    T(k) = 1 - 2 / (N k (2N - 3k - 1)) · Σ_i Σ_{j ∈ U_i(k)} (r(i, j) - k)

where U_i(k) are the k nearest neighbours of i in the embedding Y that are not among its k
nearest in the input X, and r(i, j) is the rank of j among i's neighbours in X (1 = nearest).
T = 1 when every embedded neighbourhood is a true one. Ranks among exactly tied distances in X
are broken by index (a stable sort), as are embedded neighbours whose squared distances differ by
less than 2^-30 of the map's largest ‖y‖² (knn_exact's grid); without ties the value equals
scikit-learn's.

Both run without an N×N matrix: the embedded neighbours come from the exact blocked search of
`affinities.knn_exact`, and the ranks from one block of distance rows at a time (O(N²·D) time,
O(threads·block·N) memory), so they work for tens of thousands of points.
"""
import numpy as np
import scipy.sparse as sp
from numba import njit, prange

from ._common import FASTMATH, num_threads
from engine.checks import check_int

from .affinities import _BLOCK, knn_exact, normalise
from .exact import attractive_forces, p_log_p, repulsive_exact


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _rank_excess(X, nbrs, n_chunks):
    """excess[i] = Σ_{j in nbrs[i]} max(0, r(i, j) - k), r the rank of j by distance to x_i
    among all l ≠ i (ties broken by index). X (N, D); nbrs (N, k) int64. Blocks fixed by index."""
    N, D = X.shape
    k = nbrs.shape[1]
    XT = np.ascontiguousarray(X.T)
    sq = np.empty(N)
    for i in range(N):
        s = 0.0
        for d in range(D):
            s += X[i, d] * X[i, d]
        sq[i] = s
    excess = np.zeros(N, np.int64)
    n_blocks = (N + _BLOCK - 1) // _BLOCK
    for c in prange(n_chunks):
        G = np.empty((_BLOCK, N))
        v = np.empty(N)
        for b in range(c, n_blocks, n_chunks):
            r0 = b * _BLOCK
            r1 = min(N, r0 + _BLOCK)
            nb = r1 - r0
            Gb = G[:nb]
            np.dot(X[r0:r1], XT, Gb)
            for r in range(nb):
                i = r0 + r
                g = Gb[r]
                for l in range(N):
                    v[l] = sq[l] - 2.0 * g[l]
                tot = 0
                for a in range(k):
                    j = nbrs[i, a]
                    vj = v[j]
                    cnt = 0
                    for l in range(N):
                        cnt += (v[l] < vj) | ((v[l] == vj) & (l < j))
                    # the self-distance (l == i) is the smallest of the row unless tied with
                    # duplicates; remove it from the count
                    if (v[i] < vj) | ((v[i] == vj) & (i < j)):
                        cnt -= 1
                    rank = cnt + 1
                    if rank > k:
                        tot += rank - k
                excess[i] = tot
    return excess


def _as_float_matrix(name, A):
    if not isinstance(A, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"{name}: expected a 2-dimensional array (n_samples, n_features), got shape {A.shape}")
    if not (np.issubdtype(A.dtype, np.floating) or np.issubdtype(A.dtype, np.integer)):
        raise TypeError(f"{name}: expected a real (float or integer) array, got dtype {A.dtype}")
    A = np.ascontiguousarray(A, dtype=np.float64)
    bad = ~np.isfinite(A).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(r) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
        raise ValueError(f"{name}: expected finite values, got NaN or Inf in {rows.size} row(s): {shown}")
    return A


def trustworthiness(X, Y, n_neighbors=5):
    """Trustworthiness T(k) in [0, 1] of the embedding Y (N, d) of X (N, D); k = n_neighbors.

    Same definition and argument order as `sklearn.manifold.trustworthiness` (Euclidean input
    distances); requires k < N / 2.
    """
    X = _as_float_matrix("X", X)
    Y = _as_float_matrix("Y", Y)
    N = X.shape[0]
    if Y.shape[0] != N:
        raise ValueError(f"Y: expected {N} rows (one per row of X), got shape {Y.shape}")
    k = check_int("n_neighbors", n_neighbors)
    if not 1 <= k < N / 2:
        raise ValueError(f"n_neighbors: expected an int in [1, N/2) = [1, {N / 2:g}), got {k}")
    # ranks do not change under centring and scaling; normalised, no squared distance under- or
    # overflows (data of size 1e-155 would give all-zero distances: every rank a tie)
    X, Y = normalise(X), normalise(Y)
    T = num_threads()
    nbrs, _ = knn_exact(Y, k, T)
    excess = _rank_excess(X, nbrs, T)
    total = float(excess.sum())
    return 1.0 - total * (2.0 / (N * k * (2.0 * N - 3.0 * k - 1.0)))


def _as_csr(P, N):
    if (sp.issparse(P) or isinstance(P, np.ndarray)) and P.dtype.kind not in "fiu":
        raise TypeError(f"P: expected real (float or integer) affinities, got dtype {P.dtype}")
    if sp.issparse(P):
        P = sp.csr_matrix(P, dtype=np.float64)
    elif isinstance(P, np.ndarray):
        if P.ndim != 2:
            raise ValueError(f"P: expected a 2-dimensional (N, N) array, got shape {P.shape}")
        P = sp.csr_matrix(np.asarray(P, dtype=np.float64))
    else:
        raise TypeError(f"P: expected a numpy.ndarray or scipy.sparse matrix, got {type(P).__name__}")
    if P.shape != (N, N):
        raise ValueError(f"P: expected shape ({N}, {N}) (one row and column per point of Y), got {P.shape}")
    P.sum_duplicates()
    P.sort_indices()
    if P.nnz and (not np.isfinite(P.data).all() or P.data.min() < 0):
        raise ValueError("P: expected finite non-negative affinities")
    if P.diagonal().any():
        raise ValueError("P: expected a zero diagonal (p_ii = 0)")
    s = P.data.sum()
    if abs(s - 1.0) > 1e-6:
        raise ValueError(f"P: expected affinities summing to 1 (a joint distribution), got sum {s:.6g}")
    return P


def kl_divergence(P, Y):
    """KL(P‖Q) = Σ p_ij log(p_ij / q_ij) of the embedding Y (N, d) for joint affinities P.

    P: (N, N) scipy.sparse matrix or array, symmetric, zero diagonal, summing to 1, e.g.
    `TSNE(...).fit(X).affinities_` or `joint_probabilities(X, perplexity)`.
    q_ij = w_ij / Z with w_ij = (1 + ‖y_i - y_j‖²)⁻¹ (one degree of freedom) and Z computed
    exactly over all pairs (O(N²) time, O(N) memory), so the value is comparable across
    embeddings made by any program.
    """
    Y = _as_float_matrix("Y", Y)
    N, dim = Y.shape
    P = _as_csr(P, N)
    indptr = P.indptr.astype(np.int64)
    indices = P.indices.astype(np.int32)
    data = np.ascontiguousarray(P.data)
    F = np.empty((N, dim))
    klrow = np.empty(N)
    attractive_forces(Y, indptr, indices, data, F, klrow, True)
    zrow = np.empty(N)
    Z = repulsive_exact(Y, F, zrow)
    s = 0.0
    for v in klrow:  # index order, like the kernels
        s += v
    return float(p_log_p(data) + s + np.log(Z))
