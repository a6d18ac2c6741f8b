"""Losses ℓ[f_K, y] and their gradients ∂ℓ/∂f_K (notes 000 §5 and §7, 002 "Loss functions").

Every loss is a pair of `@njit` kernels, `*_forward` and `*_backward`, and a thin class around
them that checks its inputs and remembers what the backward needs:

    loss = CrossEntropyLoss()
    value = loss.forward(pred, target)    # a Python float
    dpred = loss.backward()               # ∂value/∂pred, a fresh array of pred's dtype and shape

Notation: `f` is the network output f_K (the notes' column vector f_K for one example is a row
`f[n]` of the batch-first array), `y` the target. The kernels take `scale` (1/count for
`reduction="mean"`, 1 for "sum"): the forward returns scale·Σ_n ℓ_n and the backward its
gradient. Sums are accumulated in float64 whatever the input dtype.

At the edges of the float range (logits of ±1e308) no value is NaN: a term whose target weight
is 0 contributes exactly 0 (never 0·∞), differences such as lse − f_c or f − y that overflow
are taken in halves (`classification.scaled_diff`), and the scale is folded into each term
before it is summed, so a mean whose terms are representable is finite and a value is inf only
where the loss really exceeds the float range.

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
