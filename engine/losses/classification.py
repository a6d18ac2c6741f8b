"""Classification losses on logits: binary cross-entropy, softmax cross-entropy, multi-class hinge
(002 "Loss functions": BCE and CE; 000 §5: both are negative log-likelihoods, of a Bernoulli
and of a categorical distribution)."""
import math

import numpy as np
from numba import njit, prange

from ..checks import check_array, check_float, check_int, check_labels
from ..numerics import FASTMATH, exp_shifted, log1p_exp, row_max, sigmoid
from ..threads import chunks_for, parallel_call
from ._base import Loss, check_pred_target


@njit(cache=True, inline="always")
def scaled_diff(k, a, b):
    """k·(a − b) without overflow in a − b: when |a − b| exceeds the float range (a and b of
    opposite signs near ±1e308) it is 2·(k·(a/2 − b/2)), which overflows only when the product
    itself does (|k| ≤ 1 keeps it finite). k = 0 gives 0 (never 0·∞ = NaN)."""
    if k == 0.0:
        return 0.0
    d = a - b
    if math.isinf(d):
        return 2.0 * (k * (0.5 * a - 0.5 * b))
    return k * d


@njit(cache=True)
def bce_with_logits_forward(f, y, weight, pos_weight, scale):
    """Binary cross-entropy on logits z = f (002: ℓ = −y log ŷ − (1−y) log(1−ŷ), ŷ = σ(z)).

    With u = weight of the element and w = pos_weight of the column:
        ℓ = u [−w y log σ(z) − (1−y) log(1−σ(z))] = u [(1−y) z + (1 + (w−1) y) softplus(−z)],
    softplus(−z) = log(1+e^{−z}) = max(−z, 0) + log1p(e^{−|z|})  (engine.numerics.log1p_exp: no
    overflow for any z).
    Shapes: f, y, weight (M, C); pos_weight (C,) (ones for plain BCE). Returns scale·Σ ℓ, the
    scale folded into each term's two coefficients (k₁ z + k₂ softplus(−z)), so that a mean of
    terms near the float range does not overflow in the sum, and a zero coefficient contributes
    0 whatever z is.
    """
    M, C = f.shape
    s = 0.0
    for n in range(M):
        for c in range(C):
            z, t, w = float(f[n, c]), float(y[n, c]), pos_weight[c]
            k = scale * weight[n, c]
            k1, k2 = k * (1.0 - t), k * (1.0 + (w - 1.0) * t)
            if k1 != 0.0:
                s += k1 * z
            if k2 != 0.0:
                s += k2 * log1p_exp(-z)
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


@njit(cache=True, fastmath=FASTMATH)
def _softmax_row(f, n, p, e):
    """p[n, c] = softmax(f[n])_c with the max m subtracted before exp; returns
    lse = logsumexp(f[n]) = m + log Σ_c e^{f_c − m}, so that −log p_c = lse − f_c. This is
    engine.numerics.logsumexp fused with the softmax: the e_c that give log Σe also give p, so
    each logit costs one exp instead of two. e: a float64 scratch row (C,) for the e_c, computed
    in one vectorised loop (engine.numerics.exp_shifted; math.exp, a scalar call per logit, was
    0.7 ms of a character LM's 2048 × 65 logits). −log p_c is left to the caller as
    scaled_diff(a_c, lse, f_c): it skips a_c = 0 (never 0·(−∞), which made the loss NaN at logits
    ±1e308) and does not overflow when lse − f_c exceeds the float range."""
    C = f.shape[1]
    for c in range(C):
        e[c] = f[n, c]
    m = row_max(e, C)
    exp_shifted(e, C, m)
    s = 0.0
    for c in range(C):
        s += e[c]
    inv = 1.0 / s
    for c in range(C):
        p[n, c] = e[c] * inv
    return m + math.log(s)


def _row_chunks(M, C):
    """Threads for M rows of C logits: a row's softmax costs about 16 operations per logit."""
    return chunks_for(M, row_cost=16 * C)


def _by_rows(rows_kernel, parallel_kernel, M, C, *args):
    """rows_kernel(*args, 0, M) on this thread when the rows are too few to share (a parallel
    region, even of one thread, costs ~13 µs: a 64 × 10 loss took 28 µs instead of 15), else
    parallel_kernel(*args, nthreads), which splits the rows."""
    n = _row_chunks(M, C)
    if n == 1:
        rows_kernel(*args, 0, M)
    else:
        parallel_call(parallel_kernel, n, *args)


@njit(cache=True)
def label_weight_sum(labels, weight, ignore_index):
    """Σ_n w_{y_n} over the rows whose label is not ignore_index: what "mean" divides by."""
    count = 0.0
    for n in range(labels.shape[0]):
        if labels[n] != ignore_index:
            count += weight[labels[n]]
    return count


def cross_entropy_forward(f, labels, weight, smoothing, ignore_index, scale):
    """Softmax cross-entropy with integer labels (002; 000 §5 negative log-likelihood).

    p = softmax(f[n]);  ℓ_n = −Σ_c a_c log p_c = Σ_c a_c (lse_n − f[n, c])  with the weighted,
    smoothed one-hot target
        a_c = (1−ε) w_{y_n} [c = y_n] + ε w_c / C
    (w = class weights, ones by default; ε = label_smoothing; w = 1, ε = 0 give ℓ_n = −log p_{y_n}).
    Rows whose label is `ignore_index` contribute 0. Shapes: f (N, C), labels (N,) int64,
    weight (C,). Returns (scale·Σ_n ℓ_n, p (N, C) for the backward); the scale is folded into
    each a_c (see scaled_diff), so terms with a_c = 0 contribute exactly 0. The rows may be split
    over threads (_ce_rows); their losses are summed after, so the total does not depend on the
    number of threads.
    """
    N, C = f.shape
    p = np.empty_like(f)
    rows = np.zeros(N)
    _by_rows(_ce_rows, _ce_rows_parallel, N, C, f, labels, weight, smoothing, ignore_index, scale, p, rows)
    with np.errstate(over="ignore"):            # logits near ±1e308: the sum is ±inf, as the rows say
        return float(rows.sum()), p


@njit(cache=True)
def _ce_rows(f, labels, weight, smoothing, ignore_index, scale, p, rows, lo, hi):
    """cross_entropy_forward for rows lo … hi: p[n] and rows[n] = scale·ℓ_n."""
    C = f.shape[1]
    e = np.empty(C)
    for n in range(lo, hi):
        lse = _softmax_row(f, n, p, e)
        y = labels[n]
        if y == ignore_index:
            continue
        r = 0.0
        if smoothing != 0.0:
            for c in range(C):
                r += scaled_diff(scale * smoothing * weight[c] / C, lse, float(f[n, c]))
        rows[n] = r + scaled_diff(scale * (1.0 - smoothing) * weight[y], lse, float(f[n, y]))


@njit(cache=True, parallel=True)
def _ce_rows_parallel(f, labels, weight, smoothing, ignore_index, scale, p, rows, nthreads):
    N = f.shape[0]
    for t in prange(nthreads):
        _ce_rows(f, labels, weight, smoothing, ignore_index, scale, p, rows, t * N // nthreads,
                 (t + 1) * N // nthreads)


def cross_entropy_backward(p, labels, weight, smoothing, ignore_index, scale):
    """∂ℓ_n/∂f[n, c] = p_c Σ_k a_k − a_c  (from ∂(−log p_k)/∂f_c = p_c − [c = k]), with
    Σ_k a_k = (1−ε) w_{y_n} + ε Σ_k w_k / C (= 1 without weights); 0 on ignored rows.
    Times scale. The rows may be split over threads."""
    N, C = p.shape
    df = np.empty_like(p)
    _by_rows(_ce_grad_rows, _ce_grad_rows_parallel, N, C, p, labels, weight, smoothing, ignore_index, scale, df)
    return df


@njit(cache=True)
def _ce_grad_rows(p, labels, weight, smoothing, ignore_index, scale, df, lo, hi):
    C = p.shape[1]
    wsum = 0.0
    for c in range(C):
        wsum += weight[c]
    for n in range(lo, hi):
        y = labels[n]
        if y == ignore_index:
            for c in range(C):
                df[n, c] = 0.0
            continue
        asum = (1.0 - smoothing) * weight[y] + smoothing * wsum / C
        for c in range(C):
            a = smoothing * weight[c] / C + ((1.0 - smoothing) * weight[y] if c == y else 0.0)
            df[n, c] = scale * (float(p[n, c]) * asum - a)


@njit(cache=True, parallel=True)
def _ce_grad_rows_parallel(p, labels, weight, smoothing, ignore_index, scale, df, nthreads):
    N = p.shape[0]
    for t in prange(nthreads):
        _ce_grad_rows(p, labels, weight, smoothing, ignore_index, scale, df, t * N // nthreads,
                      (t + 1) * N // nthreads)


@njit(cache=True)
def cross_entropy_soft_forward(f, y, weight, smoothing, scale):
    """Softmax cross-entropy with class-probability targets y (N, C):
    ℓ_n = −Σ_c a_c log p_c,  a_c = w_c ((1−ε) y[n, c] + ε/C). Returns (scale·Σ_n ℓ_n, p (N, C));
    a_c = 0 contributes exactly 0 (see scaled_diff)."""
    N, C = f.shape
    p = np.empty_like(f)
    e = np.empty(C)
    s = 0.0
    for n in range(N):
        lse = _softmax_row(f, n, p, e)
        for c in range(C):
            a = weight[c] * ((1.0 - smoothing) * float(y[n, c]) + smoothing / C)
            s += scaled_diff(scale * a, lse, float(f[n, c]))
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


@njit(cache=True, inline="always")
def _hinge(margin, fy, fi):
    """(h, q) with h = margin + (f_i − f_y) (the logits' difference first: exact for close logits,
    and 1 + (−1e308 − (−1e308)) = 1 where (1 + 1e308) − 1e308 = 0) and q = h/4, computed from
    quarters when f_i − f_y overflows (then h = ±inf and q finite)."""
    d = fi - fy
    if math.isinf(d):
        return margin + d, 0.25 * margin + (0.25 * fi - 0.25 * fy)
    h = margin + d
    return h, 0.25 * h


@njit(cache=True)
def multi_margin_forward(f, labels, weight, power, margin, scale):
    """Multi-class hinge loss: ℓ_n = (w_{y_n}/C) Σ_{i≠y_n} max(0, margin − f[n, y_n] + f[n, i])^p,
    p ∈ {1, 2}, w class weights (ones by default). Shapes: f (N, C), labels (N,), weight (C,).
    Returns scale·Σ_n ℓ_n, each term k h^p (k = scale·w/C) computed as 4 (k q) (p = 1) or
    16 (k q) q (p = 2) from q = h/4 (see _hinge), so it overflows only where the term does."""
    N, C = f.shape
    s = 0.0
    for n in range(N):
        y = labels[n]
        fy = float(f[n, y])
        k = scale * weight[y] / C
        for i in range(C):
            if i != y:
                h, q = _hinge(margin, fy, float(f[n, i]))
                if h > 0 and k != 0.0:
                    s += 4.0 * (k * q) if power == 1 else 16.0 * (k * q) * q
    return s


@njit(cache=True)
def multi_margin_backward(f, labels, weight, power, margin, scale):
    """For each active term h = margin − f_y + f_i > 0:  ∂/∂f_i = w_y p h^{p−1}/C,
    ∂/∂f_y = −w_y p h^{p−1}/C (summed over i); inactive terms give 0. Times scale
    (for p = 2, 8 (k q) with k = scale·w_y/C and q = h/4, finite where h itself overflows)."""
    N, C = f.shape
    df = np.zeros_like(f)
    for n in range(N):
        y = labels[n]
        fy = float(f[n, y])
        k = scale * weight[y] / C
        gy = 0.0
        for i in range(C):
            if i != y:
                h, q = _hinge(margin, fy, float(f[n, i]))
                if h > 0:
                    g = k if power == 1 else 8.0 * (k * q)
                    df[n, i] = g
                    gy -= g
        df[n, y] = gy
    return df


# ---- classes ----------------------------------------------------------------------------------
def _check_logits(pred):
    return check_array("pred", pred, ndim=2)


def _classes_last(a):
    """(N, C, d₁, …) -> (N·d₁⋯, C) rows, C-contiguous: position (n, i₁, …) is row
    n·d₁⋯ + (i₁, …) in row-major order, the order of the flattened (N, d₁, …) labels."""
    C = a.shape[1]
    return np.ascontiguousarray(np.moveaxis(a, 1, -1)).reshape(-1, C)


def _classes_back(df, shape):
    """The inverse of _classes_last: (N·d₁⋯, C) rows -> a fresh (N, C, d₁, …) array."""
    N, C = shape[:2]
    return np.ascontiguousarray(np.moveaxis(df.reshape((N,) + shape[2:] + (C,)), -1, 1))


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
        return bce_with_logits_forward(f, y, u, pw, self._scale(f.size))

    def backward(self):
        f, y, u, pw, shape = self._need_forward()
        return bce_with_logits_backward(f, y, u, pw, self._scale(f.size)).reshape(shape)

    def _repr_args(self):
        return {"reduction": self.reduction, "weight": self.weight, "pos_weight": self.pos_weight}


class CrossEntropyLoss(Loss):
    """Softmax cross-entropy from logits, as torch.nn.CrossEntropyLoss.

    pred: logits (N, C), or (N, C, d₁, …, d_K) with the classes on axis 1 (a language model's
    (N, C, T) logits, an image's (N, C, H, W)). target: integer class labels (N,) or
    (N, d₁, …, d_K) in [0, C) (or equal to ignore_index: that position is skipped), or class
    probabilities of pred's shape and dtype. weight: optional class weights (C,);
    label_smoothing ε mixes the target with the uniform distribution, t ← (1−ε) t + ε/C.
    "mean" divides by M = N·d₁⋯d_K for probability targets and by Σ w_y over the positions not
    ignored for labels (their number without weights), as PyTorch; when that is 0 the value is
    NaN, as PyTorch's. Extra axes are handled by moving the class axis last, (N, d…, C) →
    (M, C) rows for the same kernels, and the gradient back; (N, C) inputs are used as they are.
    """

    def __init__(self, reduction="mean", label_smoothing=0.0, weight=None, ignore_index=-100):
        super().__init__(reduction)
        self.label_smoothing = check_float("label_smoothing", label_smoothing, low=0.0, high=1.0)
        self.weight = _class_weight("weight", weight)
        self.ignore_index = check_int("ignore_index", ignore_index)

    def forward(self, pred, target):
        pred = check_array("pred", pred)
        if pred.ndim < 2:
            raise ValueError(f"pred: expected logits of shape (N, C) or (N, C, d1, ...), got shape {pred.shape}")
        N, C = pred.shape[:2]
        extra = pred.shape[2:]
        w = _weight_for("weight", self.weight, C)
        eps = self.label_smoothing
        f = pred if not extra else _classes_last(pred)
        M = f.shape[0]
        if isinstance(target, np.ndarray) and np.issubdtype(target.dtype, np.integer):
            if target.shape != (N,) + extra:
                raise ValueError(f"target: expected integer labels of shape {(N,) + extra}, got {target.shape}")
            labels = check_labels("target", target.reshape(-1), M, C, ignore=self.ignore_index)
            count = label_weight_sum(labels, w, self.ignore_index)
            scale = self._scale(count)
            s, p = cross_entropy_forward(f, labels, w, eps, self.ignore_index, 0.0 if math.isnan(scale) else scale)
            self._saved = (p, labels, w, False, count, pred.shape)
        else:
            if isinstance(target, np.ndarray) and target.shape != pred.shape:
                raise ValueError(f"target: expected integer labels of shape {(N,) + extra} or class "
                                 f"probabilities of shape {pred.shape}, got {target.shape}")
            target = check_array("target", target, dtype=pred.dtype)
            y = target if not extra else _classes_last(target)
            scale = self._scale(M)
            s, p = cross_entropy_soft_forward(f, y, w, eps, scale)
            self._saved = (p, y, w, True, M, pred.shape)
        return math.nan if math.isnan(scale) else s

    def _scale(self, count):
        if self.reduction == "mean" and count == 0:
            return math.nan           # PyTorch: 0/0 when every row is ignored or weighs 0
        return super()._scale(count)

    def backward(self):
        p, target, w, soft, count, shape = self._need_forward()
        scale = self._scale(count)
        if soft:
            df = cross_entropy_soft_backward(p, target, w, self.label_smoothing, scale)
        else:
            df = cross_entropy_backward(p, target, w, self.label_smoothing, self.ignore_index, scale)
        return df if len(shape) == 2 else _classes_back(df, shape)

    def _repr_args(self):
        return {"reduction": self.reduction, "label_smoothing": self.label_smoothing,
                "weight": self.weight, "ignore_index": self.ignore_index}


class MultiMarginLoss(Loss):
    """Multi-class hinge loss, as torch.nn.MultiMarginLoss:
    ℓ_n = (w_{y_n}/C) Σ_{i≠y_n} max(0, margin − f[n, y_n] + f[n, i])^p; "mean" divides by N.
    pred (N, C); target integer labels (N,); weight: optional class weights (C,)."""

    def __init__(self, p=1, margin=1.0, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.p = check_int("p", p, low=1, high=2)
        self.margin = check_float("margin", margin)
        self.weight = _class_weight("weight", weight)

    def forward(self, pred, target):
        pred = _check_logits(pred)
        N, C = pred.shape
        w = _weight_for("weight", self.weight, C)
        labels = check_labels("target", target, N, C)
        self._saved = (pred, labels, w)
        return multi_margin_forward(pred, labels, w, self.p, self.margin, self._scale(N))

    def backward(self):
        f, labels, w = self._need_forward()
        return multi_margin_backward(f, labels, w, self.p, self.margin, self._scale(f.shape[0]))

    def _repr_args(self):
        return {"p": self.p, "margin": self.margin, "weight": self.weight,
                "reduction": self.reduction}
