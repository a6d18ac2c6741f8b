"""Regenerate ``digits.npz`` from scikit-learn's packaged copy of the 8x8 digits.

Run once, from the repository root, with scikit-learn installed::

    python -m engine.data.make_digits

It reads ``sklearn/datasets/data/digits.csv.gz`` (1,797 rows of 64 pixel counts 0..16
followed by the class label 0..9; the test part of the UCI "Optical Recognition of
Handwritten Digits" data, Alpaydin & Kaynak 1998, CC BY 4.0) and writes
``engine/data/digits.npz`` with three arrays:

    pixels  (1797, 64) uint8   pixel counts 0..16, row-major 8x8 images
    labels  (1797,)    uint8   digit 0..9
    order   (1797,)    uint16  a fixed random permutation of the rows, drawn once here
                               with ``np.random.default_rng(20260101)``; ``digits_split``
                               uses it to make its train/test split, so the split does not
                               depend on the NumPy version that runs the library.

The file is written in the same row order as scikit-learn's copy, so
``load_digits()`` here and ``sklearn.datasets.load_digits()`` agree row by row.
scikit-learn is needed only to run this script, never to load the data.
"""
import os

import numpy as np

ORDER_SEED = 20260101


def make_digits(out_path=None):
    """Read sklearn's digits.csv.gz and write the compressed npz; return out_path."""
    import sklearn  # only this script needs scikit-learn

    src = os.path.join(os.path.dirname(sklearn.__file__), "datasets", "data", "digits.csv.gz")
    table = np.loadtxt(src, delimiter=",")
    if table.shape != (1797, 65):
        raise ValueError(f"{src}: expected a (1797, 65) table, got {table.shape}")
    pixels = table[:, :64]
    labels = table[:, 64]
    # the csv holds small integers written as floats; check before narrowing to uint8
    if not (np.all(pixels == np.round(pixels)) and pixels.min() >= 0 and pixels.max() <= 16):
        raise ValueError(f"{src}: pixels are not integers in 0..16")
    if not np.all(np.isin(labels, np.arange(10))):
        raise ValueError(f"{src}: labels are not integers in 0..9")

    order = np.random.default_rng(ORDER_SEED).permutation(len(labels)).astype(np.uint16)

    if out_path is None:
        out_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.npz")
    np.savez_compressed(out_path,
                        pixels=pixels.astype(np.uint8),
                        labels=labels.astype(np.uint8),
                        order=order)
    return out_path


if __name__ == "__main__":
    path = make_digits()
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")
