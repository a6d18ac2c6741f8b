"""The figures word-vectors and hierarchical-softmax (issue 12, item 12), in quick mode: each
checks FIGURES.md's "checks" column on the numbers behind the figure."""
import numpy as np

import figures.word_vectors  # noqa: F401  (registers)
from figtests import figure_data as run


def test_word_vectors_cbow_beats_the_unigram_baseline():
    d = run("word-vectors")
    assert d["below_unigram"] and d["val_loss"] < d["unigram_val"]
    assert d["fit_val_loss"] == d["val_loss"] or abs(d["fit_val_loss"] - d["val_loss"]) < 1e-9 * d["val_loss"]
    assert d["epochs"] >= 1 and d["n_train"] > 1000 and d["seconds"] > 0
    # the neighbours: k per query word, never the word itself, cosines in [−1, 1], most similar first
    assert d["neighbours"]
    for w, row in d["neighbours"].items():
        words, sims = [n for n, _ in row], np.array([s for _, s in row])
        assert len(row) == 5 and w not in words
        assert np.all(np.abs(sims) <= 1 + 1e-12) and np.all(np.diff(sims) <= 1e-12)
    # the t-SNE map: one finite point per frequent word, "<unk>" not among them
    assert d["map"].shape == (d["n_map"], 2) and np.isfinite(d["map"]).all()
    assert len(set(d["map_words"])) == d["n_map"] and "<unk>" not in d["map_words"]


def test_hierarchical_softmax_huffman_not_deeper_and_leaves_sum_to_one():
    d = run("hierarchical-softmax")
    assert d["huffman_le_balanced"] and np.all(d["huffman"] <= d["balanced"] + 1e-12)
    assert np.all(d["huffman"][1:] < d["flat"][1:])                # fewer than V inner products
    assert d["log2_bound"]                                          # balanced: at most ⌈log₂ V⌉
    assert d["sum_error"] < 1e-12                                   # Σ_y p(y | h) = 1
    assert d["small_expected_depth"] <= d["small_balanced_depth"]
    counts, depths = d["small_counts"], d["small_tree_depths"]
    assert not ((counts[:, None] > counts[None, :]) & (depths[:, None] > depths[None, :])).any()
    assert np.isclose(np.sum(2.0 ** -depths), 1.0)                  # a full binary tree
