"""Derive the float32 tanh approximation of the recurrent kernels (layers/recurrent.py, _tanh32).

    python scripts/derive_tanh32.py

tanh(x) ≈ x P(x²) / Q(x²) on (0, c], c = 7.9053 (beyond it tanh rounds to 1 in float32), with
P = 1 + p1 u + … + p6 u⁶ and Q = 1 + q1 u + q2 u² + q3 u³ (u = x²; P(0) = Q(0) = 1 makes the
slope at 0 exact). The relative error r = (x P/Q − t)/t, t = tanh x, is made small in the max norm
by Lawson's iteration on the linearised problem x P(u) − t Q(u) ≈ 0 (rows divided by t·Q of the
previous iterate, Loeb's linearisation; weights multiplied by each point's error, so the weighted
least-squares solutions approach the minimax one). Prints the coefficients and the error in float64
and in float32 Horner evaluation, as the kernel computes it.
"""
import numpy as np

C = 7.90531110763549805


def fit(iterations=200, n=30000):
    x = np.linspace(1e-3, C, n)
    t, u = np.tanh(x), x * x
    Q = np.ones_like(x)
    w = np.full(n, 1.0 / n)
    best = (np.inf, None, None)
    for _ in range(iterations):
        A = np.column_stack([x * u ** k for k in range(1, 7)] + [-t * u ** k for k in range(1, 4)]) / (t * Q)[:, None]
        b = (t - x) / (t * Q)
        s = np.abs(A).max(axis=0)                       # column scaling for conditioning
        sol, *_ = np.linalg.lstsq(A / s * np.sqrt(w)[:, None], b * np.sqrt(w), rcond=None)
        sol = sol / s
        p, q = np.concatenate([[1.0], sol[:6]]), np.concatenate([[1.0], sol[6:]])
        Q = np.polyval(q[::-1], u)
        err = np.abs(x * np.polyval(p[::-1], u) / Q - t) / t
        if err.max() < best[0]:
            best = (err.max(), p, q)
        w = w * (err + 1e-300)
        w /= w.sum()
    return best


def eval32(x, p, q):
    """x P(x²)/Q(x²) in float32, Horner's scheme, as the kernel evaluates it."""
    f = np.float32
    x = np.clip(f(x), -f(C), f(C))
    x2 = x * x
    P = f(p[6])
    for k in range(5, -1, -1):
        P = x2 * P + f(p[k])
    Qv = f(q[3])
    for k in range(2, -1, -1):
        Qv = x2 * Qv + f(q[k])
    return x * P / Qv


if __name__ == "__main__":
    e64, p, q = fit()
    xs = np.concatenate([np.linspace(-C, C, 400001), np.geomspace(1e-30, 1, 2000)]).astype(np.float32)
    exact = np.tanh(xs.astype(np.float64))
    e32 = np.max(np.abs(eval32(xs, p, q) - exact) / np.maximum(np.abs(exact), 1e-38))
    print("p =", [float(v) for v in p])
    print("q =", [float(v) for v in q])
    print(f"max relative error: {e64:.2e} (float64 arithmetic), {e32:.2e} (float32 Horner)")
