"""Derive the float32 erf approximation of the GELU kernels (layers/activations.py, _erf32).

    python scripts/derive_erf32.py [--search]

erf(x) ≈ x P(x²) / Q(x²) on (0, c], c = 3.9192 (beyond it erfc(x) < 2^-25, half an ulp below 1,
so erf rounds to 1 in float32), odd in x, with P = p0 + p1 u + … + p_np u^np and
Q = 1 + q1 u + … + q_nq u^nq (u = x²); p0 = 2/√π fixes the slope at 0, the first term of erf's
series. Fitted for the relative error in the max norm as tanh's (scripts/rational_fit.py); the
exact erf comes from math.erf (float64, correctly rounded to within an ulp or so). Prints the
coefficients and the error in float64 and in float32 Horner evaluation, as the kernel computes it,
for P, Q of degrees 6, 5 (with --search, for a few degree pairs).
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rational_fit import fit_odd_rational, max_relative_error32  # noqa: E402

ERF = np.vectorize(math.erf)
ERFC = np.vectorize(math.erfc)
P0 = 2.0 / math.sqrt(math.pi)


def cutoff():
    """The smallest float32 c with erfc(c) < 2^-25: from c on, erf rounds to 1 in float32."""
    c = np.float32(3.0)
    while ERFC(float(c)) >= 2.0 ** -25:
        c = np.nextafter(c, np.float32(4.0))
    return float(c)


if __name__ == "__main__":
    C = cutoff()
    print(f"c = {C!r} (float32), erfc(c) = {ERFC(C):.3e}")
    pairs = [(4, 3), (5, 4), (6, 4), (6, 5), (7, 5), (7, 6), (8, 6)] if "--search" in sys.argv else [(6, 5)]
    x = np.linspace(1e-3, C, 20000)
    xs = np.concatenate([np.linspace(-4.5, 4.5, 200001), np.geomspace(1e-30, 1, 2000)]).astype(np.float32)
    exact = ERF(xs.astype(np.float64))
    for n_p, n_q in pairs:
        e64, p, q = fit_odd_rational(x, ERF(x), n_p, n_q, P0)
        e32 = max_relative_error32(xs, exact, p, q, C)
        print(f"degrees P {n_p}, Q {n_q}")
        print("p =", [float(v) for v in p])
        print("q =", [float(v) for v in q])
        print(f"max relative error: {e64:.2e} (float64 arithmetic), {e32:.2e} (float32 Horner)")
