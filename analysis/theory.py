"""Closed-form answers to the exercises and worked examples of the notes.

Each function cites where the notes pose the question. Everything is plain NumPy / Python
integers; the figures and tests check these against the engine where both exist.
"""
import math

import numpy as np

from engine.checks import check_bool, check_float, check_int, check_real_array, check_tuple

__all__ = ["least_squares", "least_squares_cost", "linear_loss", "linear_loss_grad", "level_line_tangent",
           "shallow_param_count", "mlp_param_count", "conv2d_param_count", "mlp_vs_cnn_256",
           "max_regions", "gaussian_radial_density", "gaussian_radial_mode", "conv_output_size",
           "receptive_field", "softmax_temperature"]


# ---- 000 §1.2 exercises: linear regression --------------------------------------------------

def _design(x):
    X = check_real_array("x", x, ndim=(1, 2))
    X = X[:, None] if X.ndim == 1 else X
    return np.concatenate([np.ones((X.shape[0], 1)), X], axis=1)


def least_squares(x, y):
    """Minimum of L = (1/N) Σ (Φ_0 + Φ_1 x_i − y_i)² by the normal equations Φ = (XᵀX)⁻¹ Xᵀ y
    (000 §1.2 exercises, question 2), X = [1, x] (N, D+1). x (N,) or (N, D), y (N,) → Φ (D+1,) with
    Φ[0] the intercept Φ_0. Solves XᵀX Φ = Xᵀy (no explicit inverse)."""
    X = _design(x)
    y = check_real_array("y", y, shape=(X.shape[0],))
    return np.linalg.solve(X.T @ X, X.T @ y)


def least_squares_cost(N, D):
    """Operation counts of the exact solution (000 §1.2 exercises, question 4): forming XᵀX costs
    N·D² multiply-adds, inverting (factorising) it D³, Xᵀy N·D; total O(N D² + D³).
    Returns a dict with the three terms, their sum and the big-O string."""
    N = check_int("N", N, low=1)
    D = check_int("D", D, low=1)
    terms = {"XtX": N * D * D, "inverse": D ** 3, "Xty": N * D}
    return {**terms, "total": sum(terms.values()), "order": "O(N D^2 + D^3)"}


def _loss_args(phi0, phi1, x, y):
    """Φ_0, Φ_1 (grids of one shape, or scalars) with a trailing axis for the data; x, y (N,)."""
    x = check_real_array("x", x, ndim=1)
    y = check_real_array("y", y, shape=x.shape)
    p0, p1 = check_real_array("phi0", phi0), check_real_array("phi1", phi1)
    try:
        np.broadcast_shapes(p0.shape, p1.shape)
    except ValueError:
        raise ValueError(f"phi1: expected a shape broadcastable with phi0's {p0.shape}, got {p1.shape}") from None
    return p0[..., None], p1[..., None], x, y


def linear_loss(phi0, phi1, x, y):
    """L(Φ_0, Φ_1) = (1/N) Σ (Φ_0 + Φ_1 x_i − y_i)² (000 §1.2), broadcasting over Φ grids."""
    p0, p1, x, y = _loss_args(phi0, phi1, x, y)
    return np.mean((p0 + p1 * x - y) ** 2, axis=-1)


def linear_loss_grad(phi0, phi1, x, y):
    """∇L = [∂L/∂Φ_0, ∂L/∂Φ_1] = (2/N) [Σ P_i − y_i, Σ (P_i − y_i) x_i]  with P_i = Φ_0 + Φ_1 x_i
    (000 §1.2 exercises, question 1). Broadcasts over Φ grids; returns (..., 2)."""
    p0, p1, x, y = _loss_args(phi0, phi1, x, y)
    r = p0 + p1 * x - y
    return np.stack([2 * r.mean(-1), 2 * (r * x).mean(-1)], axis=-1)


def level_line_tangent(phi0, phi1, x, y):
    """Unit tangent of the level line L = const through (Φ_0, Φ_1) (000 §1.2 exercises, question 3).

    L is a quadratic form L(Φ) = (Φ − Φ*)ᵀ H (Φ − Φ*)/2 + L*, with H = (2/N) XᵀX. Along a level
    curve Φ(τ), dL/dτ = ∇L · Φ'(τ) = 0, so the gradient is orthogonal to the tangent Φ'(τ).
    The tangent is the gradient rotated by 90°: (−∂L/∂Φ_1, ∂L/∂Φ_0)/‖∇L‖; computed here from the
    ellipse's parametrisation instead, so that the orthogonality is a check, not a construction:
    Φ(τ) = Φ* + H^{−1/2}·r (cos τ, sin τ) gives Φ'(τ) = H^{−1/2} r (−sin τ, cos τ)."""
    phi0, phi1 = check_float("phi0", phi0), check_float("phi1", phi1)
    X = _design(x)
    phis = least_squares(x, y)
    H = 2.0 * X.T @ X / X.shape[0]
    evals, evecs = np.linalg.eigh(H)
    Hh = evecs @ np.diag(np.sqrt(evals)) @ evecs.T
    Hmh = evecs @ np.diag(1 / np.sqrt(evals)) @ evecs.T
    d = np.array([phi0, phi1], np.float64) - phis
    w = Hh @ d                                           # = r (cos τ, sin τ)
    t = Hmh @ np.array([-w[1], w[0]])
    return t / np.linalg.norm(t)


# ---- parameter counts (000 §2, §4.2; 003 CNN motivation) --------------------------------------

def shallow_param_count(D_i, D, D_o):
    """Parameters of a shallow net with D_i inputs, D hidden units, D_o outputs (000 §2,
    "general formula"): D (D_i + 1) + D_o (D + 1). The notes' example D_i=2, D=3, D_o=1 gives 13."""
    D_i, D, D_o = (check_int(n, v, low=1) for n, v in (("D_i", D_i), ("D", D), ("D_o", D_o)))
    return D * (D_i + 1) + D_o * (D + 1)


def mlp_param_count(widths, bias=True):
    """Parameters of the deep MLP widths = [D_i, D_1, …, D_K, D_o] (000 §4.2): Σ_k D_{k+1}(D_k + 1)."""
    if not isinstance(widths, (list, tuple, np.ndarray)):
        raise TypeError(f"widths: expected a list of layer sizes, got {type(widths).__name__}")
    bias = check_bool("bias", bias)
    w = [check_int(f"widths[{i}]", v, low=1) for i, v in enumerate(widths)]
    if len(w) < 2:
        raise ValueError(f"widths: expected at least 2 sizes, got {w}")
    return sum(w[k + 1] * (w[k] + int(bias)) for k in range(len(w) - 1))


def conv2d_param_count(in_channels, out_channels, kernel_size, bias=True):
    """Parameters of a 2-D convolution: C_out (C_in k_h k_w + 1) — independent of the image size."""
    in_channels = check_int("in_channels", in_channels, low=1)
    out_channels = check_int("out_channels", out_channels, low=1)
    kh, kw = check_tuple("kernel_size", kernel_size, 2, low=1)
    bias = check_bool("bias", bias)
    return out_channels * (in_channels * kh * kw + int(bias))


def mlp_vs_cnn_256(channels=3, kernel_size=3):
    """The notes' 256×256×3 example (003 §2, eq. 2.1–2.2): an MLP with two hidden layers as wide
    as the input (D = 256·256·channels) has 2D² + 2D parameters before the output layer
    (77 309 804 544 for RGB, "77B"; 8.6B for grey). A CNN with two k×k convolutions keeping
    `channels` channels has 2·C (C k² + 1), independent of the image size.
    Returns dict(D, mlp_hidden (the notes' count), mlp_with_output (+ the 3-class output layer), cnn)."""
    channels = check_int("channels", channels, low=1)
    kernel_size = check_int("kernel_size", kernel_size, low=1)
    D = 256 * 256 * channels
    mlp_hidden = 2 * D * D + 2 * D
    return {"D": D, "mlp_hidden": mlp_hidden, "mlp_with_output": mlp_param_count([D, D, D, 3]),
            "cnn": 2 * conv2d_param_count(channels, channels, kernel_size)}


def max_regions(D_i, D):
    """Maximum number of linear regions of a shallow ReLU net, Σ_{j=0}^{D_i} C(D, j) (000 §3.2,
    example D_i = 2, D = 3 → 7). See analysis.bounds for the deep bounds."""
    from .bounds import zaslavsky
    return zaslavsky(check_int("D_i", D_i, low=1), check_int("D", D, low=0))


# ---- 000 §3.2: curse of dimensionality ---------------------------------------------------------

def gaussian_radial_density(r, D, sigma=1.0):
    """p(r) = S_D r^{D−1} e^{−r²/2σ²} / (2πσ²)^{D/2} with S_D = 2π^{D/2}/Γ(D/2) (000 §3.2,
    "Limitations of fixed basis functions"); the density of ‖x‖ for x ~ N(0, σ² I_D) (a chi
    distribution scaled by σ). Computed in log space, so large D does not overflow."""
    D = check_int("D", D, low=1)
    sigma = check_float("sigma", sigma, low=0.0, low_open=True)
    r = check_real_array("r", r)
    logS = math.log(2.0) + (D / 2) * math.log(math.pi) - math.lgamma(D / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        logr = (D - 1) * np.log(r) if D > 1 else np.zeros_like(r)
        logp = logS + logr - r ** 2 / (2 * sigma ** 2) - (D / 2) * math.log(2 * math.pi * sigma ** 2)
    return np.where(r >= 0, np.exp(logp), 0.0)


def gaussian_radial_mode(D, sigma=1.0):
    """Mode of p(r): d/dr [(D−1) ln r − r²/2σ²] = 0 ⇒ r* = σ √(D − 1) (exact; the notes' σ√D is its
    large-D approximation). For D = 1 the mode is at r = 0."""
    D = check_int("D", D, low=1)
    sigma = check_float("sigma", sigma, low=0.0, low_open=True)
    return sigma * math.sqrt(D - 1)


# ---- 000 §6.2: convolution arithmetic -----------------------------------------------------------

def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
    """Number of outputs of a 1-D convolution along one axis (000 §6.2, "Stride, dilation, and
    kernel size"): the dilated kernel spans d (k − 1) + 1 inputs, so
        n_out = ⌊(n + 2p − d (k − 1) − 1) / s⌋ + 1.
    Raises ValueError when the kernel does not fit."""
    n = check_int("n", n, low=1)
    k = check_int("kernel_size", kernel_size, low=1)
    s = check_int("stride", stride, low=1)
    p = check_int("padding", padding, low=0)
    d = check_int("dilation", dilation, low=1)
    span = d * (k - 1) + 1
    if n + 2 * p < span:
        raise ValueError(f"kernel_size: the dilated kernel spans {span} inputs, more than the padded input {n + 2 * p}")
    return (n + 2 * p - span) // s + 1


def _int_list(name, v):
    if not isinstance(v, (list, tuple, np.ndarray)):
        raise TypeError(f"{name}: expected a list of ints, got {type(v).__name__} {v!r}")
    return list(v)


def receptive_field(kernel_sizes, strides=None, dilations=None):
    """Receptive field (in input samples) of one unit of the last layer of a stack of 1-D
    convolutions (000 §6.2, "Receptive fields": kernel size 3 twice gives 3 then 5):
        r_0 = 1,  j_0 = 1,   r_l = r_{l−1} + d_l (k_l − 1) j_{l−1},   j_l = j_{l−1} s_l
    where j_l is the distance in input samples between neighbouring units of layer l."""
    ks = [check_int(f"kernel_sizes[{i}]", k, low=1) for i, k in enumerate(_int_list("kernel_sizes", kernel_sizes))]
    L = len(ks)
    if L == 0:
        raise ValueError("kernel_sizes: expected at least one kernel size, got none")
    ss = [1] * L if strides is None else [check_int(f"strides[{i}]", s, low=1)
                                          for i, s in enumerate(_int_list("strides", strides))]
    ds = [1] * L if dilations is None else [check_int(f"dilations[{i}]", d, low=1)
                                            for i, d in enumerate(_int_list("dilations", dilations))]
    if len(ss) != L or len(ds) != L:
        raise ValueError(f"strides: expected {L} strides and dilations (one per kernel), got {len(ss)} and {len(ds)}")
    r, j = 1, 1
    for k, s, d in zip(ks, ss, ds):
        r += d * (k - 1) * j
        j *= s
    return r


# ---- 004 §2.x: softmax with temperature -----------------------------------------------------------

def softmax_temperature(eta, T=1.0):
    """S(η/T)_i = exp(η_i/T) / Σ_j exp(η_j/T) (004, softmax layer; the notes' example η = (3, 0, 1)):
    T → ∞ tends to uniform, T → 0 to one-hot on the arg-max. η (..., C), softmax over the last
    axis. The maximum is subtracted *before* dividing by T: (η − max η)/T ≤ 0, so e^{·} ≤ 1 for
    any T > 0 (at T = 1e-308, η/T is ±inf and inf − inf = NaN; (η − max η)/T is 0 or −inf,
    giving the one-hot limit), as layers.Softmax; the difference is taken in halves, so η = ±1e308
    at T = 1e308 gives the softmax of (1, −1), not of (0, −inf)."""
    eta = check_real_array("eta", eta)
    if eta.ndim == 0:
        raise ValueError("eta: expected an array (..., C) with the classes on the last axis, got a scalar")
    T = check_float("T", T, low=0.0, low_open=True)
    with np.errstate(over="ignore"):                   # −3/1e-308 = −inf is meant: e^{−inf} = 0
        # halves, so that η − max η cannot overflow (η = ±1e308); scaling by 2 is exact
        z = 2.0 * ((0.5 * eta - 0.5 * eta.max(axis=-1, keepdims=True)) / T)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)
