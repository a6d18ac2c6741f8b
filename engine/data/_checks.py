"""The random-generator argument shared by the ``engine.data`` generators.

Other argument checks come from ``engine.checks`` (messages name the argument, the expected
and the received value).
"""
import numbers

import numpy as np


def as_rng(name, seed):
    """A numpy.random.Generator from an int seed >= 0, a Generator (used as is, its state
    advances) or None (fresh OS entropy, not reproducible)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"{name}: expected a non-negative int seed, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"{name}: expected an int, a numpy.random.Generator or None, "
                    f"got {type(seed).__name__} {seed!r}")
