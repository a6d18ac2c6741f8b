"""Losses ℓ[f_K, y] and their gradients ∂ℓ/∂f_K (notes 000 §5 and §7, 002 "Loss functions").

Every loss is a pair of `@njit` kernels, `*_forward` and `*_backward`, and a thin class around
them that checks its inputs and remembers what the backward needs:

    loss = CrossEntropyLoss()
    value = loss.forward(pred, target)    # a Python float
    dpred = loss.backward()               # ∂value/∂pred, a fresh array of pred's dtype and shape

Notation: `f` is the network output f_K (the notes' column vector f_K for one example is a row
`f[n]` of the batch-first array), `y` the target. The forward kernels return the *sum* of the
per-element (or per-example) losses Σ_n ℓ_n; the class divides by the count for
`reduction="mean"` and passes the matching `scale` (1/count or 1) to the backward kernel.
Sums are accumulated in float64 whatever the input dtype.

Constructor arguments and semantics follow the `torch.nn` class of the same name
(`reduction="none"` is not offered: `forward` returns a float).

Modules: `regression` (MSELoss, L1Loss, GaussianNLLLoss), `classification` (BCEWithLogitsLoss,
CrossEntropyLoss, MultiMarginLoss); the kernels live next to their classes.
"""
from ._base import Loss
from .classification import BCEWithLogitsLoss, CrossEntropyLoss, MultiMarginLoss
from .regression import GaussianNLLLoss, L1Loss, MSELoss

__all__ = ["Loss", "MSELoss", "L1Loss", "BCEWithLogitsLoss", "CrossEntropyLoss", "MultiMarginLoss",
           "GaussianNLLLoss"]
