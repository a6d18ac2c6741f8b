"""Shared plumbing of the losses: `reduction`, `__call__`, the backward-before-forward guard and
the pred/target checks."""
from ..checks import check_array, check_choice

REDUCTIONS = ("mean", "sum")


class Loss:
    """Shared plumbing: `reduction`, `__call__`, and the backward-before-forward guard."""

    def __init__(self, reduction="mean"):
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self._saved = None

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _scale(self, count):
        return 1.0 / count if self.reduction == "mean" else 1.0

    def _need_forward(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._saved

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._repr_args().items())
        return f"{type(self).__name__}({args})"

    def _repr_args(self):
        return {"reduction": self.reduction}


def check_pred_target(pred, target):
    """pred: any float array; target: the same shape and dtype."""
    pred = check_array("pred", pred)
    target = check_array("target", target, dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ValueError(f"target: expected the shape of pred {pred.shape}, got {target.shape}")
    return pred, target
