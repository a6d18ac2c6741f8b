"""The language-model figures (transformer-lm, ngram-vs-neural-lm): FIGURES.md's "checks" column,
tested on the data each figure function returns in quick mode (fixed numbers of training steps,
so the numbers do not depend on the machine's load)."""
import functools
import math

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import figures.language_models as lmfig
from engine.data.text import char_corpus
from figures.registry import REGISTRY


@functools.lru_cache(maxsize=None)
def figure_data(fid):
    fig, data = REGISTRY[fid].func(quick=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close(fig)
    return data


@functools.lru_cache(maxsize=None)
def unigram():
    """The unigram entropy of the training split, computed here from the counts."""
    _, train, _ = char_corpus()
    counts = np.bincount(train)
    n = counts.sum()
    return -sum(c / n * math.log(c / n) for c in counts if c)


def test_language_model_figures_registered():
    assert {"transformer-lm", "ngram-vs-neural-lm"} <= set(REGISTRY)


def test_transformer_lm_loss_below_the_unigram_entropy():
    d = figure_data("transformer-lm")
    assert abs(d["unigram_nats"] - unigram()) < 1e-12
    v = d["curve_val_loss"]
    assert np.all(np.isfinite(v)) and len(v) >= 3 and d["steps"] == lmfig.QUICK_STEPS
    assert v[-1] < v[0]                                   # it learns
    assert d["val_nats"] < d["unigram_nats"]              # the check: below the unigram entropy
    assert d["val_nats"] < d["log_v"] == math.log(65)
    assert len(d["samples"]) == 2 and all(len(s) > 50 for s in d["samples"])


def test_ngram_vs_neural_lm_neural_models_below_the_unigram_entropy():
    d = figure_data("ngram-vs-neural-lm")
    H = d["unigram_nats"]
    assert abs(H - unigram()) < 1e-12
    assert d["neural_names"] == ["FF-NNLM", "RNN", "LSTM", "transformer"]
    assert np.all(d["neural_final"] < H)                  # the check
    # each curve ends at the model's reported loss
    for key in ("ffnnlm", "rnn", "lstm", "transformer"):
        assert d[f"{key}_curve"][-1] == d[key]
        assert np.all(np.diff(d[f"{key}_seconds"]) > 0)
    # Kneser–Ney n-grams of growing order do better; the 1-gram is about the unigram entropy
    assert list(d["ngram_orders"]) == [1, 2, 3, 4, 5]
    assert np.all(np.diff(d["ngram_nats"]) < 0)
    assert abs(d["ngram_nats"][0] - H) < 0.1
