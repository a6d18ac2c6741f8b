"""Similarity in an embedding space (notes 004 §4.1, §4.3–4.4): cosine similarity, nearest
neighbours and analogies of word vectors (the rows of an embedding matrix E, V × Z).

    cos(a, b) = aᵀb / (‖a‖ ‖b‖)          (004 §4.3: the angle only; the inner product also
                                          counts the lengths)

    ids, sims = nearest_neighbors(E, [3, 17], k=5)   # (2, 5) each, the word itself left out
    ids, sims = analogy(E, a, b, c, k=1)              # d maximising cos(d, b − a + c), d ∉ {a, b, c}

A zero row has no direction: its cosine with anything is taken as 0 (it is never anyone's
near neighbour, nor has any). Ties are broken by the smaller id, so results are the same on
every machine. Plain NumPy (one matrix product); nothing here is a training kernel.
"""
import numpy as np

from engine.checks import check_array, check_int


def _check_embeddings(E):
    E = check_array("E", E, ndim=2)
    return E.astype(np.float64, copy=False)


def _check_ids(name, ids, V):
    a = np.asarray(ids) if isinstance(ids, (list, tuple, int, np.integer)) else ids
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected integer word ids, got {type(ids).__name__}")
    if not np.issubdtype(a.dtype, np.integer) or a.size == 0:
        raise TypeError(f"{name}: expected a non-empty array of integer word ids, got dtype {a.dtype}, "
                        f"shape {a.shape}")
    a = a.reshape(-1).astype(np.int64)
    if a.min() < 0 or a.max() >= V:
        raise ValueError(f"{name}: expected word ids in [0, {V - 1}], got values in [{a.min()}, {a.max()}]")
    return a


def unit_rows(E):
    """E with every non-zero row scaled to length 1 (zero rows stay zero), float64."""
    E = _check_embeddings(E)
    norms = np.sqrt(np.einsum("ij,ij->i", E, E))
    return E / np.where(norms > 0, norms, 1.0)[:, None]


def cosine_similarity(E, ids=None):
    """cos(E[i], E[j]) for i in `ids` (every row when None) and every row j: (len(ids), V)."""
    U = unit_rows(E)
    rows = U if ids is None else U[_check_ids("ids", ids, U.shape[0])]
    return rows @ U.T


def _top_k(sims, k, exclude):
    """The k largest entries of each row of sims, leaving out the (row, column) pairs in
    `exclude` (a list of id arrays, one per row); ties by the smaller id."""
    sims = sims.copy()
    for r, ex in enumerate(exclude):
        sims[r, ex] = -np.inf
    order = np.lexsort((np.broadcast_to(np.arange(sims.shape[1]), sims.shape), -sims), axis=1)[:, :k]
    return order, np.take_along_axis(sims, order, axis=1)


def nearest_neighbors(E, ids, k=5):
    """The k rows of E most cosine-similar to each row in `ids`, the word itself left out.
    E (V, Z); ids: integer ids (any shape, flattened) -> (neighbour ids (n, k) int64,
    similarities (n, k) float64), most similar first. k in [1, V − 1]."""
    E = _check_embeddings(E)
    V = E.shape[0]
    ids = _check_ids("ids", ids, V)
    k = check_int("k", k, low=1, high=V - 1)
    sims = cosine_similarity(E, ids)
    return _top_k(sims, k, [np.array([i]) for i in ids])


def analogy(E, a, b, c, k=1):
    """a : b :: c : d — the k rows d most cosine-similar to u_b − u_a + u_c (u: the unit rows),
    the three query words left out (Mikolov et al. 2013's 3CosAdd). a, b, c: single ids ->
    (ids (k,), similarities (k,))."""
    E = _check_embeddings(E)
    V = E.shape[0]
    q = [_check_ids(n, v, V) for n, v in (("a", a), ("b", b), ("c", c))]
    for n, v in zip("abc", q):
        if v.size != 1:
            raise ValueError(f"{n}: expected one word id, got {v.size}")
    k = check_int("k", k, low=1, high=V - 3 if V > 3 else 1)
    U = unit_rows(E)
    target = U[q[1][0]] - U[q[0][0]] + U[q[2][0]]
    n = np.linalg.norm(target)
    sims = (U @ (target / n if n > 0 else target))[None, :]
    ids, s = _top_k(sims, k, [np.concatenate(q)])
    return ids[0], s[0]
