"""Classification losses on logits: binary cross-entropy, softmax cross-entropy, multi-class hinge
(002 "Loss functions": BCE and CE; 000 §5: both are negative log-likelihoods, of a Bernoulli
and of a categorical distribution)."""
import math

import numpy as np
from numba import njit

from ..checks import check_array, check_float, check_int, check_labels
from ..numerics import log1p_exp, sigmoid
from ._base import Loss, check_pred_target


@njit(cache=True)
def bce_with_logits_forward(f, y, weight, pos_weight):
    """Binary cross-entropy on logits z = f (002: ℓ = −y log ŷ − (1−y) log(1−ŷ), ŷ = σ(z)).

    With u = weight of the element and w = pos_weight of the column:
        ℓ = u [−w y log σ(z) − (1−y) log(1−σ(z))] = u [(1−y) z + (1 + (w−1) y) softplus(−z)],
    softplus(−z) = log(1+e^{−z}) = max(−z, 0) + log1p(e^{−|z|})  (engine.numerics.log1p_exp: no
    overflow for any z).
    Shapes: f, y, weight (M, C); pos_weight (C,) (ones for plain BCE). Returns Σ ℓ.
    """
    M, C = f.shape
    s = 0.0
    for n in range(M):
        for c in range(C):
            z, t, w = float(f[n, c]), float(y[n, c]), pos_weight[c]
            s += weight[n, c] * ((1.0 - t) * z + (1.0 + (w - 1.0) * t) * log1p_exp(-z))
    return s


@njit(cache=True)
def bce_with_logits_backward(f, y, weight, pos_weight, scale):
    """∂ℓ/∂z = u [(1 + (w−1) y) σ(z) − w y]   (= σ(z) − y for u = w = 1), σ the overflow-free
    engine.numerics.sigmoid. Shapes as the forward."""
    M, C = f.shape
    df = np.empty_like(f)
    for n in range(M):
        for c in range(C):
            z, t, w = float(f[n, c]), float(y[n, c]), pos_weight[c]
            df[n, c] = scale * weight[n, c] * ((1.0 + (w - 1.0) * t) * sigmoid(z) - w * t)
    return df


@njit(cache=True)
def _log_softmax_row(f, n, logp, p):
    """logp[c] = f[n, c] − logsumexp(f[n]) and p[n, c] = softmax(f[n])_c, with the max m
    subtracted before exp, one exp per entry: e_c = e^{f_c − m}, p_c = e_c / Σe, log p_c =
    f_c − m − log Σe. This is engine.numerics.logsumexp fused with the softmax: the e_c that
    give log Σe also give p, so each logit costs one exp (the scalar call that dominates this
    loss) instead of two."""
    C = f.shape[1]
    m = float(f[n, 0])
    for c in range(1, C):
        m = max(m, float(f[n, c]))
    s = 0.0
    for c in range(C):
        logp[c] = math.exp(float(f[n, c]) - m)
        s += logp[c]
    inv, lse = 1.0 / s, m + math.log(s)
    for c in range(C):
        p[n, c] = logp[c] * inv
        logp[c] = float(f[n, c]) - lse


@njit(cache=True)
def cross_entropy_forward(f, labels, weight, smoothing, ignore_index):
    """Softmax cross-entropy with integer labels (002; 000 §5 negative log-likelihood).

    p = softmax(f[n]);  ℓ_n = −Σ_c a_c log p_c  with the weighted, smoothed one-hot target
        a_c = (1−ε) w_{y_n} [c = y_n] + ε w_c / C
    (w = class weights, ones by default; ε = label_smoothing; w = 1, ε = 0 give ℓ_n = −log p_{y_n}).
    Rows whose label is `ignore_index` contribute 0. Shapes: f (N, C), labels (N,) int64,
    weight (C,). Returns (Σ_n ℓ_n, p (N, C) for the backward, Σ_n w_{y_n} over the rows not
    ignored: what "mean" divides by).
    """
    N, C = f.shape
    p = np.empty_like(f)
    logp = np.empty(C)
    s = 0.0
    count = 0.0
    for n in range(N):
        _log_softmax_row(f, n, logp, p)
        y = labels[n]
        if y == ignore_index:
            continue
        for c in range(C):
            s -= smoothing * weight[c] / C * logp[c]
        s -= (1.0 - smoothing) * weight[y] * logp[y]
        count += weight[y]
    return s, p, count


@njit(cache=True)
def cross_entropy_backward(p, labels, weight, smoothing, ignore_index, scale):
    """∂ℓ_n/∂f[n, c] = p_c Σ_k a_k − a_c  (from ∂(−log p_k)/∂f_c = p_c − [c = k]), with
    Σ_k a_k = (1−ε) w_{y_n} + ε Σ_k w_k / C (= 1 without weights); 0 on ignored rows.
    Times scale."""
    N, C = p.shape
    wsum = 0.0
    for c in range(C):
        wsum += weight[c]
    df = np.zeros_like(p)
    for n in range(N):
        y = labels[n]
        if y == ignore_index:
            continue
        asum = (1.0 - smoothing) * weight[y] + smoothing * wsum / C
        for c in range(C):
            a = smoothing * weight[c] / C + ((1.0 - smoothing) * weight[y] if c == y else 0.0)
            df[n, c] = scale * (float(p[n, c]) * asum - a)
    return df


@njit(cache=True)
def cross_entropy_soft_forward(f, y, weight, smoothing):
    """Softmax cross-entropy with class-probability targets y (N, C):
    ℓ_n = −Σ_c a_c log p_c,  a_c = w_c ((1−ε) y[n, c] + ε/C). Returns (Σ_n ℓ_n, p (N, C))."""
    N, C = f.shape
    p = np.empty_like(f)
    logp = np.empty(C)
    s = 0.0
    for n in range(N):
        _log_softmax_row(f, n, logp, p)
        for c in range(C):
            s -= weight[c] * ((1.0 - smoothing) * float(y[n, c]) + smoothing / C) * logp[c]
    return s, p


@njit(cache=True)
def cross_entropy_soft_backward(p, y, weight, smoothing, scale):
    """∂ℓ_n/∂f[n, c] = p_c Σ_k a_k − a_c  (Σ_k a_k = 1 when the rows of y are distributions and
    there are no weights; PyTorch does not require that, so neither do we), times scale."""
    N, C = p.shape
    df = np.empty_like(p)
    for n in range(N):
        asum = 0.0
        for c in range(C):
            asum += weight[c] * ((1.0 - smoothing) * float(y[n, c]) + smoothing / C)
        for c in range(C):
            a = weight[c] * ((1.0 - smoothing) * float(y[n, c]) + smoothing / C)
            df[n, c] = scale * (float(p[n, c]) * asum - a)
    return df


@njit(cache=True)
def multi_margin_forward(f, labels, weight, power, margin):
    """Multi-class hinge loss: ℓ_n = (w_{y_n}/C) Σ_{i≠y_n} max(0, margin − f[n, y_n] + f[n, i])^p,
    p ∈ {1, 2}, w class weights (ones by default). Shapes: f (N, C), labels (N,), weight (C,).
    Returns Σ_n ℓ_n."""
    N, C = f.shape
    s = 0.0
    for n in range(N):
        y = labels[n]
        fy = float(f[n, y])
        for i in range(C):
            if i != y:
                h = margin - fy + float(f[n, i])
                if h > 0:
                    s += weight[y] * (h if power == 1 else h * h) / C
    return s


@njit(cache=True)
def multi_margin_backward(f, labels, weight, power, margin, scale):
    """For each active term h = margin − f_y + f_i > 0:  ∂/∂f_i = w_y p h^{p−1}/C,
    ∂/∂f_y = −w_y p h^{p−1}/C (summed over i); inactive terms give 0. Times scale."""
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
                    g = scale * weight[y] * (1.0 if power == 1 else 2.0 * h) / C
                    df[n, i] = g
                    gy -= g
        df[n, y] = gy
    return df


# ---- classes ----------------------------------------------------------------------------------
def _check_logits(pred):
    return check_array("pred", pred, ndim=2)


def _class_weight(name, w):
    """None or a 1-D float array of per-class weights (kept as float64: a hyperparameter)."""
    return None if w is None else check_array(name, w, ndim=1).astype(np.float64)


def _weight_for(name, w, C):
    """The weights for C classes (ones when None), checked against C."""
    if w is None:
        return np.ones(C)
    if w.shape != (C,):
        raise ValueError(f"{name}: expected shape ({C},) (one weight per class of pred), "
                         f"got {w.shape}")
    return w


class BCEWithLogitsLoss(Loss):
    """Sigmoid + binary cross-entropy, computed from the logits (never from σ(z)).

    pred: logits, any shape; target: same shape and dtype, usually in [0, 1] (soft labels are
    allowed, as in PyTorch). weight: optional per-element weights, broadcastable to pred's
    shape; pos_weight: optional weights of the positive class, shape (C,) with
    C = pred.shape[-1]. "mean" divides by pred.size.
    """

    def __init__(self, reduction="mean", pos_weight=None, weight=None):
        super().__init__(reduction)
        self.weight = None if weight is None else check_array("weight", weight).astype(np.float64)
        self.pos_weight = _class_weight("pos_weight", pos_weight)

    def forward(self, pred, target):
        pred, target = check_pred_target(pred, target)
        C = pred.shape[-1] if pred.ndim else 1
        pw = _weight_for("pos_weight", self.pos_weight, C)
        if self.weight is None:
            u = np.ones(pred.shape)
        else:
            try:
                u = np.ascontiguousarray(np.broadcast_to(self.weight, pred.shape))
            except ValueError:
                raise ValueError(f"weight: expected a shape broadcastable to pred's {pred.shape}, "
                                 f"got {self.weight.shape}") from None
        f, y, u = pred.reshape(-1, C), target.reshape(-1, C), u.reshape(-1, C)
        self._saved = (f, y, u, pw, pred.shape)
        return bce_with_logits_forward(f, y, u, pw) * self._scale(f.size)

    def backward(self):
        f, y, u, pw, shape = self._need_forward()
        return bce_with_logits_backward(f, y, u, pw, self._scale(f.size)).reshape(shape)

    def _repr_args(self):
        return {"reduction": self.reduction, "weight": self.weight, "pos_weight": self.pos_weight}


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy from logits, as torch.nn.CrossEntropyLoss.

    pred: logits (N, C). target: integer class labels (N,) in [0, C) (or equal to
    ignore_index: that row is skipped), or class probabilities (N, C) of pred's dtype.
    weight: optional class weights (C,); label_smoothing ε mixes the target with the uniform
    distribution, t ← (1−ε) t + ε/C. "mean" divides by N for probability targets and by
    Σ_n w_{y_n} over the rows not ignored for labels (N without weights), as PyTorch; when that
    is 0 the value is NaN, as PyTorch's. The extra axes (N, C, d1, ...) are not offered.
    """

    def __init__(self, reduction="mean", label_smoothing=0.0, weight=None, ignore_index=-100):
        super().__init__(reduction)
        self.label_smoothing = check_float("label_smoothing", label_smoothing, low=0.0, high=1.0)
        self.weight = _class_weight("weight", weight)
        self.ignore_index = check_int("ignore_index", ignore_index)

    def forward(self, pred, target):
        pred = _check_logits(pred)
        N, C = pred.shape
        w = _weight_for("weight", self.weight, C)
        eps = self.label_smoothing
        if isinstance(target, np.ndarray) and np.issubdtype(target.dtype, np.integer):
            labels = check_labels("target", target, N, C, ignore=self.ignore_index)
            s, p, count = cross_entropy_forward(pred, labels, w, eps, self.ignore_index)
            self._saved = (p, labels, w, False, count)
        else:
            if isinstance(target, np.ndarray) and target.shape != (N, C):
                raise ValueError(f"target: expected integer labels of shape ({N},) or class "
                                 f"probabilities of shape ({N}, {C}), got {target.shape}")
            target = check_array("target", target, dtype=pred.dtype)
            s, p = cross_entropy_soft_forward(pred, target, w, eps)
            self._saved = (p, target, w, True, N)
        return s * self._scale(self._saved[-1])

    def _scale(self, count):
        if self.reduction == "mean" and count == 0:
            return math.nan           # PyTorch: 0/0 when every row is ignored or weighs 0
        return super()._scale(count)

    def backward(self):
        p, target, w, soft, count = self._need_forward()
        scale = self._scale(count)
        if soft:
            return cross_entropy_soft_backward(p, target, w, self.label_smoothing, scale)
        return cross_entropy_backward(p, target, w, self.label_smoothing, self.ignore_index, scale)

    def _repr_args(self):
        return {"reduction": self.reduction, "label_smoothing": self.label_smoothing,
                "weight": self.weight, "ignore_index": self.ignore_index}


class MultiMarginLoss(Loss):
    """Multi-class hinge loss, as torch.nn.MultiMarginLoss:
    ℓ_n = (w_{y_n}/C) Σ_{i≠y_n} max(0, margin − f[n, y_n] + f[n, i])^p; "mean" divides by N.
    pred (N, C); target integer labels (N,); weight: optional class weights (C,)."""

    def __init__(self, p=1, margin=1.0, weight=None, reduction="mean"):
        super().__init__(reduction)
        if isinstance(p, bool) or p not in (1, 2):
            raise ValueError(f"p: expected 1 or 2, got {p!r}")
        self.p = int(p)
        self.margin = check_float("margin", margin)
        self.weight = _class_weight("weight", weight)

    def forward(self, pred, target):
        pred = _check_logits(pred)
        N, C = pred.shape
        w = _weight_for("weight", self.weight, C)
        labels = check_labels("target", target, N, C)
        self._saved = (pred, labels, w)
        return multi_margin_forward(pred, labels, w, self.p, self.margin) * self._scale(N)

    def backward(self):
        f, labels, w = self._need_forward()
        return multi_margin_backward(f, labels, w, self.p, self.margin, self._scale(f.shape[0]))

    def _repr_args(self):
        return {"p": self.p, "margin": self.margin, "weight": self.weight,
                "reduction": self.reduction}
