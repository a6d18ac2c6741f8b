"""How the engine gets memory: keep freed blocks in the process instead of handing them back.

A training step allocates and frees the same few dozen arrays every time (activations, gradients,
2–8 MB each for a small GPT). With glibc's default settings each of them comes from a fresh mmap
and goes back to the system when freed (and the top of the heap is trimmed as soon as 128 KiB are
free), so every step pays the kernel for zeroed pages again: 8,600 page faults and 16 ms of system
time in a 4-layer width-128 GPT step on the 2-vCPU benchmark machine (2026-12-06), against 0.4 ms
with the settings below. On import, on glibc only, this module sets
    M_MMAP_THRESHOLD = 32 MiB    (glibc's largest: arrays below it come from the heap), and
    M_TRIM_THRESHOLD = 256 MiB   (the heap is only given back above that much free memory at its top),
the two settings of `mallopt(3)` that the environment variables MALLOC_MMAP_THRESHOLD_ and
MALLOC_TRIM_THRESHOLD_ also set. The cost: a process keeps up to 256 MiB of freed memory for
reuse. They apply to the whole process (PyTorch's tensors too, when it shares the process).

Nothing is changed when the user has chosen already (any MALLOC_*_ variable or GLIBC_TUNABLES in
the environment), when HANDPROP_MALLOC=0, or off glibc. `settings()` says what was done.

`zero_fill(a)`: a[...] = 0 with the engine's threads for arrays of 256 KiB and more (a gradient
is cold in cache when the optimizer zeroes it, and NumPy's memset runs on one core).

`huge_empty(shape, dtype)`: an array on 2 MiB pages (Linux transparent huge pages, asked for with
madvise), for a matrix that a kernel reads again and again while other data streams past it (the
recurrent layers' Ω_h, read by every step's product). On 4 KiB pages its physical pages land in
the core's 2 MiB L2 cache wherever they happen to, and pages that share cache sets evict each
other: the same per-step products took 3.2 or 5.1 ms from one allocation to the next (LSTM H 256,
float32, 2026-12-06); on a huge page the matrix is contiguous in physical memory and they took
3.2 ms every time. Where the system has no transparent huge pages (or HANDPROP_HUGEPAGES=0) the
array is an ordinary one, aligned to 64 bytes (what OpenBLAS's packed kernels may need, engine.blas).
"""
import ctypes
import mmap
import os

import numpy as np
from numba import njit, prange

from .threads import chunks_for, parallel_call

MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3           # mallopt's parameter numbers (malloc.h)

_applied = False


def _user_chose():
    env = os.environ
    return env.get("HANDPROP_MALLOC") == "0" or "GLIBC_TUNABLES" in env or any(
        k.startswith("MALLOC_") and k.endswith("_") for k in env)


def _apply():
    global _applied
    if _user_chose():
        return
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version                        # glibc only (musl, macOS: nothing to do)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    # The mmap threshold first: setting either fixes both (glibc stops adapting them), and a
    # trim threshold alone would leave every array above 128 KiB on mmap.
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def settings():
    """{'applied': bool, 'mmap_threshold': bytes, 'trim_threshold': bytes} (None when not applied)."""
    return {"applied": _applied, "mmap_threshold": MMAP_THRESHOLD if _applied else None,
            "trim_threshold": TRIM_THRESHOLD if _applied else None}


_apply()


HUGE_PAGE = 2 << 20
ALIGN = 64                          # bytes: aligned_empty's, and huge_empty's smallest, alignment
HUGE_MIN_BYTES = 128 << 10          # below this a matrix is a small part of L2: ordinary pages


def _huge_pages_usable():
    if os.environ.get("HANDPROP_HUGEPAGES") == "0" or not hasattr(mmap, "MADV_HUGEPAGE"):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


HUGE_PAGES = _huge_pages_usable()


def huge_empty(shape, dtype):
    """An uninitialised C-contiguous array of `shape` and `dtype`, on a 2 MiB-aligned range of
    anonymous memory marked MADV_HUGEPAGE (module docstring); an ordinary np.empty when huge pages
    are not available or the array is smaller than HUGE_MIN_BYTES, then aligned to ALIGN bytes.
    The memory is the array's: it is unmapped when the array (and every view of it) is gone."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if not HUGE_PAGES or nbytes < HUGE_MIN_BYTES:
        return aligned_empty(shape, dtype)
    size = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    m = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    m.madvise(mmap.MADV_HUGEPAGE)
    raw = np.frombuffer(m, np.uint8)                    # keeps the mapping alive through .base
    start = (-raw.ctypes.data) % HUGE_PAGE
    return raw[start:start + nbytes].view(dtype).reshape(shape)


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array of `shape` and `dtype` starting on an ALIGN-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + ALIGN, np.uint8)
    start = (-raw.ctypes.data) % ALIGN
    return raw[start:start + nbytes].view(dtype).reshape(shape)


ZERO_PARALLEL_BYTES = 256 << 10


def zero_fill(a):
    """a[...] = 0, split over the engine's threads when a is C-contiguous and at least
    ZERO_PARALLEL_BYTES: the char-LSTM LM's 0.88 M float32 gradients took 0.36 ms with NumPy's
    memset, 0.16 ms this way (2026-12-06, 2 threads)."""
    if a.nbytes < ZERO_PARALLEL_BYTES or not a.flags.c_contiguous:
        a[...] = 0
        return
    flat = a.reshape(-1)
    parallel_call(_zero_chunks, chunks_for(flat.size, min_rows=ZERO_PARALLEL_BYTES // 2 // a.itemsize), flat)


@njit(cache=True, parallel=True)
def _zero_chunks(flat, nthreads):
    n = flat.size
    for c in prange(nthreads):
        flat[c * n // nthreads:(c + 1) * n // nthreads] = 0
