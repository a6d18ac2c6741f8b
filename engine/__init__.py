"""handprop's engine: parameters, layers' base class and containers, losses, optimizers,
initializers, the training loop, gradient checking, data sets.

    from engine import Parameter, Layer, Sequential, fit, gradcheck
"""
from . import threads  # noqa: F401  (first: decides how BLAS and Numba share the cores)
from .core import Layer, Parameter, Sequential
from .gradcheck import gradcheck, gradcheck_loss

__all__ = ["Parameter", "Layer", "Sequential", "fit", "gradcheck", "gradcheck_loss"]


def __getattr__(name):
    # `fit` lives in engine.train, which imports losses and data; load it on first use.
    if name == "fit":
        from .train import fit
        return fit
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
