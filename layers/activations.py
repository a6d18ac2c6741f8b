"""Activation functions a[·] and their derivatives a'[·] (notes 000 §2.1, 002, 003 Fig 1.6).

Each activation is a scalar pair `name(z)` / `name_grad(z)`; the layer kernels apply them
elementwise over a flat array:
    forward:   h = a[f]
    backward:  ∂ℓ/∂f = a'[f] ⊙ ∂ℓ/∂h
(the notes' diagonal Jacobian ∂h/∂f extracted as a vector and multiplied pointwise, §7.1.1).
The sigmoid is the overflow-free one of engine.numerics.

Two paths: the reference kernels call the scalar `act(code, z)` / `act_grad(code, z)` once per
element; the fast ones (`act_row` / `act_grad_row`, also used by the fused MLP kernel) choose the
activation once per row so the loop body is the inlined scalar function and can vectorise. Both
compute exactly the same numbers, except float32 GELU: there the fast kernels use a rational erf
(relative error ≤ 5e-7, tested; see `_erf32`) instead of math.erf's scalar call. Softmax has one
pair, plain loops, that serves both paths.
"""
import math

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

from engine.checks import check_array, check_bool, check_choice, check_dim, check_float, check_int
from engine.core import Layer, use_reference
from engine.numerics import float32_from_bits, sigmoid
from engine.threads import chunks_for, parallel_call

A_IDENTITY, A_RELU, A_LEAKY_RELU, A_SIGMOID, A_TANH, A_GELU, A_GELU_TANH, A_SOFTPLUS, A_HEAVISIDE = range(9)
SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
INV_SQRT_2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# scalar functions a[z], a'[z] and the reference kernels
# ---------------------------------------------------------------------------------------------
@njit(cache=True, inline="always")
def relu(z):
    """ReLU[z] = max(0, z)."""
    return z if z > 0 else 0.0 * z


@njit(cache=True, inline="always")
def relu_grad(z):
    """ReLU'[z] = 𝕀[z > 0] (0 at the kink, as PyTorch)."""
    return 1.0 if z > 0 else 0.0


@njit(cache=True, inline="always")
def leaky_relu(z, alpha):
    """LReLU[z] = z for z > 0, αz otherwise."""
    return z if z > 0 else alpha * z


@njit(cache=True, inline="always")
def leaky_relu_grad(z, alpha):
    return 1.0 if z > 0 else alpha


@njit(cache=True, inline="always")
def sigmoid_grad(z):
    """σ'(z) = σ(z)(1 − σ(z))."""
    s = sigmoid(z)
    return s * (1.0 - s)


@njit(cache=True, inline="always")
def tanh_grad(z):
    """tanh'(z) = 1 − tanh²(z)."""
    t = math.tanh(z)
    return 1.0 - t * t


@njit(cache=True, inline="always")
def gelu(z):
    """GELU[z] = z Φ(z), Φ the standard normal CDF = ½(1 + erf(z/√2))."""
    return 0.5 * z * (1.0 + math.erf(z * INV_SQRT_2))


@njit(cache=True, inline="always")
def gelu_grad(z):
    """GELU'[z] = Φ(z) + z φ(z)."""
    return 0.5 * (1.0 + math.erf(z * INV_SQRT_2)) + z * INV_SQRT_2PI * math.exp(-0.5 * z * z)


@njit(cache=True, inline="always")
def gelu_tanh(z):
    """GELU with the tanh approximation: ½ z (1 + tanh(√(2/π)(z + 0.044715 z³)))."""
    return 0.5 * z * (1.0 + math.tanh(SQRT_2_OVER_PI * (z + 0.044715 * z * z * z)))


@njit(cache=True, inline="always")
def gelu_tanh_grad(z):
    u = SQRT_2_OVER_PI * (z + 0.044715 * z * z * z)
    t = math.tanh(u)
    du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * z * z)
    return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du


@njit(cache=True, inline="always")
def softplus(z, beta, threshold):
    """Softplus[z] = (1/β) log(1 + e^{βz}), linear (= z) where βz > threshold, as torch.nn.Softplus.
    Evaluated as max(βz, 0) + log1p(e^{−|βz|}) so it never overflows."""
    bz = beta * z
    if bz > threshold:
        return z
    return (max(bz, 0.0) + math.log1p(math.exp(-abs(bz)))) / beta


@njit(cache=True, inline="always")
def softplus_grad(z, beta, threshold):
    """Softplus'[z] = σ(βz) (1 where βz > threshold)."""
    bz = beta * z
    if bz > threshold:
        return 1.0
    return sigmoid(bz)


@njit(cache=True, inline="always")
def heaviside(z):
    """Heaviside[z] = 𝕀[z > 0]: the perceptron's step. Its derivative is 0 wherever it exists."""
    return 1.0 if z > 0 else 0.0


@njit(cache=True)
def act(code, z, p0, p1):
    """a[z] for the activation `code`; p0, p1 are its options (α; or β, threshold)."""
    if code == A_RELU:
        return relu(z)
    if code == A_LEAKY_RELU:
        return leaky_relu(z, p0)
    if code == A_SIGMOID:
        return sigmoid(z)
    if code == A_TANH:
        return math.tanh(z)
    if code == A_GELU:
        return gelu(z)
    if code == A_GELU_TANH:
        return gelu_tanh(z)
    if code == A_SOFTPLUS:
        return softplus(z, p0, p1)
    if code == A_HEAVISIDE:
        return heaviside(z)
    return z


@njit(cache=True)
def act_grad(code, z, p0, p1):
    """a'[z] for the activation `code`."""
    if code == A_RELU:
        return relu_grad(z)
    if code == A_LEAKY_RELU:
        return leaky_relu_grad(z, p0)
    if code == A_SIGMOID:
        return sigmoid_grad(z)
    if code == A_TANH:
        return tanh_grad(z)
    if code == A_GELU:
        return gelu_grad(z)
    if code == A_GELU_TANH:
        return gelu_tanh_grad(z)
    if code == A_SOFTPLUS:
        return softplus_grad(z, p0, p1)
    if code == A_HEAVISIDE:
        return 0.0
    return 1.0


@njit(cache=True)
def activation_forward_ref(f, code, p0, p1):
    """h_i = a[f_i], one scalar call per element. f: flat (n,). Returns h (n,)."""
    h = np.empty_like(f)
    for i in range(f.shape[0]):
        h[i] = act(code, f[i], p0, p1)
    return h


@njit(cache=True)
def activation_backward_ref(dh, f, code, p0, p1):
    """∂ℓ/∂f_i = a'[f_i] ∂ℓ/∂h_i, one scalar call per element. Returns ∂ℓ/∂f (n,)."""
    df = np.empty_like(dh)
    for i in range(f.shape[0]):
        df[i] = act_grad(code, f[i], p0, p1) * dh[i]
    return df


# ---------------------------------------------------------------------------------------------
# layers
# ---------------------------------------------------------------------------------------------
class Activation(Layer):
    """An elementwise activation layer. It has no parameters and accepts float32 or float64
    input of any shape; the gradient comes back in the input's dtype."""

    code = A_IDENTITY

    def __init__(self):
        self.p0, self.p1 = 0.0, 0.0

    def forward(self, x, train=True):
        check_bool("train", train)
        x = check_array("x", x)
        if use_reference():
            h = activation_forward_ref(x.reshape(-1), self.code, self.p0, self.p1)
        else:
            h = parallel_call(activation_forward, chunks_for(x.size, row_cost=1), x.reshape(-1), self.code,
                              self.p0, self.p1)
        h = h.reshape(x.shape)
        self._save(x)
        return h

    def backward(self, dy, *, input_grad=True):
        f, = self._saved()
        dy = check_array("dy", dy, shape=f.shape, dtype=f.dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        if not input_grad:
            return None
        if use_reference():
            df = activation_backward_ref(dy.reshape(-1), f.reshape(-1), self.code, self.p0, self.p1)
        else:
            df = parallel_call(activation_backward, chunks_for(f.size, row_cost=1), dy.reshape(-1), f.reshape(-1),
                               self.code, self.p0, self.p1)
        return df.reshape(dy.shape)


class Identity(Activation):
    code = A_IDENTITY


class ReLU(Activation):
    code = A_RELU


class LeakyReLU(Activation):
    code = A_LEAKY_RELU

    def __init__(self, negative_slope=0.01):
        super().__init__()
        self.negative_slope = self.p0 = check_float("negative_slope", negative_slope)

    def extra_repr(self):
        return {"negative_slope": self.negative_slope}


class Sigmoid(Activation):
    code = A_SIGMOID


class Tanh(Activation):
    code = A_TANH


class GELU(Activation):
    def __init__(self, approximate="none"):
        super().__init__()
        if not isinstance(approximate, str):
            raise TypeError(f"approximate: expected 'none' or 'tanh', got {type(approximate).__name__} {approximate!r}")
        self.approximate = check_choice("approximate", approximate, ("none", "tanh"))
        self.code = A_GELU_TANH if approximate == "tanh" else A_GELU

    def extra_repr(self):
        return {"approximate": self.approximate}


class Softplus(Activation):
    code = A_SOFTPLUS

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta = self.p0 = check_float("beta", beta, low=0.0, low_open=True)
        self.threshold = self.p1 = check_float("threshold", threshold)

    def extra_repr(self):
        return {"beta": self.beta, "threshold": self.threshold}


class Heaviside(Activation):
    """The perceptron's step 𝕀[z > 0], for perceptron demos (forward only).

    Its derivative is zero wherever it is defined (and undefined at 0), so `backward` returns
    zeros by definition: a network of Heaviside units cannot be trained by gradient descent."""

    code = A_HEAVISIDE


# ---- softmax ------------------------------------------------------------------------------
@njit(cache=True)
def softmax_forward(x, temperature):
    """S(η/T)_i = exp(η_i/T − m) / Σ_j exp(η_j/T − m), m = max_j η_j/T (max-shifted, no overflow).
    x: (R, C), softmax along the last axis. Returns y (R, C)."""
    R, C = x.shape
    y = np.empty_like(x)
    for r in range(R):
        m = x[r, 0]
        for c in range(1, C):
            m = max(m, x[r, c])
        s = 0.0
        for c in range(C):
            e = math.exp((x[r, c] - m) / temperature)
            y[r, c] = e
            s += e
        for c in range(C):
            y[r, c] /= s
    return y


@njit(cache=True)
def softmax_backward(dy, y, temperature):
    """∂ℓ/∂η_i = y_i (∂ℓ/∂y_i − Σ_j y_j ∂ℓ/∂y_j) / T   (the Jacobian diag(y) − y yᵀ, over T).
    dy, y: (R, C). Returns dx (R, C)."""
    R, C = y.shape
    dx = np.empty_like(dy)
    for r in range(R):
        s = 0.0
        for c in range(C):
            s += dy[r, c] * y[r, c]
        for c in range(C):
            dx[r, c] = y[r, c] * (dy[r, c] - s) / temperature
    return dx


class Softmax(Layer):
    """Softmax along `dim` with temperature T: y = S(x / T) (notes 004 §2.4.6).
    T → 0 tends to one-hot at the maximum, T → ∞ to uniform."""

    def __init__(self, dim=-1, temperature=1.0):
        self.dim = check_int("dim", dim)              # checked against the input's rank in forward
        self.temperature = check_float("temperature", temperature, low=0.0, low_open=True)

    @staticmethod
    def _to_rows(a, d):
        moved = np.moveaxis(a, d, -1)
        return np.ascontiguousarray(moved).reshape(-1, a.shape[d]), moved.shape

    @staticmethod
    def _from_rows(r, moved_shape, d):
        return np.ascontiguousarray(np.moveaxis(r.reshape(moved_shape), -1, d))

    def forward(self, x, train=True):
        check_bool("train", train)
        x = check_array("x", x)
        if x.ndim == 0:
            raise ValueError("x: expected an array with at least 1 dimension (softmax runs along dim), got shape ()")
        d = check_dim("dim", self.dim, x.ndim, x.shape)
        rows, moved = self._to_rows(x, d)
        y = softmax_forward(rows, self.temperature)
        self._save(y, moved, x.shape, d)
        return self._from_rows(y, moved, d)

    def backward(self, dy, *, input_grad=True):
        y, moved, shape, d = self._saved()
        dy = check_array("dy", dy, shape=shape, dtype=y.dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        if not input_grad:
            return None
        rows, _ = self._to_rows(dy, d)
        return self._from_rows(softmax_backward(rows, y, self.temperature), moved, d)

    def extra_repr(self):
        return {"dim": self.dim, "temperature": self.temperature}


# ---------------------------------------------------------------------------------------------
# fast kernels: the activation chosen once per row, so the loop body vectorises
# ---------------------------------------------------------------------------------------------
# float32 GELU (PERFORMANCE.md, lesson 4): math.erf is a scalar call per element (~60 ns; 123 ms
# of a 4-layer width-128 GPT step). In float32 the fast kernels use a rational approximation of
# erf that vectorises: erf(x) ≈ x P(x²)/Q(x²) for |x| < c = 3.9192059 (beyond it erf rounds to ±1
# in float32), P of degree 6, Q of degree 5, with P(0) = 2/√π (erf's slope at 0). Coefficients from
# scripts/derive_erf32.py (Lawson-reweighted, linearised least squares for the relative error on
# (0, c]): relative error 1.9e-9 in float64 arithmetic, 3.7e-7 evaluated in float32 (math.erf of
# float32 is within ~1.2e-7). tests/test_activations.py bounds it over float32's range (4.5e-7
# relative for erf) and GELU, GELU' against float64 (GELU' also uses _phi32 below, not math.exp).
# float64 keeps math.erf and math.exp. Every q_k > 0, so
# Q ≥ 1 and the division is safe under error_model="numpy" (which lets the loop vectorise).
ERF32_CUTOFF = 3.919205904006958


@njit(cache=True, inline="always", error_model="numpy")
def _erf32(x):
    u = x * x
    p = u * np.float32(-1.267085287498295e-08) + np.float32(4.583232975472234e-06)
    p = u * p + np.float32(0.0003758800970868201)
    p = u * p + np.float32(0.0038396317670758118)
    p = u * p + np.float32(0.05423424566067507)
    p = u * p + np.float32(0.18522808353577028)
    p = u * p + np.float32(1.1283791670955126)
    q = u * np.float32(6.215449187515375e-05) + np.float32(0.0013005635451003134)
    q = u * q + np.float32(0.015428860827582346)
    q = u * q + np.float32(0.11389262194563651)
    q = u * q + np.float32(0.4974874974965797)
    q = u * q + np.float32(1.0)
    r = x * p / q
    if abs(x) >= np.float32(ERF32_CUTOFF):       # (NaN fails the test and stays NaN)
        r = np.float32(1.0) if x > 0 else np.float32(-1.0)
    return r


def erf_fast(x):
    """erf of the fast kernels: _erf32 for float32, math.erf for float64 (chosen at compile time)."""
    return math.erf(x)


def gelu_row(f, h):
    """h[i] = GELU[f[i]] over a row: _gelu_row32 for float32, _gelu_row64 (exact) for float64."""
    _gelu_row64(f, h)


def gelu_grad_row(f, g, d):
    """d[i] = GELU'[f[i]] g[i] over a row: _gelu_grad_row32 for float32, _gelu_grad_row64 for float64."""
    _gelu_grad_row64(f, g, d)


@overload(erf_fast, inline="always")
def _erf_fast_jit(x):
    if x == types.float32:
        return lambda x: _erf32(x)
    return lambda x: math.erf(x)


@overload(gelu_row)
def _gelu_row_jit(f, h):
    if f.dtype == types.float32:
        return lambda f, h: _gelu_row32(f, h)
    return lambda f, h: _gelu_row64(f, h)


@overload(gelu_grad_row)
def _gelu_grad_row_jit(f, g, d):
    if f.dtype == types.float32:
        return lambda f, g, d: _gelu_grad_row32(f, g, d)
    return lambda f, g, d: _gelu_grad_row64(f, g, d)


@njit(cache=True, inline="always", error_model="numpy")
def _gelu32(z):
    """½ z (1 + erf(z/√2)) in float32 (every constant float32: a float64 one would promote z)."""
    h = z * np.float32(0.5)
    return h + h * _erf32(z * np.float32(INV_SQRT_2))


# φ(z) = e^{−t}/√(2π), t = z²/2, in float32 without math.exp's scalar call: t = n ln2 + r with
# n = ⌊t/ln2 + ½⌋, |r| ≤ ln2/2, e^{−t} = 2^{−n} e^{−r}, 2^{−n} built from its bits (exact), e^{−r}
# from its Taylor series to r⁷ (remainder ≤ 0.347⁸/8! < 6e-9 relative). Beyond |z| = 6 (t = 18)
# z φ(z) < 4e-8 and is dropped, so n ≤ 26. ln2 is split in two (Cody & Waite) so r is exact enough.
# np.floor, not math.floor: Numba's math.floor returns an int64, and int64 × float32 is float64
# (the whole reduction ran in float64: 2.2 -> 0.9 ms per 1M elements with np.floor and the bitcast).
LN2_HI = 0.693145751953125                 # ln 2 to 16 bits: n·LN2_HI is exact in float32 for n ≤ 26
LN2_LO = 1.4286068203094173e-06            # ln 2 − LN2_HI


@njit(cache=True, inline="always", error_model="numpy")
def _phi32(z):
    t = min(np.float32(0.5) * z * z, np.float32(18.0))
    nf = np.floor(t * np.float32(1.4426950408889634) + np.float32(0.5))
    r = (t - nf * np.float32(LN2_HI)) - nf * np.float32(LN2_LO)
    e = np.float32(1.0 / 5040.0)
    e = e * -r + np.float32(1.0 / 720.0)
    e = e * -r + np.float32(1.0 / 120.0)
    e = e * -r + np.float32(1.0 / 24.0)
    e = e * -r + np.float32(1.0 / 6.0)
    e = e * -r + np.float32(0.5)
    e = e * -r + np.float32(1.0)
    e = e * -r + np.float32(1.0)
    two_n = float32_from_bits(np.int32((np.int32(127) - np.int32(nf)) << 23))      # 2^{−n}
    v = e * two_n * np.float32(INV_SQRT_2PI)
    return v if t < np.float32(18.0) else np.float32(0.0)


@njit(cache=True, inline="always", error_model="numpy")
def _gelu_grad32(z):
    """½(1 + erf(z/√2)) + z φ(z) in float32."""
    h = np.float32(0.5)
    return h + h * _erf32(z * np.float32(INV_SQRT_2)) + z * _phi32(z)


# The float32 rows are functions of their own with FMA contraction ({"contract"}: 1.7 -> 1.2 ms per
# 1M elements for GELU', error bounds tested): inlined into act_row they would take its flags, and
# the exact float64 rows must not be contracted (they equal the reference kernels bit for bit).
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _gelu_row32(f, h):
    for i in range(f.shape[0]):
        h[i] = _gelu32(f[i])


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _gelu_grad_row32(f, g, d):
    for i in range(f.shape[0]):
        d[i] = g[i] * _gelu_grad32(f[i])


@njit(cache=True)
def _gelu_row64(f, h):
    for i in range(f.shape[0]):
        h[i] = gelu(f[i])


@njit(cache=True)
def _gelu_grad_row64(f, g, d):
    for i in range(f.shape[0]):
        d[i] = g[i] * gelu_grad(f[i])


@njit(cache=True, error_model="numpy")
def erf_fast_kernel(x):
    """erf_fast elementwise over a 1-D array (for the error test)."""
    y = np.empty_like(x)
    for i in range(x.shape[0]):
        y[i] = erf_fast(x[i])
    return y


@njit(cache=True, error_model="numpy")
def act_row(code, f, h, p0, p1):
    """h[i] = a[f[i]] over a row. The activation is chosen once per row, not per element, so
    the loop body is the inlined scalar function and can vectorise."""
    n = f.shape[0]
    if code == A_RELU:
        for i in range(n):
            h[i] = relu(f[i])
    elif code == A_LEAKY_RELU:
        for i in range(n):
            h[i] = leaky_relu(f[i], p0)
    elif code == A_TANH:
        for i in range(n):
            h[i] = math.tanh(f[i])
    elif code == A_SIGMOID:
        for i in range(n):
            h[i] = sigmoid(f[i])
    elif code == A_GELU:
        gelu_row(f, h)
    else:
        for i in range(n):
            h[i] = act(code, f[i], p0, p1)


@njit(cache=True, error_model="numpy")
def act_grad_row(code, f, g, d, p0, p1):
    """d[i] = a'[f[i]] g[i] over a row (the ⊙ a'[f] of the backward pass; d may be g itself),
    activation chosen once."""
    n = f.shape[0]
    if code == A_RELU:
        for i in range(n):
            d[i] = g[i] * relu_grad(f[i])
    elif code == A_LEAKY_RELU:
        for i in range(n):
            d[i] = g[i] * leaky_relu_grad(f[i], p0)
    elif code == A_TANH:
        for i in range(n):
            d[i] = g[i] * tanh_grad(f[i])
    elif code == A_SIGMOID:
        for i in range(n):
            d[i] = g[i] * sigmoid_grad(f[i])
    elif code == A_GELU:
        gelu_grad_row(f, g, d)
    elif code == A_IDENTITY:
        for i in range(n):
            d[i] = g[i]
    else:
        for i in range(n):
            d[i] = g[i] * act_grad(code, f[i], p0, p1)


@njit(parallel=True, cache=True)
def activation_forward(f, code, p0, p1, nthreads):
    """h = a[f] elementwise, in `nthreads` disjoint chunks. f: flat (n,). Returns h (n,)."""
    n = f.shape[0]
    h = np.empty_like(f)
    for t in prange(nthreads):
        lo, hi = t * n // nthreads, (t + 1) * n // nthreads
        act_row(code, f[lo:hi], h[lo:hi], p0, p1)
    return h


@njit(parallel=True, cache=True)
def activation_backward(dh, f, code, p0, p1, nthreads):
    """∂ℓ/∂f = a'[f] ⊙ ∂ℓ/∂h elementwise, in `nthreads` disjoint chunks. dh, f: flat (n,).
    Returns ∂ℓ/∂f (n,)."""
    n = f.shape[0]
    df = np.empty_like(dh)
    for t in prange(nthreads):
        lo, hi = t * n // nthreads, (t + 1) * n // nthreads
        act_grad_row(code, f[lo:hi], dh[lo:hi], df[lo:hi], p0, p1)
    return df


ACTIVATIONS = {"identity": Identity, "linear": Identity, "relu": ReLU, "leaky_relu": LeakyReLU,
               "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU, "softplus": Softplus,
               "heaviside": Heaviside}


def make_activation(name, negative_slope=0.01, beta=1.0, threshold=20.0):
    """A new activation layer by name ("relu", "gelu_tanh", …), options used where they apply and
    checked always (a bad `beta` is refused for a ReLU too, not ignored)."""
    names = sorted(ACTIVATIONS) + ["gelu_tanh"]
    if not isinstance(name, str):
        raise TypeError(f"activation: expected one of {names}, got {type(name).__name__} {name!r}")
    check_choice("activation", name, names)
    check_float("negative_slope", negative_slope)
    check_float("beta", beta, low=0.0, low_open=True)
    check_float("threshold", threshold)
    if name == "gelu_tanh":
        return GELU("tanh")
    if name == "leaky_relu":
        return LeakyReLU(negative_slope)
    if name == "softplus":
        return Softplus(beta, threshold)
    return ACTIVATIONS[name]()
