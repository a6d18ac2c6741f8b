"""Weight initializers with the names, gains and formulas of ``torch.nn.init``.

Each scheme is a function that returns a new array of the given ``shape`` and ``dtype``
(float64 by default), drawn from a ``numpy.random.Generator``::

    W = kaiming_uniform((out_features, in_features), a=math.sqrt(5), rng=0)

``rng`` is a Generator (used as is; its state advances), an int seed, or None (fresh OS
entropy, not reproducible). Values are drawn in float64 and then cast, so the same seed
gives the same numbers in float32 (rounded) and float64.

Fans follow torch's rule: for a weight of shape (d0, d1, k1, k2, ...),
    fan_in  = d1 · k1 · k2 · ...    (input features / channels × receptive field)
    fan_out = d0 · k1 · k2 · ...    (output features / channels × receptive field)
so a Linear weight (D_out, D_in) has fan_in = D_in, and a Conv2d weight
(C_out, C_in, KH, KW) has fan_in = C_in·KH·KW.

The variance argument (the notes' σ²_Ω = 2/D_h, 000 §9): with activations of variance v
entering a layer of fan-in D, weights of variance σ² give pre-activations of variance
D σ² v; ReLU halves the second moment, so σ² = 2/D keeps it constant through depth.

References:
    LeCun, Bottou, Orr & Müller (1998), Efficient BackProp: std = 1/sqrt(fan_in).
    Glorot & Bengio (2010), Understanding the difficulty of training deep feedforward neural
        networks: Var = 2/(fan_in + fan_out).
    He, Zhang, Ren & Sun (2015), Delving Deep into Rectifiers: Var = 2/fan_in for ReLU.
    Saxe, McClelland & Ganguli (2014), Exact solutions to the nonlinear dynamics of learning
        in deep linear neural networks: (semi-)orthogonal weights.
"""
import math
import numbers

import numpy as np

from engine.checks import check_choice, check_dtype, check_float, check_rng

__all__ = [
    "calculate_gain", "fan_in_and_fan_out",
    "zeros", "ones", "constant", "normal", "uniform",
    "xavier_normal", "xavier_uniform", "kaiming_normal", "kaiming_uniform",
    "lecun_normal", "orthogonal", "init_", "default_uniform",
]

_GAIN_ONE = ("linear", "conv1d", "conv2d", "conv3d",
             "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid")
NONLINEARITIES = _GAIN_ONE + ("tanh", "relu", "leaky_relu", "selu")


# ----------------------------------------------------------------------------- helpers

def _rng(rng):
    return check_rng("rng", rng)


def _shape(shape):
    """Normalise ``shape`` (an int or a sequence of ints >= 0) to a tuple."""
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"shape: expected an int or a tuple of ints, got "
                        f"{type(shape).__name__} {shape!r}") from None
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 0:
            raise ValueError(f"shape: expected non-negative ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def _mode(mode):
    return check_choice("mode", mode, ("fan_in", "fan_out"))


# ----------------------------------------------------------------------------- gains, fans

def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity, as ``torch.nn.init.calculate_gain``.

        linear, conv*, conv_transpose*, sigmoid   1
        tanh                                      5/3
        relu                                      sqrt(2)
        leaky_relu (negative slope s)             sqrt(2 / (1 + s²)),  s = param or 0.01
        selu                                      3/4

    The gain multiplies the std of the schemes below. For leaky_relu, ``param`` is the
    negative slope (default 0.01); the other nonlinearities ignore it, as in torch.
    """
    if nonlinearity in _GAIN_ONE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, numbers.Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"param: expected a number (the negative slope), got {param!r}")
        return math.sqrt(2.0 / (1.0 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(f"nonlinearity: expected one of {list(NONLINEARITIES)}, "
                     f"got {nonlinearity!r}")


def fan_in_and_fan_out(shape):
    """(fan_in, fan_out) of a weight of ``shape`` = (d0, d1, *kernel), torch's rule:

        receptive = prod(kernel)     (1 for a 2-D weight)
        fan_in    = d1 · receptive
        fan_out   = d0 · receptive

    Linear (D_out, D_in) -> (D_in, D_out); Conv2d (C_out, C_in, KH, KW) ->
    (C_in·KH·KW, C_out·KH·KW). Shapes with fewer than 2 dimensions have no fans (ValueError).
    """
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"shape: expected at least 2 dimensions to compute fan in and fan out, "
                         f"got {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


# ----------------------------------------------------------------------------- basic schemes

def zeros(shape, dtype=np.float64):
    """All zeros (biases)."""
    return np.zeros(_shape(shape), dtype=check_dtype(dtype))


def ones(shape, dtype=np.float64):
    """All ones (e.g. a norm layer's scale)."""
    return np.ones(_shape(shape), dtype=check_dtype(dtype))


def constant(shape, val, dtype=np.float64):
    """Every entry equal to ``val``."""
    val = check_float("val", val)
    return np.full(_shape(shape), val, dtype=check_dtype(dtype))


def normal(shape, mean=0.0, std=1.0, rng=None, dtype=np.float64):
    """Entries i.i.d. N(mean, std²)."""
    mean = check_float("mean", mean)
    std = check_float("std", std, low=0.0)
    shape, dtype = _shape(shape), check_dtype(dtype)
    return _rng(rng).normal(mean, std, size=shape).astype(dtype)


def uniform(shape, a=0.0, b=1.0, rng=None, dtype=np.float64):
    """Entries i.i.d. Uniform[a, b) (a <= b)."""
    a, b = check_float("a", a), check_float("b", b)
    if a > b:
        raise ValueError(f"a, b: expected a <= b, got a={a}, b={b}")
    shape, dtype = _shape(shape), check_dtype(dtype)
    return _rng(rng).uniform(a, b, size=shape).astype(dtype)


def default_uniform(shape, fan_in, rng=None, dtype=np.float64):
    """The default initial values of torch.nn's Linear, Bilinear and Conv layers (weights and
    biases alike): Uniform[−1/√fan_in, 1/√fan_in] (kaiming_uniform with a = √5); zeros when
    fan_in is 0."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(shape, -bound, bound, rng=rng, dtype=dtype)


# ----------------------------------------------------------------------------- variance-scaling

def xavier_uniform(shape, gain=1.0, rng=None, dtype=np.float64):
    """Glorot & Bengio (2010) uniform: entries i.i.d. Uniform[−bound, bound] with

        std   = gain · sqrt(2 / (fan_in + fan_out))
        bound = sqrt(3) · std        (a Uniform[−b, b] has std b / sqrt(3))

    As ``torch.nn.init.xavier_uniform_``.
    """
    gain = check_float("gain", gain, low=0.0)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    std = gain * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    bound = math.sqrt(3.0) * std
    return uniform(shape, -bound, bound, rng=rng, dtype=dtype)


def xavier_normal(shape, gain=1.0, rng=None, dtype=np.float64):
    """Glorot & Bengio (2010) normal: entries i.i.d. N(0, std²) with

        std = gain · sqrt(2 / (fan_in + fan_out))

    As ``torch.nn.init.xavier_normal_``.
    """
    gain = check_float("gain", gain, low=0.0)
    fan_in, fan_out = fan_in_and_fan_out(shape)
    std = gain * math.sqrt(2.0 / max(fan_in + fan_out, 1))
    return normal(shape, 0.0, std, rng=rng, dtype=dtype)


def _kaiming_std(shape, a, mode, nonlinearity):
    fan_in, fan_out = fan_in_and_fan_out(shape)
    fan = fan_in if _mode(mode) == "fan_in" else fan_out
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(max(fan, 1))


def kaiming_uniform(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None,
                    dtype=np.float64):
    """He et al. (2015) uniform: entries i.i.d. Uniform[−bound, bound] with

        std   = gain / sqrt(fan),     gain = calculate_gain(nonlinearity, a)
        bound = sqrt(3) · std

    ``fan`` is fan_in (keeps the forward variance) or fan_out (the backward one), ``a`` the
    negative slope of the leaky ReLU that follows (0: ReLU, gain sqrt(2), so Var = 2/fan_in).
    torch's Linear and Conv layers use ``a=math.sqrt(5)`` for their weights, which gives
    bound = 1/sqrt(fan_in). As ``torch.nn.init.kaiming_uniform_``.
    """
    a = check_float("a", a)
    std = _kaiming_std(shape, a, mode, nonlinearity)
    bound = math.sqrt(3.0) * std
    return uniform(shape, -bound, bound, rng=rng, dtype=dtype)


def kaiming_normal(shape, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None,
                   dtype=np.float64):
    """He et al. (2015) normal: entries i.i.d. N(0, std²) with

        std = gain / sqrt(fan),     gain = calculate_gain(nonlinearity, a)

    (ReLU, a=0, fan_in: Var = 2 / fan_in.) As ``torch.nn.init.kaiming_normal_``.
    """
    a = check_float("a", a)
    std = _kaiming_std(shape, a, mode, nonlinearity)
    return normal(shape, 0.0, std, rng=rng, dtype=dtype)


def lecun_normal(shape, rng=None, dtype=np.float64):
    """LeCun et al. (1998) normal: entries i.i.d. N(0, std²) with

        std = 1 / sqrt(fan_in)

    the variance that keeps a linear (or tanh near 0, or SELU) layer's output variance equal
    to its input's. torch has no function of this name; it equals
    ``kaiming_normal(shape, nonlinearity="linear")``, the init torch recommends for SELU.
    (Not truncated, unlike jax.nn.initializers.lecun_normal.)
    """
    fan_in, _ = fan_in_and_fan_out(shape)
    return normal(shape, 0.0, 1.0 / math.sqrt(max(fan_in, 1)), rng=rng, dtype=dtype)


def orthogonal(shape, gain=1.0, rng=None, dtype=np.float64):
    """Saxe et al. (2014) (semi-)orthogonal init, as ``torch.nn.init.orthogonal_``.

    The weight is viewed as a matrix of rows = shape[0] and cols = prod(shape[1:]). A
    Gaussian matrix A (rows × cols, transposed first if rows < cols) is factored A = QR, the
    signs of Q's columns are fixed by sign(diag R) so Q is Haar-distributed, Q is transposed
    back if needed, and the result is gain · Q. So

        rows >= cols (tall):  Wᵀ W = gain² I_cols
        rows <  cols (wide):  W Wᵀ = gain² I_rows

    Needs at least 2 dimensions.
    """
    gain = check_float("gain", gain, low=0.0)
    shape, dtype = _shape(shape), check_dtype(dtype)
    if len(shape) < 2:
        raise ValueError(f"shape: expected at least 2 dimensions for orthogonal, got {shape}")
    rows = shape[0]
    cols = math.prod(shape[1:])
    if rows * cols == 0:
        return np.zeros(shape, dtype=dtype)
    A = _rng(rng).standard_normal((rows, cols))
    if rows < cols:
        A = A.T
    Q, R = np.linalg.qr(A)                        # Q (max, min) with orthonormal columns
    d = np.diag(R)
    Q = Q * np.where(d < 0, -1.0, 1.0)           # make the factorisation unique
    if rows < cols:
        Q = Q.T
    return (gain * Q).reshape(shape).astype(dtype)


# ----------------------------------------------------------------------------- in place

def init_(param, scheme, **kwargs):
    """Fill ``param.value`` (any object with a ``.value`` ndarray, e.g. a Parameter) in place.

    ``scheme`` is one of this module's functions or its name (``"kaiming_uniform"``);
    ``kwargs`` go to it (``rng=``, ``gain=``, ...). The array keeps its shape and dtype.
    Returns ``param``.

        init_(layer.weight, "kaiming_normal", nonlinearity="relu", rng=0)
    """
    if isinstance(scheme, str):
        names = [n for n in __all__ if n not in ("calculate_gain", "fan_in_and_fan_out", "init_")]
        check_choice("scheme", scheme, names)
        scheme = globals()[scheme]
    elif not callable(scheme):
        raise TypeError(f"scheme: expected a function or a scheme name, got {scheme!r}")
    value = getattr(param, "value", None)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"param: expected an object with a numpy array .value, got "
                        f"{type(param).__name__}")
    if "dtype" in kwargs or "shape" in kwargs:
        raise TypeError("init_: shape and dtype come from param.value; do not pass them")
    value[...] = scheme(value.shape, dtype=value.dtype, **kwargs)
    return param
