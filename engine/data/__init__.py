"""engine.data: data sets and minibatches for handprop.

- The 8x8 handwritten digits (1,797 images, 10 classes), bundled as ``digits.npz``
  (UCI "Optical Recognition of Handwritten Digits", Alpaydin & Kaynak 1998, CC BY 4.0, via
  scikit-learn's copy; see DIGITS_SOURCE.md): ``load_digits``, ``digits_split`` (a fixed,
  stratified train/test split), ``digits_split_indices``.
- Synthetic sets, each with ``n``, ``noise``, ``seed``: ``xor``, ``spirals``, ``circles``,
  ``moons`` (classification: X (n, 2), y (n,) int64) and ``linear_regression``, ``sine``,
  ``gabor`` (regression: X (n, D), y (n, 1)); ``gabor_model`` is the Gabor function itself.
- ``minibatches``: one epoch of (Xb, yb) batches, deterministic for a seed.
- MNIST IDX files you already have: ``read_idx``, ``write_idx``, ``load_mnist``.
- Text (``text``): the bundled tiny-Shakespeare corpus (``load_text``, sha256 checked; see
  TINYSHAKESPEARE_SOURCE.md), ``text_split`` (fixed 90/10), ``word_tokens``, ``Vocabulary``
  (characters or words, min_count, unknown token), ``lm_windows`` ((N, T) inputs, next-token
  targets), ``bptt_batches`` (B parallel contiguous streams for truncated BPTT), and
  ``char_corpus``/``word_corpus`` (vocabulary and train/validation ids of the corpus in one call).

Nothing here uses the network or needs scikit-learn.
"""
from .batches import minibatches
from .digits import digits_split, digits_split_indices, load_digits
from .idx import load_mnist, read_idx, write_idx
from .synthetic import (GABOR_PHI, GABOR_RANGE, circles, gabor, gabor_model, linear_regression,
                        moons, sine, spirals, xor)
from .text import (BPTTBatches, Vocabulary, bptt_batches, char_corpus, lm_windows, load_text,
                   text_split, word_corpus, word_tokens)

__all__ = [
    "load_digits", "digits_split", "digits_split_indices",
    "xor", "spirals", "circles", "moons", "linear_regression", "sine", "gabor", "gabor_model",
    "GABOR_PHI", "GABOR_RANGE",
    "minibatches",
    "read_idx", "write_idx", "load_mnist",
    "load_text", "text_split", "word_tokens", "Vocabulary", "lm_windows", "bptt_batches", "BPTTBatches",
    "char_corpus", "word_corpus",
]
