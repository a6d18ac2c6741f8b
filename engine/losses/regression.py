"""Regression losses: mean squared error, mean absolute error, Gaussian negative log-likelihood
(000 §5: least squares is the negative log-likelihood of a Gaussian with fixed variance; with
the variance predicted too it becomes GaussianNLLLoss)."""
import math

import numpy as np
from numba import njit

from ..checks import check_array, check_bool, check_float
from ._base import Loss, check_pred_target
from .classification import scaled_diff


@njit(cache=True)
def mse_forward(f, y, scale):
    """scale·Σ_i (f_i − y_i)² over every element; f, y flat arrays of one length. Each term is
    t² with t = √scale (f_i − y_i) (scaled_diff: no overflow in f_i − y_i), so a mean whose
    terms are near the float range does not overflow in the sum."""
    r = math.sqrt(scale)
    s = 0.0
    for i in range(f.size):
        t = scaled_diff(r, float(f[i]), float(y[i]))
        s += t * t
    return s


@njit(cache=True)
def mse_backward(f, y, scale):
    """∂ℓ/∂f_i = scale · 2 (f_i − y_i)."""
    df = np.empty_like(f)
    for i in range(f.size):
        df[i] = scaled_diff(2.0 * scale, float(f[i]), float(y[i]))
    return df


@njit(cache=True)
def l1_forward(f, y, scale):
    """scale·Σ_i |f_i − y_i| over every element; f, y flat arrays of one length."""
    s = 0.0
    for i in range(f.size):
        s += abs(scaled_diff(scale, float(f[i]), float(y[i])))
    return s


@njit(cache=True)
def l1_backward(f, y, scale):
    """∂ℓ/∂f_i = scale · sign(f_i − y_i), with sign(0) = 0 as in PyTorch (a subgradient)."""
    df = np.empty_like(f)
    for i in range(f.size):
        fi, yi = float(f[i]), float(y[i])
        df[i] = scale * (1.0 if fi > yi else (-1.0 if fi < yi else 0.0))
    return df


@njit(cache=True)
def gaussian_nll_forward(f, y, var, eps, full, scale):
    """Gaussian negative log-likelihood (000 §5: −log Pr(y | μ = f, σ² = v)):
    ℓ = ½ (log v + (f − y)² / v) [+ ½ log 2π if full],  v = max(var, eps).

    Shapes: f, y (A, B, D); var (A, 1, D) (one variance shared along axis 1, broadcast)
    or (A, B, D). Returns scale·Σ ℓ over every element of f, the residual term as t² with
    t = √(scale/2v) (f − y) (no overflow where (f − y)² alone would, for a finite mean).
    """
    A, B, D = f.shape
    shared = var.shape[1] == 1
    s = 0.0
    for a in range(A):
        for b in range(B):
            for d in range(D):
                v = max(float(var[a, 0 if shared else b, d]), eps)
                t = scaled_diff(math.sqrt(0.5 * scale / v), float(f[a, b, d]), float(y[a, b, d]))
                s += 0.5 * scale * math.log(v) + t * t
    if full:
        s += scale * f.size * 0.5 * math.log(2.0 * math.pi)
    return s


@njit(cache=True)
def gaussian_nll_backward(f, y, var, eps, scale):
    """∂ℓ/∂f = (f − y)/v;  ∂ℓ/∂var = ½ (1/v − (f − y)²/v²),  v = max(var, eps), summed over
    the broadcast axis. As in PyTorch the clamp is not differentiated (it is applied under
    no_grad), so entries with var < eps still get this gradient. Returns (df, dvar)."""
    A, B, D = f.shape
    shared = var.shape[1] == 1
    df = np.empty_like(f)
    dvar = np.zeros_like(var)
    h = math.sqrt(0.5 * scale)
    for a in range(A):
        for b in range(B):
            bv = 0 if shared else b
            for d in range(D):
                v = max(float(var[a, bv, d]), eps)
                fi, yi = float(f[a, b, d]), float(y[a, b, d])
                df[a, b, d] = scaled_diff(scale / v, fi, yi)
                t = scaled_diff(h / v, fi, yi)             # t² = scale·½ (f − y)²/v²
                dvar[a, bv, d] += 0.5 * scale / v - t * t
    return df, dvar


def _check_var(var, pred):
    """Return (var's given shape or None for a float, var as an array of pred's rank, the axis
    along which it is shared or None). Accepted as torch.nn.GaussianNLLLoss accepts them."""
    shape = pred.shape
    if isinstance(var, (float, int)) and not isinstance(var, bool):
        if not np.isfinite(var) or var < 0:
            raise ValueError(f"var: expected a finite non-negative number, got {var!r}")
        return None, np.full(shape, var, dtype=pred.dtype), None
    var = check_array("var", var, dtype=pred.dtype)
    given = var.shape
    if var.shape == shape[:-1]:                       # one variance per row: add the last axis
        var = var.reshape(shape[:-1] + (1,))
    same_rank = var.ndim == len(shape)
    diff = [k for k in range(var.ndim) if var.shape[k] != shape[k]] if same_rank else None
    if diff is None or len(diff) > 1 or (diff and var.shape[diff[0]] != 1):
        raise ValueError(f"var: expected shape {shape}, {shape[:-1]}, or {shape} with one axis "
                         f"of size 1, got {given}")
    if (var < 0).any():
        raise ValueError("var: expected non-negative variances, got a negative entry")
    return given, var, (diff[0] if diff else None)


# ---- classes ----------------------------------------------------------------------------------
class MSELoss(Loss):
    """Mean squared error ℓ = Σ_i (f_i − y_i)² (/ number of elements for "mean").
    pred and target: any shape, equal; float32 or float64."""

    def forward(self, pred, target):
        pred, target = check_pred_target(pred, target)
        f, y = pred.reshape(-1), target.reshape(-1)
        self._saved = (f, y, pred.shape)
        return mse_forward(f, y, self._scale(f.size))

    def backward(self):
        f, y, shape = self._need_forward()
        return mse_backward(f, y, self._scale(f.size)).reshape(shape)


class L1Loss(Loss):
    """Mean absolute error ℓ = Σ_i |f_i − y_i| (/ number of elements for "mean")."""

    def forward(self, pred, target):
        pred, target = check_pred_target(pred, target)
        f, y = pred.reshape(-1), target.reshape(-1)
        self._saved = (f, y, pred.shape)
        return l1_forward(f, y, self._scale(f.size))

    def backward(self):
        f, y, shape = self._need_forward()
        return l1_backward(f, y, self._scale(f.size)).reshape(shape)


class GaussianNLLLoss(Loss):
    """Gaussian negative log-likelihood with predicted mean `pred` and variance `var`:
    ℓ = ½ (log v + (pred − target)² / v) [+ ½ log 2π if full],  v = max(var, eps).

    forward(pred, target, var): pred and target of one shape; var of pred's shape
    (heteroscedastic), of pred.shape[:-1], or of pred's shape with one axis of size 1
    (one variance shared along that axis), or a non-negative Python float. "mean" divides by
    pred.size. After `backward()`, `loss.dvar` holds ∂value/∂var in var's shape (None for a
    float var). As in PyTorch the clamp at eps is not differentiated.
    """

    def __init__(self, full=False, eps=1e-6, reduction="mean"):
        super().__init__(reduction)
        self.full = check_bool("full", full)
        self.eps = check_float("eps", eps, low=0.0)
        self.dvar = None

    def forward(self, pred, target, var):
        pred, target = check_pred_target(pred, target)
        var_shape, var, k = _check_var(var, pred)
        if self.eps == 0.0 and not var.all():
            raise ValueError("var: expected positive variances with eps=0 (v = max(var, eps) divides), "
                             "got a zero entry")
        # View pred as (A, B, D) with B the axis k along which var is shared: var is (A, 1, D).
        # Without a shared axis, A = pred.size and B = D = 1.
        shape = pred.shape
        if k is None:
            A, B, D = pred.size, 1, 1
        else:
            A, B, D = int(np.prod(shape[:k])), shape[k], int(np.prod(shape[k + 1:]))
        f, y, v = pred.reshape(A, B, D), target.reshape(A, B, D), var.reshape(A, 1, D)
        self._saved = (f, y, v, shape, var_shape)
        self.dvar = None
        return gaussian_nll_forward(f, y, v, self.eps, self.full, self._scale(pred.size))

    def backward(self):
        f, y, v, shape, var_shape = self._need_forward()
        df, dvar = gaussian_nll_backward(f, y, v, self.eps, self._scale(f.size))
        self.dvar = None if var_shape is None else dvar.reshape(var_shape)
        return df.reshape(shape)

    def _repr_args(self):
        return {"full": self.full, "eps": self.eps, "reduction": self.reduction}
