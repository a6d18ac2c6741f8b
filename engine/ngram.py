"""Count-based n-gram language models (notes 000 §8: P(w_n | w_1 … w_{n−1}) estimated from
counts), the baselines the neural language models are measured against.

    lm = KneserNeyLM(order=5, vocab_size=65).fit(train_ids)
    lm.cross_entropy(valid_ids)          # nats per token
    lm.probs(contexts)                   # (M, V), each row sums to 1

The plain maximum-likelihood estimate c(h w) / c(h) gives probability 0 to every n-gram not seen
in training (infinite cross-entropy) and has no estimate at all for an unseen context h. The
Kneser–Ney family discounts every seen count and gives the mass it frees to a lower-order
distribution; interpolated modified Kneser–Ney (Chen & Goodman 1998, "An empirical study of
smoothing techniques for language modeling", §3.5 and §4.1.6) is, for a context h of k − 1
tokens and h' = h without its oldest token:

    p_k(w | h) = [ max(a_k(h w) − D_k(a_k(h w)), 0) + γ_k(h) p_{k−1}(w | h') ] / S_k(h)   if S_k(h) > 0
    p_k(w | h) = p_{k−1}(w | h')                                                          otherwise
    S_k(h) = Σ_w a_k(h w),   γ_k(h) = D_k1 N_1(h •) + D_k2 N_2(h •) + D_k3+ N_3+(h •)

where N_j(h •) counts the tokens w with a_k(h w) = j (N_3+: ≥ 3), and p_0(w) = 1/V (uniform,
so every token of the vocabulary keeps some probability). The counts a_k are
  * the raw counts c(h w) at the highest order k = n,
  * below it the continuation counts N_1+(• h w) = #{v : c(v h w) > 0}: how many different
    tokens precede h w (a token seen often but after one context only, "Francisco", is a poor
    guess for a new context, which is Kneser–Ney's point).
The discounts of level k come from its counts of counts t_j = #{k-grams with a_k = j}
(Chen & Goodman's estimates):
    Y = t_1 / (t_1 + 2 t_2),  D_k1 = 1 − 2Y t_2/t_1,  D_k2 = 2 − 3Y t_3/t_2,  D_k3+ = 3 − 4Y t_4/t_3.
Each row sums to one: Σ_w max(a − D(a), 0) = S − γ (D(a) ≤ a), and p_{k−1} sums to one.

A context shorter than n − 1 tokens (the first tokens of a text) uses the levels it has (the
highest with continuation counts). `cross_entropy(ids)` is the mean of −ln p(ids[i] | the up to
n − 1 tokens before it) over i = 1 … len − 1, as a language model's next-token targets.

`AddKLM` is the weaker add-k (Lidstone) estimate (c(h w) + k) / (c(h) + kV) on raw counts, kept
as a comparison: it flatters any model compared with it.

Vectorised with NumPy: an n-gram is the integer Σ_j w_j V^{n−1−j} (int64: V^n < 2^62 is
required), counted with np.unique and looked up with np.searchsorted; a 5-gram model of the
1M-character corpus fits and evaluates in about a second.
"""
import numpy as np

from .checks import check_float, check_int


def _check_ids(name, ids, V):
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray of integer token ids, got {type(ids).__name__}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{name}: expected integer token ids, got dtype {ids.dtype}")
    if ids.ndim != 1 or ids.size < 2:
        raise ValueError(f"{name}: expected a 1-dimensional array of at least 2 ids, got shape {ids.shape}")
    lo, hi = ids.min(), ids.max()
    if lo < 0 or hi >= V:
        raise ValueError(f"{name}: expected ids in [0, {V - 1}], got values in [{lo}, {hi}]")
    return ids.astype(np.int64)


def _lookup(keys, values, q, missing=0):
    """values[j] where keys[j] == q (keys sorted, unique), else `missing`; vectorised over q."""
    if keys.size == 0:
        return np.full(q.shape, missing, dtype=values.dtype)
    j = np.searchsorted(keys, q)
    j = np.minimum(j, keys.size - 1)
    found = keys[j] == q
    return np.where(found, values[j], missing)


class _NGramBase:
    def __init__(self, order, vocab_size):
        self.order = check_int("order", order, low=1)
        self.vocab_size = check_int("vocab_size", vocab_size, low=1)
        if float(self.vocab_size) ** self.order >= 2.0 ** 62:
            raise ValueError(f"order: vocab_size^order = {self.vocab_size}^{self.order} does not fit the int64 "
                             "codes of the n-grams (expected < 2^62)")
        self.fitted = False

    def _grams(self, ids, k):
        """Codes of every k-gram of `ids` (length len − k + 1)."""
        V, n = self.vocab_size, ids.size - k + 1
        code = np.zeros(n, np.int64)
        for j in range(k):
            code = code * V + ids[j:j + n]
        return code

    def _check_fitted(self):
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__}: call fit(train_ids) first")

    def _contexts(self, ids):
        """(ctx (M, n−1) with −1 where there is no history, targets (M,)) for i = 1 … len − 1."""
        n1 = self.order - 1
        M = ids.size - 1
        ctx = np.full((M, n1), -1, np.int64)
        for j in range(1, n1 + 1):                 # column n1 − j holds the token j steps back
            # target i (1..len−1) has ids[i − j] when i − j >= 0
            ctx[j - 1:, n1 - j] = ids[:M - j + 1]
        return ctx, ids[1:]

    def _ctx_code(self, ctx, m):
        """Codes of the last m columns of ctx (rows that hold m tokens of history)."""
        code = np.zeros(ctx.shape[0], np.int64)
        for j in range(ctx.shape[1] - m, ctx.shape[1]):
            code = code * self.vocab_size + ctx[:, j]
        return code

    def _check_ctx(self, contexts):
        if not isinstance(contexts, np.ndarray) or not np.issubdtype(contexts.dtype, np.integer):
            raise TypeError(f"contexts: expected an integer numpy.ndarray, got "
                            f"{getattr(contexts, 'dtype', type(contexts).__name__)}")
        if contexts.ndim == 1:
            contexts = contexts[None, :]
        if contexts.ndim != 2:
            raise ValueError(f"contexts: expected shape (M, t) or (t,), got {contexts.shape}")
        if contexts.size and (contexts.min() < 0 or contexts.max() >= self.vocab_size):
            raise ValueError(f"contexts: expected ids in [0, {self.vocab_size - 1}], got values in "
                             f"[{contexts.min()}, {contexts.max()}]")
        n1 = self.order - 1
        t = contexts.shape[1]
        ctx = np.full((contexts.shape[0], n1), -1, np.int64)
        m = min(t, n1)
        if m:
            ctx[:, n1 - m:] = contexts[:, t - m:]
        return ctx

    def probs(self, contexts):
        """p(w | context) for every token w: (M, V) for contexts (M, t) (or (V,) for one (t,)),
        the last min(t, n − 1) ids of each row used (t = 0: the empty context)."""
        self._check_fitted()
        one = isinstance(contexts, np.ndarray) and contexts.ndim == 1
        ctx = self._check_ctx(contexts)
        M, V = ctx.shape[0], self.vocab_size
        p = self._prob(np.repeat(ctx, V, axis=0), np.tile(np.arange(V), M)).reshape(M, V)
        return p[0] if one else p

    def cross_entropy(self, ids):
        """Mean −ln p(ids[i] | up to n − 1 previous ids) over i = 1 … len − 1, in nats."""
        self._check_fitted()
        ids = _check_ids("ids", ids, self.vocab_size)
        ctx, w = self._contexts(ids)
        return float(-np.mean(np.log(self._prob(ctx, w))))

    def step_fn(self):
        """A step function for engine.sampling.generate: the log-probabilities as logits."""
        def step(ids):
            return np.log(self.probs(ids[:, -(self.order - 1):] if self.order > 1 else ids[:, :0]))
        return step


class KneserNeyLM(_NGramBase):
    """Interpolated modified Kneser–Ney n-gram model (module docstring). KneserNeyLM(order,
    vocab_size); fit(train_ids) -> self; probs, cross_entropy, step_fn. Attributes after fit:
    `discounts` (order, 3): (D_1, D_2, D_3+) of each level k = 1 … order."""

    def fit(self, ids):
        ids = _check_ids("ids", ids, self.vocab_size)
        n, V = self.order, self.vocab_size
        self.levels = [None] * (n + 1)
        self.discounts = np.zeros((n, 3))
        codes, counts = np.unique(self._grams(ids, n), return_counts=True)     # raw counts, order n
        for k in range(n, 0, -1):
            if k < n:       # continuation counts: distinct left extensions v of each k-gram g, c(v g) > 0
                distinct = np.unique(self._grams(ids, k + 1))
                codes, counts = np.unique(distinct % (V ** k), return_counts=True)
            D = self._discounts(counts)
            self.discounts[k - 1] = D
            ctx = codes // V
            keys, start = np.unique(ctx, return_index=True)
            S = np.add.reduceat(counts, start)
            n1 = np.add.reduceat((counts == 1).astype(np.int64), start)
            n2 = np.add.reduceat((counts == 2).astype(np.int64), start)
            n3 = np.add.reduceat((counts >= 3).astype(np.int64), start)
            gamma = D[0] * n1 + D[1] * n2 + D[2] * n3
            self.levels[k] = (codes, counts, keys, S.astype(np.float64), gamma)
        self.fitted = True
        return self

    @staticmethod
    def _discounts(counts):
        """(D_1, D_2, D_3+) from the counts of counts t_1 … t_4 (Chen & Goodman), each kept in
        [0, j] so that no discounted count goes negative (with too few counts: D_j = j/2)."""
        t = [np.count_nonzero(counts == j) for j in (1, 2, 3, 4)]
        if min(t) == 0:
            return np.array([0.5, 1.0, 1.5])
        Y = t[0] / (t[0] + 2 * t[1])
        D = np.array([1 - 2 * Y * t[1] / t[0], 2 - 3 * Y * t[2] / t[1], 3 - 4 * Y * t[3] / t[2]])
        return np.clip(D, 0.0, [1.0, 2.0, 3.0])

    def _prob(self, ctx, w):
        """p(w | ctx) for rows ctx (M, n−1) (−1: no token that far back) and targets w (M,)."""
        V = self.vocab_size
        p = np.full(w.shape[0], 1.0 / V)
        n1 = self.order - 1
        for k in range(1, self.order + 1):
            m = k - 1                                      # tokens of context at this level
            rows = slice(None) if m == 0 else (ctx[:, n1 - m] >= 0)
            codes, counts, keys, S, gamma = self.levels[k]
            h = self._ctx_code(ctx[rows], m) if m else np.zeros(w.shape[0], np.int64)
            a = _lookup(codes, counts, h * V + w[rows]).astype(np.float64)
            s = _lookup(keys, S, h, 0.0)
            g = _lookup(keys, gamma, h, 0.0)
            D = self.discounts[k - 1]
            disc = np.where(a >= 3, D[2], np.where(a == 2, D[1], np.where(a == 1, D[0], 0.0)))
            lower = p[rows]
            seen = s > 0
            p[rows] = np.where(seen, (np.maximum(a - disc, 0.0) + g * lower) / np.where(seen, s, 1.0), lower)
        return p


class AddKLM(_NGramBase):
    """Add-k (Lidstone) n-gram model: p(w | h) = (c(h w) + k) / (c(h) + kV) on raw counts of the
    highest order the context allows (c(h) = Σ_w c(h w)). AddKLM(order, vocab_size, k=1.0)."""

    def __init__(self, order, vocab_size, k=1.0):
        super().__init__(order, vocab_size)
        self.k = check_float("k", k, low=0.0, low_open=True)

    def fit(self, ids):
        ids = _check_ids("ids", ids, self.vocab_size)
        self.levels = [None]
        for m in range(1, self.order + 1):
            codes, counts = np.unique(self._grams(ids, m), return_counts=True)
            keys, start = np.unique(codes // self.vocab_size, return_index=True)
            self.levels.append((codes, counts, keys, np.add.reduceat(counts, start)))
        self.fitted = True
        return self

    def _prob(self, ctx, w):
        V, n1 = self.vocab_size, self.order - 1
        have = (ctx >= 0).sum(axis=1)                      # history available per row
        p = np.empty(w.shape[0])
        for m in range(0, n1 + 1):
            rows = have == m if m < n1 else have >= n1
            if not rows.any():
                continue
            codes, counts, keys, S = self.levels[m + 1]
            h = self._ctx_code(ctx[rows], m) if m else np.zeros(int(rows.sum()), np.int64)
            c = _lookup(codes, counts, h * V + w[rows]).astype(np.float64)
            s = _lookup(keys, S, h, 0).astype(np.float64)
            p[rows] = (c + self.k) / (s + self.k * V)
        return p


__all__ = ["KneserNeyLM", "AddKLM"]
