"""engine.sampling (issue 12, item 6): temperature and top-k sampling from logits, seeded, and
autoregressive generation from a step function under no_grad."""
import warnings

import numpy as np
import pytest

import engine
from engine.sampling import generate, probabilities, sample_next


def softmax(f):
    e = np.exp(f - f.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


LOGITS = np.array([1.0, -0.5, 2.0, 0.3, -2.0, 1.2])


def test_seeded_reproducibility():
    f = np.random.default_rng(0).standard_normal((50, 7))
    a = sample_next(f, 0.9, 4, rng=123)
    b = sample_next(f, 0.9, 4, rng=np.random.default_rng(123))
    assert a.dtype == np.int64 and a.shape == (50,)
    np.testing.assert_array_equal(a, b)
    g = np.random.default_rng(5)                  # a Generator advances: two draws differ
    assert not np.array_equal(sample_next(f, rng=g), sample_next(f, rng=g))
    assert not np.array_equal(sample_next(f, rng=1), sample_next(f, rng=2))


def test_one_dimensional_logits_give_an_int():
    i = sample_next(LOGITS, rng=0)
    assert isinstance(i, int) and 0 <= i < LOGITS.size
    assert i == sample_next(LOGITS[None], rng=0)[0]


def test_top_k_1_is_argmax_ties_to_the_first():
    f = np.random.default_rng(1).standard_normal((40, 9))
    f[::3, 2] = f[::3, 7] = f[::3].max(axis=1) + 1.0          # ties at the maximum
    for seed in range(3):
        np.testing.assert_array_equal(sample_next(f, top_k=1, rng=seed), f.argmax(axis=1))
        np.testing.assert_array_equal(sample_next(f, 5.0, top_k=1, rng=seed), f.argmax(axis=1))


def test_temperature_to_zero_is_argmax_without_warnings():
    f = np.random.default_rng(2).standard_normal((40, 9)) * 50
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for t in (1e-3, 1e-30, 1e-300, 5e-324):
            np.testing.assert_array_equal(sample_next(f, t, rng=0), f.argmax(axis=1))
            p = probabilities(f, t)
            assert np.isfinite(p).all()
            np.testing.assert_array_equal(p, np.eye(9)[f.argmax(axis=1)])


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.5, None), (2.5, None),
                                                (1.0, 3), (0.7, 4), (1.3, 6)])
def test_frequencies_match_softmax_over_temperature(temperature, top_k):
    n = 200_000
    ids = sample_next(np.tile(LOGITS, (n, 1)), temperature, top_k, rng=2026)
    freq = np.bincount(ids, minlength=LOGITS.size) / n
    f = LOGITS / temperature
    if top_k is not None:
        f = np.where(LOGITS >= np.sort(LOGITS)[-top_k], f, -np.inf)
    p = softmax(f)
    np.testing.assert_allclose(probabilities(LOGITS, temperature, top_k), p, rtol=1e-13, atol=0)
    assert (freq[p == 0] == 0).all()                          # outside the top k: never drawn
    # 200k draws: the standard deviation of each frequency is at most 0.0012; 0.005 is ~4 of them
    np.testing.assert_allclose(freq, p, atol=0.005)


def test_masked_tokens_and_float32():
    f = np.array([[0.0, -np.inf, 1.0, -np.inf]] * 1000, dtype=np.float32)
    ids = sample_next(f, rng=0)
    assert set(np.unique(ids)) == {0, 2}
    np.testing.assert_allclose(probabilities(f[0]), [1 / (1 + np.e), 0, np.e / (1 + np.e), 0])


def test_never_draws_a_zero_probability_last_token():
    # u · Σp rounding up to Σp must not select a trailing token of probability 0
    f = np.array([[0.0, 0.0, -np.inf]] * 5000)
    assert sample_next(f, rng=3).max() <= 1


# ---- generate --------------------------------------------------------------------------------
V = 5
TABLE = np.random.default_rng(9).standard_normal((V, V)) * 2     # bigram logits: next | last


def bigram(ids):
    assert not engine.is_grad_enabled()
    return TABLE[ids[:, -1]]


def test_generate_shapes_and_reproducible():
    start = np.array([[0, 1], [3, 3], [4, 2]])
    a = generate(bigram, start, 20, temperature=0.8, top_k=3, rng=11)
    b = generate(bigram, start, 20, temperature=0.8, top_k=3, rng=11)
    assert a.shape == (3, 22) and a.dtype == np.int64
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, :2], start)
    assert a.min() >= 0 and a.max() < V
    one = generate(bigram, np.array([1, 2, 3], dtype=np.int32), 4, rng=0)
    assert one.shape == (7,)
    assert generate(bigram, start, 0).tolist() == start.tolist()
    assert engine.is_grad_enabled()


def test_generate_greedy_follows_the_argmax_chain():
    out = generate(bigram, np.array([[0], [1], [2]]), 10, top_k=1, rng=0)
    for row in out:
        for a, b in zip(row[:-1], row[1:]):
            assert b == TABLE[a].argmax()


def test_generate_equals_sample_next_step_by_step():
    """One Generator for the whole run: generate is sample_next in a loop."""
    start = np.array([[2], [4]])
    out = generate(bigram, start, 6, temperature=1.5, rng=np.random.default_rng(4))
    g, ids = np.random.default_rng(4), start.copy()
    for _ in range(6):
        ids = np.concatenate([ids, sample_next(TABLE[ids[:, -1]], 1.5, rng=g)[:, None]], axis=1)
    np.testing.assert_array_equal(out, ids)


def test_generate_with_a_stateful_step_function():
    """A recurrent model keeps its state between calls and reads only the newest column."""
    seen = []

    class Counter:
        state = None

        def __call__(self, ids):
            x = ids if self.state is None else ids[:, -1:]
            seen.append(x.shape[1])
            self.state = (0 if self.state is None else self.state) + x.shape[1]
            return TABLE[x[:, -1]]

    out = generate(Counter(), np.array([[1, 2, 3]]), 5, rng=0)
    assert seen == [3, 1, 1, 1, 1] and out.shape == (1, 8)


def test_generate_runs_a_layer_under_no_grad():
    from layers.dense import Linear
    lin = Linear(V, V, rng=0)
    out = generate(lambda ids: lin.forward(np.eye(V)[ids[:, -1]]), np.array([[0], [4]]), 5, rng=0)
    assert out.shape == (2, 6)
    with pytest.raises(RuntimeError):             # nothing was saved for a backward
        lin.backward(np.ones((2, V)))


# ---- bad arguments ---------------------------------------------------------------------------
F = np.zeros((2, 4))
S = np.array([[0, 1]])
BAD = [
    (lambda: sample_next([1.0, 2.0]), TypeError, "logits"),
    (lambda: sample_next(np.arange(4)), TypeError, "logits"),
    (lambda: sample_next(np.zeros((2, 3, 4))), ValueError, "logits"),
    (lambda: sample_next(np.zeros((2, 0))), ValueError, "logits"),
    (lambda: sample_next(np.array([0.0, np.nan])), ValueError, "logits"),
    (lambda: sample_next(np.array([0.0, np.inf])), ValueError, "logits"),
    (lambda: sample_next(np.array([[0.0, 1.0], [-np.inf, -np.inf]])), ValueError, "logits"),
    (lambda: sample_next(F, 0.0), ValueError, "temperature"),
    (lambda: sample_next(F, -1.0), ValueError, "temperature"),
    (lambda: sample_next(F, float("nan")), TypeError, "temperature"),
    (lambda: sample_next(F, "1"), TypeError, "temperature"),
    (lambda: sample_next(F, top_k=0), ValueError, "top_k"),
    (lambda: sample_next(F, top_k=5), ValueError, "top_k"),
    (lambda: sample_next(F, top_k=1.0), TypeError, "top_k"),
    (lambda: sample_next(F, top_k=True), TypeError, "top_k"),
    (lambda: sample_next(F, rng=-1), ValueError, "rng"),
    (lambda: sample_next(F, rng="seed"), TypeError, "rng"),
    (lambda: probabilities(F, top_k=9), ValueError, "top_k"),
    (lambda: generate(None, S, 3), TypeError, "step_fn"),
    (lambda: generate(bigram, [[0, 1]], 3), TypeError, "start_ids"),
    (lambda: generate(bigram, S.astype(float), 3), TypeError, "start_ids"),
    (lambda: generate(bigram, np.zeros((1, 2, 1), int), 3), ValueError, "start_ids"),
    (lambda: generate(bigram, np.zeros((2, 0), int), 3), ValueError, "start_ids"),
    (lambda: generate(bigram, np.array([[0, -1]]), 3), ValueError, "start_ids"),
    (lambda: generate(bigram, S, -1), ValueError, "max_new_tokens"),
    (lambda: generate(bigram, S, 2.0), TypeError, "max_new_tokens"),
    (lambda: generate(bigram, S, 3, temperature=0), ValueError, "temperature"),
    (lambda: generate(bigram, S, 3, top_k=0), ValueError, "top_k"),
    (lambda: generate(bigram, S, 3, top_k=V + 1), ValueError, "top_k"),
    (lambda: generate(bigram, S, 3, rng=1.5), TypeError, "rng"),
    (lambda: generate(lambda ids: [0.0] * V, S, 3), TypeError, r"step_fn\(ids\)"),
    (lambda: generate(lambda ids: np.zeros(V), S, 3), ValueError, r"step_fn\(ids\)"),
    (lambda: generate(lambda ids: np.zeros((2, V)), S, 3), ValueError, r"step_fn\(ids\)"),
    (lambda: generate(lambda ids: np.zeros((1, ids.shape[1])), S, 3), ValueError,
     r"step_fn\(ids\): .*V as before"),
    (lambda: generate(lambda ids: np.full((1, V), np.nan), S, 3), ValueError, r"step_fn\(ids\)"),
    (lambda: generate(lambda ids: np.zeros((1, V), int), S, 3), TypeError, r"step_fn\(ids\)"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}"):
        call()
