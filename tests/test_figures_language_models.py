"""The language-model figures (transformer-lm, ngram-vs-neural-lm): FIGURES.md's "checks" column,
tested on the data each figure function returns in quick mode (fixed numbers of training steps,
so the numbers do not depend on the machine's load)."""
import functools
import math

import numpy as np

import figures.language_models as lmfig
from engine.data.text import char_corpus
from figtests import figure_data
from figures.registry import REGISTRY


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


def test_budget_runs_get_a_whole_schedule_with_a_short_warm_up():
    """Default mode's GPT runs size their warm-up + cosine schedule to the time budget
    (train_gpt.budget_steps): the planned steps fit in the budget and the warm-up is at most a
    tenth of them, so a few-second run is not stopped inside the small config's 50-step warm-up."""
    from train_gpt import CONFIGS, budget_steps
    warm = CONFIGS["small"]["warmup"]
    for budget, t_step in ((3.0, 0.05), (8.0, 0.07), (3.0, 0.2), (600.0, 0.05)):
        steps, w = budget_steps(budget, t_step, warm)
        assert steps * t_step <= budget < (steps + 1) * t_step / 0.97
        assert 1 <= w <= max(1, steps // 10) and w <= warm
    assert budget_steps(3.0, 0.05, warm) == (58, 5)
    assert budget_steps(600.0, 0.05, warm) == (11640, warm)     # long runs keep the config's warm-up
    assert budget_steps(1e-3, 1.0, warm) == (1, 1)              # at least one step of each
