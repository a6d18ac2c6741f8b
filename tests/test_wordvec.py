"""Word vectors (issue 12, item 10): CBOW, HierarchicalSoftmax (balanced and Huffman trees),
NegativeSampling, HeadLoss/WordVectors through fit, and analysis.embeddings. Gradient checks
live in scripts/gradcases_wordvec.py; here: the trees, the distribution over the leaves, which
rows get gradients, both kernel paths (parallel and serial, float32), PyTorch float64 (CBOW
against nn.EmbeddingBag; the output layers against autograd of the same formula), the noise
distribution, bad input."""
import math

import numpy as np
import pytest

import engine
from analysis.embeddings import analogy, cosine_similarity, nearest_neighbors
from engine import no_grad
from engine.optim import Adam
from layers.wordvec import (CBOW, HeadLoss, HierarchicalSoftmax, NegativeSampling, WordVectors, build_tree)

from crosscheck import crosscheck

PATHS = [False, True]


def random_head(head, rng, scale=0.5):
    head.weight.value[...] = scale * rng.standard_normal(head.weight.shape)
    if head.bias is not None:
        head.bias.value[...] = scale * rng.standard_normal(head.bias.shape)
    return head


# ---- trees ----------------------------------------------------------------------------------------
def leaves_of(tree):
    """Walk the tree from the root: {class: (path, code)} read from `children` alone."""
    out, stack = {}, [(0, [], [])]
    while stack:
        v, p, c = stack.pop()
        for bit in (0, 1):
            ch = tree.children[v, bit]
            if ch >= 0:
                stack.append((ch, p + [v], c + [bit]))
            else:
                out[-1 - ch] = (p + [v], c + [bit])
    return out


@pytest.mark.parametrize("V", [2, 3, 8, 11, 100])
@pytest.mark.parametrize("kind", ["balanced", "huffman"])
def test_tree_is_a_full_binary_tree_over_the_classes(kind, V):
    counts = np.random.default_rng(V).zipf(1.5, V).astype(float)
    t = build_tree(kind, V, counts)
    assert t.children.shape == (V - 1, 2)
    found = leaves_of(t)
    assert sorted(found) == list(range(V))                            # every class once
    inner = sorted(c for c in t.children.ravel() if c >= 0)
    assert inner == list(range(1, V - 1))                             # every vertex but the root once
    for y, (p, c) in found.items():                                   # paths/codes/depths agree
        assert t.depths[y] == len(p)
        assert list(t.paths[y, :len(p)]) == p and (t.paths[y, len(p):] == -1).all()
        assert list(t.codes[y, :len(p)]) == c
    assert math.isclose(np.sum(2.0 ** -t.depths), 1.0)                # Kraft equality of a full tree
    if kind == "balanced":
        assert set(t.depths) <= {math.floor(math.log2(V)), math.ceil(math.log2(V))}


def huffman_cost(counts):
    """The optimal Σ counts·depth, independently: the sum of all merged weights."""
    w, cost = sorted(counts), 0.0
    while len(w) > 1:
        a, b = w[0], w[1]
        w = sorted(w[2:] + [a + b])
        cost += a + b
    return cost


@pytest.mark.parametrize("seed", range(5))
def test_huffman_depth_is_optimal_and_at_most_balanced(seed):
    rng = np.random.default_rng(seed)
    V = int(rng.integers(2, 300))
    counts = rng.zipf(1.3 + seed / 10, V).astype(float)
    h, b = build_tree("huffman", V, counts), build_tree("balanced", V, counts)
    assert math.isclose(np.dot(counts, h.depths), huffman_cost(list(counts)), rel_tol=1e-12)
    assert h.expected_depth(counts) <= b.expected_depth(counts) + 1e-12
    # a strictly more frequent class sits no deeper than a rarer one
    more = counts[:, None] > counts[None, :]
    assert not (more & (h.depths[:, None] > h.depths[None, :])).any()


def test_huffman_needs_counts_and_counts_are_checked():
    with pytest.raises(ValueError, match="counts: tree='huffman'"):
        HierarchicalSoftmax(4, 5, tree="huffman")
    with pytest.raises(ValueError, match=r"counts: expected shape \(5,\)"):
        HierarchicalSoftmax(4, 5, tree="huffman", counts=np.ones(4))
    with pytest.raises(ValueError, match="counts: expected finite non-negative"):
        NegativeSampling(4, 3, counts=[1.0, -1.0, 2.0])
    with pytest.raises(TypeError, match="counts: expected real class counts"):
        NegativeSampling(4, 3, counts=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="tree: expected one of"):
        HierarchicalSoftmax(4, 5, tree="flat")
    with pytest.raises(ValueError, match="num_classes"):
        HierarchicalSoftmax(4, 1)


# ---- hierarchical softmax: distribution and gradients ---------------------------------------------
@pytest.mark.parametrize("kind", ["balanced", "huffman"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_leaf_probabilities_sum_to_one_and_forward_is_minus_log_prob(kind, dtype):
    rng = np.random.default_rng(1)
    V, D = 37, 6
    counts = rng.zipf(1.4, V)
    hs = random_head(HierarchicalSoftmax(D, V, tree=kind, counts=counts, dtype=dtype), rng, 1.0)
    h = rng.standard_normal((9, D)).astype(dtype)
    lp = hs.log_prob(h)
    assert lp.shape == (9, V) and lp.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(np.exp(lp.astype(np.float64)).sum(axis=1), 1.0, rtol=0, atol=tol)
    y = rng.integers(0, V, 9)
    for reference in PATHS if dtype == np.float64 else [False]:    # (no float32 reference build)
        with engine.reference_kernels(reference), no_grad():
            np.testing.assert_allclose(hs.forward(h, y), -lp[np.arange(9), y], rtol=10 * tol, atol=10 * tol)
    assert np.array_equal(hs.predict(h), np.argmax(lp, axis=1))


@pytest.mark.parametrize("reference", PATHS)
def test_only_the_vertices_on_the_paths_get_gradients(reference):
    rng = np.random.default_rng(2)
    V, D = 50, 5
    counts = rng.zipf(1.5, V)
    hs = random_head(HierarchicalSoftmax(D, V, tree="huffman", counts=counts), rng)
    y = np.array([3, 3, 17])
    with engine.reference_kernels(reference):
        hs.forward(rng.standard_normal((3, D)), y)
        hs.backward(rng.standard_normal(3))
    on_path = np.zeros(V - 1, bool)
    for t in y:
        on_path[hs.tree.paths[t, :hs.tree.depths[t]]] = True
    assert not hs.weight.grad[~on_path].any() and not hs.bias.grad[~on_path].any()     # exactly zero
    assert (np.abs(hs.weight.grad[on_path]).sum(axis=1) > 0).all() and (hs.bias.grad[on_path] != 0).all()
    assert on_path.sum() < V - 1


def test_backward_twice_accumulates_and_input_grad_false():
    rng = np.random.default_rng(3)
    hs = random_head(HierarchicalSoftmax(4, 9), rng)
    h, y, d = rng.standard_normal((5, 4)), rng.integers(0, 9, 5), rng.standard_normal(5)
    hs.forward(h, y)
    dh1, none = hs.backward(d)
    g1 = hs.weight.grad.copy()
    hs.forward(h, y)
    dh2, _ = hs.backward(d, input_grad=False)
    assert none is None and dh2 is None
    np.testing.assert_allclose(hs.weight.grad, 2 * g1, rtol=1e-15)
    assert dh1.shape == h.shape


def torch_binary_terms(torch, h, W, b, rows, bits):
    """ℓ_n = Σ_k −log σ(s η) from the rows/bits, by autograd (padding rows −1 masked out)."""
    ht = torch.tensor(h, requires_grad=True)
    Wt = torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    r = torch.tensor(np.maximum(rows, 0))
    mask = torch.tensor(rows >= 0, dtype=torch.float64)
    eta = (Wt[r] * ht[:, None, :]).sum(-1) + bt[r]
    s = torch.tensor(2 * bits - 1.0)
    loss = -(torch.nn.functional.logsigmoid(s * eta) * mask).sum(1)
    return loss, ht, Wt, bt


@pytest.mark.parametrize("reference", PATHS)
@pytest.mark.parametrize("which", ["hs-huffman", "hs-balanced", "ns"])
def test_output_layers_against_torch_autograd_float64(torch, reference, which):
    rng = np.random.default_rng(4)
    V, D, N = 23, 7, 6
    counts = rng.zipf(1.5, V).astype(float)
    if which == "ns":
        head = NegativeSampling(D, V, k=4, counts=counts, rng=5, fix_negatives=True)
    else:
        head = HierarchicalSoftmax(D, V, tree=which[3:], counts=counts)
    random_head(head, rng)
    h, y, d = rng.standard_normal((N, D)), rng.integers(0, V, N), rng.standard_normal(N)
    with engine.reference_kernels(reference):
        loss = head.forward(h, y)
        dh, _ = head.backward(d)
    if which == "ns":
        rows = np.concatenate([y[:, None], head.last_negatives], axis=1)
        bits = np.zeros(rows.shape)
        bits[:, 0] = 1
    else:
        rows, bits = head.tree.paths[y], head.tree.codes[y]
    tl, ht, Wt, bt = torch_binary_terms(torch, h, head.weight.value, head.bias.value, rows, bits)
    tl.backward(torch.tensor(d))
    np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dh, ht.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(head.weight.grad, Wt.grad.numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(head.bias.grad, bt.grad.numpy(), rtol=1e-12, atol=1e-13)


def test_hierarchical_softmax_with_two_classes_is_logistic_regression():
    rng = np.random.default_rng(5)
    hs = random_head(HierarchicalSoftmax(3, 2), rng)
    h = rng.standard_normal((4, 3))
    eta = h @ hs.weight.value[0] + hs.bias.value[0]
    p1 = 1 / (1 + np.exp(-eta))                   # class 1 is the root's child 1
    np.testing.assert_allclose(np.exp(hs.log_prob(h)), np.stack([1 - p1, p1], axis=1), rtol=1e-13)


# ---- negative sampling ----------------------------------------------------------------------------
def test_negatives_follow_unigram_to_the_power_and_the_generator():
    counts = np.array([100.0, 50, 0, 10, 1, 300])
    ns = NegativeSampling(3, 6, k=8, counts=counts, power=0.75, rng=0)
    p = counts ** 0.75 / np.sum(counts ** 0.75)
    np.testing.assert_allclose(ns.noise, p, rtol=1e-15)
    draws = ns.sample(5000)
    assert draws.shape == (5000, 8) and draws.dtype == np.int64
    freq = np.bincount(draws.ravel(), minlength=6) / draws.size
    assert freq[2] == 0                                                 # a count of 0 is never drawn
    sd = np.sqrt(p * (1 - p) / draws.size)
    assert np.all(np.abs(freq - p) < 5 * sd + 1e-12)
    again = NegativeSampling(3, 6, k=8, counts=counts, rng=0).sample(5000)
    assert np.array_equal(draws, again)                                 # same seed, same draws
    uniform = NegativeSampling(3, 4, k=2, rng=1)
    np.testing.assert_allclose(uniform.noise, 0.25)


def test_fix_negatives_keeps_the_draw_until_resample():
    rng = np.random.default_rng(6)
    h, y = rng.standard_normal((5, 3)), rng.integers(0, 40, 5)
    fixed = random_head(NegativeSampling(3, 40, k=6, rng=1, fix_negatives=True), rng)
    free = random_head(NegativeSampling(3, 40, k=6, rng=1), rng)
    with no_grad():
        a, b = fixed.forward(h, y), fixed.forward(h, y)
        first = fixed.last_negatives.copy()
        fixed.resample()
        fixed.forward(h, y)
        c, d = free.forward(h, y), free.forward(h, y)
    assert np.array_equal(a, b) and not np.array_equal(first, fixed.last_negatives)
    assert not np.array_equal(c, d)


def test_negative_sampling_loss_is_the_formula():
    rng = np.random.default_rng(7)
    ns = random_head(NegativeSampling(4, 10, k=3, rng=2), rng)
    h, y = rng.standard_normal((3, 4)), rng.integers(0, 10, 3)
    loss = ns.forward(h, y, train=False)
    W, b, neg = ns.weight.value, ns.bias.value, ns.last_negatives
    logsig = lambda x: -np.logaddexp(0, -x)                             # noqa: E731
    want = [-logsig(W[y[n]] @ h[n] + b[y[n]]) - sum(logsig(-(W[c] @ h[n] + b[c])) for c in neg[n])
            for n in range(3)]
    np.testing.assert_allclose(loss, want, rtol=1e-14)
    np.testing.assert_allclose(np.exp(ns.log_prob(h)).sum(axis=1), 1.0, rtol=1e-14)


# ---- CBOW -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("reference", PATHS)
@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_cbow_against_torch_embedding_bag(torch, reference, mode):
    ctx = np.random.default_rng(8).integers(0, 6, (4, 4))
    ctx[0] = [2, 2, 2, 5]                                             # repeats in one context
    cbow = CBOW(6, 3, mode=mode, rng=1)
    with engine.reference_kernels(reference):
        res = crosscheck(cbow, torch.nn.EmbeddingBag(6, 3, mode=mode), ctx)
    assert res.input_grads == [None]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cbow_fast_and_reference_agree_on_several_chunks_and_threads(dtype, with_threads):
    """The reference runs in float64 (its float32 build is never needed; it would only add compile
    time); the fast path in `dtype`, serial and on two threads."""
    rng = np.random.default_rng(9)
    ctx = np.minimum(rng.zipf(1.3, (2048, 6)) - 1, 199)
    dh = rng.standard_normal((2048, 64))
    outs, grads = [], []
    for reference, threads in ((True, 1), (False, 1), (False, 2)):
        dt = np.float64 if reference else dtype
        cbow = CBOW(200, 64, dtype=dt, rng=0)

        def run():
            with engine.reference_kernels(reference):
                outs.append(cbow.forward(ctx))
                cbow.backward(dh.astype(dt))
        with_threads(threads, run)
        grads.append(cbow.weight.grad)
    tol = 1e-13 if dtype == np.float64 else 1e-5
    for o, g in zip(outs[1:], grads[1:]):
        assert o.dtype == g.dtype == dtype
        np.testing.assert_allclose(o, outs[0], rtol=tol, atol=tol * np.abs(outs[0]).max())
        if dtype == np.float64:
            assert np.array_equal(g, grads[0])                        # the same order of additions
        else:
            np.testing.assert_allclose(g, grads[0], rtol=tol, atol=tol * np.abs(grads[0]).max())
    assert np.array_equal(grads[1], grads[2])                         # threads split columns, not sums


def test_cbow_repeated_ids_accumulate_every_use():
    cbow = CBOW(5, 2, rng=0)
    dh = np.array([[1.0, 2.0], [0.5, -1.0]])
    cbow.forward(np.array([[3, 3, 3, 1], [3, 0, 0, 0]]))
    cbow.backward(dh)
    np.testing.assert_array_equal(cbow.weight.grad[3], 3 * dh[0] + dh[1])
    np.testing.assert_array_equal(cbow.weight.grad[0], 3 * dh[1])
    np.testing.assert_array_equal(cbow.weight.grad[1], dh[0])
    assert not cbow.weight.grad[[2, 4]].any()
    g = cbow.weight.grad.copy()
    cbow.forward(np.array([[3, 3, 3, 1], [3, 0, 0, 0]]))
    cbow.backward(dh)                                                   # gradients accumulate
    np.testing.assert_array_equal(cbow.weight.grad, 2 * g)


# ---- the output layers' fast kernels on several chunks, float32 ----------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("which", ["hs", "ns"])
def test_output_layers_fast_and_reference_agree_on_several_chunks(dtype, which, with_threads):
    rng = np.random.default_rng(10)
    V, D, N = 300, 64, 512
    counts = rng.zipf(1.3, V).astype(float)
    results = []
    for reference, threads in ((True, 1), (False, 1), (False, 2)):          # the reference in float64
        dt = np.float64 if reference else dtype
        if which == "hs":
            head = HierarchicalSoftmax(D, V, tree="huffman", counts=counts, dtype=dt)
        else:
            head = NegativeSampling(D, V, k=10, counts=counts, dtype=dt, rng=3)
        random_head(head, np.random.default_rng(11), 0.2)
        r = np.random.default_rng(12)
        h, y = r.standard_normal((N, D)).astype(dt), r.integers(0, V, N)
        d = r.standard_normal(N).astype(dt)

        def run():
            with engine.reference_kernels(reference):
                loss = head.forward(h, y)
                dh, _ = head.backward(d)
            return loss, dh
        loss, dh = with_threads(threads, run)
        results.append((loss, dh, head.weight.grad, head.bias.grad))
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for res in results[1:]:
        for a, b in zip(res, results[0]):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b).max())


# ---- training through fit -------------------------------------------------------------------------
def synthetic_corpus(rng, V=30, n=4000):
    """A word stream in which each word is followed by its successor (mod V) with probability
    0.8: the context predicts the centre word well."""
    w = [0]
    for _ in range(n - 1):
        w.append((w[-1] + 1) % V if rng.random() < 0.8 else int(rng.integers(V)))
    w = np.array(w)
    ctx = np.stack([w[:-4], w[1:-3], w[3:-1], w[4:]], axis=1)
    return ctx, w[2:-2]


@pytest.mark.parametrize("head_kind", ["hs", "ns"])
def test_cbow_trains_through_fit_below_the_unigram_entropy(head_kind):
    rng = np.random.default_rng(13)
    V = 30
    ctx, centre = synthetic_corpus(rng, V)
    counts = np.bincount(centre, minlength=V)
    p = counts / counts.sum()
    unigram = float(-(p[p > 0] * np.log(p[p > 0])).sum())
    cbow = CBOW(V, 8, rng=0)
    cbow.weight.value *= 0.1
    head = HierarchicalSoftmax(8, V, tree="huffman", counts=counts) if head_kind == "hs" else \
        NegativeSampling(8, V, k=5, counts=counts)
    model = WordVectors(cbow, head)
    assert sorted(model.state_dict()) == ["cbow.weight", "head.bias", "head.weight"]
    hist = engine.fit(model, HeadLoss(model.head), Adam(model.parameters(), lr=0.03), ctx[:3000], centre[:3000],
                      epochs=3, batch_size=64, seed=0, progress=False,
                      validation_data=(ctx[3000:], centre[3000:]))
    with no_grad():
        lp = head.log_prob(cbow.forward(ctx[3000:]))
    val_nll = -lp[np.arange(len(lp)), centre[3000:]].mean()
    if head_kind == "hs":                      # a true −log p(w | context)
        assert hist["val_loss"][-1] == pytest.approx(val_nll, rel=1e-9)
        assert val_nll < 0.7 * unigram
    else:                                      # the sampled objective falls; the vectors rank well
        assert hist["val_loss"][-1] < 0.5 * 6 * np.log(2)          # (1 + k) log 2 at the zero start
        assert np.mean(np.argmax(lp, axis=1) == centre[3000:]) > 0.5
    assert head.pending_calls() <= 1


def test_negative_sampling_fit_is_seeded_by_fit():
    rng = np.random.default_rng(16)
    ctx, centre = synthetic_corpus(rng, 12, 600)
    weights = []
    for _ in range(2):
        cbow = CBOW(12, 4, rng=0)
        model = WordVectors(cbow, NegativeSampling(4, 12, k=3))        # the default generator
        engine.fit(model, HeadLoss(model.head), Adam(model.parameters(), lr=0.01), ctx, centre, epochs=1,
                   batch_size=50, seed=7, progress=False)
        weights.append(model.state_dict())
    for k in weights[0]:
        assert np.array_equal(weights[0][k], weights[1][k])


def test_cbow_windows_of_the_training_script():
    from train_word_vectors import cbow_windows, unigram_baseline
    X, y = cbow_windows(np.arange(10, 17), 2)
    assert X.tolist() == [[10, 11, 13, 14], [11, 12, 14, 15], [12, 13, 15, 16]] and y.tolist() == [12, 13, 14]
    with pytest.raises(ValueError, match="ids: expected at least 5 words"):
        cbow_windows(np.arange(4), 2)
    ent, ce = unigram_baseline(np.array([0, 0, 1, 2]), np.array([0, 1]), 3)
    p = np.array([3, 2, 2]) / 7                                        # add-one counts
    assert ent == pytest.approx(-(p * np.log(p)).sum()) and ce == pytest.approx(-np.log(p[[0, 1]]).mean())


def test_head_loss_refuses_bad_pred_and_keeps_the_last_call():
    rng = np.random.default_rng(14)
    head = random_head(HierarchicalSoftmax(4, 6), rng)
    loss = HeadLoss(head)
    h, y = rng.standard_normal((3, 4)), np.array([0, 5, 2])
    loss.forward(h, y)
    want = loss.backward()
    loss.forward(h, y)
    with pytest.raises(ValueError, match=r"pred: expected shape \(N, 4\)"):
        loss.forward(rng.standard_normal((3, 5)), y)
    with pytest.raises(ValueError, match=r"target: expected labels in \[0, 5\]"):
        loss.forward(h, np.array([0, 6, 1]))
    np.testing.assert_array_equal(loss.backward(), want)
    with pytest.raises(TypeError, match="head: expected"):
        HeadLoss(CBOW(3, 2))
    with pytest.raises(ValueError, match="head: expected in_features 3"):
        WordVectors(CBOW(5, 3), HierarchicalSoftmax(4, 5))


# ---- bad input ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad,err,what", [
    (np.array([[0, 5]]), ValueError, r"ctx: expected word ids in \[0, 4\], got values in \[0, 5\]"),
    (np.array([[1, -1]]), ValueError, r"ctx: expected word ids in \[0, 4\]"),
    (np.array([1, 2]), ValueError, r"ctx: expected a non-empty \(N, 2W\) array"),
    (np.zeros((2, 0), np.int64), ValueError, r"ctx: expected a non-empty \(N, 2W\) array"),
    (np.array([[0.0, 1.0]]), TypeError, "ctx: expected integer word ids, got dtype float64"),
    ([[0, 1]], TypeError, "ctx: expected a numpy.ndarray"),
])
def test_cbow_bad_ids_refused_by_name(bad, err, what):
    cbow = CBOW(5, 3, rng=0)
    with pytest.raises(err, match=what):
        cbow.forward(bad)
    assert cbow.pending_calls() == 0


@pytest.mark.parametrize("which", ["hs", "ns"])
def test_output_layers_bad_input_refused_before_anything_changes(which):
    head = HierarchicalSoftmax(4, 6) if which == "hs" else NegativeSampling(4, 6, k=2, rng=0)
    h, y = np.zeros((3, 4)), np.array([0, 1, 2])
    cases = [((np.zeros((3, 5)), y), ValueError, r"h: expected shape \(N, 4\)"),
             ((np.zeros((3, 4, 1)), y), ValueError, "h: expected a 2-dimensional"),
             ((h.astype(np.float32), y), TypeError, "h: expected dtype float64"),
             ((h, np.array([0, 1, 6])), ValueError, r"target: expected labels in \[0, 5\]"),
             ((h, np.array([0, 1])), ValueError, r"target: expected shape \(3,\)"),
             ((h, y.astype(float)), TypeError, "target: expected integer class labels")]
    for args, err, what in cases:
        with pytest.raises(err, match=what):
            head.forward(*args)
        assert head.pending_calls() == 0 and (which == "hs" or head.last_negatives is None)
    head.forward(h, y)
    with pytest.raises(ValueError, match=r"dloss: expected shape \(3,\)"):
        head.backward(np.ones(4))
    assert head.pending_calls() == 1


# ---- analysis.embeddings --------------------------------------------------------------------------
def test_nearest_neighbours_by_cosine_exclude_the_word_itself():
    E = np.array([[1.0, 0.0], [10.0, 1.0], [0.0, 1.0], [-1.0, 0.0], [0.7, 0.7], [0.0, 0.0]])
    ids, sims = nearest_neighbors(E, [0, 2], k=3)
    assert ids.tolist() == [[1, 4, 2], [4, 1, 0]]
    np.testing.assert_allclose(sims[0], [10 / np.sqrt(101), np.sqrt(0.5), 0.0], atol=1e-15)
    S = cosine_similarity(E)
    np.testing.assert_allclose(S, S.T)
    np.testing.assert_allclose(np.diag(S)[:5], 1.0)
    assert S[5].tolist() == [0.0] * 6                                   # a zero row has no direction
    rng = np.random.default_rng(15)
    E = rng.standard_normal((40, 5))
    ids, sims = nearest_neighbors(E, np.arange(40), k=4)
    brute = cosine_similarity(E)
    np.fill_diagonal(brute, -np.inf)
    assert np.array_equal(ids, np.argsort(-brute, axis=1, kind="stable")[:, :4])
    assert not (ids == np.arange(40)[:, None]).any() and (np.diff(sims, axis=1) <= 0).all()


def test_analogy_finds_the_parallelogram():
    E = np.array([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    ids, sims = analogy(E, 0, 1, 2, k=2)                       # 0 : 1 :: 2 : ?  (u₁ − u₀ + u₂ ∝ row 3)
    assert ids.tolist() == [3, 4]
    np.testing.assert_allclose(sims, [1.0, 2 / np.sqrt(6)], rtol=1e-14)
    with pytest.raises(ValueError, match=r"a: expected word ids in \[0, 4\]"):
        analogy(E, 7, 1, 2)
    with pytest.raises(ValueError, match="k: expected an int"):
        nearest_neighbors(E, [0], k=5)
    with pytest.raises(TypeError, match="ids: expected"):
        nearest_neighbors(E, [0.5])
