"""Shared settings of the t-SNE kernels, from the engine's one thread policy (engine.threads):

`FASTMATH` is the reassociation-only flag set (CONVENTIONS.md): reductions may be reordered and
vectorised, but NaN and Inf keep their IEEE meaning. Importing engine.threads also pins BLAS to
one thread, so the `np.dot` calls inside `prange` chunks (the exact nearest-neighbour search) do
not fight Numba's threads.
"""
from engine.numerics import FASTMATH
from engine.threads import num_threads, pool

__all__ = ["FASTMATH", "num_threads", "pool"]
