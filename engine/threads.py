"""How the engine shares the cores: the one place that decides it.

PERFORMANCE.md, lesson 1: Numba's `prange` threads and OpenBLAS's threads busy-wait against each
other, so mixing them is 2-10x slower. The engine therefore parallelises with `prange` over
disjoint chunks (of the batch, of batch x heads, of output rows) and calls `np.dot` inside each
chunk with BLAS limited to one thread. On import this module pins every loaded BLAS library
(NumPy's and SciPy's, the one `np.dot` calls inside `@njit`) to one thread, through threadpoolctl.

Kernels never call `numba.get_num_threads()` themselves (that prevents `cache=True`): callers pass
`num_threads()` in as an argument, and the kernel splits its work into that many chunks. Results
do not depend on it beyond float rounding of reductions; tests check that.
"""
import contextlib

import numba
import scipy.linalg.cython_blas  # noqa: F401  (load SciPy's BLAS so the limit below reaches it)
from threadpoolctl import threadpool_limits

_blas_limit = threadpool_limits(limits=1, user_api="blas")


_threads = numba.get_num_threads()


def num_threads():
    """The number of threads the engine's parallel kernels use (set with `set_num_threads`)."""
    return _threads


MIN_CHUNK_COST = 1 << 16     # multiply-adds: ~10 µs of work, about what waking a thread costs


def chunks_for(n_rows, min_rows=64, row_cost=None):
    """How many chunks to split `n_rows` independent rows into: one per thread, but no chunk
    smaller than `min_rows` rows or, when `row_cost` (multiply-adds per row) is given, than
    MIN_CHUNK_COST multiply-adds: below that, waking a thread costs more than the work it gets."""
    n = min(_threads, n_rows // min_rows)
    if row_cost is not None:
        n = min(n, n_rows * row_cost // MIN_CHUNK_COST)
    return max(1, n)


@contextlib.contextmanager
def pool(n):
    """Within the block, Numba's parallel regions use `n` threads (1: the calling thread alone,
    without waking, and on a busy machine waiting for, the others)."""
    if n == _threads:                 # the usual case: nothing to change (each set costs ~7 µs)
        yield
        return
    numba.set_num_threads(n)
    try:
        yield
    finally:
        numba.set_num_threads(_threads)


def parallel_call(kernel, n_chunks, *args):
    """kernel(*args, n_chunks) run in `pool(n_chunks)`: its `prange(n_chunks)` runs one chunk per thread."""
    if n_chunks == _threads:          # the usual case, called ~90 times per GPT step: no context manager
        return kernel(*args, n_chunks)
    with pool(n_chunks):
        return kernel(*args, n_chunks)


def set_num_threads(n):
    """Use `n` Numba threads in the engine's parallel kernels (1 <= n <= cores)."""
    if not isinstance(n, int) or not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n: expected an int in [1, {numba.config.NUMBA_NUM_THREADS}], got {n!r}")
    global _threads
    numba.set_num_threads(n)
    _threads = n


@contextlib.contextmanager
def num_threads_set_to(n):
    """Within the block, the engine uses `n` threads (as `set_num_threads(n)`), the previous number
    restored after. For small models on a busy machine, where a second thread mostly waits."""
    old = _threads
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(old)
