"""The t-SNE gradient, split into attractive and repulsive forces; the exact O(N²) repulsion.

Van der Maaten & Hinton (2008), eq. (5), with the Student-t kernel of one degree of freedom
w_ij = (1 + ‖y_i - y_j‖²)⁻¹, Z = Σ_{k≠l} w_kl, q_ij = w_ij / Z:

    ∂C/∂y_i = 4 Σ_j (p_ij - q_ij) w_ij (y_i - y_j)
            = 4 [ Σ_j p_ij w_ij (y_i - y_j)  -  (1/Z) Σ_j w_ij² (y_i - y_j) ]
            = 4 [ F_attr,i - F_rep,i / Z ]

as in van der Maaten (2014), eq. (3). F_attr runs over the non-zeros of the sparse P (CSR) and
costs O(nnz); F_rep and Z need all pairs: exactly here (O(N²) time, O(N) memory, the reference),
or by Barnes-Hut in `barnes_hut.py`. During early exaggeration P is multiplied by α.

    C = KL(P‖Q) = Σ p_ij log(p_ij / q_ij) = Σ p_ij log p_ij + Σ p_ij log(1 + ‖y_i - y_j‖²) + log Z
    (using Σ p_ij = 1).

Layout: Y (N, d) rows are the map points y_i; CSR (indptr (N+1,) int64, indices int32,
data float64) holds p_ij. Each parallel loop writes only row i of its outputs (disjoint); the
per-row partial sums (Z_i, KL terms) are added serially in index order, so results are
bit-identical whatever the thread count.
"""
import numpy as np
from numba import njit, prange

from ._common import FASTMATH


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def attractive_forces(Y, indptr, indices, data, F, klrow, want_kl):
    """F[i] = Σ_j p_ij w_ij (y_i - y_j) over the CSR row i; if want_kl, also
    klrow[i] = Σ_j p_ij log(1 + ‖y_i - y_j‖²). Y (N, d); F (N, d) and klrow (N,) overwritten."""
    N, dim = Y.shape
    for i in prange(N):
        yi = Y[i]
        fi = F[i]
        for d in range(dim):
            fi[d] = 0.0
        acc = 0.0
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            yj = Y[j]
            d2 = 0.0
            for d in range(dim):
                t = yi[d] - yj[d]
                d2 += t * t
            pw = data[e] / (1.0 + d2)
            for d in range(dim):
                fi[d] += pw * (yi[d] - yj[d])
            if want_kl:
                acc += data[e] * np.log1p(d2)
        klrow[i] = acc


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def repulsive_exact(Y, F, zrow):
    """Exact repulsion: F[i] = Σ_{j≠i} w_ij² (y_i - y_j), zrow[i] = Σ_{j≠i} w_ij; returns
    Z = Σ_i zrow[i] (summed in index order). O(N²) time, O(N) memory."""
    N, dim = Y.shape
    for i in prange(N):
        yi = Y[i]
        fi = F[i]
        for d in range(dim):
            fi[d] = 0.0
        z = 0.0
        for j in range(N):
            if j == i:
                continue
            yj = Y[j]
            d2 = 0.0
            for d in range(dim):
                t = yi[d] - yj[d]
                d2 += t * t
            w = 1.0 / (1.0 + d2)
            z += w
            w2 = w * w
            for d in range(dim):
                fi[d] += w2 * (yi[d] - yj[d])
        zrow[i] = z
    Z = 0.0
    for i in range(N):
        Z += zrow[i]
    return Z


@njit(cache=True)
def p_log_p(data):
    """Σ p_ij log p_ij over the non-zeros (the constant part of KL)."""
    s = 0.0
    for e in range(data.shape[0]):
        p = data[e]
        if p > 0.0:
            s += p * np.log(p)
    return s
