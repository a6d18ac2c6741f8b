"""The fit behind the float32 kernels' odd rational approximations (scripts/derive_tanh32.py,
scripts/derive_erf32.py): f(x) ≈ x P(x²) / Q(x²) on (0, c] for an odd f that rounds to ±1 in float32
beyond c, with P = p0 + p1 u + … + p_np u^np, Q = 1 + q1 u + … + q_nq u^nq (u = x²; p0 fixes the
slope at 0).

The relative error r = (x P/Q − f)/f is made small in the max norm by Lawson's iteration on the
linearised problem x P(u) − f Q(u) ≈ 0 (rows divided by f·Q of the previous iterate, Loeb's
linearisation; weights multiplied by each point's error, so the weighted least-squares solutions
approach the minimax one).
"""
import numpy as np


def fit_odd_rational(x, f, n_p, n_q, p0, iterations=200):
    """(max relative error, p, q) of the best iterate on the points x > 0 with values f = f(x)."""
    u = x * x
    Q = np.ones_like(x)
    w = np.full(x.size, 1.0 / x.size)
    best = (np.inf, None, None)
    for _ in range(iterations):
        A = np.column_stack([x * u ** k for k in range(1, n_p + 1)]
                            + [-f * u ** k for k in range(1, n_q + 1)]) / (f * Q)[:, None]
        b = (f - p0 * x) / (f * Q)
        s = np.abs(A).max(axis=0)                       # column scaling for conditioning
        sol, *_ = np.linalg.lstsq(A / s * np.sqrt(w)[:, None], b * np.sqrt(w), rcond=None)
        sol = sol / s
        p, q = np.concatenate([[p0], sol[:n_p]]), np.concatenate([[1.0], sol[n_p:]])
        Q = np.polyval(q[::-1], u)
        err = np.abs(x * np.polyval(p[::-1], u) / Q - f) / f
        if err.max() < best[0]:
            best = (err.max(), p, q)
        w = w * (err + 1e-300)
        w /= w.sum()
    return best


def horner32(x, p, q, C):
    """x P(x²)/Q(x²) in float32, Horner's scheme, ±1 beyond C, as the kernels evaluate it."""
    f = np.float32
    x = f(x)
    xc = np.clip(x, -f(C), f(C))
    x2 = xc * xc
    P = f(p[-1])
    for k in range(len(p) - 2, -1, -1):
        P = x2 * P + f(p[k])
    Qv = f(q[-1])
    for k in range(len(q) - 2, -1, -1):
        Qv = x2 * Qv + f(q[k])
    return np.where(np.abs(x) < f(C), xc * P / Qv, np.sign(x).astype(f))


def max_relative_error32(xs, exact, p, q, C):
    """max |horner32(xs) − exact| / |exact| (exact 0 counted against 1e-38)."""
    return np.max(np.abs(horner32(xs, p, q, C) - exact) / np.maximum(np.abs(exact), 1e-38))
