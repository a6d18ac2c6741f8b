"""Tests for engine.data: bundled digits, synthetic sets, minibatches, IDX files."""
import gzip
import math
import os

import numpy as np
import pytest

from engine import data
from engine.data import (circles, digits_split, digits_split_indices, gabor, gabor_model,
                         linear_regression, load_digits, load_mnist, minibatches, moons,
                         read_idx, sine, spirals, write_idx, xor)

DIGIT_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# ----------------------------------------------------------------------------- digits

def test_digits_shape_dtype_range_and_counts():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y).tolist() == DIGIT_COUNTS


def test_digits_raw_values_are_integers_0_to_16():
    X, _ = load_digits(scaled=False)
    assert np.array_equal(X, np.round(X)) and X.min() == 0 and X.max() == 16
    Xs, _ = load_digits(scaled=True)
    np.testing.assert_array_equal(Xs * 16, X)


def test_digits_float32_and_images():
    X, _ = load_digits(dtype=np.float32, as_images=True)
    assert X.shape == (1797, 1, 8, 8) and X.dtype == np.float32
    flat, _ = load_digits()
    np.testing.assert_array_equal(X.reshape(1797, 64), flat.astype(np.float32))


def test_digits_match_sklearn_row_by_row():
    sk = pytest.importorskip("sklearn.datasets", reason="sklearn is only a cross-check")
    ref = sk.load_digits()
    X, y = load_digits(scaled=False)
    np.testing.assert_array_equal(X, ref.data)
    np.testing.assert_array_equal(y, ref.target)


def test_digits_load_without_sklearn(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "sklearn", None)   # any import of sklearn now fails
    X, y = load_digits()
    assert X.shape == (1797, 64)


def test_digits_split_fixed_disjoint_stratified():
    tr, te = digits_split_indices()
    assert len(tr) == 1438 and len(te) == 359
    assert len(np.intersect1d(tr, te)) == 0
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(1797))
    tr2, te2 = digits_split_indices()
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    _, y = load_digits()
    test_counts = np.bincount(y[te], minlength=10)
    expected = [math.floor(0.2 * c + 0.5) for c in DIGIT_COUNTS]
    assert test_counts.tolist() == expected
    # a fixed split, not a first-k or sorted one: the test rows are spread over the file
    assert te.min() < 50 and te.max() > 1747


def test_digits_split_arrays_match_indices():
    (Xtr, ytr), (Xte, yte) = digits_split(test_fraction=0.25, as_images=True)
    tr, te = digits_split_indices(0.25)
    X, y = load_digits(as_images=True)
    np.testing.assert_array_equal(Xtr, X[tr])
    np.testing.assert_array_equal(yte, y[te])
    assert Xte.shape[1:] == (1, 8, 8)
    assert abs(len(te) / 1797 - 0.25) < 0.01
    # a mix of classes at the front (rows are in a fixed shuffled order)
    assert len(set(ytr[:50].tolist())) == 10


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_digits_split_bad_fraction(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        digits_split(test_fraction=bad)


def test_digits_bad_dtype():
    with pytest.raises(TypeError, match="dtype"):
        load_digits(dtype=np.int32)


def test_digits_source_file_is_bundled():
    here = os.path.dirname(data.__file__)
    text = open(os.path.join(here, "DIGITS_SOURCE.md"), encoding="utf-8").read()
    assert "CC BY 4.0" in text and "Alpaydin" in text and "make_digits" in text


# ----------------------------------------------------------------------------- generators

CLASSIFIERS = [xor, spirals, circles, moons]


@pytest.mark.parametrize("gen", CLASSIFIERS)
@pytest.mark.parametrize("n", [1 + 100, 200])
def test_classification_shapes_and_balance(gen, n):
    X, y = gen(n=n, seed=0)
    assert X.shape == (n, 2) and X.dtype == np.float64
    assert y.shape == (n,) and y.dtype == np.int64
    counts = np.bincount(y)
    assert counts.max() - counts.min() <= 1
    assert np.isfinite(X).all()


@pytest.mark.parametrize("gen", CLASSIFIERS + [sine, gabor])
def test_determinism_per_seed(gen):
    a = gen(n=64, seed=3)
    b = gen(n=64, seed=3)
    c = gen(n=64, seed=4)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])


def test_generator_seed_advances_and_float32():
    rng = np.random.default_rng(0)
    X1, _ = moons(n=50, seed=rng)
    X2, _ = moons(n=50, seed=rng)
    assert not np.array_equal(X1, X2)
    X, _ = xor(n=10, seed=0, dtype=np.float32)
    assert X.dtype == np.float32


def test_rows_are_shuffled():
    _, y = circles(n=200, seed=0)
    assert 0 < y[:100].sum() < 100          # not 100 of one class then 100 of the other


def test_spirals_n_classes_and_noise_free_geometry():
    X, y = spirals(n=303, n_classes=3, noise=0.0, seed=1)
    assert np.bincount(y).tolist() == [101, 101, 101]
    r = np.linalg.norm(X, axis=1)
    assert r.max() == pytest.approx(1.0) and r.min() == pytest.approx(0.0)


def test_xor_noise_free_labels():
    X, y = xor(n=40, noise=0.0, seed=0)
    np.testing.assert_array_equal(y, (np.sign(X[:, 0]) != np.sign(X[:, 1])).astype(int))


def test_circles_noise_free_radii():
    X, y = circles(n=100, noise=0.0, factor=0.3, seed=0)
    r = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)


def test_moons_noise_free_geometry():
    X, y = moons(n=100, noise=0.0, seed=0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 1] - [1.0, 0.5], axis=1), 1.0)


def test_linear_regression_recovers_true_parameters():
    X, y, true = linear_regression(n=2000, n_features=3, noise=0.05, seed=0)
    assert X.shape == (2000, 3) and y.shape == (2000, 1)
    assert true["weight"].shape == (1, 3) and true["bias"].shape == (1,)
    A = np.hstack([X, np.ones((2000, 1))])
    coef = np.linalg.lstsq(A, y, rcond=None)[0].ravel()
    np.testing.assert_allclose(coef[:3], true["weight"].ravel(), atol=0.01)
    np.testing.assert_allclose(coef[3], true["bias"][0], atol=0.01)
    resid = y - (X @ true["weight"].T + true["bias"])
    assert resid.std() == pytest.approx(0.05, rel=0.1)


def test_linear_regression_given_parameters_noise_free():
    X, y, true = linear_regression(n=20, weight=2.0, bias=-1.0, noise=0.0, seed=0)
    np.testing.assert_allclose(y, 2.0 * X - 1.0)
    assert true["weight"].tolist() == [[2.0]] and true["bias"].tolist() == [-1.0]
    with pytest.raises(ValueError, match="weight"):
        linear_regression(n=5, n_features=2, weight=[1.0, 2.0, 3.0])


def test_sine_values():
    X, y = sine(n=50, noise=0.0, seed=0, frequency=2.0)
    assert X.shape == (50, 1) and y.shape == (50, 1)
    np.testing.assert_allclose(y, np.sin(2.0 * X))
    assert X.min() >= -math.pi and X.max() <= math.pi


def test_gabor_model_values():
    # z = phi0 + 0.06 phi1 x;  f = sin(z) exp(-z^2 / 32)   (Prince, UDL eq. 6.8)
    assert gabor_model(0.0, 0.0, 15.0) == 0.0
    z = math.pi / 2                                   # sin(z) = 1
    assert gabor_model(0.0, z, 1.0) == pytest.approx(math.exp(-z * z / 32))
    x = z / (0.06 * 10.0)
    assert gabor_model(x, 0.0, 10.0) == pytest.approx(math.exp(-z * z / 32))
    assert gabor_model(1.3, 0.4, 7.0) == pytest.approx(
        math.sin(0.4 + 0.42 * 1.3) * math.exp(-(0.4 + 0.42 * 1.3) ** 2 / 32))
    xs = np.linspace(-15, 15, 7)
    np.testing.assert_allclose(gabor_model(xs, 0.0, 15.0), -gabor_model(-xs, 0.0, 15.0))


def test_gabor_data_follows_model():
    X, y = gabor(n=500, noise=0.0, seed=0, phi0=0.5, phi1=12.0)
    assert X.shape == (500, 1) and y.shape == (500, 1)
    assert X.min() >= -15 and X.max() <= 15
    np.testing.assert_allclose(y, gabor_model(X, 0.5, 12.0))
    _, yn = gabor(n=4000, noise=0.2, seed=0)
    Xn, _ = gabor(n=4000, noise=0.0, seed=0)
    assert (yn - gabor_model(Xn, *data.GABOR_PHI)).std() == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize("gen", CLASSIFIERS + [sine, gabor, linear_regression])
def test_generator_bad_arguments(gen):
    with pytest.raises(ValueError, match="n: "):
        gen(n=0, seed=0)
    with pytest.raises(ValueError, match="noise"):
        gen(n=10, noise=-0.1, seed=0)
    with pytest.raises(TypeError, match="n: "):
        gen(n=10.0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        gen(n=10, seed="abc")
    with pytest.raises(TypeError, match="dtype"):
        gen(n=10, seed=0, dtype=np.int64)


def test_specific_bad_arguments():
    with pytest.raises(ValueError, match="factor"):
        circles(n=10, factor=1.5)
    with pytest.raises(ValueError, match="n_classes"):
        spirals(n=10, n_classes=1)
    with pytest.raises(ValueError, match="low, high"):
        sine(n=10, low=1.0, high=0.0)


# ----------------------------------------------------------------------------- minibatches

@pytest.mark.parametrize("n,bs", [(10, 3), (12, 4), (5, 10), (1, 1)])
def test_minibatches_cover_each_sample_once(n, bs):
    X = np.arange(n * 2, dtype=np.float64).reshape(n, 2)
    y = np.arange(n)
    batches = list(minibatches(X, y, bs, seed=0))
    assert len(batches) == math.ceil(n / bs)
    assert all(len(yb) == bs for _, yb in batches[:-1])
    seen = np.concatenate([yb for _, yb in batches])
    assert np.array_equal(np.sort(seen), np.arange(n))
    for Xb, yb in batches:
        np.testing.assert_array_equal(Xb, X[yb])           # rows stay paired


def test_minibatches_drop_last_and_no_shuffle():
    X = np.arange(10.0)[:, None]
    y = np.arange(10)
    batches = list(minibatches(X, y, 3, shuffle=False, drop_last=True))
    assert [yb.tolist() for _, yb in batches] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]


def test_minibatches_deterministic_per_seed():
    X = np.arange(20.0)[:, None]
    y = np.arange(20)
    a = [yb for _, yb in minibatches(X, y, 6, seed=1)]
    b = [yb for _, yb in minibatches(X, y, 6, seed=1)]
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    rng = np.random.default_rng(1)
    e1 = np.concatenate([yb for _, yb in minibatches(X, y, 6, seed=rng)])
    e2 = np.concatenate([yb for _, yb in minibatches(X, y, 6, seed=rng)])
    assert not np.array_equal(e1, e2)                      # a new order each epoch


def test_minibatches_bad_arguments():
    X = np.zeros((5, 2))
    with pytest.raises(ValueError, match="X, y"):
        minibatches(X, np.zeros(4), 2)                     # raised at call, not at next()
    with pytest.raises(ValueError, match="batch_size"):
        minibatches(X, np.zeros(5), 0)
    with pytest.raises(TypeError, match="batch_size"):
        minibatches(X, np.zeros(5), 2.5)


# ----------------------------------------------------------------------------- IDX

IDX_CASES = [
    (np.uint8, (7,)), (np.uint8, (3, 4, 5)), (np.int8, (2, 3)), (np.int16, (4, 2)),
    (np.int32, (2, 2, 2, 2)), (np.float32, (6, 1)), (np.float64, (3, 5)),
]


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype,shape", IDX_CASES)
def test_idx_round_trip(tmp_path, dtype, shape, gz):
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is not None:
        a = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        a = rng.standard_normal(shape).astype(dtype)
    path = tmp_path / ("a.idx" + (".gz" if gz else ""))
    write_idx(path, a)
    b = read_idx(path)
    assert b.dtype == np.dtype(dtype) and b.shape == shape
    np.testing.assert_array_equal(a, b)


def test_idx_header_bytes(tmp_path):
    path = tmp_path / "h.idx"
    write_idx(path, np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert raw[4:12] == bytes([0, 0, 0, 2, 0, 0, 0, 3])
    assert raw[12:14] == bytes([0, 1])                     # big-endian int16 1


def test_idx_gz_detected_by_content(tmp_path):
    path = tmp_path / "noext"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9]))
    np.testing.assert_array_equal(read_idx(path), [7, 9])


def test_idx_bad_magic_and_sizes(tmp_path):
    bad = tmp_path / "bad.idx"
    bad.write_bytes(bytes([1, 2, 8, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(ValueError, match="magic"):
        read_idx(bad)
    bad.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(ValueError, match="0x0A"):
        read_idx(bad)
    bad.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 5]))     # header says 3 bytes, has 1
    with pytest.raises(ValueError, match="bad.idx"):
        read_idx(bad)


def test_idx_missing_file_and_bad_dtype(tmp_path):
    missing = tmp_path / "nope.idx"
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        read_idx(missing)
    with pytest.raises(TypeError, match="dtype"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.uint16))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "x.idx", np.array(5, dtype=np.uint8))


def _write_fake_mnist(directory, kind, n, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    ext = ".gz" if gz else ""
    write_idx(directory / f"{kind}-images-idx3-ubyte{ext}", images)
    write_idx(directory / f"{kind}-labels-idx1-ubyte{ext}", labels)
    return images, labels


@pytest.mark.parametrize("kind,gz", [("train", False), ("t10k", True)])
def test_load_mnist(tmp_path, kind, gz):
    images, labels = _write_fake_mnist(tmp_path, kind, 5, gz)
    X, y = load_mnist(tmp_path, kind=kind)
    assert X.shape == (5, 784) and X.dtype == np.float64 and y.dtype == np.int64
    np.testing.assert_array_equal(X * 255, images.reshape(5, 784))
    np.testing.assert_array_equal(y, labels)
    Xi, _ = load_mnist(tmp_path, kind=kind, scaled=False, dtype=np.float32, as_images=True)
    assert Xi.shape == (5, 1, 28, 28) and Xi.dtype == np.float32


def test_load_mnist_errors(tmp_path):
    _write_fake_mnist(tmp_path, "train", 3, False)
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte") as info:
        load_mnist(tmp_path, kind="t10k")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(ValueError, match="kind"):
        load_mnist(tmp_path, kind="test")
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="labels"):
        load_mnist(tmp_path)


# ----------------------------------------------------------------------------- argument checks

def test_truncated_or_corrupt_gz_names_its_path(tmp_path):
    """Before: EOFError ('Compressed file ended before the end-of-stream marker was reached')
    without the path."""
    path = tmp_path / "images.idx.gz"
    write_idx(path, np.arange(600, dtype=np.uint8).reshape(6, 100))
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ValueError, match=r"images\.idx\.gz: truncated or corrupt gzip data"):
        read_idx(path)
    bad = bytearray(whole)
    bad[-8] ^= 0xFF                                       # the CRC-32 of the gzip trailer
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"images\.idx\.gz: truncated or corrupt gzip data"):
        read_idx(path)
    path.write_bytes(whole[:12])                          # inside the gzip header
    with pytest.raises(ValueError, match=r"images\.idx\.gz"):
        read_idx(path)


def test_minibatches_on_zero_rows_is_refused():
    """Before: an epoch of no batches, silently (fit then divided by zero)."""
    with pytest.raises(ValueError, match=r"^X: expected at least one sample, got shape \(0, 3\)"):
        minibatches(np.zeros((0, 3)), np.zeros(0), 4)


BAD = [
    (lambda: minibatches(np.zeros((4, 2)), np.zeros(4), 2, shuffle="False"), TypeError, "shuffle"),  # was: truthy
    (lambda: minibatches(np.zeros((4, 2)), np.zeros(4), 2, drop_last=1), TypeError, "drop_last"),
    (lambda: minibatches(np.zeros((4, 2)), np.zeros(4), 2, seed=-1), ValueError, "seed"),
    (lambda: load_digits(scaled="False"), TypeError, "scaled"),                  # was: scaled
    (lambda: load_digits(as_images=1), TypeError, "as_images"),
    (lambda: digits_split(scaled=None), TypeError, "scaled"),
    (lambda: digits_split(test_fraction="0.2"), TypeError, "test_fraction"),
    (lambda: read_idx(None), TypeError, "path"),                                 # was: unnamed
    (lambda: write_idx(3, np.zeros(3, np.uint8)), TypeError, "path"),
    (lambda: write_idx("x.idx", np.zeros(3, complex)), TypeError, "array"),
    (lambda: load_mnist(None), TypeError, "directory"),
    (lambda: linear_regression(n=5, weight=[1j]), TypeError, "weight"),         # was: imaginary part dropped
    (lambda: linear_regression(n=5, weight=[np.nan]), ValueError, "weight"),    # was: y all NaN
    (lambda: linear_regression(n=5, bias="a"), TypeError, "bias"),
    (lambda: gabor_model(np.zeros(3), "0", 1.0), TypeError, "phi0"),
    (lambda: gabor_model(np.zeros(3, complex), 0.0, 1.0), TypeError, "x"),
    (lambda: xor(n=8, seed=-3), ValueError, "seed"),
]


@pytest.mark.parametrize("call, exc, name", BAD, ids=[f"{i}-{b[2]}" for i, b in enumerate(BAD)])
def test_bad_arguments_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=rf"^{name}\b"):
        call()


@pytest.mark.parametrize("kw", [{"scaled": "False"}, {"as_images": 0}])
def test_load_mnist_checks_its_options_first(tmp_path, kw):
    _write_fake_mnist(tmp_path, "train", 3, False)
    with pytest.raises(TypeError, match=rf"^{next(iter(kw))}\b"):
        load_mnist(tmp_path, **kw)
