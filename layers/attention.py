"""Attention: scaled dot-product attention and multi-head attention (notes 000 §9, 003 §2.6,
004 §5.5), as torch.nn.functional.scaled_dot_product_attention and torch.nn.MultiheadAttention.

Self-attention in the notes' column-vector notation (000 §9): the queries, keys and values of D
inputs x_1 … x_D are q_i = β_q + Ω_q x_i, k_j = β_k + Ω_k x_j, v_j = β_v + Ω_v x_j; output i is
a weighted sum of the values, y_i = Σ_j a[x_j, x_i] v_j, with weights a softmax over the keys of
the query's dot products. Scaled dot-product attention (003 §2.6, eq. 2.8), one row per query:

    S = Q Kᵀ / √d_k          (L, S)     S[i, j] = q_i · k_j / √d_k  (+ an additive mask)
    P = softmax(S)           (L, S)     row by row over the keys j allowed for query i
    Y = P V                  (L, Ev)

and its backward, from ∂ℓ/∂Y (and a gradient ∂ℓ/∂P reaching P directly, when P is an output):

    ∂ℓ/∂V = Pᵀ ∂ℓ/∂Y                             (S, Ev)
    ∂ℓ/∂P = ∂ℓ/∂Y Vᵀ                             (L, S)
    ∂ℓ/∂S = P ⊙ (∂ℓ/∂P − rowsum(∂ℓ/∂P ⊙ P))      (L, S)    the softmax's Jacobian, row by row
    ∂ℓ/∂Q = ∂ℓ/∂S K / √d_k                       (L, E)
    ∂ℓ/∂K = ∂ℓ/∂Sᵀ Q / √d_k                      (S, E)

Batch-first rows: the notes' column vectors q_i, k_j, v_j are the rows of Q (L, E), K (S, E),
V (S, Ev) (one query or key per row, as torch), so Ω_q x_i is a row x_i Ω_qᵀ and the kernels run
over a leading axis B of independent problems (batch × heads): q (B, L, E), k (B, S, E),
v (B, S, Ev) -> y (B, L, Ev), p (B, L, S).

Masks (torch's conventions):
- causal (`is_causal=True`): query i sees keys j ≤ i (top-left aligned when L ≠ S, as torch).
  Done by loop bounds: the keys j > i are never visited (the fast kernels also skip whole
  blocks of QKᵀ above the diagonal), not by adding −∞. `causal_mask(size)` gives the boolean mask
  for code that wants the array.
- boolean `attn_mask`: True where attention is NOT allowed; such keys are skipped.
- float `attn_mask`: added to S (−∞ entries allowed; NaN and +∞ refused).
- `key_padding_mask` (MultiheadAttention): (N, S), True (or −∞ when float) at padded keys.
A query whose every key is masked gets P = 0 and Y = 0 (torch gives NaN there): documented,
never a silent NaN; its gradients are zero.

Dropout on P (train mode, p > 0): Y = (P ⊙ M) V with M = 𝟙[u ≥ p]/(1 − p), so ∂ℓ/∂V = (P⊙M)ᵀ ∂ℓ/∂Y
and ∂ℓ/∂P = M ⊙ ∂ℓ/∂Y Vᵀ. `fix_mask=True` keeps the first mask drawn (per shape) until
`resample()`, so that gradient checks see a fixed function (as layers.dropout.Dropout).
ScaledDotProductAttention returns P before dropout (its `dp` adds to ∂ℓ/∂P); MultiheadAttention
returns the weights after dropout, as torch (their gradient adds to ∂ℓ/∂(P⊙M)).

Multi-head attention (torch.nn.MultiheadAttention): H heads of width d = E/H,
    Q = query W_qᵀ + b_q,  K = key W_kᵀ + b_k,  V = value W_vᵀ + b_v       (W_q, W_k, W_v the three
    row blocks of in_proj_weight (3E, E), or q/k/v_proj_weight when kdim or vdim ≠ E)
    head h: Y_h = softmax(Q_h K_hᵀ/√d + mask) V_h on the columns h·d … (h+1)·d
    out = [Y_1 … Y_H] W_oᵀ + b_o                                           (out_proj)
The backward runs the same three steps in reverse: out_proj's (layers.dense kernels), each head's
attention backward, the projections' (their weight gradients accumulate into in_proj_weight's
row blocks). Shapes as torch: query (L, N, E), key (S, N, kdim), value (S, N, vdim) ((N, L, E) …
with batch_first; (L, E) … unbatched); attn_output like query; attn_weights (N, L, S) averaged over
heads, (N, H, L, S) with average_attn_weights=False, None with need_weights=False.

Reading order: the reference kernels (loops over the equations), the Layer classes, the fast
kernels: prange over chunks of the B = batch × heads problems, BLAS gemm per problem (one BLAS
thread, engine.threads), causal attention in row blocks whose QKᵀ stops at the block's diagonal,
a vectorised exponential. On the reference path MultiheadAttention copies each head into a
contiguous (N·H, T, d) problem; the fast kernels read the heads in place from the projections'
(rows, E) outputs and write Y into the heads' concatenation (a row stride as BLAS's leading
dimension), so no head is copied. Self-attention (one array as query, key and value) projects once,
x W_inᵀ + b_in of width 3E, and the kernels read Q, K, V as its column blocks.
"""
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from engine.blas import NO_TRANS, TRANS, gemm_at, gemm_for, transpose_rows
from engine.checks import check_array, check_bool, check_dtype, check_float, check_int, check_rng
from engine.core import Layer, Parameter, input_grad_flags, no_grad, use_reference
from engine.init import xavier_uniform
from engine.numerics import FASTMATH, exp_shifted, row_max
from engine.threads import chunks_for, parallel_call
from layers.dense import Linear, linear_backward, linear_backward_ref, linear_forward, linear_forward_ref

__all__ = ["causal_mask", "scaled_dot_product_attention", "ScaledDotProductAttention", "MultiheadAttention"]


def causal_mask(size):
    """The causal mask as a boolean array (size, size): True above the diagonal (key j > query i),
    = NOT allowed, torch's boolean convention. The layers do causal attention by loop bounds
    (`is_causal=True`); this array is for code that wants the mask itself (figures, torch)."""
    size = check_int("size", size, low=1)
    return np.triu(np.ones((size, size), np.bool_), 1)


# ---------------------------------------------------------------------------------------------
# reference kernels: the equations above as loops, one query row at a time
# ---------------------------------------------------------------------------------------------
# Mask arguments (both paths): bm (Mb, Lb, S) bool, True = not allowed, and am (Ma, La, S) float,
# added to S; problem b reads bm[b // bdiv] (Mb · bdiv = B, or Mb = 1), query row i reads row i
# (or row 0 when Lb = 1: a key padding mask). has_bm / has_am say whether they are used (a dummy
# (1, 1, 1) array otherwise). drop (B, L, S): the dropout mask M (0 or 1/(1 − p)), when has_drop.
@njit(cache=True)
def attention_forward_ref(q, k, v, scale, causal, bm, bdiv, has_bm, am, adiv, has_am, drop, has_drop):
    """S = QKᵀ·scale (+ am), P = softmax(S) over the allowed keys, Y = (P ⊙ M) V, per problem b.
    q (B, L, E), k (B, S, E), v (B, S, Ev) -> (y (B, L, Ev), p (B, L, S)); masked keys and keys
    j > i (causal) are never visited and keep p = 0; a row with no allowed key keeps p = y = 0."""
    B, L, E = q.shape
    S, Ev = k.shape[1], v.shape[2]
    y = np.zeros((B, L, Ev), q.dtype)
    p = np.zeros((B, L, S), q.dtype)
    s = np.empty(S, q.dtype)
    ok = np.zeros(S, np.bool_)
    for b in range(B):
        for i in range(L):
            jmax = min(i + 1, S) if causal else S          # causal: keys j ≤ i only
            m = -np.inf
            for j in range(jmax):
                ok[j] = not (has_bm and bm[b // bdiv, i if bm.shape[1] > 1 else 0, j])
                if not ok[j]:
                    continue                                # a masked key: skipped
                t = 0.0
                for e in range(E):
                    t += q[b, i, e] * k[b, j, e]
                t *= scale
                if has_am:
                    t += am[b // adiv, i if am.shape[1] > 1 else 0, j]
                s[j] = t
                m = max(m, t)
            if m == -np.inf:
                continue                                    # every key masked: p and y stay 0
            z = 0.0
            for j in range(jmax):
                if ok[j]:
                    p[b, i, j] = np.exp(s[j] - m)           # max-shifted: no overflow
                    z += p[b, i, j]
            for j in range(jmax):
                p[b, i, j] /= z
            for j in range(jmax):
                a = p[b, i, j] * (drop[b, i, j] if has_drop else 1.0)
                for e in range(Ev):
                    y[b, i, e] += a * v[b, j, e]
    return y, p


@njit(cache=True)
def attention_backward_ref(dy, dpx, has_dpx, post, q, k, v, p, scale, causal, drop, has_drop):
    """From ∂ℓ/∂Y (B, L, Ev) and the forward's P: returns (∂ℓ/∂Q, ∂ℓ/∂K, ∂ℓ/∂V).
    dpx (B, L, S), when has_dpx: a gradient reaching the probabilities directly, added to
    ∂ℓ/∂(P ⊙ M) when `post` (MultiheadAttention's weights) or to ∂ℓ/∂P (ScaledDotProductAttention's p).
        ∂ℓ/∂A = ∂ℓ/∂Y Vᵀ, A = P ⊙ M;  ∂ℓ/∂P = M ⊙ ∂ℓ/∂A;  ∂ℓ/∂V = Aᵀ ∂ℓ/∂Y
        ∂ℓ/∂S = P ⊙ (∂ℓ/∂P − rowsum(∂ℓ/∂P ⊙ P));  ∂ℓ/∂Q = ∂ℓ/∂S K·scale;  ∂ℓ/∂K = ∂ℓ/∂Sᵀ Q·scale
    Masked keys have P = 0, hence ∂ℓ/∂S = 0: no mask is needed here."""
    B, L, E = q.shape
    S, Ev = k.shape[1], v.shape[2]
    dq = np.zeros_like(q)
    dk = np.zeros_like(k)
    dv = np.zeros_like(v)
    dP = np.empty(S, q.dtype)
    for b in range(B):
        for i in range(L):
            jmax = min(i + 1, S) if causal else S
            c = 0.0
            for j in range(jmax):
                d = drop[b, i, j] if has_drop else 1.0
                dA = 0.0
                for e in range(Ev):
                    dA += dy[b, i, e] * v[b, j, e]          # ∂ℓ/∂A = ∂ℓ/∂Y Vᵀ
                    dv[b, j, e] += p[b, i, j] * d * dy[b, i, e]     # ∂ℓ/∂V = Aᵀ ∂ℓ/∂Y
                if has_dpx and post:
                    dA += dpx[b, i, j]
                dP[j] = d * dA                              # ∂ℓ/∂P = M ⊙ ∂ℓ/∂A
                if has_dpx and not post:
                    dP[j] += dpx[b, i, j]
                c += dP[j] * p[b, i, j]                     # rowsum(∂ℓ/∂P ⊙ P)
            for j in range(jmax):
                dS = p[b, i, j] * (dP[j] - c) * scale       # ∂ℓ/∂S (with the scale of S = QKᵀ·scale)
                for e in range(E):
                    dq[b, i, e] += dS * k[b, j, e]
                    dk[b, j, e] += dS * q[b, i, e]
    return dq, dk, dv


# ---------------------------------------------------------------------------------------------
# argument checks and mask preparation (shared by the layers)
# ---------------------------------------------------------------------------------------------
def _check_mask(name, mask, dtype):
    """A mask array: bool, or float of the layer's dtype with no NaN and no +∞ (−∞ = masked)."""
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray (bool, or {np.dtype(dtype)} additive) or None, "
                        f"got {type(mask).__name__}")
    if mask.dtype != np.bool_ and mask.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype bool (True = not allowed) or {np.dtype(dtype)} (added to the "
                        f"scores), got {mask.dtype}")
    if mask.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {mask.shape}")
    if mask.dtype != np.bool_ and (np.isnan(mask).any() or (mask == np.inf).any()):
        raise ValueError(f"{name}: expected finite values or -inf (masked), got NaN or +inf")
    return np.ascontiguousarray(mask)


def _mask_args(masks, B, L, S, dtype):
    """The kernels' mask arguments from a list of (mask, per) pairs: mask of shape (M, Lm, S),
    M ∈ {1, B/per·…}: problem b reads mask[b // div]. Boolean masks are merged with `or`, float
    ones summed (each only when given). -> (bm, bdiv, has_bm, am, adiv, has_am)."""
    bools = [m for m in masks if m.dtype == np.bool_]
    floats = [m for m in masks if m.dtype != np.bool_]

    def merge(ms, op):
        if not ms:
            return None
        M = max(m.shape[0] for m in ms)
        Lm = max(m.shape[1] for m in ms)
        out = np.broadcast_to(ms[0], (M, Lm, S)).copy()
        for m in ms[1:]:
            out = op(out, m)
        return np.ascontiguousarray(out)
    bm = merge(bools, np.logical_or)
    am = merge(floats, np.add)
    dummy_b, dummy_f = np.zeros((1, 1, 1), np.bool_), np.zeros((1, 1, 1), dtype)
    if bm is None:
        bm_args = (dummy_b, B, False)
    else:
        bm_args = (bm, B // bm.shape[0], True)
    if am is None:
        am_args = (dummy_f, B, False)
    else:
        am_args = (am, B // am.shape[0], True)
    return bm_args + am_args


def _draw_mask(layer, shape):
    """A dropout mask 𝟙[u ≥ p]/(1 − p) of `shape` from the layer's generator (kept while
    fix_mask holds and the shape is the same)."""
    m = layer._fixed_mask
    if not (layer.fix_mask and m is not None and m.shape == shape):
        p = layer.dropout
        m = np.zeros(shape, layer.dtype) if p == 1 else \
            ((layer.generator.random(shape) >= p) / (1.0 - p)).astype(layer.dtype)
        layer._fixed_mask = m
    return m


def _contiguous_layout(L, S, E, Ev):
    """The fast kernels' layout (see `_off`) of contiguous q (B, L, E), k (B, S, E), v (B, S, Ev),
    y (B, L, Ev): one head per problem."""
    return np.array([[L * E, 0, E], [S * E, 0, E], [S * Ev, 0, Ev], [L * Ev, 0, Ev]], np.int64)


def _fast_attention(q, k, v, y, lay, B, H, L, S, E, Ev, scale, causal, margs, drop, fill=True):
    """The fast forward on flat operands in layout `lay`; writes y, returns p (B, L, S). fill=False
    (P not returned, only read by the backward): causal rows keep garbage right of their block's keys."""
    dtype = q.dtype
    has_drop = drop is not None
    d = drop if has_drop else np.zeros((1, 1, 1), dtype)
    n = chunks_for(B, min_rows=1, row_cost=L * S * (E + Ev))
    return parallel_call(attention_forward, n, q, k, v, y, lay, B, H, L, S, E, Ev, float(scale), causal, *margs, d,
                         has_drop, fill, gemm_for(dtype))


def _fast_attention_backward(dy, dpx, post, q, k, v, p, dq, dk, dv, lay, H, E, Ev, scale, causal, drop):
    """The fast backward on flat operands in layout `lay`; writes dq, dk, dv."""
    dtype = q.dtype
    has_drop, has_dpx = drop is not None, dpx is not None
    d = drop if has_drop else np.zeros((1, 1, 1), dtype)
    g = dpx if has_dpx else np.zeros((1, 1, 1), dtype)
    B, L, S = p.shape
    n = chunks_for(B, min_rows=1, row_cost=L * S * (2 * E + 2 * Ev))
    parallel_call(attention_backward, n, dy, g, has_dpx, post, q, k, v, p, dq, dk, dv, lay, H, E, Ev, float(scale),
                  causal, d, has_drop, gemm_for(dtype))


def _attention(q, k, v, scale, causal, margs, drop):
    """The forward of the current path on contiguous (B, L, E) problems -> (y, p)."""
    dtype = q.dtype
    if use_reference():
        d = drop if drop is not None else np.zeros((1, 1, 1), dtype)
        return attention_forward_ref(q, k, v, float(scale), causal, *margs, d, drop is not None)
    B, L, E = q.shape
    S, Ev = v.shape[1:]
    y = np.empty((B, L, Ev), dtype)
    p = _fast_attention(q.reshape(-1), k.reshape(-1), v.reshape(-1), y.reshape(-1), _contiguous_layout(L, S, E, Ev),
                        B, 1, L, S, E, Ev, scale, causal, margs, drop)
    return y, p


def _attention_backward(dy, dpx, post, q, k, v, p, scale, causal, drop):
    """The backward of the current path on contiguous (B, L, E) problems -> (dq, dk, dv)."""
    dtype = q.dtype
    if use_reference():
        d = drop if drop is not None else np.zeros((1, 1, 1), dtype)
        g = dpx if dpx is not None else np.zeros((1, 1, 1), dtype)
        return attention_backward_ref(dy, g, dpx is not None, post, q, k, v, p, float(scale), causal, d,
                                      drop is not None)
    B, L, E = q.shape
    S, Ev = v.shape[1:]
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    _fast_attention_backward(dy.reshape(-1), dpx, post, q.reshape(-1), k.reshape(-1), v.reshape(-1), p,
                             dq.reshape(-1), dk.reshape(-1), dv.reshape(-1), _contiguous_layout(L, S, E, Ev), 1, E, Ev,
                             scale, causal, drop)
    return dq, dk, dv


def _grad_or_none(name, g, shape, dtype):
    if g is None:
        return None
    return check_array(name, g, shape=shape, dtype=dtype, finite=False)


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
def _check_qkv(q, k, v, dtype, names=("q", "k", "v")):
    nq, nk, nv = names
    q = check_array(nq, q, dtype=dtype)
    k = check_array(nk, k, dtype=dtype)
    v = check_array(nv, v, dtype=dtype)
    for n, a in zip(names, (q, k, v)):
        if a.ndim < 2:
            raise ValueError(f"{n}: expected an array of at least 2 dimensions (..., length, features), "
                             f"got shape {a.shape}")
    if not (q.shape[:-2] == k.shape[:-2] == v.shape[:-2]):
        raise ValueError(f"{nq}, {nk}, {nv}: expected the same leading (batch) dimensions, got {nq} {q.shape}, "
                         f"{nk} {k.shape}, {nv} {v.shape}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"{nq}, {nk}: expected the same feature width E (q (..., L, E), k (..., S, E)), "
                         f"got {nq} {q.shape} and {nk} {k.shape}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"{nk}, {nv}: expected the same length S (k (..., S, E), v (..., S, Ev)), "
                         f"got {nk} {k.shape} and {nv} {v.shape}")
    return q, k, v


def scaled_dot_product_attention(q, k, v, attn_mask=None, is_causal=False, scale=None):
    """Forward only (no state saved): (y, p) with y = softmax(QKᵀ·scale + mask) V and p the
    attention probabilities (torch's function returns y alone; p is what figures draw).
    q (..., L, E), k (..., S, E), v (..., S, Ev) of one float dtype; attn_mask as
    ScaledDotProductAttention.forward; scale None: 1/√E."""
    q = check_array("q", q)
    layer = ScaledDotProductAttention(dtype=q.dtype.type)
    with no_grad():
        return layer.forward(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale, train=False)


class ScaledDotProductAttention(Layer):
    """y = softmax(QKᵀ/√E + mask) V with dropout on the probabilities in train mode
    (torch.nn.functional.scaled_dot_product_attention as a layer).

    forward(q, k, v, attn_mask=None, is_causal=False, scale=None, train=True) -> (y, p):
    q (..., L, E), k (..., S, E), v (..., S, Ev) with the same leading dimensions (not broadcast);
    y (..., L, Ev); p (..., L, S) the probabilities softmax(S) BEFORE dropout. attn_mask: bool
    (True = not allowed) or float (added to S, −∞ allowed) of the layer's dtype, broadcastable to
    (..., L, S). is_causal: query i sees keys j ≤ i (loop bounds); given with attn_mask, both apply
    (torch refuses the pair). scale: None for 1/√E. Note: the boolean mask follows
    nn.MultiheadAttention's sense (True = NOT allowed), the one convention of the whole engine;
    F.scaled_dot_product_attention reads a boolean mask the other way (True = allowed).
    A query with no allowed key gets p = 0 and y = 0 (torch: NaN).
    backward(dy, dp=None) -> (dq, dk, dv); dp is a gradient for the returned p (None: zero).
    dropout, rng, fix_mask: as layers.dropout.Dropout (the mask is drawn from self.generator)."""

    def __init__(self, dropout=0.0, rng=None, dtype=np.float64, fix_mask=False):
        self.dropout = check_float("dropout", dropout, low=0, high=1)
        self.dtype = check_dtype(dtype)
        self.fix_mask = check_bool("fix_mask", fix_mask)
        self.set_generator(rng)
        self.stochastic = self.dropout > 0
        self._fixed_mask = None

    def resample(self):
        """Forget the fixed dropout mask: the next train-mode forward draws a new one."""
        self._fixed_mask = None

    def forward(self, q, k, v, attn_mask=None, is_causal=False, scale=None, train=True):
        train = check_bool("train", train)
        is_causal = check_bool("is_causal", is_causal)
        q, k, v = _check_qkv(q, k, v, self.dtype)
        lead, (L, E), (S, Ev) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
        if scale is None:
            scale = 1.0 / math.sqrt(E)
        else:
            scale = check_float("scale", scale)
        B = int(np.prod(lead)) if lead else 1
        masks = []
        if attn_mask is not None:
            m = _check_mask("attn_mask", attn_mask, self.dtype)
            try:
                np.broadcast_shapes(m.shape, lead + (L, S))
            except ValueError:
                raise ValueError(f"attn_mask: expected a shape broadcastable to {lead + (L, S)} (..., L, S), "
                                 f"got {m.shape}") from None
            if m.ndim > len(lead) + 2:
                raise ValueError(f"attn_mask: expected at most {len(lead) + 2} dimensions (..., L, S), got {m.shape}")
            if all(s == 1 for s in m.shape[:-2]):     # one (Lm, S) mask for every problem
                m2 = m.reshape(m.shape[-2:] if m.ndim >= 2 else (1, m.shape[-1]))
                m = np.broadcast_to(m2, (m2.shape[0], S))[None]
            else:
                m = np.broadcast_to(m, lead + (L, S)).reshape(B, L, S)
            masks.append(np.ascontiguousarray(m))
        drop = _draw_mask(self, (B, L, S)) if train and self.dropout > 0 else None
        margs = _mask_args(masks, B, L, S, self.dtype)
        q3, k3, v3 = q.reshape(B, L, E), k.reshape(B, S, E), v.reshape(B, S, Ev)
        y, p = _attention(q3, k3, v3, scale, is_causal, margs, drop)
        self._save(q3, k3, v3, p, drop, scale, is_causal, lead)
        return y.reshape(lead + (L, Ev)), p.reshape(lead + (L, S))

    def backward(self, dy, dp=None, *, input_grad=True):
        q, k, v, p, drop, scale, causal, lead = self._saved()
        B, L, E = q.shape
        S, Ev = v.shape[1:]
        dy = check_array("dy", dy, shape=lead + (L, Ev), dtype=self.dtype, finite=False)
        dp = _grad_or_none("dp", dp, lead + (L, S), self.dtype)
        flags = input_grad_flags(input_grad, 3)
        self._release()
        dq, dk, dv = _attention_backward(dy.reshape(B, L, Ev), None if dp is None else dp.reshape(B, L, S),
                                         False, q, k, v, p, scale, causal, drop)
        out = (dq.reshape(lead + (L, E)), dk.reshape(lead + (S, E)), dv.reshape(lead + (S, Ev)))
        return tuple(o if f else None for o, f in zip(out, flags))

    def extra_repr(self):
        return {"dropout": self.dropout}


class MultiheadAttention(Layer):
    """torch.nn.MultiheadAttention (module docstring for the equations).

    MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True, *, kdim=None, vdim=None,
    batch_first=False, dtype=np.float64, rng=None, fix_mask=False). The arguments after `bias`
    are keyword-only: torch's positional order has add_bias_kv and add_zero_attn there, which this
    layer does not have, so a positional call written for torch fails loudly instead of misreading.
    Parameters and state_dict keys as torch: in_proj_weight (3E, E) (or q_proj_weight (E, E),
    k_proj_weight (E, kdim), v_proj_weight (E, vdim) when kdim or vdim ≠ E), in_proj_bias (3E,),
    out_proj.weight (E, E), out_proj.bias (E,). Initial values as torch: xavier_uniform on
    in_proj_weight (or on each of q/k/v_proj_weight), zero biases, out_proj.weight as a Linear's
    (U(±1/√E)).

    forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False, train=True) -> (attn_output, attn_weights)
      query (L, N, E), key (S, N, kdim), value (S, N, vdim) ((N, L, E), … with batch_first;
      (L, E), (S, kdim), (S, vdim) unbatched); key_padding_mask (N, S) ((S,) unbatched), bool
      (True = padding, ignored) or float (added); attn_mask (L, S) or (N·num_heads, L, S)
      ((num_heads, L, S) unbatched), bool (True = not allowed) or float (added); is_causal: query
      i sees keys j ≤ i, by loop bounds (unlike torch, no attn_mask is needed with it; given both,
      both apply). attn_weights: (N, L, S) averaged over heads, (N, num_heads, L, S) with
      average_attn_weights=False, after dropout as torch; None with need_weights=False.
      A query with every key masked gets zero weights and a zero attention result (torch: NaN).
    backward(d_out, d_weights=None, input_grad=True, summed=False) -> (d_query, d_key, d_value);
      d_weights is a gradient for attn_weights (None: zero; must be None when need_weights was
      False). When one array was passed as query, key and value, its gradient is the sum of the
      three; summed=True returns that sum alone (query, key and value of one shape; input_grad a
      bool). Self-attention (the one array passed three times, kdim = vdim = embed_dim) runs on the
      fast path as one projection x W_inᵀ + b_in of width 3E whose column blocks are Q, K, V, and its
      backward as one ∂ℓ/∂W_in product and, with summed=True, one ∂ℓ/∂x = ∂ℓ/∂[Q K V] W_in product
      (a transformer layer's call), instead of three each and a sum.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, *, kdim=None, vdim=None,
                 batch_first=False, dtype=np.float64, rng=None, fix_mask=False):
        self.embed_dim = check_int("embed_dim", embed_dim, low=1)
        self.num_heads = check_int("num_heads", num_heads, low=1)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim, num_heads: expected embed_dim divisible by num_heads, "
                             f"got embed_dim={self.embed_dim}, num_heads={self.num_heads}")
        self.dropout = check_float("dropout", dropout, low=0, high=1)
        self.bias = check_bool("bias", bias)
        self.kdim = self.embed_dim if kdim is None else check_int("kdim", kdim, low=1)
        self.vdim = self.embed_dim if vdim is None else check_int("vdim", vdim, low=1)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dtype = check_dtype(dtype)
        self.fix_mask = check_bool("fix_mask", fix_mask)
        given = rng is not None
        rng = check_rng("rng", rng)                    # every argument checked before the first draw
        E = self.embed_dim
        self.head_dim = E // self.num_heads
        self._qkv_same_embed_dim = self.kdim == E and self.vdim == E
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(xavier_uniform((3 * E, E), rng=rng, dtype=self.dtype))
        else:
            self.q_proj_weight = Parameter(xavier_uniform((E, E), rng=rng, dtype=self.dtype))
            self.k_proj_weight = Parameter(xavier_uniform((E, self.kdim), rng=rng, dtype=self.dtype))
            self.v_proj_weight = Parameter(xavier_uniform((E, self.vdim), rng=rng, dtype=self.dtype))
        if self.bias:
            self.in_proj_bias = Parameter(np.zeros(3 * E, self.dtype))
        self.out_proj = Linear(E, E, bias=self.bias, dtype=self.dtype, rng=rng)
        if self.bias:
            self.out_proj.bias.value[...] = 0
        self._zero_bias = np.zeros(3 * E, self.dtype)
        if given:
            self.set_generator(rng)                    # dropout masks continue the same stream
        self.stochastic = self.dropout > 0
        self._fixed_mask = None

    def resample(self):
        """Forget the fixed dropout mask: the next train-mode forward draws a new one."""
        self._fixed_mask = None

    # ---- the three projections: (weight, its gradient, bias, its gradient) ----
    def _proj(self, j):
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            W, dW = self.in_proj_weight.value[j * E:(j + 1) * E], self.in_proj_weight.grad[j * E:(j + 1) * E]
        else:
            p = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)[j]
            W, dW = p.value, p.grad
        if self.bias:
            b, db = self.in_proj_bias.value[j * E:(j + 1) * E], self.in_proj_bias.grad[j * E:(j + 1) * E]
        else:
            b, db = self._zero_bias[j * E:(j + 1) * E], np.zeros(E, self.dtype)
        return W, dW, b, db

    def _out(self):
        o = self.out_proj
        b = o.bias.value if self.bias else self._zero_bias[:self.embed_dim]
        db = o.bias.grad if self.bias else np.zeros(self.embed_dim, self.dtype)
        return o.weight.value, o.weight.grad, b, db

    # ---- checks ----
    def _check_inputs(self, query, key, value):
        E, dt = self.embed_dim, self.dtype
        query = check_array("query", query, dtype=dt)
        key = check_array("key", key, dtype=dt)
        value = check_array("value", value, dtype=dt)
        order = "(N, {L}, {w})" if self.batch_first else "({L}, N, {w})"
        for name, a, L, w in (("query", query, "L", E), ("key", key, "S", self.kdim), ("value", value, "S", self.vdim)):
            if a.ndim not in (2, 3) or a.shape[-1] != w:
                raise ValueError(f"{name}: expected a 3-dimensional array {order.format(L=L, w=w)} (or 2-dimensional "
                                 f"({L}, {w}), unbatched) with last dimension {w}, got shape {a.shape}")
        if not (query.ndim == key.ndim == value.ndim):
            raise ValueError(f"query, key, value: expected all 3-dimensional (batched) or all 2-dimensional "
                             f"(unbatched), got query {query.shape}, key {key.shape}, value {value.shape}")
        unbatched = query.ndim == 2
        if unbatched:
            N, L, S = 1, query.shape[0], key.shape[0]
            q3, k3, v3 = query[None], key[None], value[None]
        elif self.batch_first:
            N, L, S = query.shape[0], query.shape[1], key.shape[1]
            q3, k3, v3 = query, key, value
        else:
            N, L, S = query.shape[1], query.shape[0], key.shape[0]
            q3, k3, v3 = query, key, value
        if not unbatched:
            bax = 0 if self.batch_first else 1
            if key.shape[bax] != N or value.shape[bax] != N:
                raise ValueError(f"query, key, value: expected the same batch size N (axis {bax}), got query "
                                 f"{query.shape}, key {key.shape}, value {value.shape}")
        lax = 0 if (unbatched or not self.batch_first) else 1
        if key.shape[lax] != value.shape[lax]:
            raise ValueError(f"key, value: expected the same length S (axis {lax}), got key {key.shape}, "
                             f"value {value.shape}")
        return (q3, k3, v3), (N, L, S), unbatched

    def _check_masks(self, key_padding_mask, attn_mask, N, L, S, unbatched):
        """The masks in the kernels' (M, Lm, S) form, with their problem index b = n·H + h."""
        H = self.num_heads
        masks = []
        if key_padding_mask is not None:
            m = _check_mask("key_padding_mask", key_padding_mask, self.dtype)
            want = (S,) if unbatched else (N, S)
            if m.shape != want:
                raise ValueError(f"key_padding_mask: expected shape {want} ({'S' if unbatched else 'N, S'}), "
                                 f"got {m.shape}")
            masks.append(np.repeat(m.reshape(N, 1, S), H, axis=0))      # problem b = n·H + h
        if attn_mask is not None:
            m = _check_mask("attn_mask", attn_mask, self.dtype)
            three = (H, L, S) if unbatched else (N * H, L, S)
            if m.shape == (L, S):
                m = m.reshape(1, L, S)
            elif m.shape != three:
                raise ValueError(f"attn_mask: expected shape {(L, S)} (L, S) or {three} "
                                 f"({'num_heads' if unbatched else 'N·num_heads'}, L, S), got {m.shape}")
            masks.append(m)
        return masks

    # ---- forward / backward ----
    def _heads(self, X, N, T, bf):
        """Projected rows (N·T when batch-first `bf`, else T·N, E) -> (N·H, T, d) contiguous, problem
        b = n·H + h."""
        H, d = self.num_heads, self.head_dim
        if bf:
            return np.ascontiguousarray(X.reshape(N, T, H, d).transpose(0, 2, 1, 3)).reshape(N * H, T, d)
        return np.ascontiguousarray(X.reshape(T, N, H, d).transpose(1, 2, 0, 3)).reshape(N * H, T, d)

    def _rows(self, Y, N, T, bf):
        """(N·H, T, d) -> rows in the input's layout (N·T or T·N, E): the inverse of _heads."""
        H, d = self.num_heads, self.head_dim
        Y = Y.reshape(N, H, T, d)
        if bf:
            return np.ascontiguousarray(Y.transpose(0, 2, 1, 3)).reshape(N * T, H * d)
        return np.ascontiguousarray(Y.transpose(2, 0, 1, 3)).reshape(T * N, H * d)

    def _layout(self, N, L, S, bf, w):
        """The fast kernels' layout (see `_off`) of the heads inside the projections: Q, K, V in
        arrays of rows of w elements (E, or 3E for the column blocks of one (rows, 3E) product),
        Y in (rows, E); batch-first rows n·T + t, or sequence-first rows t·N + n; head h at
        columns h·d …"""
        E, d = self.embed_dim, self.head_dim
        if bf:
            return np.array([[L * w, d, w], [S * w, d, w], [S * w, d, w], [L * E, d, E]], np.int64)
        return np.array([[w, d, N * w]] * 3 + [[E, d, N * E]], np.int64)

    def _linear(self, x, W, b):
        if use_reference():
            return linear_forward_ref(x, W, b)
        return parallel_call(linear_forward, chunks_for(x.shape[0], row_cost=W.size), x, W, b, gemm_for(self.dtype))

    def _linear_backward(self, df, x, W, dW, db, input_grad):
        if use_reference():
            dx = linear_backward_ref(df, x, W, dW, db)
            return dx if input_grad else None
        dx = parallel_call(linear_backward, chunks_for(df.shape[0], row_cost=W.size), df, x, W, dW, db, input_grad,
                           gemm_for(self.dtype))
        return dx if input_grad else None

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False, train=True):
        train = check_bool("train", train)
        need_weights = check_bool("need_weights", need_weights)
        average_attn_weights = check_bool("average_attn_weights", average_attn_weights)
        is_causal = check_bool("is_causal", is_causal)
        (q3, k3, v3), (N, L, S), unbatched = self._check_inputs(query, key, value)
        masks = self._check_masks(key_padding_mask, attn_mask, N, L, S, unbatched)
        H, d, E = self.num_heads, self.head_dim, self.embed_dim
        bf = self.batch_first or unbatched              # an unbatched (T, E) is one batch-first example
        xq, xk, xv = q3.reshape(-1, E), k3.reshape(-1, self.kdim), v3.reshape(-1, self.vdim)
        ref = use_reference()
        # self-attention (one array as query, key and value) on the fast path: Q, K, V are the column
        # blocks of one product x W_inᵀ + b_in (rows, 3E), read in place by the attention kernels
        fused = query is key and key is value and self._qkv_same_embed_dim and not ref
        if fused:
            Qp = self._linear(xq, self.in_proj_weight.value, self.in_proj_bias.value if self.bias else self._zero_bias)
            Kp = Vp = None
        else:
            (Wq, _, bq, _), (Wk, _, bk, _), (Wv, _, bv, _) = self._proj(0), self._proj(1), self._proj(2)
            Qp = self._linear(xq, Wq, bq)               # Q = query W_qᵀ + b_q: (rows, E), head h = columns h·d …
            Kp = self._linear(xk, Wk, bk)
            Vp = self._linear(xv, Wv, bv)
        drop = _draw_mask(self, (N * H, L, S)) if train and self.dropout > 0 else None
        margs = _mask_args(masks, N * H, L, S, self.dtype)
        scale = 1.0 / math.sqrt(d)
        if ref:                                         # heads as contiguous (N·H, T, d) problems
            Qp, Kp, Vp = self._heads(Qp, N, L, bf), self._heads(Kp, N, S, bf), self._heads(Vp, N, S, bf)
            Yh, P = _attention(Qp, Kp, Vp, scale, is_causal, margs, drop)
            cat = self._rows(Yh, N, L, bf)                               # [Y_1 … Y_H]
        else:                                           # heads read from Qp, Kp, Vp in place, Y written into cat
            cat = np.empty((N * L, E), self.dtype)
            q, k, v = self._qkv_flat(Qp, Kp, Vp, fused)
            P = _fast_attention(q, k, v, cat.reshape(-1), self._layout(N, L, S, bf, 3 * E if fused else E), N * H, H,
                                L, S, d, d, scale, is_causal, margs, drop, fill=need_weights)
        Wo, _, bo, _ = self._out()
        out = self._linear(cat, Wo, bo)                                  # out = [Y_1 … Y_H] W_oᵀ + b_o
        weights = None
        if need_weights:
            A = (P if drop is None else P * drop).reshape(N, H, L, S)
            weights = A.mean(axis=1) if average_attn_weights else A
            if unbatched:
                weights = weights[0]
        self._save(xq, xk, xv, Qp, Kp, Vp, P, drop, cat, scale, is_causal, (N, L, S), unbatched,
                   average_attn_weights, None if weights is None else weights.shape, ref, fused)
        shape = (L, E) if unbatched else ((N, L, E) if bf else (L, N, E))
        return out.reshape(shape), weights

    def _qkv_flat(self, Qp, Kp, Vp, fused):
        """The kernels' flat q, k, v: the three projections, or the column blocks 0, E, 2E of the
        fused (rows, 3E) one (flat views starting at those columns, rows 3E apart)."""
        if fused:
            f, E = Qp.reshape(-1), self.embed_dim
            return f, f[E:], f[2 * E:]
        return Qp.reshape(-1), Kp.reshape(-1), Vp.reshape(-1)

    def backward(self, d_out, d_weights=None, *, input_grad=True, summed=False):
        (xq, xk, xv, Qp, Kp, Vp, P, drop, cat, scale, causal, (N, L, S), unbatched,
         average, wshape, ref, fused) = self._saved()
        E, H = self.embed_dim, self.num_heads
        summed = check_bool("summed", summed)
        if summed and not (xq.shape == xk.shape == xv.shape):
            raise ValueError(f"summed: expected query, key and value of one shape (self-attention), got widths/lengths "
                             f"query {xq.shape}, key {xk.shape}, value {xv.shape} (as rows, width)")
        if summed and not isinstance(input_grad, (bool, np.bool_)):
            raise TypeError(f"input_grad: expected a bool with summed=True (one gradient), got {input_grad!r}")
        bf = self.batch_first or unbatched
        oshape = (L, E) if unbatched else ((N, L, E) if bf else (L, N, E))
        d_out = check_array("d_out", d_out, shape=oshape, dtype=self.dtype, finite=False)
        if d_weights is not None and wshape is None:
            raise ValueError("d_weights: expected None (the forward ran with need_weights=False and returned no "
                             f"weights), got {type(d_weights).__name__}")
        d_weights = _grad_or_none("d_weights", d_weights, wshape, self.dtype)
        flags = input_grad_flags(input_grad, 3)
        self._release()
        Wo, dWo, _, dbo = self._out()
        dcat = self._linear_backward(d_out.reshape(-1, E), cat, Wo, dWo, dbo, True)
        dpx = None
        if d_weights is not None:                       # ∂ℓ/∂(P ⊙ M) of each head
            g = d_weights.reshape((N, 1, L, S) if average else (N, H, L, S))
            if average:
                g = g / H                               # the mean over heads: each head gets 1/H of it
            dpx = np.ascontiguousarray(np.broadcast_to(g, (N, H, L, S))).reshape(N * H, L, S)
        d = self.head_dim
        if fused:                                       # ∂ℓ/∂[Q K V] (rows, 3E) in one array, then one product each
            dQKV = np.empty_like(Qp)                    # for ∂ℓ/∂W_in and ∂ℓ/∂x (the sum of the three input gradients)
            q, k, v = self._qkv_flat(Qp, None, None, True)
            dq, dk, dv = self._qkv_flat(dQKV, None, None, True)
            _fast_attention_backward(dcat.reshape(-1), dpx, True, q, k, v, P, dq, dk, dv,
                                     self._layout(N, L, S, bf, 3 * E), H, d, d, scale, causal, drop)
            shape = (L, E) if unbatched else ((N, L, E) if bf else (L, N, E))
            dbias = self.in_proj_bias.grad if self.bias else np.zeros(3 * E, self.dtype)
            if summed:
                dx = self._linear_backward(dQKV, xq, self.in_proj_weight.value, self.in_proj_weight.grad, dbias,
                                           flags[0])
                return None if dx is None else dx.reshape(shape)
            self._linear_backward(dQKV, xq, self.in_proj_weight.value, self.in_proj_weight.grad, dbias, False)
            out = []
            for j in range(3):                          # each input's own gradient ∂ℓ/∂[Q K V]_j W_j
                dx = None
                if flags[j]:
                    W = self.in_proj_weight.value[j * E:(j + 1) * E]
                    dx = (np.ascontiguousarray(dQKV[:, j * E:(j + 1) * E]) @ W).reshape(shape)
                out.append(dx)
            return tuple(out)
        if ref:                                         # the path the forward ran (saved with the call)
            dQh, dKh, dVh = _attention_backward(self._heads(dcat, N, L, bf), dpx, True, Qp, Kp, Vp, P, scale, causal,
                                                drop)
            dQp, dKp, dVp = self._rows(dQh, N, L, bf), self._rows(dKh, N, S, bf), self._rows(dVh, N, S, bf)
        else:
            dQp, dKp, dVp = np.empty_like(Qp), np.empty_like(Kp), np.empty_like(Vp)
            _fast_attention_backward(dcat.reshape(-1), dpx, True, Qp.reshape(-1), Kp.reshape(-1), Vp.reshape(-1), P,
                                     dQp.reshape(-1), dKp.reshape(-1), dVp.reshape(-1),
                                     self._layout(N, L, S, bf, E), H, d, d, scale, causal, drop)
        out = []
        for j, (x, dh, T) in enumerate(((xq, dQp, L), (xk, dKp, S), (xv, dVp, S))):
            W, dW, _, db = self._proj(j)
            dx = self._linear_backward(dh, x, W, dW, db, flags[j])
            w = x.shape[1]
            if dx is not None:
                dx = dx.reshape((T, w) if unbatched else ((N, T, w) if bf else (T, N, w)))
            out.append(dx)
        if summed:
            return None if out[0] is None else out[0] + out[1] + out[2]
        return tuple(out)

    def extra_repr(self):
        r = {"embed_dim": self.embed_dim, "num_heads": self.num_heads, "dropout": self.dropout, "bias": self.bias}
        if not self._qkv_same_embed_dim:
            r.update(kdim=self.kdim, vdim=self.vdim)
        r["batch_first"] = self.batch_first
        return r


# ---------------------------------------------------------------------------------------------
# fast kernels
# ---------------------------------------------------------------------------------------------
# Speed (PERFORMANCE.md, "Attention"): prange over chunks of the B = batch × heads problems, BLAS
# gemm per problem on whole arrays with offsets (one BLAS thread), the softmax as loops over
# contiguous rows. Causal attention runs in blocks of CAUSAL_ROWS query rows whose products stop
# at the block's diagonal (keys 0 … i1−1), so about half of QKᵀ, PV and their gradients is skipped;
# within a block, the softmax's loops stop at each row's diagonal rounded up to 16 keys. Each
# problem's K and V are transposed once (Kᵀ, Vᵀ per chunk), so that every product is one OpenBLAS
# runs through its small-matrix kernels (A·B, Aᵀ·B) rather than A·Bᵀ (engine.blas.transpose_rows):
# OpenBLAS runs a row-major A Bᵀ at these shapes through its packing path with C zeroed first
# (0.36 ms for the 32 problems' QKᵀ at B32 S128 D32, float32, one thread), A Bᵀ-stored-as-B through
# its small-matrix kernel (0.21 ms, 0.27 with the transposition).
# Measured, not adopted (B32 S128 D32, one thread): non-causal blocks of 32 or 64 query rows
# (same or slower than all 128 at once), CAUSAL_ROWS 16 or 64 (same / slower), the backward's
# rowsum(∂ℓ/∂P ⊙ P) as ∂ℓ/∂Y·Y from MultiheadAttention's saved output (no gain measurable).
CAUSAL_ROWS = 32

def _cast(x, like):
    """x as a scalar of the array `like`'s dtype (in compiled code)."""
    return like.dtype.type(x)


@overload(_cast)
def _cast_jit(x, like):
    if like.dtype == types.float32:
        return lambda x, like: np.float32(x)
    return lambda x, like: np.float64(x)


@njit(cache=True, inline="always", fastmath=FASTMATH)
def _softmax_row(row, jc, jn, bmrow, has_bm, amrow, has_am):
    """row[:jc] ← softmax(row[:jc] + am) over the allowed keys (masked ones and row[jc:jn] ← 0).
    Returns False when no key is allowed (the row is then all zero). The loops run over whole
    groups of 16 elements, to jp = jc rounded up (≤ jn), the keys jc … jp−1 entering as −∞ (e^−∞ = 0):
    a causal row's jc varies, and the loops' scalar remainders cost as much as the vector part
    (causal B32 S128 float32: softmax 0.45 ms, as much as the non-causal one of twice the elements)."""
    if has_am:
        for j in range(jc):
            row[j] += amrow[j]
    if has_bm:
        for j in range(jc):
            if bmrow[j]:
                row[j] = -np.inf
    jp = min((jc + 15) // 16 * 16, jn)
    for j in range(jc, jp):
        row[j] = -np.inf
    m = row_max(row, jp) if jp > 0 else _cast(-np.inf, row)
    for j in range(jp, jn):
        row[j] = 0.0
    if m == -np.inf:
        for j in range(jp):
            row[j] = 0.0
        return False
    exp_shifted(row, jp, m)
    z = _cast(0.0, row)                 # sums and factors in the row's dtype: a float64 literal
    for j in range(jp):                 # would run the float32 loops in float64, converting each element
        z += row[j]
    inv = _cast(1.0, row) / z
    for j in range(jp):
        row[j] *= inv
    return True


@njit(cache=True, fastmath=FASTMATH)
def _softmax_rows_backward(p, ds, b, i0, i1, jn, causal, dpx, has_dpx, post, drop, has_drop, a, sc):
    """The backward's rows i0 … i1−1 of problem b: ds[i − i0] holds ∂ℓ/∂A on entry and ∂ℓ/∂S · scale on
    return; A = P ⊙ M into a (dropout). A function of its own, not inlined into the parallel kernel:
    float64 compile 5.3 -> 4.0 s, same speed. (The forward's row loop stays inline: as a function it
    compiled in 5.7 instead of 11.6 s but ran 0.1 ms slower at B32 S128 D32 float32, one thread.)"""
    S = p.shape[2]
    for i in range(i0, i1):
        prow, drow = p[b, i], ds[i - i0]
        jc = min(i + 1, S) if causal else S
        if has_dpx and post:
            g = dpx[b, i]
            for j in range(jc):
                drow[j] += g[j]
        if has_drop:
            mrow, ar = drop[b, i], a[i - i0]
            for j in range(jc):
                drow[j] *= mrow[j]                  # ∂ℓ/∂P = M ⊙ ∂ℓ/∂A
                ar[j] = prow[j] * mrow[j]
            for j in range(jc, jn):
                ar[j] = 0.0
        if has_dpx and not post:
            g = dpx[b, i]
            for j in range(jc):
                drow[j] += g[j]
        jp = min((jc + 15) // 16 * 16, jn)          # whole groups of 16 (the softmax's): P = 0
        cs = _cast(0.0, p)                          # at the keys jc … jp−1, so ∂ℓ/∂S = 0 there
        for j in range(jp):
            cs += drow[j] * prow[j]                 # rowsum(∂ℓ/∂P ⊙ P)
        for j in range(jp):
            drow[j] = prow[j] * (drow[j] - cs) * sc      # ∂ℓ/∂S · scale
        for j in range(jp, jn):
            drow[j] = 0.0


# Layout of the fast kernels' operands. Q, K, V and Y (and their gradients) are flat arrays; row i
# of problem b = n·H + h of operand X starts at element
#     (b // H)·lay[X, 0] + (b % H)·lay[X, 1] + i·lay[X, 2]          X = 0: Q, 1: K, 2: V, 3: Y
# so the kernels read a head's columns straight out of the projections' (rows, E) outputs (and
# write Y into the heads' concatenation) with the row stride as BLAS's leading dimension, no copies:
# batch-first rows n·T + t give (T·E, d, E), sequence-first rows t·N + n give (E, d, N·E), and
# contiguous (B, T, W) problems (H = 1) give (T·W, 0, W).
@njit(cache=True, inline="always")
def _off(lay, X, b, H):
    return (b // H) * lay[X, 0] + (b % H) * lay[X, 1]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def attention_forward(q, k, v, y, lay, B, H, L, S, E, Ev, scale, causal, bm, bdiv, has_bm, am, adiv, has_am, drop,
                      has_drop, fill, gemm, nchunks):
    """attention_forward_ref's contract, fast, for the B problems laid out as `lay` says
    (above): per problem b, S = QKᵀ·scale by gemm into p[b], the softmax in place row by row,
    Y = (P ⊙ M) V by gemm into y. Returns p (B, L, S). fill: zero the causal rows right of their
    block's keys (p[b, i, j] for j ≥ the block's end); without it they hold garbage, which the
    backward never reads (MultiheadAttention with need_weights=False: 2 % of its causal step)."""
    p = np.empty((B, L, S), q.dtype)
    R = min(CAUSAL_ROWS, L) if causal else L
    lq, lk, lv, ly = lay[0, 2], lay[1, 2], lay[2, 2], lay[3, 2]
    for c in prange(nchunks):                           # disjoint problems b ∈ [lo, hi)
        lo, hi = c * B // nchunks, (c + 1) * B // nchunks
        a = np.empty((R if has_drop else 1, S), q.dtype)
        kt = np.empty((E, S), q.dtype)
        for b in range(lo, hi):
            oq, ok, ov, oy = _off(lay, 0, b, H), _off(lay, 1, b, H), _off(lay, 2, b, H), _off(lay, 3, b, H)
            transpose_rows(k, ok, lk, S, E, kt)       # Kᵀ (E, S)
            for i0 in range(0, L, R):
                i1 = min(i0 + R, L)
                jn = min(i1, S) if causal else S        # the block's keys: 0 … jn−1
                # S[i0:i1, :jn] = Q[i0:i1] K[:jn]ᵀ · scale
                gemm_at(gemm, i1 - i0, jn, E, scale, q, oq + i0 * lq, lq, NO_TRANS, kt, 0, S, NO_TRANS,
                        0.0, p, (b * L + i0) * S, S)
                for i in range(i0, i1):
                    row = p[b, i]
                    jc = min(i + 1, S) if causal else S
                    bmrow = bm[b // bdiv, i if bm.shape[1] > 1 else 0]
                    amrow = am[b // adiv, i if am.shape[1] > 1 else 0]
                    _softmax_row(row, jc, jn, bmrow, has_bm, amrow, has_am)
                    if fill:
                        for j in range(jn, S):
                            row[j] = 0.0
                    if has_drop:
                        ar, dr = a[i - i0], drop[b, i]
                        for j in range(jn):
                            ar[j] = row[j] * dr[j]
                # Y[i0:i1] = A[i0:i1, :jn] V[:jn],  A = P ⊙ M
                if has_drop:
                    gemm_at(gemm, i1 - i0, Ev, jn, 1.0, a, 0, S, NO_TRANS, v, ov, lv, NO_TRANS,
                            0.0, y, oy + i0 * ly, ly)
                else:
                    gemm_at(gemm, i1 - i0, Ev, jn, 1.0, p, (b * L + i0) * S, S, NO_TRANS, v, ov, lv, NO_TRANS,
                            0.0, y, oy + i0 * ly, ly)
    return p


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def attention_backward(dy, dpx, has_dpx, post, q, k, v, p, dq, dk, dv, lay, H, E, Ev, scale, causal, drop, has_drop,
                       gemm, nchunks):
    """attention_backward_ref's contract, fast, in the layout `lay` (dq, dk, dv as q, k, v; dy as y):
    per problem b and block of query rows, ∂ℓ/∂A by gemm, the softmax's backward row by row, then
    ∂ℓ/∂Q, ∂ℓ/∂K (+=) and ∂ℓ/∂V (+=) by gemm, written into dq, dk, dv."""
    B, L, S = p.shape
    R = min(CAUSAL_ROWS, L) if causal else L
    lq, lk, lv, ly = lay[0, 2], lay[1, 2], lay[2, 2], lay[3, 2]
    sc = _cast(scale, p)
    for c in prange(nchunks):
        lo, hi = c * B // nchunks, (c + 1) * B // nchunks
        ds = np.empty((R, S), q.dtype)
        a = np.empty((R if has_drop else 1, S), q.dtype)
        vt = np.empty((Ev, S), q.dtype)
        for b in range(lo, hi):
            oq, ok, ov, oy = _off(lay, 0, b, H), _off(lay, 1, b, H), _off(lay, 2, b, H), _off(lay, 3, b, H)
            transpose_rows(v, ov, lv, S, Ev, vt)      # Vᵀ (Ev, S)
            j0 = min(R, S) if causal else S             # the first block writes rows :j0 (β = 0), the
            for j in range(j0, S):                      # later ones accumulate: the rest starts at zero
                dkr = dk[ok + j * lk:ok + j * lk + E]
                dvr = dv[ov + j * lv:ov + j * lv + Ev]
                dkr[:] = 0.0
                dvr[:] = 0.0
            for i0 in range(0, L, R):
                i1 = min(i0 + R, L)
                jn = min(i1, S) if causal else S
                # ∂ℓ/∂A[i0:i1, :jn] = ∂ℓ/∂Y[i0:i1] V[:jn]ᵀ
                gemm_at(gemm, i1 - i0, jn, Ev, 1.0, dy, oy + i0 * ly, ly, NO_TRANS, vt, 0, S, NO_TRANS, 0.0, ds, 0, S)
                _softmax_rows_backward(p, ds, b, i0, i1, jn, causal, dpx, has_dpx, post, drop, has_drop, a, sc)
                # ∂ℓ/∂Q[i0:i1] = ∂ℓ/∂S K[:jn] · scale
                gemm_at(gemm, i1 - i0, E, jn, 1.0, ds, 0, S, NO_TRANS, k, ok, lk, NO_TRANS, 0.0, dq, oq + i0 * lq, lq)
                # ∂ℓ/∂K[:jn] += ∂ℓ/∂Sᵀ Q[i0:i1] · scale
                beta = 0.0 if i0 == 0 else 1.0
                gemm_at(gemm, jn, E, i1 - i0, 1.0, ds, 0, S, TRANS, q, oq + i0 * lq, lq, NO_TRANS, beta, dk, ok, lk)
                # ∂ℓ/∂V[:jn] += A[i0:i1, :jn]ᵀ ∂ℓ/∂Y[i0:i1]
                if has_drop:
                    gemm_at(gemm, jn, Ev, i1 - i0, 1.0, a, 0, S, TRANS, dy, oy + i0 * ly, ly, NO_TRANS, beta, dv, ov, lv)
                else:
                    gemm_at(gemm, jn, Ev, i1 - i0, 1.0, p, (b * L + i0) * S, S, TRANS, dy, oy + i0 * ly, ly, NO_TRANS,
                            beta, dv, ov, lv)
