"""engine.ngram: interpolated modified Kneser–Ney and add-k n-gram models (issue 12, item 9).
The vectorised models against a plain dictionary implementation of the same formulas (Chen &
Goodman 1998), every conditional distribution summing to 1, and the bundled corpus's numbers."""
from collections import Counter

import numpy as np
import pytest

from engine.ngram import AddKLM, KneserNeyLM


def stream(n=400, V=5, seed=0):
    rng = np.random.default_rng(seed)
    return (np.cumsum(rng.choice([0, 1, 1, 2, 3], size=n)) % V).astype(np.int64)


def kn_reference(train, V, n):
    """p(w | h) of interpolated modified Kneser–Ney written with dictionaries and recursion."""
    train = [int(t) for t in train]
    raw = {k: Counter(tuple(train[i:i + k]) for i in range(len(train) - k + 1)) for k in range(1, n + 1)}
    a = {n: raw[n]}
    for k in range(1, n):
        a[k] = Counter(g[1:] for g in raw[k + 1])            # distinct left extensions
    D = {}
    for k in range(1, n + 1):
        t = [sum(1 for c in a[k].values() if c == j) for j in (1, 2, 3, 4)]
        if min(t) == 0:
            D[k] = (0.5, 1.0, 1.5)
        else:
            Y = t[0] / (t[0] + 2 * t[1])
            D[k] = tuple(min(max(v, 0.0), j + 1.0) for j, v in enumerate(
                (1 - 2 * Y * t[1] / t[0], 2 - 3 * Y * t[2] / t[1], 3 - 4 * Y * t[3] / t[2])))

    def disc(k, c):
        return 0.0 if c == 0 else D[k][min(c, 3) - 1]

    def p(h, w):
        k = len(h) + 1
        if k == 1:
            lower = 1.0 / V
        else:
            lower = p(h[1:], w)
        row = {v: a[k].get(h + (v,), 0) for v in range(V)}
        S = sum(row.values())
        if S == 0:
            return lower
        gamma = sum(disc(k, c) for c in row.values())
        return (max(row[w] - disc(k, row[w]), 0.0) + gamma * lower) / S
    return p


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_equals_the_dictionary_implementation(order):
    V, train, valid = 5, stream(), stream(60, seed=1)
    lm = KneserNeyLM(order, V).fit(train)
    ref = kn_reference(train, V, order)
    ctxs = [tuple(int(t) for t in valid[max(0, i - order + 1):i]) for i in range(1, len(valid))]
    want = np.array([[ref(h, w) for w in range(V)] for h in ctxs])
    got = np.array([lm.probs(np.array(h, np.int64)) for h in ctxs])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    nll = -np.mean([np.log(ref(h, int(w))) for h, w in zip(ctxs, valid[1:])])
    assert lm.cross_entropy(valid) == pytest.approx(nll, rel=1e-12)


@pytest.mark.parametrize("cls", [KneserNeyLM, AddKLM])
@pytest.mark.parametrize("order", [1, 3, 5])
def test_every_context_gives_a_distribution(cls, order):
    """Seen, unseen, short and empty contexts: p >= 0 (> 0 for KN), each row sums to 1."""
    V = 6
    lm = cls(order, V).fit(stream(300, V))
    rng = np.random.default_rng(2)
    for t in range(0, order + 2):
        ctx = rng.integers(0, V, size=(40, t))
        P = lm.probs(ctx)
        assert P.shape == (40, V) and (P > 0).all()
        np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-13)


def test_add_k_is_the_formula():
    train = stream(200, 4)
    lm = AddKLM(2, 4, k=0.5).fit(train)
    pairs = Counter(zip(train[:-1].tolist(), train[1:].tolist()))
    first = Counter(train[:-1].tolist())
    for h in range(4):
        want = [(pairs[(h, w)] + 0.5) / (first[h] + 2.0) for w in range(4)]
        np.testing.assert_allclose(lm.probs(np.array([h])), want, rtol=1e-13)


def test_bundled_corpus_5gram_and_ordering():
    """On the 90/10 split of the bundled corpus: the 5-gram KN model at 1.55–1.59 nats per
    character (Chen & Goodman's smoothing, measured 1.561), better with every order, and better
    than add-k from the trigram on."""
    from engine.data.text import char_corpus
    vocab, train, valid = char_corpus()
    ce = [KneserNeyLM(n, len(vocab)).fit(train).cross_entropy(valid) for n in (1, 3, 5)]
    assert ce[0] > ce[1] > ce[2] and 1.55 <= ce[2] <= 1.59
    assert AddKLM(5, len(vocab), k=0.1).fit(train).cross_entropy(valid) > ce[2] + 0.1


def test_discounts_stay_in_range():
    from engine.data.text import char_corpus
    vocab, train, _ = char_corpus()
    D = KneserNeyLM(4, len(vocab)).fit(train[:100_000]).discounts
    assert (D >= 0).all() and (D <= [1, 2, 3]).all()


def test_bad_input():
    with pytest.raises(ValueError, match="order"):
        KneserNeyLM(12, 65)                                   # 65^12 overflows int64 codes
    with pytest.raises(TypeError, match="order"):
        KneserNeyLM(2.0, 5)
    lm = KneserNeyLM(3, 5)
    with pytest.raises(RuntimeError, match="fit"):
        lm.cross_entropy(stream())
    with pytest.raises(ValueError, match=r"ids: expected ids in \[0, 4\]"):
        lm.fit(np.array([0, 1, 5]))
    with pytest.raises(TypeError, match="ids"):
        lm.fit(np.array([0.0, 1.0]))
    lm.fit(stream())
    with pytest.raises(ValueError, match="contexts"):
        lm.probs(np.array([[0, 9]]))
    with pytest.raises(ValueError, match="k"):
        AddKLM(2, 5, k=0.0)


def test_step_fn_samples_through_generate():
    from engine.sampling import generate
    lm = KneserNeyLM(3, 5).fit(stream())
    a = generate(lm.step_fn(), np.array([0, 1]), 20, temperature=0.8, rng=3)
    b = generate(lm.step_fn(), np.array([0, 1]), 20, temperature=0.8, rng=3)
    assert a.shape == (22,) and np.array_equal(a, b) and a.max() < 5
