"""Argument checks shared by every public entry point.

Each raises before any kernel runs, with a message that names the argument, what was expected and
what was received, e.g. ``x: expected shape (N, 784), got (32, 783)``.
"""
import contextlib
import numbers
import threading

import numpy as np
from numba import njit, prange

from .numerics import FASTMATH
from .threads import chunks_for, num_threads, parallel_call

FLOAT_DTYPES = (np.float32, np.float64)


class NonFiniteError(ValueError):
    """An array that must be finite holds NaN or Inf. Inside training, where the data were checked
    first, this means the run diverged (fit reports it as TrainingDiverged)."""


def check_dtype(dtype):
    """Normalise a layer's `dtype` argument; only float32 and float64 are supported."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dtype!r}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dt}")
    return dt.type


@njit(cache=True, fastmath=FASTMATH)
def _all_finite_flat(a):
    s = a[0] * 0
    for i in range(a.size):
        s += a[i] * 0
    return s == 0


@njit(cache=True, parallel=True)
def _all_finite_chunks(a, nthreads):
    ok = np.empty(nthreads, np.bool_)
    n = a.size
    for t in prange(nthreads):
        ok[t] = _all_finite_flat(a[t * n // nthreads:(t + 1) * n // nthreads])
    for t in range(nthreads):
        if not ok[t]:
            return False
    return True


PARALLEL_SCAN = 1 << 17       # values: from here on the scan is split over the threads (~20 µs of work)


def all_finite(x):
    """True when the float array x holds no NaN or ±Inf: x·0 is NaN exactly for those (0 otherwise)
    and a NaN survives the sum. One vectorised pass with no temporary, where np.isfinite(x).all()
    writes a boolean array first (2-3x slower on a batch, measured 2026-11-21). FASTMATH has no
    no-NaN/no-Inf flags, so the compiler may not fold x·0 to 0. Large arrays are scanned in chunks
    over the engine's threads (a layer's input check is otherwise serial work on a 2-thread step)."""
    if x.size == 0:
        return True
    flat = np.ascontiguousarray(x).reshape(-1)
    if flat.size >= PARALLEL_SCAN and num_threads() > 1:
        return bool(parallel_call(_all_finite_chunks, chunks_for(flat.size, min_rows=PARALLEL_SCAN // 2), flat))
    return bool(_all_finite_flat(flat))


_state = threading.local()


@contextlib.contextmanager
def inputs_checked():
    """Within the block, `check_array` skips its scan for NaN and Inf (shapes and dtypes are still
    checked). For a composite layer calling its parts on arrays it computed itself from inputs it
    has already checked: each part would otherwise read every activation once more (31 scans of
    2048 x 128 and 8 of 2048 x 512 per GPT step, 3.5 ms of ~80). A NaN that arises inside the
    composite (a diverging run) then reaches the output as it would in PyTorch, and the loss's own
    check reports it (fit: TrainingDiverged)."""
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth


def _shape_str(shape):
    return "(" + ", ".join("N" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_array(name, x, *, ndim=None, shape=None, dtype=None, finite=True):
    """Check an input array and return it C-contiguous (never cast).

    ndim:   int or tuple of allowed ranks.
    shape:  tuple with ``None`` for free dimensions, e.g. ``(None, 784)``.
    dtype:  required dtype (the layer's); any other dtype is refused, not cast.
    finite: refuse NaN and Inf.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(x).__name__}")
    if dtype is not None and x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype)}, got {x.dtype}"
                        " (the engine does not cast silently; convert with .astype)")
    if dtype is None and x.dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"{name}: expected a float32 or float64 array, got {x.dtype}")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(f"{name}: expected a {want}-dimensional array, got shape {x.shape}")
    if shape is not None:
        ok = x.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, x.shape))
        if not ok:
            raise ValueError(f"{name}: expected shape {_shape_str(shape)}, got {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {x.shape}")
    if not x.flags.c_contiguous:
        x = x.copy(order="C")    # (np.ascontiguousarray would turn a 0-d array into shape (1,))
    if finite and not getattr(_state, "depth", 0) and not all_finite(x):
        raise NonFiniteError(f"{name}: expected finite values, got NaN or Inf")
    return x


def check_real_array(name, v, *, ndim=None, shape=None):
    """v (an array, nested lists or a number of real values) as a finite float64 array, through
    check_array. Complex, boolean, string and object values are refused with a TypeError naming
    the argument (np.asarray(v, np.float64) would drop an imaginary part with a warning, read
    True as 1 and give an unnamed error for strings). For functions that take array-likes."""
    try:
        a = np.asarray(v)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected an array of real numbers, got {type(v).__name__}") from None
    if a.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected real numbers (float or int), got dtype {a.dtype}")
    return check_array(name, a.astype(np.float64, copy=False), ndim=ndim, shape=shape)


def check_int(name, v, *, low=None, high=None):
    """An integer in [low, high] (bools refused)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name}: expected an int, got {type(v).__name__} {v!r}")
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name}: expected an int in [{low}, {'inf' if high is None else high}], got {v}")
    return int(v)


def check_tuple(name, v, n, *, low=None):
    """An int, or a tuple/list of `n` ints, each >= low -> a tuple of n ints (torch's `_pair`,
    `_single`: kernel_size=3 means (3, 3) for a 2D layer)."""
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{name}: expected an int or a tuple of {n} ints, got {v!r}")
        return tuple(check_int(f"{name}[{i}]", e, low=low) for i, e in enumerate(v))
    return (check_int(name, v, low=low),) * n


def check_bool(name, v):
    """A bool (True/False or numpy's bool_); "False", 0 and None are refused, not read as truth values."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(v).__name__} {v!r}")
    return bool(v)


def check_dim(name, dim, ndim, shape=None):
    """An axis of an array with `ndim` dimensions, negative counting from the end -> in [0, ndim).
    With the input's `shape` the message names it too (the axis and the input are refused
    together: either may be the mistake)."""
    dim = check_int(name, dim)
    if not -ndim <= dim < ndim:
        of = f" (x of shape {shape})" if shape is not None else ""
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}] for a {ndim}-dimensional input, "
                         f"got {dim}{of}")
    return dim % ndim


def check_float(name, v, *, low=None, high=None, low_open=False):
    """A finite real number in [low, high] (or (low, high] with low_open)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not np.isfinite(v):
        raise TypeError(f"{name}: expected a finite real number, got {v!r}")
    too_low = low is not None and (v <= low if low_open else v < low)
    if too_low or (high is not None and v > high):
        lo = "(" if low_open else "["
        raise ValueError(f"{name}: expected a number in {lo}{low}, {'inf' if high is None else high}], got {v}")
    return float(v)


def check_choice(name, v, choices):
    if v not in choices:
        raise ValueError(f"{name}: expected one of {list(choices)}, got {v!r}")
    return v


@njit(cache=True)
def _any_label_outside(y, n_classes, ignore, has_ignore):
    for i in range(y.shape[0]):
        v = y[i]
        if (v < 0 or v >= n_classes) and not (has_ignore and v == ignore):
            return True
    return False


def check_labels(name, y, n, n_classes, ignore=None):
    """Integer class labels of shape (n,) in [0, n_classes) (or equal to `ignore`, when given),
    returned as a contiguous int64 array."""
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name}: expected integer class labels, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},), got {y.shape}")
    y = np.ascontiguousarray(y, dtype=np.int64)
    if _any_label_outside(y, n_classes, 0 if ignore is None else ignore, ignore is not None):
        used = y if ignore is None else y[y != ignore]
        raise ValueError(f"{name}: expected labels in [0, {n_classes - 1}], got values in [{used.min()}, {used.max()}]")
    return y


def check_rng(name, seed):
    """A numpy.random.Generator from an int seed >= 0, a Generator (used as is: its state
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
