"""The BLAS matrix product the engine's kernels call: C = α op(A) op(B) + β C (CBLAS gemm).

Kernels get the gemm as an argument and call it through `gemm_at` on whole arrays with element
offsets, so the product reads as the equation it computes:
    gemm_at(gemm, M, N, K, α, A, a_off, lda, TRANS | NO_TRANS, B, b_off, ldb, TRANS | NO_TRANS,
            β, C, c_off, ldc)      # C[c_off…] = α op(A[a_off…]) op(B[b_off…]) + β C[c_off…]
Beyond `np.dot`, this gives β = 1 (accumulate into C: parameter gradients += without a temporary)
and strided sub-matrices (lda larger than the row length: a block of columns without a copy).
Whole arrays plus offsets, not slices, because Numba cannot prove the rows of a 2D slice
contiguous (CONVENTIONS.md); this is the one place that turns an offset into a pointer.

Numba's own np.dot calls SciPy's bundled OpenBLAS, which on the project machine runs the small
products of a per-sample convolution (e.g. 32×144 by 144×784) at a third of the speed of
NumPy's bundled OpenBLAS (22 vs 60 GFLOP/s in float32, measured 2026-11-21). The kernels
therefore take the CBLAS gemm function as an argument (a ctypes function: Numba calls it
without the GIL, and the compiled kernels stay cacheable because the pointer is run-time data),
looked up once here: NumPy's OpenBLAS first, SciPy's as the fallback. Both are limited to one
thread by engine.threads, so prange threads may call them concurrently.
"""
import ctypes as _ct
import glob as _glob
import os as _os

import numpy as _np
from numba import njit as _njit


ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _load_gemm():
    cands = []
    for pkg, pat, suffix, it in (("numpy", "libscipy_openblas64_*", "64_", _ct.c_int64),
                                 ("scipy", "libscipy_openblas-*", "", _ct.c_int)):
        try:
            mod = __import__(pkg)
        except ImportError:
            continue
        libdir = _os.path.join(_os.path.dirname(mod.__file__), "..", f"{pkg}.libs")
        for path in sorted(_glob.glob(_os.path.join(libdir, pat + ".so*"))):
            cands.append((path, "scipy_cblas_%sgemm" + suffix, it))
    for path, name, it in cands:
        try:
            lib = _ct.CDLL(path)
            fns = []
            for p, real in (("s", _ct.c_float), ("d", _ct.c_double)):
                proto = _ct.CFUNCTYPE(None, _ct.c_int, _ct.c_int, _ct.c_int, it, it, it, real, _ct.c_void_p, it,
                                      _ct.c_void_p, it, real, _ct.c_void_p, it)
                fns.append(proto((name % p, lib)))
            return fns[0], fns[1]
        except (OSError, AttributeError):
            continue
    raise ImportError("engine.blas: no CBLAS gemm found in NumPy's or SciPy's bundled OpenBLAS "
                      "(the convolution kernels need one)")


SGEMM, DGEMM = _load_gemm()


def gemm_for(dtype):
    """The CBLAS gemm (ctypes function) for float32 or float64 arrays."""
    return SGEMM if _np.dtype(dtype) == _np.float32 else DGEMM


@_njit(inline="always")
def gemm_at(gemm, M, N, K, alpha, A, a_off, lda, trans_a, B, b_off, ldb, trans_b, beta, C, c_off, ldc):
    """C[c_off…] = α op(A[a_off…]) op(B[b_off…]) + β C[c_off…], row-major, op = TRANS or NO_TRANS.

    A, B, C are whole C-contiguous arrays of one dtype; x_off is an element offset into the flat
    array (row r, column c of a matrix with leading dimension ld starts at r·ld + c); op(A) is
    M×K, op(B) K×N, C M×N with leading dimensions lda, ldb, ldc."""
    isz = C.itemsize
    gemm(ROW_MAJOR, trans_a, trans_b, M, N, K, alpha, A.ctypes.data + a_off * isz, lda,
         B.ctypes.data + b_off * isz, ldb, beta, C.ctypes.data + c_off * isz, ldc)


@_njit(cache=True, inline="always")
def transpose_rows(x, off, ld, n, w, xt):
    """xt[:w, :n] ← the n rows of w elements at x[off + j·ld …] (x 1-D), transposed (xt (w, ≥ n)):
    for a product to read Bᵀ as a stored B (attention's Kᵀ and Vᵀ, the recurrent layers' Ω_hᵀ).
    Four rows at a time: row by row, the stores to column j of xt became scatter instructions
    (attention, float32 B32 S128 D32: 46 -> 31 µs for the 32 problems)."""
    j = 0
    while j + 4 <= n:
        o = off + j * ld
        r0, r1, r2, r3 = x[o:o + w], x[o + ld:o + ld + w], x[o + 2 * ld:o + 2 * ld + w], x[o + 3 * ld:o + 3 * ld + w]
        for e in range(w):
            c = xt[e]
            c[j] = r0[e]
            c[j + 1] = r1[e]
            c[j + 2] = r2[e]
            c[j + 3] = r3[e]
        j += 4
    for jj in range(j, n):
        r = x[off + jj * ld:off + jj * ld + w]
        for e in range(w):
            xt[e, jj] = r[e]
