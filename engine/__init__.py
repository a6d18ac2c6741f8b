"""handprop's engine: parameters, layers' base class and containers, losses, optimizers,
initializers, the training loop, gradient checking, data sets.

    from engine import Parameter, Layer, Sequential, fit, gradcheck
    with engine.no_grad(): ...            # forwards that record nothing for a backward
    with engine.reference_kernels(): ...  # every layer on its reference (plain-loop) kernels
"""
from . import threads  # noqa: F401  (first: decides how BLAS and Numba share the cores)
from . import memory  # noqa: F401  (keeps freed arrays in the process: no page faults per step)
from .core import Layer, Parameter, Sequential, is_grad_enabled, no_grad, reference_kernels
from .gradcheck import gradcheck, gradcheck_loss
from .seeding import manual_seed

__all__ = ["Parameter", "Layer", "Sequential", "fit", "gradcheck", "gradcheck_loss", "no_grad",
           "is_grad_enabled", "reference_kernels", "manual_seed"]


_SUBMODULES = {"losses", "optim", "schedules", "init", "data", "train", "sampling", "seeding", "progress", "numerics", "ngram"}


def __getattr__(name):
    # Loaded on first use, so `import engine` stays light: engine.fit, engine.losses, engine.optim, ...
    import importlib
    if name == "fit":
        return importlib.import_module(".train", __name__).fit
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
