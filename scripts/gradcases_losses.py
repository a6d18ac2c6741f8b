"""Gradient-check cases for the losses, for the gradient-check report (scripts/check_gradients.py).

`CASES` is a list of `(name, make)`; `make(rng)` returns
    ("loss", loss_object, pred, target, forward_kwargs)
and the report runs `engine.gradcheck_loss(loss_object, pred, target, **forward_kwargs)`.
One case per loss x reduction x target kind / option. Inputs are float64 and kept away from
kinks: |pred - target| >= 0.1 for L1, |margin - f_y + f_i| >= 0.1 for MultiMargin, variances
in [0.5, 2] for GaussianNLL (its `dvar` is checked in tests/test_losses.py). Nothing is
redrawn: entries of the gradient far below its largest are judged against a floor scaled to
that largest (engine.gradcheck), where the central differences' rounding noise lives.

    python scripts/gradcases_losses.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine import losses  # noqa: E402

N, C = 5, 4


def away_from_zero(rng, shape, low=0.1, high=1.0):
    """Random numbers with |x| in [low, high] and random signs."""
    return rng.uniform(low, high, shape) * rng.choice([-1.0, 1.0], shape)


def margin_logits(rng, labels, margin, C):
    """Logits whose hinge terms margin - f_y + f_i are all at least 0.1 away from 0."""
    f = rng.standard_normal((len(labels), C))
    for n, y in enumerate(labels):
        for i in range(C):
            h = margin - f[n, y] + f[n, i]
            if i != y and abs(h) < 0.1:
                f[n, i] += 0.2 if h >= 0 else -0.2
    return f


def _mse(reduction):
    def make(rng):
        pred = rng.standard_normal((N, C))
        return "loss", losses.MSELoss(reduction), pred, pred + away_from_zero(rng, (N, C)), {}
    return make


def _l1(reduction):
    def make(rng):
        pred = rng.standard_normal((N, 3, 2))
        return "loss", losses.L1Loss(reduction), pred, pred + away_from_zero(rng, (N, 3, 2)), {}
    return make


def _bce(reduction, soft, pos_weight, weight=False):
    def make(rng):
        pred = 2 * rng.standard_normal((N, C))
        target = rng.uniform(0, 1, (N, C)) if soft else rng.integers(0, 2, (N, C)).astype(np.float64)
        pw = rng.uniform(0.5, 3.0, C) if pos_weight else None
        w = rng.uniform(0.5, 2.0, (N, 1)) if weight else None
        return "loss", losses.BCEWithLogitsLoss(reduction, pos_weight=pw, weight=w), pred, target, {}
    return make


def _ce(reduction, soft, smoothing, weight=False, ignore=False):
    def make(rng):
        pred = rng.standard_normal((N, C))
        target = rng.dirichlet(np.ones(C), N) if soft else rng.integers(0, C, N)
        if ignore:
            target[0] = -100
        w = rng.uniform(0.5, 2.0, C) if weight else None
        loss = losses.CrossEntropyLoss(reduction, label_smoothing=smoothing, weight=w)
        return "loss", loss, pred, target, {}
    return make


def _ce_seq(reduction, soft, smoothing, shape, weight=False, ignore=False):
    """Logits (N, C, d₁, …) with labels (N, d₁, …) or probabilities of the logits' shape (a
    language model's (N, C, T)); the last axis is kept at least C long, so that a label equal to
    it is out of range (the bad-input suite draws such labels from pred.shape[-1])."""
    def make(rng):
        Cs = shape[1]
        pred = rng.standard_normal(shape)
        if soft:
            target = np.moveaxis(rng.dirichlet(np.ones(Cs), (shape[0],) + shape[2:]), -1, 1).copy()
        else:
            target = rng.integers(0, Cs, (shape[0],) + shape[2:])
            if ignore:
                target[0, 0] = 1
                target[..., -1] = 1
        w = rng.uniform(0.5, 2.0, Cs) if weight else None
        loss = losses.CrossEntropyLoss(reduction, label_smoothing=smoothing, weight=w,
                                       ignore_index=1 if ignore else -100)
        return "loss", loss, pred, target, {}
    return make


def _multi_margin(reduction, p, weight=False):
    def make(rng):
        labels = rng.integers(0, C, N)
        pred = margin_logits(rng, labels, 0.8, C)
        w = rng.uniform(0.5, 2.0, C) if weight else None
        loss = losses.MultiMarginLoss(p=p, margin=0.8, weight=w, reduction=reduction)
        return "loss", loss, pred, labels, {}
    return make


def _gaussian_nll(reduction, var_kind, full):
    def make(rng):
        pred, target = rng.standard_normal((N, C)), rng.standard_normal((N, C))
        var_shape = {"full": (N, C), "per_row": (N,), "shared_axis0": (1, C)}[var_kind]
        var = rng.uniform(0.5, 2.0, var_shape)
        loss = losses.GaussianNLLLoss(full=full, reduction=reduction)
        return "loss", loss, pred, target, {"var": var}
    return make


CASES = []
for _r in ("mean", "sum"):
    CASES += [
        (f"MSELoss[{_r}]", _mse(_r)),
        (f"L1Loss[{_r}]", _l1(_r)),
        (f"BCEWithLogitsLoss[{_r},binary]", _bce(_r, False, False)),
        (f"BCEWithLogitsLoss[{_r},soft]", _bce(_r, True, False)),
        (f"BCEWithLogitsLoss[{_r},pos_weight]", _bce(_r, False, True)),
        (f"BCEWithLogitsLoss[{_r},weight,pos_weight]", _bce(_r, True, True, weight=True)),
        (f"CrossEntropyLoss[{_r},labels]", _ce(_r, False, 0.0)),
        (f"CrossEntropyLoss[{_r},labels,smoothing]", _ce(_r, False, 0.1)),
        (f"CrossEntropyLoss[{_r},probs]", _ce(_r, True, 0.0)),
        (f"CrossEntropyLoss[{_r},probs,smoothing]", _ce(_r, True, 0.1)),
        (f"CrossEntropyLoss[{_r},labels,weight,ignore]", _ce(_r, False, 0.1, True, True)),
        (f"CrossEntropyLoss[{_r},probs,weight]", _ce(_r, True, 0.1, True)),
        (f"CrossEntropyLoss[{_r},(N,C,T) labels]", _ce_seq(_r, False, 0.0, (3, 4, 5))),
        (f"CrossEntropyLoss[{_r},(N,C,T) labels,weight,smoothing,ignore]",
         _ce_seq(_r, False, 0.1, (3, 4, 5), True, True)),
        (f"CrossEntropyLoss[{_r},(N,C,H,W) labels,weight]", _ce_seq(_r, False, 0.0, (2, 3, 2, 4), True)),
        (f"CrossEntropyLoss[{_r},(N,C,T) probs,weight,smoothing]", _ce_seq(_r, True, 0.1, (2, 4, 4), True)),
        (f"MultiMarginLoss[{_r},p=1]", _multi_margin(_r, 1)),
        (f"MultiMarginLoss[{_r},p=2]", _multi_margin(_r, 2)),
        (f"MultiMarginLoss[{_r},p=2,weight]", _multi_margin(_r, 2, weight=True)),
        (f"GaussianNLLLoss[{_r},var=full]", _gaussian_nll(_r, "full", False)),
        (f"GaussianNLLLoss[{_r},var=per_row,full=True]", _gaussian_nll(_r, "per_row", True)),
        (f"GaussianNLLLoss[{_r},var=shared_axis0]", _gaussian_nll(_r, "shared_axis0", False)),
    ]


if __name__ == "__main__":
    from engine import gradcheck_loss

    worst = 0.0
    for name, make in CASES:
        _, loss, pred, target, kw = make(np.random.default_rng(0))
        result = gradcheck_loss(loss, pred, target, **kw)
        worst = max(worst, result.max_error)
        print(f"{name:50s} {result}")
    print(f"worst relative error {worst:.1e}")
