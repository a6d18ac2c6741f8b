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
"""
import math

import numpy as np
from numba import njit

from .checks import check_array, check_choice, check_float, check_labels

_REDUCTIONS = ("mean", "sum")
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


# ---- kernels ----------------------------------------------------------------------------------
@njit(cache=True)
def mse_forward(f, y):
    """Σ_i (f_i − y_i)²  over every element; f, y flat arrays of one length."""
    s = 0.0
    for i in range(f.size):
        d = float(f[i]) - float(y[i])
        s += d * d
    return s


@njit(cache=True)
def mse_backward(f, y, scale):
    """∂ℓ/∂f_i = scale · 2 (f_i − y_i)."""
    df = np.empty_like(f)
    for i in range(f.size):
        df[i] = scale * 2.0 * (float(f[i]) - float(y[i]))
    return df


@njit(cache=True)
def l1_forward(f, y):
    """Σ_i |f_i − y_i|  over every element; f, y flat arrays of one length."""
    s = 0.0
    for i in range(f.size):
        s += abs(float(f[i]) - float(y[i]))
    return s


@njit(cache=True)
def l1_backward(f, y, scale):
    """∂ℓ/∂f_i = scale · sign(f_i − y_i), with sign(0) = 0 as in PyTorch (a subgradient)."""
    df = np.empty_like(f)
    for i in range(f.size):
        d = float(f[i]) - float(y[i])
        df[i] = scale * (1.0 if d > 0 else (-1.0 if d < 0 else 0.0))
    return df


@njit(cache=True)
def _sigmoid(z):
    """σ(z) = 1/(1+e^{−z}) without overflow: exp is only taken of −|z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True)
def bce_with_logits_forward(f, y, pos_weight):
    """Binary cross-entropy on logits z = f (002: ℓ = −y log ŷ − (1−y) log(1−ŷ), ŷ = σ(z)).

    With w = pos_weight of the column:  ℓ = −w y log σ(z) − (1−y) log(1−σ(z))
        = (1−y) z + (1 + (w−1) y) · softplus(−z),
    softplus(−z) = log(1+e^{−z}) = log1p(e^{−|z|}) + max(−z, 0)  (no overflow for any z).
    Shapes: f, y (M, C); pos_weight (C,) (ones for plain BCE). Returns Σ ℓ.
    """
    M, C = f.shape
    s = 0.0
    for n in range(M):
        for c in range(C):
            z, t, w = float(f[n, c]), float(y[n, c]), float(pos_weight[c])
            sp = math.log1p(math.exp(-abs(z))) + max(-z, 0.0)
            s += (1.0 - t) * z + (1.0 + (w - 1.0) * t) * sp
    return s


@njit(cache=True)
def bce_with_logits_backward(f, y, pos_weight, scale):
    """∂ℓ/∂z = (1 + (w−1) y) σ(z) − w y   (= σ(z) − y for w = 1). Shapes as the forward."""
    M, C = f.shape
    df = np.empty_like(f)
    for n in range(M):
        for c in range(C):
            z, t, w = float(f[n, c]), float(y[n, c]), float(pos_weight[c])
            df[n, c] = scale * ((1.0 + (w - 1.0) * t) * _sigmoid(z) - w * t)
    return df


@njit(cache=True)
def _log_softmax_row(f, n, logp):
    """logp[c] = f[n, c] − logsumexp(f[n]), with the max subtracted before exp."""
    C = f.shape[1]
    m = float(f[n, 0])
    for c in range(1, C):
        m = max(m, float(f[n, c]))
    s = 0.0
    for c in range(C):
        s += math.exp(float(f[n, c]) - m)
    lse = m + math.log(s)
    for c in range(C):
        logp[c] = float(f[n, c]) - lse


@njit(cache=True)
def cross_entropy_forward(f, labels, smoothing):
    """Softmax cross-entropy with integer labels (002; 000 §5 negative log-likelihood).

    p = softmax(f[n]);  ℓ_n = −Σ_c t_c log p_c  with the smoothed one-hot target
    t_c = (1−ε) [c = y_n] + ε/C  (ε = label_smoothing; ε = 0 gives ℓ_n = −log p_{y_n}).
    Shapes: f (N, C), labels (N,) int64. Returns (Σ_n ℓ_n, p (N, C) for the backward).
    """
    N, C = f.shape
    p = np.empty_like(f)
    logp = np.empty(C)
    s = 0.0
    for n in range(N):
        _log_softmax_row(f, n, logp)
        mean_logp = 0.0
        for c in range(C):
            p[n, c] = math.exp(logp[c])
            mean_logp += logp[c]
        s -= (1.0 - smoothing) * logp[labels[n]] + smoothing * mean_logp / C
    return s, p


@njit(cache=True)
def cross_entropy_backward(p, labels, smoothing, scale):
    """∂ℓ_n/∂f[n, c] = p_c − t_c  (rows of t sum to one), times scale."""
    N, C = p.shape
    df = np.empty_like(p)
    for n in range(N):
        for c in range(C):
            t = smoothing / C + (1.0 - smoothing if c == labels[n] else 0.0)
            df[n, c] = scale * (float(p[n, c]) - t)
    return df


@njit(cache=True)
def cross_entropy_soft_forward(f, y, smoothing):
    """Softmax cross-entropy with class-probability targets y (N, C):
    ℓ_n = −Σ_c t_c log p_c,  t = (1−ε) y[n] + ε/C. Returns (Σ_n ℓ_n, p (N, C))."""
    N, C = f.shape
    p = np.empty_like(f)
    logp = np.empty(C)
    s = 0.0
    for n in range(N):
        _log_softmax_row(f, n, logp)
        for c in range(C):
            p[n, c] = math.exp(logp[c])
            s -= ((1.0 - smoothing) * float(y[n, c]) + smoothing / C) * logp[c]
    return s, p


@njit(cache=True)
def cross_entropy_soft_backward(p, y, smoothing, scale):
    """∂ℓ_n/∂f[n, c] = p_c Σ_k t_k − t_c  (Σ_k t_k = 1 when the rows of y are distributions;
    PyTorch does not require that, so neither do we), times scale."""
    N, C = p.shape
    df = np.empty_like(p)
    for n in range(N):
        tsum = 0.0
        for c in range(C):
            tsum += (1.0 - smoothing) * float(y[n, c]) + smoothing / C
        for c in range(C):
            t = (1.0 - smoothing) * float(y[n, c]) + smoothing / C
            df[n, c] = scale * (float(p[n, c]) * tsum - t)
    return df


@njit(cache=True)
def multi_margin_forward(f, labels, power, margin):
    """Multi-class hinge loss: ℓ_n = (1/C) Σ_{i≠y_n} max(0, margin − f[n, y_n] + f[n, i])^p,
    p ∈ {1, 2}. Shapes: f (N, C), labels (N,). Returns Σ_n ℓ_n."""
    N, C = f.shape
    s = 0.0
    for n in range(N):
        fy = float(f[n, labels[n]])
        for i in range(C):
            if i != labels[n]:
                h = margin - fy + float(f[n, i])
                if h > 0:
                    s += (h if power == 1 else h * h) / C
    return s


@njit(cache=True)
def multi_margin_backward(f, labels, power, margin, scale):
    """For each active term h = margin − f_y + f_i > 0:  ∂/∂f_i = p h^{p−1}/C,
    ∂/∂f_y = −p h^{p−1}/C (summed over i); inactive terms give 0. Times scale."""
    N, C = f.shape
    df = np.zeros_like(f)
    for n in range(N):
        y = labels[n]
        fy = float(f[n, y])
        gy = 0.0
        for i in range(C):
            if i != y:
                h = margin - fy + float(f[n, i])
                if h > 0:
                    g = scale * (1.0 if power == 1 else 2.0 * h) / C
                    df[n, i] = g
                    gy -= g
        df[n, y] = gy
    return df


@njit(cache=True)
def gaussian_nll_forward(f, y, var, eps, full):
    """Gaussian negative log-likelihood (000 §5: −log Pr(y | μ = f, σ² = v)):
    ℓ = ½ (log v + (f − y)² / v) [+ ½ log 2π if full],  v = max(var, eps).

    Shapes: f, y (A, B, D); var (A, 1, D) (one variance shared along axis 1, broadcast)
    or (A, B, D). Returns Σ ℓ over every element of f.
    """
    A, B, D = f.shape
    shared = var.shape[1] == 1
    s = 0.0
    for a in range(A):
        for b in range(B):
            for d in range(D):
                v = max(float(var[a, 0 if shared else b, d]), eps)
                r = float(f[a, b, d]) - float(y[a, b, d])
                s += 0.5 * (math.log(v) + r * r / v)
    if full:
        s += f.size * 0.5 * math.log(2.0 * math.pi)
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
    for a in range(A):
        for b in range(B):
            bv = 0 if shared else b
            for d in range(D):
                v = max(float(var[a, bv, d]), eps)
                r = float(f[a, b, d]) - float(y[a, b, d])
                df[a, b, d] = scale * r / v
                dvar[a, bv, d] += scale * 0.5 * (1.0 / v - r * r / (v * v))
    return df, dvar


# ---- classes -----------------------------------------------------------------------------------
class _Loss:
    """Shared plumbing: `reduction`, `__call__`, and the backward-before-forward guard."""

    def __init__(self, reduction="mean"):
        self.reduction = check_choice("reduction", reduction, _REDUCTIONS)
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


def _check_pred_target(pred, target):
    """pred: any float array; target: the same shape and dtype."""
    pred = check_array("pred", pred)
    target = check_array("target", target, dtype=pred.dtype)
    if target.shape != pred.shape:
        raise ValueError(f"target: expected the shape of pred {pred.shape}, got {target.shape}")
    return pred, target


class MSELoss(_Loss):
    """Mean squared error ℓ = Σ_i (f_i − y_i)² (/ number of elements for "mean").
    pred and target: any shape, equal; float32 or float64."""

    def forward(self, pred, target):
        pred, target = _check_pred_target(pred, target)
        f, y = pred.reshape(-1), target.reshape(-1)
        self._saved = (f, y, pred.shape)
        return mse_forward(f, y) * self._scale(f.size)

    def backward(self):
        f, y, shape = self._need_forward()
        return mse_backward(f, y, self._scale(f.size)).reshape(shape)


class L1Loss(_Loss):
    """Mean absolute error ℓ = Σ_i |f_i − y_i| (/ number of elements for "mean")."""

    def forward(self, pred, target):
        pred, target = _check_pred_target(pred, target)
        f, y = pred.reshape(-1), target.reshape(-1)
        self._saved = (f, y, pred.shape)
        return l1_forward(f, y) * self._scale(f.size)

    def backward(self):
        f, y, shape = self._need_forward()
        return l1_backward(f, y, self._scale(f.size)).reshape(shape)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy, computed from the logits (never from σ(z)).

    pred: logits, any shape; target: same shape and dtype, usually in [0, 1] (soft labels are
    allowed, as in PyTorch). pos_weight: optional array of shape (C,), C = pred.shape[-1], the
    weight of positive examples per class. The per-element `weight` of torch is not offered.
    """

    def __init__(self, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        if pos_weight is not None:
            pos_weight = check_array("pos_weight", pos_weight, ndim=1)
        self.pos_weight = pos_weight

    def forward(self, pred, target):
        pred, target = _check_pred_target(pred, target)
        C = pred.shape[-1] if pred.ndim else 1
        if self.pos_weight is None:
            pw = np.ones(C)
        elif self.pos_weight.shape != (C,):
            raise ValueError(f"pos_weight: expected shape ({C},) (the last axis of pred), "
                             f"got {self.pos_weight.shape}")
        else:
            pw = self.pos_weight
        f, y = pred.reshape(-1, C), target.reshape(-1, C)
        self._saved = (f, y, pw, pred.shape)
        return bce_with_logits_forward(f, y, pw) * self._scale(f.size)

    def backward(self):
        f, y, pw, shape = self._need_forward()
        return bce_with_logits_backward(f, y, pw, self._scale(f.size)).reshape(shape)

    def _repr_args(self):
        return {"reduction": self.reduction, "pos_weight": self.pos_weight}


def _check_logits(pred):
    return check_array("pred", pred, ndim=2)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits, with optional label smoothing ε.

    pred: logits (N, C). target: integer class labels (N,) in [0, C), or class probabilities
    (N, C) of pred's dtype. "mean" divides by N. torch's `weight` and `ignore_index` and
    the extra spatial dimensions (N, C, d1, ...) are not offered.
    """

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.label_smoothing = check_float("label_smoothing", label_smoothing, low=0.0, high=1.0)

    def forward(self, pred, target):
        pred = _check_logits(pred)
        N, C = pred.shape
        eps = self.label_smoothing
        if isinstance(target, np.ndarray) and np.issubdtype(target.dtype, np.integer):
            labels = check_labels("target", target, N, C)
            s, p = cross_entropy_forward(pred, labels, eps)
            self._saved = (p, labels, False)
        else:
            if isinstance(target, np.ndarray) and target.shape != (N, C):
                raise ValueError(f"target: expected integer labels of shape ({N},) or class "
                                 f"probabilities of shape ({N}, {C}), got {target.shape}")
            target = check_array("target", target, dtype=pred.dtype)
            s, p = cross_entropy_soft_forward(pred, target, eps)
            self._saved = (p, target, True)
        return s * self._scale(N)

    def backward(self):
        p, target, soft = self._need_forward()
        scale = self._scale(p.shape[0])
        if soft:
            return cross_entropy_soft_backward(p, target, self.label_smoothing, scale)
        return cross_entropy_backward(p, target, self.label_smoothing, scale)

    def _repr_args(self):
        return {"reduction": self.reduction, "label_smoothing": self.label_smoothing}


class MultiMarginLoss(_Loss):
    """Multi-class hinge loss (torch.nn.MultiMarginLoss without `weight`):
    ℓ_n = (1/C) Σ_{i≠y_n} max(0, margin − f[n, y_n] + f[n, i])^p; "mean" divides by N.
    pred (N, C); target integer labels (N,)."""

    def __init__(self, p=1, margin=1.0, reduction="mean"):
        super().__init__(reduction)
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"p: expected 1 or 2, got {p!r}")
        self.p = int(p)
        self.margin = check_float("margin", margin)

    def forward(self, pred, target):
        pred = _check_logits(pred)
        N, C = pred.shape
        labels = check_labels("target", target, N, C)
        self._saved = (pred, labels)
        return multi_margin_forward(pred, labels, self.p, self.margin) * self._scale(N)

    def backward(self):
        f, labels = self._need_forward()
        return multi_margin_backward(f, labels, self.p, self.margin, self._scale(f.shape[0]))

    def _repr_args(self):
        return {"p": self.p, "margin": self.margin, "reduction": self.reduction}


class GaussianNLLLoss(_Loss):
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
        if not isinstance(full, bool):
            raise TypeError(f"full: expected a bool, got {full!r}")
        self.full = full
        self.eps = check_float("eps", eps, low=0.0)
        self.dvar = None

    def forward(self, pred, target, var):
        pred, target = _check_pred_target(pred, target)
        shape = pred.shape
        if isinstance(var, (float, int)) and not isinstance(var, bool):
            if not np.isfinite(var) or var < 0:
                raise ValueError(f"var: expected a finite non-negative number, got {var!r}")
            var_shape, var = None, np.full(shape, var, dtype=pred.dtype)
        else:
            var = check_array("var", var, dtype=pred.dtype)
            var_shape = var.shape
            if var.shape != shape and var.shape == shape[:-1]:
                var = var.reshape(shape[:-1] + (1,))
            bad = [k for k in range(len(shape)) if var.ndim == len(shape) and var.shape[k] != shape[k]]
            if var.ndim != len(shape) or len(bad) > 1 or (bad and var.shape[bad[0]] != 1):
                raise ValueError(f"var: expected shape {shape}, {shape[:-1]}, or {shape} with one "
                                 f"axis of size 1, got {var_shape}")
            if (var < 0).any():
                raise ValueError("var: expected non-negative variances, got a negative entry")
        # View every case as (A, B, D) with var (A, 1, D) or (A, B, D).
        k = next((k for k in range(len(shape)) if var.shape[k] != shape[k]), len(shape))
        A = int(np.prod(shape[:k])) if k < len(shape) else pred.size
        B = shape[k] if k < len(shape) else 1
        D = int(np.prod(shape[k + 1:])) if k < len(shape) else 1
        f, y = pred.reshape(A, B, D), target.reshape(A, B, D)
        v = var.reshape(A, 1 if k < len(shape) else B, D)
        self._saved = (f, y, v, shape, var_shape)
        self.dvar = None
        return gaussian_nll_forward(f, y, v, self.eps, self.full) * self._scale(pred.size)

    def backward(self):
        f, y, v, shape, var_shape = self._need_forward()
        df, dvar = gaussian_nll_backward(f, y, v, self.eps, self._scale(f.size))
        self.dvar = None if var_shape is None else dvar.reshape(var_shape)
        return df.reshape(shape)

    def _repr_args(self):
        return {"full": self.full, "eps": self.eps, "reduction": self.reduction}


__all__ = ["MSELoss", "L1Loss", "BCEWithLogitsLoss", "CrossEntropyLoss", "MultiMarginLoss",
           "GaussianNLLLoss"]
