"""Helpers shared by the figure modules (not a figure module: `load_all` skips `_` names)."""
import contextlib

import numba

from engine.threads import num_threads, set_num_threads


@contextlib.contextmanager
def single_thread():
    """Run the engine's parallel kernels on one thread inside the block.

    The figures of the first chapters train tiny models (a few parameters, batches of tens of
    rows) for hundreds of steps: there a parallel region's launch costs more than the work,
    and on a busy machine much more. Restores the previous thread count on exit."""
    before = num_threads()
    set_num_threads(1)
    try:
        yield
    finally:
        set_num_threads(min(before, numba.config.NUMBA_NUM_THREADS))


def single_threaded(func):
    """Decorator: run `func` inside :func:`single_thread`."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with single_thread():
            return func(*args, **kwargs)
    return wrapper
