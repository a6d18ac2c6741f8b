"""Embedding: a lookup table of token vectors (notes 004 §4.1; 000 §8), as torch.nn.Embedding.

A token id k selects row k of the weight E (num_embeddings V, embedding_dim D): the notes'
product of E's transpose with the one-hot column vector e_k, done as a gather. For ids
idx of any shape (n = idx.size ids, flattened row-major as i = 0 … n − 1):

    forward:   y[i, :] = E[idx_i, :]                                   y: (*idx.shape, D)
    backward:  ∂ℓ/∂E[r, :] += Σ_{i : idx_i = r} ∂ℓ/∂y[i, :]            for r ≠ padding_idx

(the one-hot product's transpose: a scatter-add, so a token used several times accumulates the
gradient of every use). The padding row gets no gradient (torch's padding_idx) and is zeroed at
initialisation, so padded positions embed to 0 until the row is set otherwise. The ids are
integers: they get no gradient (backward returns None).

Kernels. The reference pair loops over the ids in order. The fast forward copies rows in
parallel over chunks of the ids (disjoint output rows). The fast backward is parallel over
chunks of the embedding dimension: each thread adds the columns lo:hi of every ∂ℓ/∂y row into
the same columns of ∂ℓ/∂E, so no two threads write one element, no sort is needed, and the sum
for each element runs in the same order as the reference's (the two paths agree bit for bit).
Its inner loop runs over 1-D row slices from 0 so that it vectorises (CONVENTIONS.md): with
d in lo:hi indexing dweight[r, d] it stayed scalar and took 5-10x longer. Measured 2026-11-30
(scripts/bench_embedding.py, 2 cores, busy machine): backward of 32,768 ids into 10,000 × 128 at
0.23-0.42 of PyTorch's time (float32 and float64, one and two threads).
"""
import numpy as np
from numba import njit, prange

from engine.checks import check_bool, check_dtype, check_int, check_rng
from engine.core import Layer, Parameter, use_reference
from engine.threads import chunks_for, parallel_call


# ---- reference kernels ---------------------------------------------------------------------------
@njit(cache=True)
def embedding_forward_ref(ids, weight):
    """y[i, :] = E[ids_i, :]. ids (n,) int64 in [0, V); weight (V, D) -> y (n, D)."""
    n, D = ids.shape[0], weight.shape[1]
    y = np.empty((n, D), weight.dtype)
    for i in range(n):
        for d in range(D):
            y[i, d] = weight[ids[i], d]
    return y


@njit(cache=True)
def embedding_backward_ref(dy, ids, dweight, padding_idx):
    """∂ℓ/∂E[ids_i, :] += ∂ℓ/∂y[i, :] for i = 0 … n − 1, skipping ids_i = padding_idx
    (−1: no padding row). dy (n, D); dweight (V, D) accumulated in place."""
    n, D = dy.shape
    for i in range(n):
        r = ids[i]
        if r == padding_idx:
            continue
        for d in range(D):
            dweight[r, d] += dy[i, d]


# ---- the layer -----------------------------------------------------------------------------------
def check_ids(name, idx, num_embeddings):
    """Integer token ids of any shape (bool and float refused, never cast), non-empty, each in
    [0, num_embeddings): returned flattened as contiguous int64, with the shape."""
    if not isinstance(idx, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of integer token ids, got {type(idx).__name__}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name}: expected integer token ids, got dtype {idx.dtype} (ids are never cast)")
    if idx.size == 0:
        raise ValueError(f"{name}: expected at least one token id, got shape {idx.shape}")
    lo, hi = idx.min(), idx.max()              # in idx's own dtype: no wrap-around before the check
    if lo < 0 or hi >= num_embeddings:
        raise ValueError(f"{name}: expected token ids in [0, {num_embeddings - 1}], got values in [{lo}, {hi}]")
    return np.ascontiguousarray(idx.reshape(-1), dtype=np.int64), idx.shape


class Embedding(Layer):
    """Embedding(num_embeddings, embedding_dim, padding_idx=None, dtype=np.float64, rng=None),
    as torch.nn.Embedding: `weight` (num_embeddings, embedding_dim) drawn N(0, 1) from `rng`
    (a seed or a numpy Generator), the row `padding_idx` zeroed; a negative padding_idx counts
    from the end and is stored as its non-negative value, as torch.

    forward(idx) with integer ids of any shape -> (*idx.shape, embedding_dim); backward(dy)
    scatter-adds dy into weight.grad (the padding row gets none) and returns None (ids have no
    gradient). torch's max_norm, scale_grad_by_freq and sparse are not offered."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, dtype=np.float64, rng=None):
        self.num_embeddings = check_int("num_embeddings", num_embeddings, low=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, low=1)
        V = self.num_embeddings
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx, low=-V, high=V - 1)
            padding_idx %= V
        self.padding_idx = padding_idx
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)                   # every argument checked before the first draw
        w = rng.standard_normal((V, self.embedding_dim)).astype(self.dtype)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)

    def _pad(self):
        return -1 if self.padding_idx is None else self.padding_idx

    def forward(self, idx, train=True):
        check_bool("train", train)
        ids, shape = check_ids("idx", idx, self.num_embeddings)
        W = self.weight.value
        if use_reference():
            y = embedding_forward_ref(ids, W)
        else:
            y = parallel_call(embedding_forward, chunks_for(ids.shape[0], row_cost=self.embedding_dim), ids, W)
        self._save(ids, shape)
        return y.reshape(shape + (self.embedding_dim,))

    def backward(self, dy, *, input_grad=True):
        ids, shape = self._saved()
        D = self.embedding_dim
        dy = self._check_input(dy, name="dy", shape=shape + (D,), finite=False)
        check_bool("input_grad", input_grad)
        self._release()
        dy = dy.reshape(ids.shape[0], D)
        if use_reference():
            embedding_backward_ref(dy, ids, self.weight.grad, self._pad())
        else:
            n_chunks = chunks_for(D, min_rows=16, row_cost=ids.shape[0])
            parallel_call(embedding_backward, n_chunks, dy, ids, self.weight.grad, self._pad())
        return None

    def extra_repr(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx}


# ---- fast kernels --------------------------------------------------------------------------------
@njit(cache=True, parallel=True)
def embedding_forward(ids, weight, n_chunks):
    """y[i, :] = E[ids_i, :], parallel over n_chunks chunks of the ids (disjoint rows of y)."""
    n, D = ids.shape[0], weight.shape[1]
    y = np.empty((n, D), weight.dtype)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for i in range(c * step, min(n, (c + 1) * step)):
            src, dst = weight[ids[i]], y[i]          # 1-D rows, copied by a loop that vectorises
            for d in range(D):
                dst[d] = src[d]
    return y


@njit(cache=True, parallel=True)
def embedding_backward(dy, ids, dweight, padding_idx, n_chunks):
    """∂ℓ/∂E[ids_i, lo:hi] += ∂ℓ/∂y[i, lo:hi], parallel over n_chunks column blocks lo:hi of the
    embedding dimension (disjoint columns of ∂ℓ/∂E: no two threads write one element), each
    block walking the ids in order, as the reference does."""
    n, D = dy.shape
    step = (D + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo, hi = c * step, min(D, (c + 1) * step)
        for i in range(n):
            r = ids[i]
            if r == padding_idx:
                continue
            # 1-D slices of C-contiguous rows, looped from 0: this loop vectorises (indexing
            # dweight[r, d] for d in lo:hi stayed scalar: 5-10x slower, measured 2026-11-30)
            w, g = dweight[r, lo:hi], dy[i, lo:hi]
            for k in range(hi - lo):
                w[k] += g[k]
