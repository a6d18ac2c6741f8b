"""Signal propagation through depth: mean-field theory and variance propagation at initialisation.

Mean field (Poole et al. 2016, "Exponential expressivity in deep neural networks through transient
chaos"; Schoenholz et al. 2017, "Deep information propagation"). In a wide MLP with weights
Ω_k[i, j] ~ N(0, σ_w²/D_k) and biases β ~ N(0, σ_b²), each pre-activation is Gaussian over the
weights, with second moment q and, between two inputs, correlation c:

    length map       q^l  = σ_w² E_z[φ(√q^{l−1} z)²] + σ_b²                          z ~ N(0, 1)
    correlation map  c^l  = (σ_w² E[φ(u_1) φ(u_2)] + σ_b²) / q*,   u_1 = √q* z_1,
                            u_2 = √q* (c^{l−1} z_1 + √(1 − (c^{l−1})²) z_2)
    fixed points     q* = length_map(q*),  c* = corr_map(c*)
    χ₁  = σ_w² E[φ′(√q* z)²]               slope of the correlation map at c = 1
    χ_q = d q^l / d q^{l−1} at q*  = σ_w² E[φ′² + φ φ″]  (Stein's lemma)
    χ_c = σ_w² E[φ′(u_1) φ′(u_2)] at c*  (= χ₁ when c* = 1)
    ξ_q = −1 / ln χ_q,   ξ_c = −1 / ln χ_c         (Schoenholz et al. 2017, eqs. 6 and 9)

so |q^l − q*| ~ e^{−l/ξ_q} and |c^l − c*| ~ e^{−l/ξ_c}. χ₁ < 1 is the ordered phase (c* = 1, inputs
become correlated), χ₁ > 1 the chaotic one (c* < 1); χ₁ = 1 is the order-to-chaos boundary where
ξ_c diverges. Expectations use probabilists' Gauss–Hermite quadrature; ReLU, leaky ReLU and linear
use closed forms (the arc-cosine kernel of Cho & Saul 2009 for the correlation map).

Variance propagation through a concrete MLP (notes 000 §9.2, 003 §1.3.2, 004 §3.8): with per-weight
variance v_k of Ω_k (D_{k+1} × D_k), zero-mean weights and biases of variance σ_b²,

    Var f_0 = v_0 D_0 E[x²] + σ_b²,     Var f_k = v_k D_k E[φ(f_{k−1})²] + σ_b²
    Var ∂ℓ/∂f_{k−1} = v_k D_{k+1} E[φ′(f_{k−1})²] Var ∂ℓ/∂f_k

For ReLU E[φ(f)²] = Var f / 2, so Var f_k = ½ D_k v_k Var f_{k−1}: v = 2/D_h keeps it constant
(He; the notes' σ²_Ω = 2/D_h), v = 1/D_h (Xavier/LeCun for square layers) halves it per layer.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq
from scipy.special import erf, expit

from engine.checks import check_float, check_int, check_real_array, check_rng


__all__ = ["mean_field", "MeanField", "order_chaos_boundary", "weight_variance", "predict_variance",
           "measure_variance", "VarianceProfile", "critical_weight_variance", "expect", "ACTIVATIONS"]


def _gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))


def _gelu_grad(x):
    return 0.5 * (1 + erf(x / math.sqrt(2))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


ACTIVATIONS = {
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(x, 0.0), lambda x: (x > 0).astype(float)),
    "linear": (lambda x: x, lambda x: np.ones_like(x)),
    "sigmoid": (expit, lambda x: expit(x) * expit(-x)),           # σ′ = σ(x) (1 − σ(x))
    "gelu": (_gelu, _gelu_grad),
    "softplus": (lambda x: np.logaddexp(0.0, x), expit),          # log(1 + e^x); its φ′ is σ
}
ACTIVATIONS["identity"] = ACTIVATIONS["linear"]
_CLOSED = ("relu", "leaky_relu", "linear", "identity")


def _resolve(activation, negative_slope):
    """(name, φ, φ′) for a name (ACTIVATIONS or "leaky_relu") or a pair of callables (φ, φ′)."""
    if isinstance(activation, str):
        if activation == "leaky_relu":
            a = negative_slope
            return ("leaky_relu", lambda x: np.where(x > 0, x, a * x), lambda x: np.where(x > 0, 1.0, a))
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS) + ['leaky_relu']} "
                             f"or a pair (phi, dphi), got {activation!r}")
        return (activation,) + ACTIVATIONS[activation]
    if isinstance(activation, tuple) and len(activation) == 2 and all(callable(f) for f in activation):
        return ("custom",) + activation
    raise TypeError(f"activation: expected a name or a pair of callables (phi, dphi), got {activation!r}")


_GH = {}


def _gauss_hermite(n):
    if n not in _GH:
        z, w = np.polynomial.hermite_e.hermegauss(n)
        _GH[n] = (z, w / math.sqrt(2 * math.pi))
    return _GH[n]


def expect(f, n=101):
    """E_z[f(z)] for z ~ N(0, 1) by n-point probabilists' Gauss–Hermite quadrature."""
    if not callable(f):
        raise TypeError(f"f: expected a function of an array of z values, got {type(f).__name__}")
    n = check_int("n", n, low=1)
    z, w = _gauss_hermite(n)
    return float(np.dot(w, f(z)))


def _relu_kernel(c):
    """E[ReLU(u_1) ReLU(u_2)] / q for unit-variance-q Gaussians with correlation c (arc-cosine kernel)."""
    c = np.clip(c, -1.0, 1.0)
    return (np.sqrt(1 - c * c) + (math.pi - np.arccos(c)) * c) / (2 * math.pi)


@dataclass
class MeanField:
    """Mean-field quantities for one activation and (σ_w², σ_b²); see the module docstring.
    `length_map(q)` and `corr_map(c)` are the maps; `q_star`, `c_star`, `chi1`, `chi_q`, `chi_c`,
    `xi_q`, `xi_c` the fixed points, slopes and depth scales; `phase` is "ordered", "chaotic" or
    "critical". q_star is inf when the length map has no finite fixed point (ReLU with σ_w² > 2)."""
    activation: str
    sigma_w2: float
    sigma_b2: float
    negative_slope: float
    n_quad: int
    q_star: float = float("nan")
    c_star: float = float("nan")
    chi1: float = float("nan")
    chi_q: float = float("nan")
    chi_c: float = float("nan")
    xi_q: float = float("nan")
    xi_c: float = float("nan")
    phase: str = ""

    def __post_init__(self):
        self._name, self._phi, self._dphi = _resolve(self.activation, self.negative_slope)

    # -- maps ---------------------------------------------------------------------------------
    def second_moment(self, q):
        """E[φ(√q z)²]."""
        n = self._name
        if n in ("relu",):
            return 0.5 * q
        if n == "leaky_relu":
            return 0.5 * (1 + self.negative_slope ** 2) * q
        if n in ("linear", "identity"):
            return q
        sq = math.sqrt(max(q, 0.0))
        return expect(lambda z: self._phi(sq * z) ** 2, self.n_quad)

    def derivative_moment(self, q):
        """E[φ′(√q z)²]."""
        n = self._name
        if n == "relu":
            return 0.5
        if n == "leaky_relu":
            return 0.5 * (1 + self.negative_slope ** 2)
        if n in ("linear", "identity"):
            return 1.0
        sq = math.sqrt(max(q, 0.0))
        return expect(lambda z: self._dphi(sq * z) ** 2, self.n_quad)

    def length_map(self, q):
        """q^l = σ_w² E[φ(√q^{l−1} z)²] + σ_b²."""
        return self.sigma_w2 * self.second_moment(q) + self.sigma_b2

    def _cross(self, c, q, deriv=False):
        """E[g(u_1) g(u_2)] with g = φ (or φ′), u ~ N(0, q [[1, c], [c, 1]])."""
        n = self._name
        if n in _CLOSED:
            a = {"relu": 0.0, "leaky_relu": self.negative_slope}.get(n, 1.0)
            if deriv:     # E[1{u1>0}1{u2>0}] = (π − arccos c)/(2π), leaky: mix with slopes
                p_pp = (math.pi - math.acos(np.clip(c, -1, 1))) / (2 * math.pi)
                p_pn = 0.5 - p_pp
                return p_pp + 2 * a * p_pn + a * a * p_pp
            # φ = a x + (1 − a) ReLU(x): E = q [a² c + a(1 − a) c + (1 − a)² k(c)]
            return q * (a * a * c + a * (1 - a) * c + (1 - a) ** 2 * _relu_kernel(c))
        z, w = _gauss_hermite(min(self.n_quad, 61))
        Z1, Z2 = np.meshgrid(z, z, indexing="ij")
        W = np.outer(w, w)
        sq = math.sqrt(max(q, 0.0))
        s = math.sqrt(max(1 - c * c, 0.0))
        u1, u2 = sq * Z1, sq * (c * Z1 + s * Z2)
        g = self._dphi if deriv else self._phi
        return float(np.sum(W * g(u1) * g(u2)))

    def corr_map(self, c):
        """c^l = (σ_w² E[φ(u_1) φ(u_2)] + σ_b²) / q*  at the fixed point q*."""
        q = self.q_star
        if not np.isfinite(q) or q <= 0:
            raise ValueError(f"corr_map: needs a finite, positive q* (got q* = {q})")
        return (self.sigma_w2 * self._cross(c, q) + self.sigma_b2) / q


def _fixed_point_q(mf):
    name = mf._name
    if name in _CLOSED:
        slope = mf.sigma_w2 * mf.second_moment(1.0)          # the length map is q ↦ slope q + σ_b²
        if slope < 1:
            return mf.sigma_b2 / (1 - slope)
        if slope == 1 and mf.sigma_b2 == 0:
            return float("nan")                               # every q is a fixed point
        return float("inf")
    # σ_b² = 0 and φ(0) = 0: q = 0 is a fixed point, stable when σ_w² φ′(0)² ≤ 1 (iterating towards
    # it is slow at the boundary, so decide it directly)
    if mf.sigma_b2 == 0 and float(mf._phi(np.zeros(1))[0]) == 0 and mf.sigma_w2 * float(mf._dphi(np.zeros(1))[0]) ** 2 <= 1:
        return 0.0
    q = 1.0
    for _ in range(500):                      # iterate towards the stable fixed point …
        qn = mf.length_map(q)
        if not np.isfinite(qn) or qn > 1e12:
            return float("inf")
        if abs(qn - q) <= 1e-15 * max(1.0, q):
            return qn
        q = qn
    g = lambda x: mf.length_map(x) - x        # … then polish: g > 0 below q*, g < 0 above
    lo, hi = 0.5 * q, 2.0 * q
    while g(lo) < 0 and lo > 1e-300:
        lo *= 0.25
    while g(hi) > 0 and hi < 1e12:
        hi *= 4.0
    if g(lo) >= 0 >= g(hi):
        q = brentq(g, lo, hi, xtol=1e-300, rtol=1e-14)
    return q


def mean_field(activation, sigma_w2, sigma_b2, negative_slope=0.01, n_quad=101):
    """Mean-field analysis of a deep, wide MLP with activation φ and weight/bias variances
    (σ_w², σ_b²) (σ_w² is the per-weight variance times fan-in). `activation` is a name ("tanh",
    "relu", "leaky_relu", "linear", "sigmoid", "gelu", "softplus") or a pair of callables (φ, φ′).
    Returns a `MeanField` with q_star, c_star, chi1, chi_q, chi_c, xi_q, xi_c, phase and the maps."""
    sigma_w2 = check_float("sigma_w2", sigma_w2, low=0.0)
    sigma_b2 = check_float("sigma_b2", sigma_b2, low=0.0)
    negative_slope = check_float("negative_slope", negative_slope)
    n_quad = check_int("n_quad", n_quad, low=5)
    mf = MeanField(activation if isinstance(activation, str) else activation, sigma_w2, sigma_b2,
                   negative_slope, n_quad)
    q = _fixed_point_q(mf)
    mf.q_star = q
    qe = q if np.isfinite(q) else 1.0            # ReLU-like: χ's do not depend on q
    if not np.isfinite(q) and mf._name not in _CLOSED:
        return mf
    mf.chi1 = sigma_w2 * mf.derivative_moment(qe)
    if mf._name in _CLOSED:
        mf.chi_q = sigma_w2 * mf.second_moment(1.0)
    else:
        h = 1e-4 * max(qe, 1e-3)
        lo = max(qe - h, 0.0)
        mf.chi_q = (mf.length_map(qe + h) - mf.length_map(lo)) / (qe + h - lo)
    # c*: 1 is stable iff χ₁ < 1; otherwise the root of corr_map(c) − c in [0, 1)
    if not (np.isfinite(q) and q > 0):
        mf.c_star = 1.0 if mf.chi1 <= 1 else float("nan")
    elif mf.chi1 <= 1 + 1e-12:
        mf.c_star = 1.0
    else:
        # corr_map(0) = (σ_w² E[φ(u)]² + σ_b²)/q* ≥ 0 and corr_map(c) < c just below 1 (slope χ₁ > 1)
        f = lambda c: mf.corr_map(c) - c
        mf.c_star = 0.0 if f(0.0) <= 1e-15 else brentq(f, 0.0, 1 - 1e-9, xtol=1e-14)
    if mf.c_star == 1.0:
        mf.chi_c = mf.chi1
    elif np.isfinite(mf.c_star):
        mf.chi_c = sigma_w2 * mf._cross(mf.c_star, qe, deriv=True)
    mf.xi_q = _depth_scale(mf.chi_q)
    mf.xi_c = _depth_scale(mf.chi_c)
    mf.phase = "critical" if abs(mf.chi1 - 1) < 1e-9 else ("ordered" if mf.chi1 < 1 else "chaotic")
    return mf


def _depth_scale(chi):
    """ξ = −1/ln χ: the number of layers over which a deviation shrinks by e (inf when χ ≥ 1)."""
    if not np.isfinite(chi):
        return float("nan")
    if chi <= 0:
        return 0.0
    if chi >= 1:
        return float("inf")
    return -1.0 / math.log(chi)


def order_chaos_boundary(sigma_b2, activation="tanh", n_quad=101):
    """σ_w² on the order-to-chaos boundary χ₁(σ_w², σ_b²) = 1, for each σ_b² in the array
    (Poole et al. 2016, Fig. 1; Schoenholz et al. 2017, Fig. 1). For tanh it starts at σ_w² = 1
    for σ_b² = 0 and grows with σ_b²."""
    sb = np.atleast_1d(check_real_array("sigma_b2", sigma_b2))
    if (sb < 0).any():
        raise ValueError(f"sigma_b2: expected non-negative bias variances, got a minimum of {sb.min()}")
    n_quad = check_int("n_quad", n_quad, low=5)
    _resolve(activation, 0.01)                         # a named error for an unknown activation now
    out = np.empty_like(sb)
    for i, b2 in enumerate(sb):
        g = lambda w2: mean_field(activation, w2, float(b2), n_quad=n_quad).chi1 - 1.0
        lo, hi = 0.05, 2.0
        while g(hi) < 0:
            hi *= 2
            if hi > 1e4:
                raise ValueError(f"sigma_b2: no order-to-chaos transition found for σ_b² = {b2}")
        out[i] = brentq(g, lo, hi, xtol=1e-12)
    return out


# --------------------------------------------------------------------------------------------
# Variance propagation through a concrete MLP
# --------------------------------------------------------------------------------------------

INITS = ("lecun", "xavier", "glorot", "he", "kaiming", "normal", "small")


def weight_variance(init, fan_in, fan_out):
    """Per-weight variance of Ω (fan_out × fan_in) under a named scheme (004 §3.8, 003 §1.3.2):
    "lecun" 1/fan_in, "xavier"/"glorot" 2/(fan_in + fan_out), "he"/"kaiming" 2/fan_in (the notes'
    σ²_Ω = 2/D_h), "normal" 1 (standard normal), "small" 10⁻⁴ (0.01·normal); a number σ_w² gives
    σ_w²/fan_in (the mean-field convention)."""
    fan_in = check_int("fan_in", fan_in, low=1)
    fan_out = check_int("fan_out", fan_out, low=1)
    if isinstance(init, str):
        if init not in INITS:
            raise ValueError(f"init: expected one of {list(INITS)} or a number sigma_w2, got {init!r}")
        return {"lecun": 1.0 / fan_in, "xavier": 2.0 / (fan_in + fan_out), "glorot": 2.0 / (fan_in + fan_out),
                "he": 2.0 / fan_in, "kaiming": 2.0 / fan_in, "normal": 1.0, "small": 1e-4}[init]
    return check_float("init", init, low=0.0) / fan_in


@dataclass
class VarianceProfile:
    """Per-layer second moments: forward[k] = E[f_k²], backward[k] = E[(∂ℓ/∂f_k)²], k = 0 … K.
    Measured profiles also carry the standard errors over seeds (forward_sem, backward_sem)."""
    widths: list
    activation: str
    init: object
    forward: np.ndarray
    backward: np.ndarray
    forward_sem: np.ndarray = None
    backward_sem: np.ndarray = None


def _check_widths(widths):
    if not isinstance(widths, (list, tuple, np.ndarray)):
        raise TypeError(f"widths: expected a list of layer sizes, got {type(widths).__name__} {widths!r}")
    w = [check_int(f"widths[{i}]", v, low=1) for i, v in enumerate(widths)]
    if len(w) < 2:
        raise ValueError(f"widths: expected at least 2 sizes, got {w}")
    return w


def predict_variance(widths, activation="relu", init="he", sigma_b2=0.0, input_var=1.0, grad_var=1.0,
                     negative_slope=0.01):
    """Predicted E[f_k²] and E[(∂ℓ/∂f_k)²] layer by layer for the MLP `widths` (recursions in the
    module docstring), inputs with E[x_i²] = input_var and an upstream gradient with
    E[(∂ℓ/∂f_K)²] = grad_var. Returns a `VarianceProfile`."""
    w = _check_widths(widths)
    sigma_b2 = check_float("sigma_b2", sigma_b2, low=0.0)
    input_var = check_float("input_var", input_var, low=0.0)
    grad_var = check_float("grad_var", grad_var, low=0.0)
    negative_slope = check_float("negative_slope", negative_slope)
    mf = MeanField(activation, 1.0, 0.0, negative_slope, 101)
    K = len(w) - 2
    v = [weight_variance(init, w[k], w[k + 1]) for k in range(K + 1)]
    fwd = np.empty(K + 1)
    fwd[0] = v[0] * w[0] * input_var + sigma_b2
    for k in range(1, K + 1):
        fwd[k] = v[k] * w[k] * mf.second_moment(fwd[k - 1]) + sigma_b2
    bwd = np.empty(K + 1)
    bwd[K] = grad_var
    for k in range(K, 0, -1):
        bwd[k - 1] = v[k] * w[k + 1] * mf.derivative_moment(fwd[k - 1]) * bwd[k]
    return VarianceProfile(w, activation, init, fwd, bwd)


_MLP_NAMES = {"linear": "identity"}


def measure_variance(widths, activation="relu", init="he", sigma_b2=0.0, input_var=1.0, grad_var=1.0,
                     n_seeds=20, batch_size=256, negative_slope=0.01, rng=0):
    """E[f_k²] and E[(∂ℓ/∂f_k)²] measured on the engine's `MLP`: for each of n_seeds networks,
    weights drawn N(0, v_k) by `init` (as `predict_variance`), biases N(0, σ_b²), a batch of inputs
    x ~ N(0, input_var) and upstream gradients ∂ℓ/∂f_K ~ N(0, grad_var); the mean of squares over
    units and batch, averaged over seeds, with the standard error over seeds."""
    from layers.mlp import MLP

    w = _check_widths(widths)
    n_seeds = check_int("n_seeds", n_seeds, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    sigma_b2 = check_float("sigma_b2", sigma_b2, low=0.0)
    input_var = check_float("input_var", input_var, low=0.0)
    grad_var = check_float("grad_var", grad_var, low=0.0)
    negative_slope = check_float("negative_slope", negative_slope)
    _resolve(activation, negative_slope)
    for k in range(len(w) - 1):
        weight_variance(init, w[k], w[k + 1])            # a named error for a bad scheme before any draw
    gen = check_rng("rng", rng)
    name = _MLP_NAMES.get(activation, activation)
    K = len(w) - 2
    F = np.empty((n_seeds, K + 1))
    B = np.empty((n_seeds, K + 1))
    for s in range(n_seeds):
        net = MLP(w, activation=name, negative_slope=negative_slope, rng=gen)
        for k, (W, b) in enumerate(zip(net.weights, net.biases)):
            W[...] = gen.normal(0.0, math.sqrt(weight_variance(init, w[k], w[k + 1])), W.shape)
            b[...] = gen.normal(0.0, math.sqrt(sigma_b2), b.shape) if sigma_b2 > 0 else 0.0
        x = gen.normal(0.0, math.sqrt(input_var), (batch_size, w[0]))
        net.forward(x)
        net.backward(gen.normal(0.0, math.sqrt(grad_var), (batch_size, w[-1])), input_grad=False)
        F[s] = [np.mean(f * f) for f in net.preactivations]
        B[s] = [np.mean(g * g) for g in net.preactivation_grads]
    sem = lambda A: A.std(axis=0, ddof=1) / math.sqrt(n_seeds) if n_seeds > 1 else np.full(K + 1, np.nan)
    return VarianceProfile(w, activation, init, F.mean(0), B.mean(0), sem(F), sem(B))


def critical_weight_variance(activation="relu", D_h=100, negative_slope=0.01):
    """The per-weight variance σ²_Ω that keeps Var f_k = Var f_{k−1} through a hidden layer of width
    D_h (biases zero, unit input variance), solved numerically from D_h σ²_Ω E[φ(z)²] = 1
    (000 §9.2: for ReLU E[ReLU(z)²] = ½, so σ²_Ω = 2/D_h)."""
    D_h = check_int("D_h", D_h, low=1)
    negative_slope = check_float("negative_slope", negative_slope)
    mf = MeanField(activation, 1.0, 0.0, negative_slope, 101)
    g = lambda v: D_h * v * mf.second_moment(1.0) - 1.0
    return brentq(g, 1e-12, 1e3, xtol=1e-16, rtol=1e-15)
