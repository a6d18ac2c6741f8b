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
from numba import prange as _prange

from .memory import ALIGN as _ALIGN
from .memory import aligned_empty as _aligned_empty
from .threads import chunks_for as _chunks_for
from .threads import parallel_call as _parallel_call


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
            return lib, fns[0], fns[1]
        except (OSError, AttributeError):
            continue
    raise ImportError("engine.blas: no CBLAS gemm found in NumPy's or SciPy's bundled OpenBLAS "
                      "(the convolution kernels need one)")


_LIB, SGEMM, DGEMM = _load_gemm()


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


# ---- packed products: a weight packed once, multiplied at every step ----------------------------
# A recurrent layer multiplies a chunk's few rows (m = 16) by the same weight at every step. A gemm
# call packs both operands into its micro-kernel's panel layout each time, so OpenBLAS either
# repacks the weight at every step (1 MB for Ω_h of H 256: as costly as the arithmetic at m = 16)
# or, in its small-matrix kernels, reads it unpacked (~127 GFLOP/s per core against the kernel's
# ~180). OpenBLAS exports the pieces of its gemm for each core it was built for: the packing
# routines (`sgemm_incopy_SKYLAKEX`, `sgemm_oncopy_SKYLAKEX`, ...) and the micro-kernel that adds
# α Ã B̃ for packed Ã, B̃ to a column-major C. With them the weight is packed once per sequence and
# only the step's rows at each step: 64 steps of 16 × 256 by Ω_hᵀ (256 × 1024) float32, one thread,
# 3.0 ms against 3.4-4.2 ms for the best gemm blocks (2026-12-06, Xeon AVX-512, OpenBLAS 0.3.31).
# In our row-major terms, C (m × n) += α X (m × k) Wᵀ (W n × k) is, column-major, Cᵀ += α W Xᵀ:
# W is the kernel's first operand (packed with the "incopy" routine, which reads k contiguous
# elements per row of W) and X its second ("oncopy", k contiguous per row of X). These are
# OpenBLAS internals, not its API: they are used only on the cores in PACKED_CORES, on which the
# tests have run them (the kernels of some cores need aligned buffers: packed operands here are
# 64-byte aligned, and a misaligned one crashed the Sandybridge and Nehalem kernels), when the
# self-check below gives the product the gemm gives, and never when HANDPROP_PACKED=0; otherwise
# packed_for says so and the callers use gemm_at.
PACKED_CORES = ("SkylakeX", "Haswell", "Sandybridge", "Nehalem")
_PACK = _ct.CFUNCTYPE(_ct.c_int, _ct.c_int64, _ct.c_int64, _ct.c_void_p, _ct.c_int64, _ct.c_void_p)
_KERNEL = {_np.float32: _ct.CFUNCTYPE(_ct.c_int, _ct.c_int64, _ct.c_int64, _ct.c_int64, _ct.c_float, _ct.c_void_p,
                                      _ct.c_void_p, _ct.c_void_p, _ct.c_int64),
           _np.float64: _ct.CFUNCTYPE(_ct.c_int, _ct.c_int64, _ct.c_int64, _ct.c_int64, _ct.c_double, _ct.c_void_p,
                                      _ct.c_void_p, _ct.c_void_p, _ct.c_int64)}


def _core_name(lib):
    for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
        try:
            fn = getattr(lib, name)
        except AttributeError:
            continue
        fn.restype = _ct.c_char_p
        return fn().decode()
    return None


def _packed_works(pack_w, pack_x, kernel, dtype):
    """The self-check: C += α X Wᵀ through the pieces equals NumPy's product, for shapes with every
    kind of remainder, the weight packed whole and in two parts split at row 64 (packed_weight's
    blocks), accumulating into a C that is not zero, the packed operands 64-byte aligned as the
    callers' are."""
    rng = _np.random.default_rng(0)
    for m, n, k in ((5, 37, 19), (16, 130, 64), (1, 3, 1), (33, 200, 7)):
        W, X = rng.standard_normal((n, k)).astype(dtype), rng.standard_normal((m, k)).astype(dtype)
        C0 = rng.standard_normal((m, n)).astype(dtype)
        Wp, parts = _aligned_empty(n * k, dtype), _aligned_empty(n * k, dtype)
        pack_w(k, n, W.ctypes.data, k, Wp.ctypes.data)
        r = min(64, n)
        pack_w(k, r, W.ctypes.data, k, parts.ctypes.data)
        if n > r:
            pack_w(k, n - r, W[r:].ctypes.data, k, parts[r * k:].ctypes.data)
        Xp = _aligned_empty(m * k, dtype)
        pack_x(k, m, X.ctypes.data, k, Xp.ctypes.data)
        C = C0.copy()
        kernel(n, m, k, 0.5, Wp.ctypes.data, Xp.ctypes.data, C.ctypes.data, n)
        want = C0 + 0.5 * (X @ W.T)
        tol = 1e-4 if dtype == _np.float32 else 1e-12
        if not (_np.array_equal(Wp, parts) and _np.allclose(C, want, rtol=tol, atol=tol * k)):
            return False
    return True


def _load_packed():
    """{dtype: (pack_w, pack_x, kernel)} from the OpenBLAS that gemm comes from, for the core it runs
    on, each dtype that passes the self-check; {} when switched off or unavailable."""
    core = _core_name(_LIB)
    if _os.environ.get("HANDPROP_PACKED") == "0" or core not in PACKED_CORES:
        return {}
    found = {}
    for p, dtype in (("s", _np.float32), ("d", _np.float64)):
        try:
            fns = tuple(proto((f"{p}gemm_{part}_{core.upper()}", _LIB))
                        for proto, part in ((_PACK, "incopy"), (_PACK, "oncopy"), (_KERNEL[dtype], "kernel")))
            if _packed_works(*fns, dtype):
                found[dtype] = fns
        except (AttributeError, OSError, TypeError, ValueError):
            continue
    return found


def _unavailable(*args):                    # the stand-ins' body: callers never call them
    raise RuntimeError("engine.blas: packed products are not available")


_PACKED = _load_packed()
_STAND_IN = {dt: (_PACK(_unavailable), _PACK(_unavailable), _KERNEL[dt](_unavailable)) for dt in _KERNEL}


def packed_for(dtype):
    """(available, pack_w, pack_x, kernel) for float32 or float64: the OpenBLAS pieces, or stand-ins
    of the same types (so kernels compile once for both cases) with available False."""
    dt = _np.dtype(dtype).type
    fns = _PACKED.get(dt)
    return (True,) + fns if fns else (False,) + _STAND_IN[dt]


def pack_weight(pack_w, W, Wp):
    """Wp ← W (n × k, C-contiguous) in the kernel's panel layout (Wp: n·k elements, any shape,
    64-byte aligned: engine.memory.huge_empty), the
    rows split over threads (a recurrent weight is cold in cache when it is packed: 1024 × 256
    float32, 0.35 ms on one thread in a training step)."""
    n, k = W.shape
    _parallel_call(_pack_rows, _chunks_for(n, min_rows=64, row_cost=k), pack_w, W, Wp)


@_njit(cache=True, parallel=True)
def _pack_rows(pack_w, W, Wp, nthreads):
    """pack_weight's threads: rows lo … hi of W, cut at multiples of 64 rows (a multiple of every
    panel height, so each part lands where packing the whole would put it, at lo·k; the self-check
    packs in two parts at row 64 to confirm it)."""
    n, k = W.shape
    isz = W.itemsize
    for c in _prange(nthreads):
        lo = c * n // nthreads // 64 * 64
        hi = n if c == nthreads - 1 else (c + 1) * n // nthreads // 64 * 64
        if hi > lo:
            pack_w(k, hi - lo, W.ctypes.data + lo * k * isz, k, Wp.ctypes.data + lo * k * isz)


@_njit(inline="always")
def packing_scratch(n, like):
    """An uninitialised 1-D array of n elements of like's dtype, 64-byte aligned: gemm_packed_at's Xp."""
    raw = _np.empty(n + _ALIGN // like.itemsize, like.dtype)       # engine.memory.aligned_empty, compiled
    start = (-raw.ctypes.data) % _ALIGN // like.itemsize
    return raw[start:start + n]


@_njit(inline="always")
def gemm_packed_at(kernel, pack_x, m, n, k, alpha, X, x_off, ldx, Wp, Xp, C, c_off, ldc):
    """C[c_off…] += α X[x_off…] Wᵀ, row-major: X m × k (leading dimension ldx), W n × k packed in Wp
    by pack_weight, C m × n (ldc); Xp a scratch array of at least m·k elements for X's panels,
    64-byte aligned (packing_scratch)."""
    isz = C.itemsize
    pack_x(k, m, X.ctypes.data + x_off * isz, ldx, Xp.ctypes.data)
    kernel(n, m, k, alpha, Wp.ctypes.data, Xp.ctypes.data, C.ctypes.data + c_off * isz, ldc)
