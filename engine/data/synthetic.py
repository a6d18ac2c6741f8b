"""Small synthetic data sets for classification and regression.

Conventions shared by every generator here:

- ``n`` is the total number of samples; ``noise`` is the standard deviation of Gaussian
  noise (added to each input coordinate for the classification sets, to the target for the
  regression sets); ``seed`` is an int, a ``numpy.random.Generator`` (its state advances) or
  None (fresh entropy, not reproducible). The same int seed always gives the same arrays.
- Classification sets return ``X (n, 2)`` of ``dtype`` and ``y (n,)`` int64 labels
  0..K-1, with the classes as equal in size as n allows (sizes differ by at most one) and
  the rows shuffled, so any slice mixes the classes.
- Regression sets return ``X (n, D)`` and ``y (n, 1)`` of ``dtype``: a column, as a
  ``Linear(D, 1)`` model's output, so they go straight into ``MSELoss``.
"""
import math

import numpy as np

from engine.checks import check_dtype, check_float, check_int, check_real_array
from engine.checks import check_rng as as_rng


def _class_sizes(n, n_classes):
    """Split n samples into n_classes sizes differing by at most one (first ones larger)."""
    return [n // n_classes + (1 if k < n % n_classes else 0) for k in range(n_classes)]


def _check_common(n, noise, dtype, min_n=1):
    n = check_int("n", n, low=min_n)
    noise = check_float("noise", noise, low=0.0)
    dtype = check_dtype(dtype)
    return n, noise, dtype


def _finish(X, y, noise, rng, dtype):
    """Add coordinate noise, shuffle the rows, cast: returns X (n, 2) dtype, y (n,) int64."""
    X = X + noise * rng.standard_normal(X.shape)
    perm = rng.permutation(len(y))
    return X[perm].astype(dtype), y[perm].astype(np.int64)


def xor(n=200, noise=0.2, seed=None, dtype=np.float64):
    """The XOR problem: four Gaussian clusters at the corners (±1, ±1).

    A point drawn around centre (c1, c2) gets label 1 if the signs of c1 and c2 differ, else
    0 — the truth table of XOR on (c1 > 0, c2 > 0). No linear model separates the classes.
    The n points are spread over the four corners as evenly as n allows.

    Returns: X (n, 2) of dtype, y (n,) int64 in {0, 1}.
    """
    n, noise, dtype = _check_common(n, noise, dtype)
    rng = as_rng("seed", seed)
    corners = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
    corner_labels = np.array([0, 1, 1, 0])
    which = np.arange(n) % 4
    return _finish(corners[which], corner_labels[which], noise, rng, dtype)


def spirals(n=300, n_classes=2, noise=0.05, seed=None, turns=1.0, dtype=np.float64):
    """Interleaved spiral arms, one per class (the CS231n "spiral" data set, in 2-D).

    Arm k has m_k points at radii r evenly spaced in [0, 1] and angles
        θ = 2π·turns·r + 2πk / n_classes,
    i.e. points r (cos θ, sin θ), plus Gaussian noise of std ``noise`` on each coordinate.

    Returns: X (n, 2) of dtype, y (n,) int64 in 0..n_classes-1.
    """
    n_classes = check_int("n_classes", n_classes, low=2)
    n, noise, dtype = _check_common(n, noise, dtype, min_n=n_classes)
    turns = check_float("turns", turns, low=0.0)
    rng = as_rng("seed", seed)
    X, y = [], []
    for k, m in enumerate(_class_sizes(n, n_classes)):
        r = np.linspace(0.0, 1.0, m)
        theta = 2.0 * math.pi * turns * r + 2.0 * math.pi * k / n_classes
        X.append(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1))
        y.append(np.full(m, k))
    return _finish(np.concatenate(X), np.concatenate(y), noise, rng, dtype)


def circles(n=200, noise=0.05, factor=0.5, seed=None, dtype=np.float64):
    """Two concentric circles: label 0 on the unit circle, label 1 on radius ``factor``.

    Angles are uniform on [0, 2π); then Gaussian noise of std ``noise`` on each coordinate.
    ``factor`` must be in (0, 1).

    Returns: X (n, 2) of dtype, y (n,) int64 in {0, 1}.
    """
    n, noise, dtype = _check_common(n, noise, dtype, min_n=2)
    factor = check_float("factor", factor)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor: expected a number in (0, 1), got {factor}")
    rng = as_rng("seed", seed)
    n_outer, n_inner = _class_sizes(n, 2)
    theta = rng.uniform(0.0, 2.0 * math.pi, size=n)
    radius = np.concatenate([np.ones(n_outer), np.full(n_inner, factor)])
    X = radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)
    y = np.concatenate([np.zeros(n_outer), np.ones(n_inner)])
    return _finish(X, y, noise, rng, dtype)


def moons(n=200, noise=0.1, seed=None, dtype=np.float64):
    """Two interleaving half circles ("moons").

    Label 0: (cos θ, sin θ) and label 1: (1 − cos θ, 0.5 − sin θ), with θ uniform on [0, π];
    then Gaussian noise of std ``noise`` on each coordinate.

    Returns: X (n, 2) of dtype, y (n,) int64 in {0, 1}.
    """
    n, noise, dtype = _check_common(n, noise, dtype, min_n=2)
    rng = as_rng("seed", seed)
    n0, n1 = _class_sizes(n, 2)
    t0 = rng.uniform(0.0, math.pi, size=n0)
    t1 = rng.uniform(0.0, math.pi, size=n1)
    upper = np.stack([np.cos(t0), np.sin(t0)], axis=1)
    lower = np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], axis=1)
    X = np.concatenate([upper, lower])
    y = np.concatenate([np.zeros(n0), np.ones(n1)])
    return _finish(X, y, noise, rng, dtype)


def linear_regression(n=100, n_features=1, noise=0.1, seed=None, weight=None, bias=None,
                      dtype=np.float64):
    """Data from a known linear model, the notes' f[x, φ] = φ0 + φ1 x (§1.2) in D dimensions.

        y = x Ωᵀ + β + ε,   x ~ Uniform[-1, 1]^D,   ε ~ N(0, noise²)

    with Ω = ``weight`` (1, D) and β = ``bias`` (1,), the shapes of a ``Linear(D, 1)``
    layer's parameters (so 1-D: φ1 = weight[0, 0], φ0 = bias[0]). When ``weight`` or
    ``bias`` is None it is drawn from N(0, 1) with the same generator.

    Returns:
        X (n, D), y (n, 1) of dtype, and ``true``, a dict {"weight": (1, D), "bias": (1,)}
        of float64 arrays holding the parameters the data came from.
    """
    n, noise, dtype = _check_common(n, noise, dtype)
    D = check_int("n_features", n_features, low=1)
    rng = as_rng("seed", seed)
    if weight is None:
        weight = rng.standard_normal((1, D))
    weight = check_real_array("weight", weight).reshape(-1)
    if weight.shape != (D,):
        raise ValueError(f"weight: expected shape (1, {D}) (n_features={D}), got {weight.size} entries")
    weight = weight.reshape(1, D)
    if bias is None:
        bias = rng.standard_normal(1)
    bias = check_real_array("bias", bias).reshape(-1)
    if bias.shape != (1,):
        raise ValueError(f"bias: expected a scalar or shape (1,), got {bias.size} entries")
    X = rng.uniform(-1.0, 1.0, size=(n, D))
    y = X @ weight.T + bias + noise * rng.standard_normal((n, 1))
    return X.astype(dtype), y.astype(dtype), {"weight": weight, "bias": bias}


def sine(n=100, noise=0.1, seed=None, low=-math.pi, high=math.pi, frequency=1.0,
         dtype=np.float64):
    """Noisy samples of a sine: y = sin(frequency · x) + ε,  x ~ Uniform[low, high],
    ε ~ N(0, noise²).

    Returns: X (n, 1), y (n, 1) of dtype (x not sorted).
    """
    n, noise, dtype = _check_common(n, noise, dtype)
    low, high = check_float("low", low), check_float("high", high)
    if not low < high:
        raise ValueError(f"low, high: expected low < high, got low={low}, high={high}")
    frequency = check_float("frequency", frequency)
    rng = as_rng("seed", seed)
    x = rng.uniform(low, high, size=(n, 1))
    y = np.sin(frequency * x) + noise * rng.standard_normal((n, 1))
    return x.astype(dtype), y.astype(dtype)


# Default "true" parameters and input range for gabor(): an arbitrary but fixed choice that
# shows several oscillations under the envelope on x in [-15, 15] (0.06 * 15 = 0.9 rad per
# unit of x, envelope width sqrt(32) / 0.9 ≈ 6.3 units).
GABOR_PHI = (0.0, 15.0)
GABOR_RANGE = (-15.0, 15.0)


def gabor_model(x, phi0, phi1):
    """The Gabor model of Prince, *Understanding Deep Learning* (2023), eq. 6.8:

        f[x, φ] = sin[φ0 + 0.06 φ1 x] · exp(−(φ0 + 0.06 φ1 x)² / 32)

    a sinusoid under a Gaussian envelope, both functions of the same z = φ0 + 0.06 φ1 x.
    It is the book's example of a non-convex least-squares loss in two parameters (§6.1.2):
    gradient descent from different starting points ends in different minima.

    Why this form: the course notes (000, §5.1.1, "Gabor model") write
    f[x, φ] = sin[φ0 + Σ φi xi] · exp(−Σ φi² xi²); that text was extracted from a PDF and
    the envelope there omits φ0 and the scale, so the envelope is centred at x = 0 whatever
    φ0 is. We follow the book the notes are written after; the constants 0.06 and 32 are the
    book's (they put the interesting region at x in [-15, 15] with φ1 of order 10).

    Args:
        x: array of any shape (or a scalar); phi0, phi1: scalars.
    Returns: f[x, φ], same shape as x, float64 (or x's float dtype).
    """
    phi0, phi1 = check_float("phi0", phi0), check_float("phi1", phi1)
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"x: expected real numbers (float or int), got dtype {x.dtype}")
    z = phi0 + 0.06 * phi1 * x
    return np.sin(z) * np.exp(-z * z / 32.0)


def gabor(n=50, noise=0.1, seed=None, phi0=GABOR_PHI[0], phi1=GABOR_PHI[1],
          low=GABOR_RANGE[0], high=GABOR_RANGE[1], dtype=np.float64):
    """Noisy samples of the Gabor model (see ``gabor_model``):

        y = f[x, φ] + ε,   x ~ Uniform[low, high],   ε ~ N(0, noise²)

    with true parameters φ = (phi0, phi1) (defaults ``GABOR_PHI`` = (0, 15)) on
    x in [-15, 15]. Fitting φ back by least squares is the book's §6.1.2 exercise.

    Returns: X (n, 1), y (n, 1) of dtype.
    """
    n, noise, dtype = _check_common(n, noise, dtype)
    phi0, phi1 = check_float("phi0", phi0), check_float("phi1", phi1)
    low, high = check_float("low", low), check_float("high", high)
    if not low < high:
        raise ValueError(f"low, high: expected low < high, got low={low}, high={high}")
    rng = as_rng("seed", seed)
    x = rng.uniform(low, high, size=(n, 1))
    y = gabor_model(x, phi0, phi1) + noise * rng.standard_normal((n, 1))
    return x.astype(dtype), y.astype(dtype)
