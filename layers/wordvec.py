"""Word vectors: CBOW, hierarchical softmax and negative sampling (notes 004 §4.4–§4.5, 000 §8).

CBOW (004 §4.4). The 2W context words w_1 … w_{2W} around a missing word w_t are looked up in
ONE embedding matrix E (V × Z, categories as rows, shared by every context position: parameter
sharing) and composed by a sum layer into the context vector

    h = Σ_{j=1}^{2W} emb(w_j) = Σ_j Eᵀ e_{w_j}                     (mode="sum", the notes' sum layer)
    h = (1/2W) Σ_j emb(w_j)                                         (mode="mean", word2vec's CBOW)

Backward: the transpose of each one-hot product is a scatter-add, and a word occurring several
times in one context (or in several contexts of the batch) accumulates every use:

    ∂ℓ/∂E[r, :] += Σ_{(n, j) : ctx[n, j] = r} s ∂ℓ/∂h_n             s = 1 (sum) or 1/2W (mean)

Batch rows: the notes' column vector h for one example is the row h[n] of h (N, Z); the
context ids are ctx (N, 2W) integers. torch has no CBOW; the layer equals torch.nn.EmbeddingBag
with 2-D input (fixed-size bags) and mode "sum" or "mean", and the tests compare it with that.

Output layers over V classes (004 §4.5, "extreme classification"). The plain softmax costs V
inner products per example. Both layers below replace it by a sum of binary logistic terms over
a few rows of an output matrix W (one vector w_r and bias b_r per row):

    ℓ_n = Σ_{k : r_{nk} ≥ 0} −log σ(s_{nk} η_{nk}),   η_{nk} = w_{r_{nk}}ᵀ h_n + b_{r_{nk}},
    s_{nk} = 2 t_{nk} − 1 ∈ {−1, +1},   t_{nk} ∈ {0, 1}                                    (1)

with the rows r_{nk} and bits t_{nk} chosen per example, and σ(x) = 1/(1 + e^{−x}). Since
−log σ(s η) = log(1 + e^{−s η}) and d/dη of it is σ(η) − t, the hand-derived backward is

    g_{nk}        = σ(η_{nk}) − t_{nk}                      (= ∂ℓ_n/∂η_{nk}; kept by the forward)
    ∂ℓ/∂h_n       = Σ_k δ_n g_{nk} w_{r_{nk}}                δ_n = ∂L/∂ℓ_n, the upstream gradient
    ∂ℓ/∂w_r      += Σ_{(n, k) : r_{nk} = r} δ_n g_{nk} h_n
    ∂ℓ/∂b_r      += Σ_{(n, k) : r_{nk} = r} δ_n g_{nk}

so only the rows an example touches get a gradient; every other row of ∂ℓ/∂W stays exactly 0.

* HierarchicalSoftmax (004 §4.5.1): the classes are the leaves of a binary tree whose V − 1
  interior vertices v carry (w_v, b_v). At v the two children get S(0, η_v) = (σ(−η_v), σ(η_v)),
  the notes' two-way softmax with the first logit fixed at 0, so child 1 has probability σ(η_v)
  and child 0 has σ(−η_v). The probability of class y is the product along its path from the
  root, p(y | h) = Π_{v on path(y)} σ(s_v η_v), and ℓ = −log p(y | h) is (1) with r = the path's
  vertices and t = the path's bits. Only the vertices on y's path get gradients, as 004 §4.5.1
  says ("all other weight vectors / biases have zero gradient"). Trees: "balanced" (every
  class at depth ⌊log₂ V⌋ or ⌈log₂ V⌉) or "huffman" (built from class counts: the expected
  path length Σ_y p_y depth(y) is the smallest of all binary trees, the notes' "fastest" tree).
  `log_prob(h)` gives the whole distribution, (N, V), which sums to 1 over the leaves.
* NegativeSampling (004 §4.5.2; Mikolov et al. 2013): instead of the softmax's normalising
  "negative reinforcement" over all classes, k negative classes c_1 … c_k are drawn per example
  from a noise distribution P_n and
      ℓ_n = −log σ(η_y) − Σ_{j=1}^{k} log σ(−η_{c_j}),
  which is (1) with rows (y, c_1, …, c_k) and bits (1, 0, …, 0). The notes sample uniformly
  (counts=None); word2vec uses the unigram distribution to the power 3/4 (counts=…, power=0.75).
  A negative equal to the target is kept (the estimator stays a plain sample of P_n).

Both output layers are "loss layers": forward(h, target) returns the per-example losses ℓ (N,)
(torch's reduction="none"); `HeadLoss(head)` turns one into an engine loss (the mean or sum)
for `engine.fit`, and `WordVectors(cbow, head)` is the CBOW model whose output layer's
parameters fit trains with the embedding.

Kernels. CBOW: reference loops over (n, j); fast forward parallel over chunks of examples
(disjoint rows of h), fast backward parallel over column blocks of E (disjoint columns: no two
threads write one element, and each element's sum runs in the reference's order). The binary
terms (1), shared by both output layers: reference loops over (n, k); the fast forward is
parallel over chunks of examples with the dot products on contiguous rows under FASTMATH; the
fast backward is one parallel loop over column blocks lo:hi of Z that writes ∂ℓ/∂h[:, lo:hi]
and ∂ℓ/∂W[:, lo:hi] (disjoint columns), the bias gradient by the first block. The forward's
chunk count (engine.threads.chunks_for) counts the real terms (a Huffman path is padded to the
tree's depth: 15 slots for 8.75 terms on average on the corpus) at Z + 32 multiply-adds each,
for the exp and log1p. The whole distribution (`log_prob`, evaluation only) is plain NumPy.
"""
import heapq
from collections import deque
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from engine.checks import (check_bool, check_choice, check_dtype, check_float, check_int,
                           check_labels, check_rng)
from engine.core import Layer, Parameter, input_grad_flags, is_grad_enabled, use_reference
from engine.losses import Loss
from engine.numerics import FASTMATH, log1p_exp, sigmoid
from engine.threads import chunks_for, parallel_call


# ---- reference kernels ---------------------------------------------------------------------------
@njit(cache=True)
def cbow_forward_ref(ctx, weight, scale):
    """h_n = scale · Σ_j E[ctx[n, j], :] (scale 1: sum, 1/2W: mean).
    ctx (N, 2W) int64 in [0, V); weight E (V, Z) -> h (N, Z)."""
    N, C = ctx.shape
    Z = weight.shape[1]
    h = np.zeros((N, Z), weight.dtype)
    for n in range(N):
        for j in range(C):
            for d in range(Z):
                h[n, d] += weight[ctx[n, j], d]
        for d in range(Z):
            h[n, d] *= scale
    return h


@njit(cache=True)
def cbow_backward_ref(dh, ctx, dweight, scale):
    """∂ℓ/∂E[ctx[n, j], :] += scale · ∂ℓ/∂h_n for every (n, j) (repeats accumulate).
    dh (N, Z); ctx (N, 2W); dweight (V, Z) accumulated in place."""
    N, C = ctx.shape
    Z = dh.shape[1]
    for n in range(N):
        for j in range(C):
            for d in range(Z):
                dweight[ctx[n, j], d] += scale * dh[n, d]


@njit(cache=True)
def binary_terms_forward_ref(h, rows, bits, weight, bias):
    """ℓ_n = Σ_{k: r_{nk} ≥ 0} log(1 + e^{−s_{nk} η_{nk}}),  η_{nk} = w_{r_{nk}}ᵀ h_n + b_{r_{nk}},
    s = 2t − 1; also g_{nk} = σ(η_{nk}) − t_{nk} (0 where r_{nk} = −1, a padded slot).
    h (N, Z); rows (N, K) int64 (−1: none); bits (N, K) of h's dtype in {0, 1}; weight (R, Z);
    bias (R,) -> loss (N,), g (N, K)."""
    N, K = rows.shape
    Z = h.shape[1]
    loss = np.zeros(N, h.dtype)
    g = np.zeros((N, K), h.dtype)
    for n in range(N):
        for k in range(K):
            r = rows[n, k]
            if r < 0:
                continue
            eta = bias[r]
            for d in range(Z):
                eta += weight[r, d] * h[n, d]
            s = 2.0 * bits[n, k] - 1.0
            loss[n] += log1p_exp(-s * eta)            # −log σ(s η)
            g[n, k] = sigmoid(eta) - bits[n, k]       # ∂ℓ_n/∂η_{nk}
    return loss, g


@njit(cache=True)
def binary_terms_backward_ref(dloss, g, rows, h, weight, dweight, dbias):
    """∂ℓ/∂h_n = Σ_k δ_n g_{nk} w_{r_{nk}};  ∂ℓ/∂w_r += Σ δ_n g_{nk} h_n;  ∂ℓ/∂b_r += Σ δ_n g_{nk}
    over the (n, k) with r_{nk} = r. dloss δ (N,); g, rows (N, K); h (N, Z); weight (R, Z);
    dweight (R, Z) and dbias (R,) accumulated in place -> dh (N, Z)."""
    N, K = rows.shape
    Z = h.shape[1]
    dh = np.zeros_like(h)
    for n in range(N):
        for k in range(K):
            r = rows[n, k]
            if r < 0:
                continue
            c = dloss[n] * g[n, k]
            for d in range(Z):
                dh[n, d] += c * weight[r, d]
                dweight[r, d] += c * h[n, d]
            dbias[r] += c
    return dh


# ---- argument checks shared by the layers --------------------------------------------------------
def check_context(name, ctx, num_embeddings):
    """Context ids: a 2-D integer array (N, 2W), non-empty, each id in [0, num_embeddings) ->
    contiguous int64 (never cast from float or bool)."""
    if not isinstance(ctx, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of integer word ids, got {type(ctx).__name__}")
    if not np.issubdtype(ctx.dtype, np.integer):
        raise TypeError(f"{name}: expected integer word ids, got dtype {ctx.dtype} (ids are never cast)")
    if ctx.ndim != 2 or ctx.size == 0:
        raise ValueError(f"{name}: expected a non-empty (N, 2W) array of context ids, got shape {ctx.shape}")
    lo, hi = ctx.min(), ctx.max()
    if lo < 0 or hi >= num_embeddings:
        raise ValueError(f"{name}: expected word ids in [0, {num_embeddings - 1}], got values in [{lo}, {hi}]")
    return np.ascontiguousarray(ctx, dtype=np.int64)


def check_counts(name, counts, num_classes):
    """Class counts (num_classes,): finite, non-negative, not all zero -> float64."""
    if counts is None:
        return None
    if not isinstance(counts, (np.ndarray, list, tuple)):
        raise TypeError(f"{name}: expected an array of {num_classes} class counts, got {type(counts).__name__}")
    c = np.asarray(counts)
    if c.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected real class counts, got dtype {c.dtype}")
    if c.shape != (num_classes,):
        raise ValueError(f"{name}: expected shape ({num_classes},) (one count per class), got {c.shape}")
    c = c.astype(np.float64)
    if not np.isfinite(c).all() or (c < 0).any() or c.sum() <= 0:
        raise ValueError(f"{name}: expected finite non-negative counts, not all zero, got values in "
                         f"[{c.min()}, {c.max()}]")
    return c


# ---- trees for the hierarchical softmax ----------------------------------------------------------
@dataclass(frozen=True)
class BinaryTree:
    """A binary tree whose leaves are the classes 0 … V−1 and whose V − 1 interior vertices are
    numbered 0 … V−2 with the root 0, in breadth-first order.

    children (V−1, 2) int64: child 0 and child 1 of each vertex; a value c ≥ 0 is vertex c, a
        value −1 − y < 0 is the leaf of class y.
    paths (V, L) int64: the vertices from the root to class y, padded with −1 (L = the depth).
    codes (V, L) float64: the branch taken at each vertex of the path (1: child 1, probability
        σ(η_v); 0: child 0, σ(−η_v)), 0 in the padding.
    depths (V,) int64: the path lengths."""
    kind: str
    children: np.ndarray
    paths: np.ndarray
    codes: np.ndarray
    depths: np.ndarray

    @property
    def num_classes(self):
        return self.depths.shape[0]

    def expected_depth(self, counts):
        """Σ_y p_y depth(y) with p = counts / Σ counts: vertex evaluations per example on average."""
        c = check_counts("counts", counts, self.num_classes)
        return float(np.dot(c, self.depths) / c.sum())


def _renumber(children_of, root):
    """BFS renumbering of interior vertices (given as a dict old id -> (a, b), leaves as −1 − y)
    so that the root is 0 and every parent comes before its children -> (V−1, 2) int64."""
    order, queue = {root: 0}, deque([root])
    bfs = []
    while queue:
        v = queue.popleft()
        bfs.append(v)
        for c in children_of[v]:
            if c >= 0:
                order[c] = len(order)
                queue.append(c)
    return np.array([[order[c] if c >= 0 else c for c in children_of[v]] for v in bfs], np.int64)


def _paths(children, V):
    """paths, codes, depths (BinaryTree) of a BFS-numbered tree, level by level in NumPy: each
    leaf's (vertex, bit) above it, then the parents' up to the root."""
    nv = children.shape[0]
    vpar, vbit, vdepth = [-1] * nv, [0] * nv, [0] * nv
    leaf_v, leaf_b = [-1] * V, [0] * V
    for v, pair in enumerate(children.tolist()):          # parents come first: depths in one pass
        for bit, c in enumerate(pair):
            if c >= 0:
                vpar[c], vbit[c], vdepth[c] = v, bit, vdepth[v] + 1
            else:
                leaf_v[-1 - c], leaf_b[-1 - c] = v, bit
    vpar, vbit, vdepth = np.array(vpar, np.int64), np.array(vbit, np.int64), np.array(vdepth, np.int64)
    leaf_v, leaf_b = np.array(leaf_v, np.int64), np.array(leaf_b, np.int64)
    depths = vdepth[leaf_v] + 1
    L = int(depths.max())
    paths = np.full((V, L), -1, np.int64)
    codes = np.zeros((V, L), np.float64)
    pos, cur_v, cur_b = depths - 1, leaf_v.copy(), leaf_b.copy()
    rows = np.arange(V)
    while rows.size:
        paths[rows, pos[rows]] = cur_v[rows]
        codes[rows, pos[rows]] = cur_b[rows]
        pos[rows] -= 1
        rows = rows[pos[rows] >= 0]
        cur_b[rows] = vbit[cur_v[rows]]
        cur_v[rows] = vpar[cur_v[rows]]
    return paths, codes, depths


def build_tree(kind, num_classes, counts=None):
    """The BinaryTree of `kind` over `num_classes` ≥ 2 classes.

    "balanced": classes lo … hi−1 split into halves [lo, mid) (child 0) and [mid, hi) (child 1),
        mid = lo + ⌈(hi − lo)/2⌉, recursively: every depth is ⌊log₂ V⌋ or ⌈log₂ V⌉.
    "huffman": Huffman's algorithm on `counts` (required): repeatedly merge the two least
        frequent subtrees (ties broken by creation order, so the tree is the same on every
        machine), the less frequent one becoming child 0. Minimises Σ_y counts_y depth(y)."""
    kind = check_choice("tree", kind, ("balanced", "huffman"))
    V = check_int("num_classes", num_classes, low=2)
    counts = check_counts("counts", counts, V)
    children_of = {}
    if kind == "balanced":
        nxt = [0]

        def split(lo, hi):                 # a subtree over classes lo … hi−1: its id (leaf: −1 − y)
            if hi - lo == 1:
                return -1 - lo
            v = nxt[0]
            nxt[0] += 1
            mid = lo + (hi - lo + 1) // 2
            children_of[v] = (split(lo, mid), split(mid, hi))
            return v
        root = split(0, V)
    else:
        if counts is None:
            raise ValueError("counts: tree='huffman' is built from the class counts; got None")
        heap = [(c, y, -1 - y) for y, c in enumerate(counts.tolist())]     # Python floats: fast compares
        heapq.heapify(heap)
        order = V
        v = 0
        while len(heap) > 1:
            c0, _, a = heapq.heappop(heap)
            c1, _, b = heapq.heappop(heap)
            children_of[v] = (a, b)
            heapq.heappush(heap, (c0 + c1, order, v))
            order += 1
            v += 1
        root = heap[0][2]
    children = _renumber(children_of, root)
    paths, codes, depths = _paths(children, V)
    return BinaryTree(kind, children, paths, codes, depths)


# ---- the layers ----------------------------------------------------------------------------------
class CBOW(Layer):
    """CBOW(num_embeddings, embedding_dim, mode="sum", dtype=np.float64, rng=None): the context
    composition of the continuous bag-of-words model (004 §4.4). `weight` E (num_embeddings,
    embedding_dim), one matrix for every context position, drawn N(0, 1) from `rng` as
    torch.nn.EmbeddingBag's. mode "sum" (the notes' sum layer) or "mean" (word2vec's CBOW).

    forward(ctx) with integer ids (N, 2W) -> h (N, embedding_dim); backward(dh) scatter-adds
    into weight.grad (repeated ids accumulate) and returns None (ids have no gradient)."""

    def __init__(self, num_embeddings, embedding_dim, mode="sum", dtype=np.float64, rng=None):
        self.num_embeddings = check_int("num_embeddings", num_embeddings, low=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, low=1)
        self.mode = check_choice("mode", mode, ("sum", "mean"))
        self.dtype = check_dtype(dtype)
        rng = check_rng("rng", rng)
        self.weight = Parameter(rng.standard_normal((self.num_embeddings, self.embedding_dim)).astype(self.dtype))

    def _scale(self, C):
        return 1.0 if self.mode == "sum" else 1.0 / C

    def forward(self, ctx, train=True):
        check_bool("train", train)
        ctx = check_context("ctx", ctx, self.num_embeddings)
        E, s = self.weight.value, self._scale(ctx.shape[1])
        if use_reference():
            h = cbow_forward_ref(ctx, E, s)
        else:
            h = parallel_call(cbow_forward, chunks_for(ctx.shape[0], row_cost=ctx.size // ctx.shape[0]
                                                       * self.embedding_dim), ctx, E, s)
        self._save(ctx)
        return h

    def backward(self, dh, *, input_grad=True):
        (ctx,) = self._saved()
        dh = self._check_input(dh, name="dh", shape=(ctx.shape[0], self.embedding_dim), finite=False)
        check_bool("input_grad", input_grad)
        self._release()
        s = self._scale(ctx.shape[1])
        if use_reference():
            cbow_backward_ref(dh, ctx, self.weight.grad, s)
        else:
            n_chunks = chunks_for(self.embedding_dim, min_rows=16, row_cost=ctx.size)
            parallel_call(cbow_backward, n_chunks, dh, ctx, self.weight.grad, s)
        return None

    def extra_repr(self):
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim, "mode": self.mode}


class _BinaryTermsLoss(Layer):
    """Shared plumbing of the two output layers: rows and bits per example, then (1)."""

    def _check_h_target(self, h, target, hname="h"):
        h = self._check_input(h, name=hname, ndim=2)
        if h.shape[1] != self.in_features:
            raise ValueError(f"{hname}: expected shape (N, {self.in_features}), got {h.shape}")
        target = check_labels("target", target, h.shape[0], self.num_classes)
        return h, target

    def _keep_newest_call(self):
        """Drop every saved call but the newest (HeadLoss: a forward whose backward never came)."""
        calls = self.__dict__.get("_calls")
        if calls:
            del calls[:-1]

    def _terms(self, h, rows, bits):
        W, b = self.weight.value, self._bias_value()
        if use_reference():
            return binary_terms_forward_ref(h, rows, bits, W, b)
        terms = int(np.count_nonzero(rows >= 0))          # the real terms (HS paths are padded to the depth)
        cost = terms * (self.in_features + 32) // h.shape[0] + 1     # a dot product, an exp and a log1p each
        return parallel_call(binary_terms_forward, chunks_for(h.shape[0], row_cost=cost), h, rows, bits, W, b)

    def _bias_value(self):
        return self.bias.value if self.bias is not None else self._zero_bias

    def _make_params(self, R):
        self.weight = Parameter(np.zeros((R, self.in_features), self.dtype))
        if self._has_bias:
            self.bias = Parameter(np.zeros(R, self.dtype))
        else:
            self.bias = None
            self._zero_bias = np.zeros(R, self.dtype)

    def forward(self, h, target, train=True):
        check_bool("train", train)
        h, target = self._check_h_target(h, target)
        rows, bits = self._rows_bits(target, train)
        loss, g = self._terms(h, rows, bits)
        self._save(h, rows, g)
        return loss

    def backward(self, dloss, *, input_grad=True):
        h, rows, g = self._saved()
        dloss = self._check_input(dloss, name="dloss", shape=(h.shape[0],), finite=False)
        flags = input_grad_flags(input_grad, 2)
        self._release()
        dbias = self.bias.grad if self.bias is not None else np.zeros_like(self._zero_bias)
        if use_reference():
            dh = binary_terms_backward_ref(dloss, g, rows, h, self.weight.value, self.weight.grad, dbias)
        else:
            dh = np.empty_like(h)
            n_chunks = chunks_for(self.in_features, min_rows=16, row_cost=rows.size)
            parallel_call(binary_terms_backward, n_chunks, dloss, g, rows, h, self.weight.value,
                          self.weight.grad, dbias, dh)
        return (dh if flags[0] else None), None


class HierarchicalSoftmax(_BinaryTermsLoss):
    """HierarchicalSoftmax(in_features, num_classes, tree="balanced", counts=None, bias=True,
    dtype=np.float64): the output layer of 004 §4.5.1 as a loss layer.

    tree: "balanced" or "huffman" (built from `counts`, one non-negative count per class, e.g.
    word frequencies); the built tree is `self.tree` (a BinaryTree). Parameters: `weight`
    (num_classes − 1, in_features), one vector w_v per interior vertex, and `bias` (num_classes
    − 1,) when bias=True (the notes' b_v), both zero at the start as word2vec's.

    forward(h, target): h (N, in_features), target integer classes (N,) -> ℓ (N,), ℓ_n =
    −log p(target_n | h_n) = −Σ_{v on the path} log σ(s_v η_v). backward(dloss) with dloss (N,)
    -> (∂ℓ/∂h, None); only the vertices on the targets' paths get gradients.
    log_prob(h) -> (N, num_classes) log p(y | h) for every class (sums to 1 after exp);
    predict(h) -> the most probable class."""

    def __init__(self, in_features, num_classes, tree="balanced", counts=None, bias=True, dtype=np.float64):
        self.in_features = check_int("in_features", in_features, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self._has_bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        self.tree = build_tree(tree, self.num_classes, counts)
        self._paths = self.tree.paths
        self._codes = self.tree.codes.astype(self.dtype)
        self._make_params(self.num_classes - 1)

    def _rows_bits(self, target, train):
        return self._paths[target], self._codes[target]

    def log_prob(self, h):
        """log p(y | h_n) for every class y, top-down: log p(root) = 0, and a vertex v passes
        log p(v) + log σ(−η_v) to child 0 and log p(v) + log σ(η_v) to child 1 (the vertices are
        numbered breadth-first, so every parent comes before its children), η = h Wᵀ + b for all
        V − 1 vertices at once. O(N V) work. h (N, in_features) -> (N, num_classes)."""
        h = self._check_input(h, name="h", ndim=2)
        if h.shape[1] != self.in_features:
            raise ValueError(f"h: expected shape (N, {self.in_features}), got {h.shape}")
        # vertex-major (V − 1, N): each vertex's values are one contiguous row
        eta = (self.weight.value @ h.T + self._bias_value()[:, None]).astype(np.float64)
        log_sig = (-np.logaddexp(0.0, eta), -np.logaddexp(0.0, -eta))       # log σ(−η), log σ(η)
        inner = np.zeros_like(eta)
        out = np.empty((self.num_classes, h.shape[0]))
        for v, pair in enumerate(self.tree.children.tolist()):
            for bit, c in enumerate(pair):
                dst = inner[c] if c >= 0 else out[-1 - c]
                np.add(inner[v], log_sig[bit][v], out=dst)
        return np.ascontiguousarray(out.T, dtype=self.dtype)

    def predict(self, h):
        return np.argmax(self.log_prob(h), axis=1)

    def extra_repr(self):
        return {"in_features": self.in_features, "num_classes": self.num_classes, "tree": self.tree.kind,
                "bias": self._has_bias}


class NegativeSampling(_BinaryTermsLoss):
    """NegativeSampling(in_features, num_classes, k=5, counts=None, power=0.75, bias=True,
    dtype=np.float64, rng=None, fix_negatives=False): the sampled output layer of 004 §4.5.2
    as a loss layer.

    Noise distribution P_n(c) ∝ counts_c^power (word2vec: unigram counts, power 3/4), uniform
    when counts is None (the notes' choice). Parameters: `weight` (num_classes, in_features), the
    output vectors, and `bias` (num_classes,), zero at the start. The negatives, (N, k) per
    forward, are drawn from `self.generator` (`rng`, else the engine's default generator;
    `fit(seed=)` seeds it); `fix_negatives=True` keeps the first draw while the batch size stays
    the same, until `resample()` (for gradient checks); `last_negatives` is the last draw.

    forward(h, target) -> ℓ (N,), ℓ_n = −log σ(η_{target}) − Σ_j log σ(−η_{c_j});
    backward(dloss) -> (∂ℓ/∂h, None): only the target's and the negatives' rows get gradients.
    log_prob(h) -> (N, num_classes): the plain softmax over the output vectors (what the
    trained vectors say when normalised; not what negative sampling optimises)."""

    stochastic = True

    def __init__(self, in_features, num_classes, k=5, counts=None, power=0.75, bias=True, dtype=np.float64,
                 rng=None, fix_negatives=False):
        self.in_features = check_int("in_features", in_features, low=1)
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.k = check_int("k", k, low=1)
        counts = check_counts("counts", counts, self.num_classes)
        self.power = check_float("power", power, low=0.0)
        self._has_bias = check_bool("bias", bias)
        self.dtype = check_dtype(dtype)
        self.fix_negatives = check_bool("fix_negatives", fix_negatives)
        if rng is not None:
            self.set_generator(rng)
        if counts is None:
            self.noise = np.full(self.num_classes, 1.0 / self.num_classes)
        else:
            w = np.where(counts > 0, counts ** self.power, 0.0)
            self.noise = w / w.sum()
        self._cdf = np.cumsum(self.noise)
        self._cdf[-1] = 1.0
        self.last_negatives = None
        self._make_params(self.num_classes)

    def resample(self):
        """Forget the fixed negatives: the next forward draws new ones."""
        self.last_negatives = None

    def sample(self, n):
        """(n, k) negatives drawn from P_n with self.generator (inverse CDF of uniform draws)."""
        u = self.generator.random((n, self.k))
        return np.minimum(np.searchsorted(self._cdf, u, side="right"), self.num_classes - 1).astype(np.int64)

    def _rows_bits(self, target, train):
        N = target.shape[0]
        neg = self.last_negatives
        if not (self.fix_negatives and neg is not None and neg.shape[0] == N):
            neg = self.sample(N)
            self.last_negatives = neg
        rows = np.concatenate([target[:, None], neg], axis=1)
        bits = np.zeros(rows.shape, self.dtype)
        bits[:, 0] = 1
        return rows, bits

    def log_prob(self, h):
        h = self._check_input(h, name="h", ndim=2)
        if h.shape[1] != self.in_features:
            raise ValueError(f"h: expected shape (N, {self.in_features}), got {h.shape}")
        eta = h @ self.weight.value.T + self._bias_value()
        m = eta.max(axis=1, keepdims=True)
        return eta - (m + np.log(np.exp(eta - m).sum(axis=1, keepdims=True)))

    def extra_repr(self):
        return {"in_features": self.in_features, "num_classes": self.num_classes, "k": self.k,
                "power": self.power, "bias": self._has_bias, "fix_negatives": self.fix_negatives}


# ---- training through engine.fit -----------------------------------------------------------------
class HeadLoss(Loss):
    """HeadLoss(head, reduction="mean"): an output layer that is a loss layer (HierarchicalSoftmax,
    NegativeSampling: forward(h, target) -> ℓ (N,)) as an engine loss, for `engine.fit`:
    forward(pred, target) -> the mean (or sum) of ℓ as a float; backward() -> ∂/∂pred, the
    head's parameter gradients accumulated on the way. The head must belong to the model that
    fit trains (see `WordVectors`), so that fit's zero_grad and the optimizer reach its
    parameters; it is used by this loss alone (each forward drops the head's older unconsumed
    call: fit's evaluation passes run the loss without a backward)."""

    def __init__(self, head, reduction="mean"):
        super().__init__(reduction)
        if not isinstance(head, _BinaryTermsLoss):
            raise TypeError(f"head: expected a HierarchicalSoftmax or NegativeSampling, got {type(head).__name__}")
        self.head = head

    def forward(self, pred, target):
        pred, target = self.head._check_h_target(pred, target, hname="pred")   # before anything changes
        loss = self.head.forward(pred, target)
        self.head._keep_newest_call()
        scale = self._scale(loss.shape[0])
        self._saved = (loss.shape[0], scale) if is_grad_enabled() else None
        return float(np.sum(loss, dtype=np.float64) * scale)

    def backward(self):
        n, scale = self._need_forward()
        self._saved = None
        dh, _ = self.head.backward(np.full(n, scale, self.head.dtype))
        return dh

    def _repr_args(self):
        return {"head": self.head, "reduction": self.reduction}


class WordVectors(Layer):
    """WordVectors(cbow, head): the CBOW model of 004 §4.4 as fit trains it. forward(ctx) =
    cbow(ctx), the context vector h; the output layer `head` (HierarchicalSoftmax or
    NegativeSampling, applied by `HeadLoss(model.head)`) is a child, so `parameters()`,
    `zero_grad()` and the state dict ("cbow.weight", "head.weight", "head.bias") include it.
    After training, `cbow.weight` holds the word vectors (the output layer is discarded)."""

    def __init__(self, cbow, head):
        if not isinstance(cbow, CBOW):
            raise TypeError(f"cbow: expected a CBOW layer, got {type(cbow).__name__}")
        if not isinstance(head, _BinaryTermsLoss):
            raise TypeError(f"head: expected a HierarchicalSoftmax or NegativeSampling, got {type(head).__name__}")
        if head.in_features != cbow.embedding_dim or head.dtype != cbow.dtype:
            raise ValueError(f"head: expected in_features {cbow.embedding_dim} and dtype {cbow.dtype.__name__} "
                             f"(the CBOW's), got {head.in_features} and {head.dtype.__name__}")
        self.cbow = cbow
        self.head = head
        self.dtype = cbow.dtype

    def forward(self, ctx, train=True):
        return self.cbow.forward(ctx, train=train)

    def backward(self, dh, *, input_grad=True):
        return self.cbow.backward(dh, input_grad=input_grad)


# ---- fast kernels --------------------------------------------------------------------------------
@njit(cache=True, parallel=True, fastmath=FASTMATH)
def cbow_forward(ctx, weight, scale, n_chunks):
    """h_n = scale · Σ_j E[ctx[n, j], :], parallel over n_chunks chunks of examples (disjoint rows of h)."""
    N, C = ctx.shape
    Z = weight.shape[1]
    h = np.zeros((N, Z), weight.dtype)
    step = (N + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for n in range(c * step, min(N, (c + 1) * step)):
            dst = h[n]
            for j in range(C):
                src = weight[ctx[n, j]]                 # 1-D rows: the loop vectorises
                for d in range(Z):
                    dst[d] += src[d]
            for d in range(Z):
                dst[d] *= scale
    return h


@njit(cache=True, parallel=True)
def cbow_backward(dh, ctx, dweight, scale, n_chunks):
    """∂ℓ/∂E[ctx[n, j], lo:hi] += scale · ∂ℓ/∂h[n, lo:hi], parallel over n_chunks column blocks
    lo:hi (disjoint columns of ∂ℓ/∂E), each block walking (n, j) in the reference's order."""
    N, C = ctx.shape
    Z = dh.shape[1]
    step = (Z + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo, hi = c * step, min(Z, (c + 1) * step)
        for n in range(N):
            g = dh[n, lo:hi]
            for j in range(C):
                w = dweight[ctx[n, j], lo:hi]
                for d in range(hi - lo):
                    w[d] += scale * g[d]


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def binary_terms_forward(h, rows, bits, weight, bias, n_chunks):
    """(1) for every example: η_{nk} = w_{r_{nk}}ᵀ h_n + b_{r_{nk}} (a dot product of two
    contiguous rows), ℓ_n = Σ_k log(1 + e^{−s η}), g_{nk} = σ(η) − t; parallel over n_chunks
    chunks of examples (disjoint entries of ℓ and g)."""
    N, K = rows.shape
    Z = h.shape[1]
    loss = np.zeros(N, h.dtype)
    g = np.zeros((N, K), h.dtype)
    step = (N + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        for n in range(c * step, min(N, (c + 1) * step)):
            x = h[n]
            acc = 0.0
            for k in range(K):
                r = rows[n, k]
                if r < 0:
                    continue
                w = weight[r]
                eta = 0.0
                for d in range(Z):
                    eta += w[d] * x[d]
                eta += bias[r]
                t = bits[n, k]
                acc += log1p_exp(-(2.0 * t - 1.0) * eta)
                g[n, k] = sigmoid(eta) - t
            loss[n] = acc
    return loss, g


@njit(cache=True, parallel=True, fastmath=FASTMATH)
def binary_terms_backward(dloss, g, rows, h, weight, dweight, dbias, dh, n_chunks):
    """The backward of (1), parallel over n_chunks column blocks lo:hi of Z (disjoint columns of
    ∂ℓ/∂h and ∂ℓ/∂W): for every (n, k) with r = r_{nk} ≥ 0 and c = δ_n g_{nk},
        ∂ℓ/∂h[n, lo:hi] += c w_r[lo:hi];   ∂ℓ/∂W[r, lo:hi] += c h_n[lo:hi];
    the first block also adds ∂ℓ/∂b_r += c. dh (N, Z) is overwritten."""
    N, K = rows.shape
    Z = h.shape[1]
    step = (Z + n_chunks - 1) // n_chunks
    for ch in prange(n_chunks):
        lo, hi = ch * step, min(Z, (ch + 1) * step)
        for n in range(N):
            dx = dh[n, lo:hi]
            x = h[n, lo:hi]
            for d in range(hi - lo):
                dx[d] = 0.0
            for k in range(K):
                r = rows[n, k]
                if r < 0:
                    continue
                c = dloss[n] * g[n, k]
                w = weight[r, lo:hi]
                dw = dweight[r, lo:hi]
                for d in range(hi - lo):
                    dx[d] += c * w[d]
                    dw[d] += c * x[d]
                if ch == 0:
                    dbias[r] += c
