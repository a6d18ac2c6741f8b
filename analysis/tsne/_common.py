"""Shared settings of the t-SNE kernels.

`FASTMATH` is the engine's reassociation-only flag set (CONVENTIONS.md): reductions may be
reordered and vectorised, but NaN and Inf keep their IEEE meaning. It is taken from
`engine.threads`, whose import also pins BLAS to one thread, so that the `np.dot` calls inside
`prange` chunks (the exact nearest-neighbour search) do not fight Numba's threads.
"""
import contextlib

import numba

try:
    from engine.threads import FASTMATH, num_threads
except ImportError:  # engine.threads not importable: same flags, Numba's thread count
    FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}

    def num_threads():
        return numba.get_num_threads()

try:
    from engine.threads import pool
except ImportError:
    @contextlib.contextmanager
    def pool(n):
        """Numba's parallel regions use `n` threads inside the block."""
        before = numba.get_num_threads()
        numba.set_num_threads(n)
        try:
            yield
        finally:
            numba.set_num_threads(before)

__all__ = ["FASTMATH", "num_threads", "pool"]
