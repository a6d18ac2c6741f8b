"""Minibatch iteration: one pass over the data (an epoch) in batches."""
import numpy as np

from engine.checks import check_bool, check_int
from engine.checks import check_rng as as_rng


def minibatches(X, y, batch_size, shuffle=True, seed=None, drop_last=False):
    """Iterate over one epoch of (X, y) in minibatches.

    The notes' SGD (000, §5.1.1): "work through the data set sampling without replacement";
    one pass is an epoch. Every sample appears exactly once per epoch (except the last
    n mod batch_size samples when ``drop_last=True``).

    Args:
        X: array (N, ...); y: array (N, ...) with the same first dimension (pass X again
            for an autoencoder).
        batch_size: int >= 1; the last batch may be smaller unless ``drop_last``.
        shuffle: visit the samples in a random order (else in index order).
        seed: int, numpy.random.Generator or None. An int gives the same order on every
            call; pass one Generator across epochs (its state advances) to get a new order
            each epoch that is still reproducible, or ``seed=epoch``.
        drop_last: skip the final incomplete batch.

    Yields:
        (Xb, yb): ``X[idx]``, ``y[idx]`` for consecutive chunks idx of the order (copies).

    Arguments are checked when ``minibatches`` is called, not at the first ``next``; zero
    samples are refused (an epoch of no batches would silently train nothing).
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(f"X, y: expected arrays with a first (sample) dimension, got X.shape={X.shape}, "
                         f"y.shape={y.shape}")
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X, y: expected the same number of samples, got X.shape[0]="
                         f"{X.shape[0]}, y.shape[0]={y.shape[0]}")
    if X.shape[0] == 0:
        raise ValueError(f"X: expected at least one sample, got shape {X.shape}")
    batch_size = check_int("batch_size", batch_size, low=1)
    shuffle = check_bool("shuffle", shuffle)
    drop_last = check_bool("drop_last", drop_last)
    n = X.shape[0]
    order = as_rng("seed", seed).permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    return _iterate(X, y, order, batch_size, stop)


def _iterate(X, y, order, batch_size, stop):
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        yield X[idx], y[idx]
