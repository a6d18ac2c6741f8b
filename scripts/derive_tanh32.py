"""Derive the float32 tanh approximation of the recurrent kernels (layers/recurrent.py, _tanh32).

    python scripts/derive_tanh32.py

tanh(x) ≈ x P(x²) / Q(x²) on (0, c], c = 7.9053 (beyond it tanh rounds to 1 in float32), with
P = 1 + p1 u + … + p6 u⁶ and Q = 1 + q1 u + q2 u² + q3 u³ (u = x²; P(0) = Q(0) = 1 makes the
slope at 0 exact), fitted for the relative error in the max norm (scripts/rational_fit.py). Prints
the coefficients and the error in float64 and in float32 Horner evaluation, as the kernel computes it.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rational_fit import fit_odd_rational, max_relative_error32  # noqa: E402

C = 7.90531110763549805


if __name__ == "__main__":
    x = np.linspace(1e-3, C, 30000)
    e64, p, q = fit_odd_rational(x, np.tanh(x), 6, 3, 1.0)
    xs = np.concatenate([np.linspace(-C, C, 400001), np.geomspace(1e-30, 1, 2000)]).astype(np.float32)
    e32 = max_relative_error32(xs, np.tanh(xs.astype(np.float64)), p, q, C)
    print("p =", [float(v) for v in p])
    print("q =", [float(v) for v in q])
    print(f"max relative error: {e64:.2e} (float64 arithmetic), {e32:.2e} (float32 Horner)")
