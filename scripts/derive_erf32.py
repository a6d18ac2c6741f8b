"""Derive the float32 erf approximation of the GELU kernels (layers/activations.py, _erf32).

    python scripts/derive_erf32.py

erf(x) ≈ x P(x²) / Q(x²) on (0, c], c = 3.8325 (beyond it erfc(x) < 2^-25, half an ulp below 1,
so erf rounds to 1 in float32), odd in x, with P = p0 + p1 u + … + p_np u^np and
Q = 1 + q1 u + … + q_nq u^nq (u = x²); p0 = 2/√π fixes the slope at 0, the first term of erf's
series. As scripts/derive_tanh32.py does for tanh: the relative error r = (x P/Q − e)/e, e = erf x,
is made small in the max norm by Lawson's iteration on the linearised problem x P(u) − e Q(u) ≈ 0
(rows divided by e·Q of the previous iterate, Loeb's linearisation; weights multiplied by each point's
error, so the weighted least-squares solutions approach the minimax one). The exact erf comes from
math.erf (float64, correctly rounded to within an ulp or so). Prints the coefficients and the error
in float64 and in float32 Horner evaluation, as the kernel computes it, for a few degree pairs.
"""
import math
import sys

import numpy as np

ERF = np.vectorize(math.erf)
ERFC = np.vectorize(math.erfc)
P0 = 2.0 / math.sqrt(math.pi)


def cutoff():
    """The smallest float32 c with erfc(c) < 2^-25: from c on, erf rounds to 1 in float32."""
    c = np.float32(3.0)
    while ERFC(float(c)) >= 2.0 ** -25:
        c = np.nextafter(c, np.float32(4.0))
    return float(c)


def fit(C, n_p, n_q, iterations=200, n=20000):
    x = np.linspace(1e-3, C, n)
    e, u = ERF(x), x * x
    Q = np.ones_like(x)
    w = np.full(n, 1.0 / n)
    best = (np.inf, None, None)
    for _ in range(iterations):
        A = np.column_stack([x * u ** k for k in range(1, n_p + 1)]
                            + [-e * u ** k for k in range(1, n_q + 1)]) / (e * Q)[:, None]
        b = (e - P0 * x) / (e * Q)
        s = np.abs(A).max(axis=0)                       # column scaling for conditioning
        sol, *_ = np.linalg.lstsq(A / s * np.sqrt(w)[:, None], b * np.sqrt(w), rcond=None)
        sol = sol / s
        p, q = np.concatenate([[P0], sol[:n_p]]), np.concatenate([[1.0], sol[n_p:]])
        Q = np.polyval(q[::-1], u)
        err = np.abs(x * np.polyval(p[::-1], u) / Q - e) / e
        if err.max() < best[0]:
            best = (err.max(), p, q)
        w = w * (err + 1e-300)
        w /= w.sum()
    return best


def eval32(x, p, q, C):
    """x P(x²)/Q(x²) in float32, Horner's scheme, ±1 beyond C, as the kernel evaluates it."""
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
    r = xc * P / Qv
    return np.where(np.abs(x) < f(C), r, np.sign(x).astype(f))


if __name__ == "__main__":
    C = cutoff()
    print(f"c = {C!r} (float32), erfc(c) = {ERFC(C):.3e}")
    pairs = [(4, 3), (5, 4), (6, 4), (6, 5), (7, 5), (7, 6), (8, 6)] if "--search" in sys.argv else [(6, 5)]
    xs = np.concatenate([np.linspace(-4.5, 4.5, 200001), np.geomspace(1e-30, 1, 2000)]).astype(np.float32)
    exact = ERF(xs.astype(np.float64))
    for n_p, n_q in pairs:
        e64, p, q = fit(C, n_p, n_q)
        e32 = np.max(np.abs(eval32(xs, p, q, C) - exact) / np.maximum(np.abs(exact), 1e-38))
        print(f"degrees P {n_p}, Q {n_q}")
        print("p =", [float(v) for v in p])
        print("q =", [float(v) for v in q])
        print(f"max relative error: {e64:.2e} (float64 arithmetic), {e32:.2e} (float32 Horner)")
