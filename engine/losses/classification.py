"""Classification losses on logits: binary cross-entropy, softmax cross-entropy, multi-class hinge
(002 "Loss functions": BCE and CE; 000 §5: both are negative log-likelihoods, of a Bernoulli
and of a categorical distribution)."""
import math

import numpy as np
from numba import njit

from ..checks import check_array, check_float, check_labels
from ._base import Loss, check_pred_target


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


# ---- classes ----------------------------------------------------------------------------------
class BCEWithLogitsLoss(Loss):
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
        pred, target = check_pred_target(pred, target)
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


class CrossEntropyLoss(Loss):
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


class MultiMarginLoss(Loss):
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
