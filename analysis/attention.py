"""Why attention divides by √d_k: the variance of q·k and softmax saturation (notes 003 §2.6.2
eq. 2.8, 000 §9.1; Vaswani et al. 2017, footnote 4), in theory and measured.

**Variance of a dot product.** Let q, k ∈ ℝ^{d_k} be independent with i.i.d. components,
E q_i = μ_q, Var q_i = σ_q², E k_i = μ_k, Var k_i = σ_k². Each term x_i = q_i k_i has
E x_i = μ_q μ_k and

    Var x_i = E q_i² E k_i² − (μ_q μ_k)² = σ_q² σ_k² + σ_q² μ_k² + μ_q² σ_k²,

and the d_k terms are independent, so

    Var(q·k) = d_k (σ_q² σ_k² + σ_q² μ_k² + μ_q² σ_k²)        (= d_k for unit-variance, zero-mean q, k)
    Var(q·k / √d_k) = σ_q² σ_k² + σ_q² μ_k² + μ_q² σ_k²       (independent of d_k).

The same variance argument as the notes' σ²_Ω = 2/D_h for weights (000 §9.2): a sum of d_k
independent products has a variance d_k times that of one product; dividing by √d_k (eq. 2.8)
keeps the scores' spread at that of one product whatever the width of the heads.

For Gaussian components the fourth central moment of x_i follows from the raw moments
E q^n E k^n (E q³ = μ³ + 3μσ², E q⁴ = μ⁴ + 6μ²σ² + 3σ⁴), that of the sum from
μ₄(S) = d_k μ₄(x) + 3 d_k (d_k − 1) Var(x)², and the unbiased sample variance s² of n draws of S
has Var(s²) = μ₄(S)/n − Var(S)² (n − 3)/(n (n − 1)): :func:`sample_variance_se`, the tolerance of
the measured-against-theory tests (for zero means, Var(s²) ≈ (2 + 6/d_k) Var(S)²/n).

**Softmax saturation.** One query against N keys, zero means: given q, the scores
s_j = q·k_j / τ are i.i.d. N(0, σ²) with σ = ‖q‖ σ_k / τ, i.e. s = σ z with z ~ N(0, I_N), and
‖q‖ = σ_q χ_{d_k}. Unscaled (τ = 1) σ grows like √d_k; scaled (τ = √d_k) σ → σ_q σ_k.
The row p = softmax(s) is summarised by its largest probability max_j p_j, its entropy
H = −Σ p_j ln p_j (nats; ln N for a uniform row, 0 for a one-hot row) and the Frobenius norm of
the softmax Jacobian J = ∂p/∂s = diag(p) − p pᵀ,

    ‖J‖_F² = Σ p_j² − 2 Σ p_j³ + (Σ p_j²)²,

which is the size of the gradient that reaches the scores: for an upstream gradient g = ∂ℓ/∂p
with E g gᵀ = I, E‖∂ℓ/∂s‖² = E‖J g‖² = ‖J‖_F² (∂ℓ/∂s = P ⊙ (∂ℓ/∂P − rowsum(∂ℓ/∂P ⊙ P)) = J g).

*Small σ* (cumulant expansion; k_j the cumulants of the N values z_1..z_N with equal weights,
E k₂ = (N − 1)/N, E k₃ = 0, E k₄ = −6 (N − 1)/N² for Gaussian z): ln Σ e^{σ z_j} =
ln N + Σ_j σ^j k_j / j!, hence H = ln N − Σ_{j≥2} (j − 1) σ^j k_j / j! and

    E H       = ln N − σ² (N − 1)/(2N) + 3 σ⁴ (N − 1)/(4 N²) + O(σ⁶)
    E max p   = (1/N) [1 + σ e_N + σ² (E z_(N)² − 1/N)/2 − σ² (N − 1)/(2N)] + O(σ³)
    E ‖J‖_F²  = (N − 1)/N² + σ² (N − 1)(N − 4)/N³ + O(σ⁴)

with e_N = E z_(N), E z_(N)² the first two moments of the largest of N standard normals
(one-dimensional integrals, computed by quadrature; Cov(z_(N), z̄) = 1/N since z̄ is independent
of z − z̄).

*Large σ* (saturated rows): the two largest scores decide; their gap σΔ has Δ's density
f_Δ(0) = N (N − 1) ∫ φ(x)² Φ(x)^{N−2} dx at 0, and with u = σΔ a row is a two-point softmax
(sigmoid(u), sigmoid(−u)), so

    E[1 − max p] ≈ f_Δ(0) ln 2 / σ,   E H ≈ f_Δ(0) (π²/6) / σ,   E ‖J‖_F ≈ f_Δ(0) / σ

(∫₀^∞ sigmoid(−u) du = ln 2, ∫₀^∞ h(u) du = π²/6 for the two-point entropy h, ∫₀^∞ 2 sigmoid(u)
sigmoid(−u) du = 1). Saturation is not exponential: rows with near ties keep a gradient, and the
mean gradient decays only as 1/σ ∝ 1/√d_k without the scale.

Averaging over q uses E σ = σ_q σ_k E χ_d / τ, E σ² = d σ_q² σ_k²/τ², E σ⁴ = d (d + 2) σ_q⁴ σ_k⁴/τ⁴,
E 1/σ = τ E[1/χ_d]/(σ_q σ_k) (finite for d ≥ 2), with E χ_d = √2 Γ((d+1)/2)/Γ(d/2) and
E 1/χ_d = Γ((d−1)/2)/(√2 Γ(d/2)).

Measurements (:func:`measure_dot_products`, :func:`measure_saturation`, :func:`measure_softmax`)
draw Gaussian q and keys with a seeded Generator, form the dot products and a max-shifted softmax,
and return means with their standard errors (rows are independent: each has its own q).
"""
import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import integrate
from scipy.special import gammaln, log_ndtr
from scipy.stats import norm

from engine.checks import check_bool, check_float, check_int, check_rng

__all__ = ["dot_product_variance", "dot_product_fourth_moment", "sample_variance_se",
           "DotProductMeasurement", "measure_dot_products", "softmax_rows", "row_statistics",
           "jacobian_frobenius", "max_order_moments", "top_gap_density", "chi_moments",
           "SaturationTheory", "small_sigma_theory", "large_sigma_theory", "saturation_theory",
           "SoftmaxMeasurement", "measure_softmax", "measure_saturation"]


# ---- variance of q·k ---------------------------------------------------------------------------
def _check_moments(var_q, var_k, mean_q, mean_k):
    return (check_float("var_q", var_q, low=0.0), check_float("var_k", var_k, low=0.0),
            check_float("mean_q", mean_q), check_float("mean_k", mean_k))


def dot_product_variance(d_k, var_q=1.0, var_k=1.0, mean_q=0.0, mean_k=0.0, scale=False):
    """Var(q·k) = d_k (σ_q²σ_k² + σ_q²μ_k² + μ_q²σ_k²) for independent q, k with i.i.d.
    components (any distribution); divided by d_k with ``scale=True`` (the variance of q·k/√d_k)."""
    d_k = check_int("d_k", d_k, low=1)
    var_q, var_k, mean_q, mean_k = _check_moments(var_q, var_k, mean_q, mean_k)
    one = var_q * var_k + var_q * mean_k ** 2 + mean_q ** 2 * var_k
    return one if check_bool("scale", scale) else d_k * one


def _gauss_raw(mu, var):
    """E x, E x², E x³, E x⁴ of N(mu, var)."""
    return (mu, mu ** 2 + var, mu ** 3 + 3 * mu * var, mu ** 4 + 6 * mu ** 2 * var + 3 * var ** 2)


def dot_product_fourth_moment(d_k, var_q=1.0, var_k=1.0, mean_q=0.0, mean_k=0.0):
    """Fourth central moment of q·k for Gaussian components (module docstring): 3 d_k² for
    unit-variance zero-mean q, k plus 6 d_k."""
    d_k = check_int("d_k", d_k, low=1)
    var_q, var_k, mean_q, mean_k = _check_moments(var_q, var_k, mean_q, mean_k)
    q, k = _gauss_raw(mean_q, var_q), _gauss_raw(mean_k, var_k)
    r1, r2, r3, r4 = (a * b for a, b in zip(q, k))          # raw moments of x = q_i k_i
    var_x = r2 - r1 ** 2
    mu4_x = r4 - 4 * r1 * r3 + 6 * r1 ** 2 * r2 - 3 * r1 ** 4
    return d_k * mu4_x + 3 * d_k * (d_k - 1) * var_x ** 2


def sample_variance_se(n, variance, fourth_moment):
    """Standard error of the unbiased sample variance of n i.i.d. draws with the given variance
    and fourth central moment: √(μ₄/n − σ⁴ (n − 3)/(n (n − 1)))."""
    n = check_int("n", n, low=2)
    return math.sqrt(max(fourth_moment / n - variance ** 2 * (n - 3) / (n * (n - 1)), 0.0))


@dataclass(frozen=True)
class DotProductMeasurement:
    """Sample variance of n draws of q·k (or q·k/√d_k) against the theory, with the standard
    error of the sample variance (from the Gaussian fourth moment)."""
    d_k: int
    n: int
    scale: bool
    measured: float
    theory: float
    se: float

    @property
    def z(self):
        """(measured − theory)/se."""
        return (self.measured - self.theory) / self.se if self.se > 0 else 0.0


def measure_dot_products(d_k, n=20000, var_q=1.0, var_k=1.0, mean_q=0.0, mean_k=0.0, scale=False,
                         rng=0):
    """Draw n independent pairs of Gaussian q, k ∈ ℝ^{d_k} and return the sample variance of
    q·k (divided by √d_k with ``scale=True``) with its theory and standard error."""
    d_k = check_int("d_k", d_k, low=1)
    n = check_int("n", n, low=2)
    scale = check_bool("scale", scale)
    var_q, var_k, mean_q, mean_k = _check_moments(var_q, var_k, mean_q, mean_k)
    rng = check_rng("rng", rng)
    s = np.empty(n)
    chunk = max(1, 2 ** 20 // d_k)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        q = mean_q + math.sqrt(var_q) * rng.standard_normal((m, d_k))
        k = mean_k + math.sqrt(var_k) * rng.standard_normal((m, d_k))
        s[lo:lo + m] = np.einsum("ij,ij->i", q, k)
    f = 1.0 / d_k if scale else 1.0      # variance factor of the 1/√d_k scale
    theory = dot_product_variance(d_k, var_q, var_k, mean_q, mean_k, scale=scale)
    mu4 = dot_product_fourth_moment(d_k, var_q, var_k, mean_q, mean_k) * f ** 2
    return DotProductMeasurement(d_k=d_k, n=n, scale=scale, measured=float(np.var(s, ddof=1) * f),
                                 theory=theory, se=sample_variance_se(n, theory, mu4))


# ---- softmax rows ---------------------------------------------------------------------------
def softmax_rows(scores):
    """Max-shifted softmax along the last axis."""
    s = np.asarray(scores, dtype=np.float64)
    e = np.exp(s - s.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def jacobian_frobenius(p):
    """‖diag(p) − p pᵀ‖_F for each row p of ``p`` (last axis), from Σp², Σp³."""
    p = np.asarray(p, dtype=np.float64)
    s2 = (p * p).sum(axis=-1)
    s3 = (p * p * p).sum(axis=-1)
    return np.sqrt(np.maximum(s2 - 2 * s3 + s2 * s2, 0.0))


def row_statistics(scores):
    """Per-row (max p, entropy in nats, ‖J‖_F) of softmax(scores) along the last axis. The
    entropy is computed from log-probabilities (s − logsumexp s), exact for saturated rows."""
    s = np.asarray(scores, dtype=np.float64)
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    z = e.sum(axis=-1, keepdims=True)
    p = e / z
    logp = s - m - np.log(z)
    return p.max(axis=-1), -(p * logp).sum(axis=-1), jacobian_frobenius(p)


# ---- theory of saturation --------------------------------------------------------------------
def max_order_moments(N):
    """(E z_(N), E z_(N)²) of the largest of N i.i.d. standard normals (quadrature of
    x^r N φ(x) Φ(x)^{N−1})."""
    return _max_order_moments(check_int("N", N, low=1))


@functools.lru_cache(maxsize=None)
def _max_order_moments(N):

    def density(x):
        return N * math.exp(norm.logpdf(x) + (N - 1) * log_ndtr(x)) if N > 1 else norm.pdf(x)

    m1 = integrate.quad(lambda x: x * density(x), -np.inf, np.inf, epsabs=1e-12)[0]
    m2 = integrate.quad(lambda x: x * x * density(x), -np.inf, np.inf, epsabs=1e-12)[0]
    return m1, m2


def top_gap_density(N):
    """f_Δ(0): density at 0 of the gap between the two largest of N standard normals,
    N (N − 1) ∫ φ(x)² Φ(x)^{N−2} dx."""
    return _top_gap_density(check_int("N", N, low=2))


@functools.lru_cache(maxsize=None)
def _top_gap_density(N):
    return N * (N - 1) * integrate.quad(
        lambda x: math.exp(2 * norm.logpdf(x) + (N - 2) * log_ndtr(x)), -np.inf, np.inf,
        epsabs=1e-13)[0]


def chi_moments(d):
    """(E χ_d, E χ_d², E χ_d⁴, E 1/χ_d) of the chi distribution with d degrees of freedom (the
    norm of a d-dimensional standard normal vector); E 1/χ_d is inf for d = 1."""
    d = check_int("d", d, low=1)
    m1 = math.sqrt(2) * math.exp(gammaln((d + 1) / 2) - gammaln(d / 2))
    minv = math.exp(gammaln((d - 1) / 2) - gammaln(d / 2)) / math.sqrt(2) if d > 1 else math.inf
    return m1, float(d), float(d * (d + 2)), minv


@dataclass(frozen=True)
class SaturationTheory:
    """Asymptotic expectations of a softmax row's statistics against d_k (module docstring):
    ``small_*`` the small-σ series, ``large_*`` the large-σ (saturated) asymptotes, each averaged
    over ‖q‖. ``sigma2`` is E σ² = d_k σ_q²σ_k²/τ² (the scores' variance)."""
    d_k: np.ndarray
    n_keys: int
    scale: bool
    sigma2: np.ndarray
    small_max_prob: np.ndarray
    small_entropy: np.ndarray
    small_jacobian_sq: np.ndarray
    large_max_prob: np.ndarray
    large_entropy: np.ndarray
    large_jacobian: np.ndarray


def small_sigma_theory(N, mean_sigma, mean_sigma2, mean_sigma4):
    """Small-σ series (max p, H, ‖J‖_F²) given E σ, E σ², E σ⁴ (module docstring)."""
    N = check_int("N", N, low=2)
    e1, e2 = max_order_moments(N)
    maxp = (1 + e1 * mean_sigma + 0.5 * mean_sigma2 * (e2 - 1 / N) - 0.5 * mean_sigma2 * (N - 1) / N) / N
    ent = math.log(N) - mean_sigma2 * (N - 1) / (2 * N) + 0.75 * mean_sigma4 * (N - 1) / N ** 2
    jac2 = (N - 1) / N ** 2 + mean_sigma2 * (N - 1) * (N - 4) / N ** 3
    return maxp, ent, jac2


def large_sigma_theory(N, mean_inv_sigma):
    """Large-σ asymptotes (max p, H, ‖J‖_F) given E 1/σ (module docstring)."""
    N = check_int("N", N, low=2)
    f0 = top_gap_density(N)
    return 1 - f0 * math.log(2) * mean_inv_sigma, f0 * math.pi ** 2 / 6 * mean_inv_sigma, f0 * mean_inv_sigma


def saturation_theory(d_ks, n_keys=32, scale=True, var_q=1.0, var_k=1.0):
    """:class:`SaturationTheory` for one query against ``n_keys`` keys, zero-mean Gaussian q, k,
    scores q·k/√d_k (``scale=True``) or q·k, at each d_k of ``d_ks``."""
    d_ks = np.asarray([check_int("d_ks[i]", int(d), low=1) for d in np.atleast_1d(d_ks)])
    N = check_int("n_keys", n_keys, low=2)
    scale = check_bool("scale", scale)
    var_q, var_k = check_float("var_q", var_q, low=0.0), check_float("var_k", var_k, low=0.0)
    sd = math.sqrt(var_q * var_k)
    out = {k: np.empty(len(d_ks)) for k in ("sigma2", "small_max_prob", "small_entropy",
                                            "small_jacobian_sq", "large_max_prob", "large_entropy",
                                            "large_jacobian")}
    for i, d in enumerate(d_ks):
        tau = math.sqrt(d) if scale else 1.0
        c1, c2, c4, cinv = chi_moments(int(d))
        s1, s2, s4 = sd * c1 / tau, sd ** 2 * c2 / tau ** 2, sd ** 4 * c4 / tau ** 4
        inv = tau * cinv / sd if sd > 0 else math.inf
        out["sigma2"][i] = s2
        out["small_max_prob"][i], out["small_entropy"][i], out["small_jacobian_sq"][i] = \
            small_sigma_theory(N, s1, s2, s4)
        out["large_max_prob"][i], out["large_entropy"][i], out["large_jacobian"][i] = \
            large_sigma_theory(N, inv)
    return SaturationTheory(d_k=d_ks, n_keys=N, scale=scale, **out)


# ---- measurements of saturation -------------------------------------------------------------
@dataclass(frozen=True)
class SoftmaxMeasurement:
    """Means over independent rows, and their standard errors, of a softmax row's statistics:
    max p, entropy (nats), ‖J‖_F, ‖J‖_F², and the scores' variance (pooled over rows)."""
    n_rows: int
    n_keys: int
    max_prob: float
    max_prob_se: float
    entropy: float
    entropy_se: float
    jacobian: float
    jacobian_se: float
    jacobian_sq: float
    jacobian_sq_se: float
    score_var: float


def _summarise(scores):
    mx, ent, jac = row_statistics(scores)
    R = scores.shape[0]

    def mse(a):
        return float(a.mean()), float(a.std(ddof=1) / math.sqrt(R))

    (a, sa), (b, sb), (c, sc), (d, sd) = mse(mx), mse(ent), mse(jac), mse(jac * jac)
    return SoftmaxMeasurement(n_rows=R, n_keys=scores.shape[1], max_prob=a, max_prob_se=sa,
                              entropy=b, entropy_se=sb, jacobian=c, jacobian_se=sc,
                              jacobian_sq=d, jacobian_sq_se=sd, score_var=float(np.mean(scores ** 2)))


def measure_softmax(sigma, n_keys=32, n_rows=20000, rng=0):
    """Rows of ``n_keys`` i.i.d. N(0, σ²) scores: a :class:`SoftmaxMeasurement` (the softmax
    statistics at a fixed σ, the setting of the small- and large-σ series before averaging over q)."""
    sigma = check_float("sigma", sigma, low=0.0)
    N = check_int("n_keys", n_keys, low=2)
    R = check_int("n_rows", n_rows, low=2)
    rng = check_rng("rng", rng)
    return _summarise(sigma * rng.standard_normal((R, N)))


def measure_saturation(d_ks, n_keys=32, n_rows=4000, scale=True, var_q=1.0, var_k=1.0, rng=0):
    """For each d_k of ``d_ks``: ``n_rows`` independent queries q ~ N(0, σ_q² I), each against
    ``n_keys`` keys k ~ N(0, σ_k² I), scores q·k/√d_k (``scale=True``) or q·k, softmax along the
    keys. Returns a list of :class:`SoftmaxMeasurement`, one per d_k."""
    d_ks = [check_int("d_ks[i]", int(d), low=1) for d in np.atleast_1d(d_ks)]
    N = check_int("n_keys", n_keys, low=2)
    R = check_int("n_rows", n_rows, low=2)
    scale = check_bool("scale", scale)
    var_q, var_k = check_float("var_q", var_q, low=0.0), check_float("var_k", var_k, low=0.0)
    rng = check_rng("rng", rng)
    out = []
    for d in d_ks:
        tau = math.sqrt(d) if scale else 1.0
        scores = np.empty((R, N))
        chunk = max(1, 2 ** 21 // (N * d))
        for lo in range(0, R, chunk):
            m = min(chunk, R - lo)
            q = math.sqrt(var_q) * rng.standard_normal((m, 1, d))
            k = math.sqrt(var_k) * rng.standard_normal((m, N, d))
            scores[lo:lo + m] = (q @ k.transpose(0, 2, 1))[:, 0, :] / tau
        out.append(_summarise(scores))
    return out
