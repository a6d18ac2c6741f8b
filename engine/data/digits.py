"""The 8x8 handwritten digits (1,797 images, 10 classes), bundled with the package.

Source: the test part of the UCI "Optical Recognition of Handwritten Digits" data set
(E. Alpaydin and C. Kaynak, 1998; licence CC BY 4.0), taken from scikit-learn's packaged
copy ``digits.csv.gz``. See ``DIGITS_SOURCE.md`` next to this file for the citation, the
licence and how ``digits.npz`` was made (``make_digits.py``). Loading needs only NumPy.

Each image is 8x8 pixels; a pixel is the number of "on" pixels (0..16) in a 4x4 block of
the original 32x32 binary bitmap. ``scaled=True`` divides by 16 so pixels lie in [0, 1].
"""
import os

import numpy as np

from engine.checks import check_bool, check_dtype, check_float


DIGITS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.npz")


def _read_npz():
    """Return (pixels (1797, 64) uint8, labels (1797,) uint8, order (1797,) int64)."""
    if not os.path.exists(DIGITS_PATH):
        raise FileNotFoundError(
            f"bundled digits file {DIGITS_PATH} is missing; the package was installed "
            "without its data files (regenerate it with `python -m engine.data.make_digits`)")
    with np.load(DIGITS_PATH) as f:
        return f["pixels"], f["labels"], f["order"].astype(np.int64)


def _features(pixels, scaled, dtype, as_images):
    """uint8 pixels (N, 64) -> float array (N, 64), or (N, 1, 8, 8) if as_images."""
    dtype = check_dtype(dtype)
    scaled = check_bool("scaled", scaled)
    as_images = check_bool("as_images", as_images)
    X = pixels.astype(dtype)
    if scaled:
        X /= 16.0
    if as_images:
        X = X.reshape(-1, 1, 8, 8)
    return X


def load_digits(scaled=True, dtype=np.float64, as_images=False):
    """All 1,797 digits, in scikit-learn's row order.

    Args:
        scaled: divide the pixel counts 0..16 by 16, giving values in [0, 1].
        dtype: np.float64 (default) or np.float32 for X.
        as_images: return X as (N, 1, 8, 8) (batch, channel, height, width) for Conv2d
            instead of flat rows (N, 64).

    Returns:
        X: (1797, 64) or (1797, 1, 8, 8) of ``dtype``; row i is image i in row-major order.
        y: (1797,) int64 class labels 0..9.
    """
    pixels, labels, _ = _read_npz()
    return _features(pixels, scaled, dtype, as_images), labels.astype(np.int64)


def digits_split_indices(test_fraction=0.2):
    """Row indices of the fixed, stratified train/test split of the digits.

    The rows are visited in a fixed permutation stored in ``digits.npz`` (drawn once, with
    seed 20260101, by ``make_digits.py``). Within each class c, the j-th image met (j = 0, 1,
    ...) goes to the test part when round((j + 1)·f) > round(j·f), f = test_fraction: evenly
    spread picks (every 5th for f = 0.2), round(f·n_c) test images per class in total. No
    random numbers are drawn at run time, so the split is the same on every machine and NumPy
    version, and every class keeps (to within one image) the same share in both parts.
    With the default 0.2: 1,438 training and 359 test images.

    Returns:
        train_idx, test_idx: int64 arrays of row indices into ``load_digits()``, disjoint,
        together covering all 1,797 rows, each listed in the fixed permuted order.
    """
    test_fraction = check_float("test_fraction", test_fraction)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")
    _, labels, order = _read_npz()
    in_test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        rows_c = order[labels[order] == c]           # class c, in the fixed order
        j = np.arange(len(rows_c))
        pick = np.floor((j + 1) * test_fraction + 0.5) > np.floor(j * test_fraction + 0.5)
        if not 0 < pick.sum() < len(rows_c):
            raise ValueError(f"test_fraction: {test_fraction} leaves class {c} "
                             f"({len(rows_c)} images) with an empty train or test part")
        in_test[rows_c[pick]] = True
    train_idx = order[~in_test[order]]
    test_idx = order[in_test[order]]
    return train_idx, test_idx


def digits_split(test_fraction=0.2, scaled=True, dtype=np.float64, as_images=False):
    """The digits split into fixed, stratified training and test sets.

    The split is ``digits_split_indices(test_fraction)`` (see there): deterministic, the
    same every call, stratified by class. Rows come in a fixed shuffled order, so any slice
    holds a mix of classes. Arguments ``scaled``, ``dtype``, ``as_images`` as in
    ``load_digits``.

    Returns:
        (X_train, y_train), (X_test, y_test): X of shape (N, 64) or (N, 1, 8, 8), y (N,) int64.
        With test_fraction=0.2, N_train = 1438 and N_test = 359.
    """
    _features(np.zeros((1, 64), np.uint8), scaled, dtype, as_images)   # the options, before any work
    train_idx, test_idx = digits_split_indices(test_fraction)
    X, y = load_digits(scaled=scaled, dtype=dtype, as_images=as_images)
    return (X[train_idx], y[train_idx]), (X[test_idx], y[test_idx])
