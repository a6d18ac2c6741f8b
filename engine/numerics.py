"""Numerics every family shares: the one home of the stable sigmoid, the max-shifted
log-sum-exp and the fastmath flag set (DESIGN.md, "Numerics").

- sigmoid(z) = 1/(1 + e^{−z}) evaluated so that e^{·} never overflows: for z < 0 it is
  e^{z}/(1 + e^{z}). The naive form gives 1/(1 + inf) = 0 at z = −720 (σ is 1e-313 there).
- log1p_exp(z) = log(1 + e^{z}) = max(z, 0) + log1p(e^{−|z|}) (softplus; no overflow).
- logsumexp(x, lo, hi) = m + log Σ_i e^{x_i − m}, m = max x_i, over x[lo:hi] of a 1D array.
- float32_from_bits(i), float64_from_bits(i): the float whose bit pattern is the integer i (an LLVM
  bitcast; vectorises, unlike a table lookup): 2^n = float32_from_bits((127 + n) << 23) for a
  normal exponent n (float64: (1023 + n) << 52).
- FASTMATH: fastmath without the no-NaN/no-Inf assumptions (PERFORMANCE.md, lesson 3), so NaN
  checks and −inf masking keep working while reductions may be reassociated and vectorised.
  Never the blanket fastmath flag (all of LLVM's fast-math, no-NaN and no-Inf included).
"""
import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

FASTMATH = {"reassoc", "contract", "arcp", "nsz", "afn"}


@njit(cache=True, inline="always")
def sigmoid(z):
    """σ(z) = 1 / (1 + e^{−z}):  z ≥ 0: 1 / (1 + e^{−z});  z < 0: e^{z} / (1 + e^{z})."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@njit(cache=True, inline="always")
def log1p_exp(z):
    """log(1 + e^{z}) = max(z, 0) + log1p(e^{−|z|})."""
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


@njit(cache=True)
def logsumexp(x, lo, hi):
    """log Σ_{i∈[lo,hi)} e^{x_i}, with the maximum subtracted before exp (no overflow)."""
    m = x[lo]
    for i in range(lo + 1, hi):
        m = max(m, x[i])
    if math.isinf(m):
        return m
    s = 0.0
    for i in range(lo, hi):
        s += math.exp(x[i] - m)
    return m + math.log(s)


@intrinsic
def float32_from_bits(typingctx, i):
    """The float32 with the bit pattern of the int32 `i` (no conversion: a bitcast; another integer
    type is first converted to int32, as Numba's int32 arithmetic gives int64)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@intrinsic
def float64_from_bits(typingctx, i):
    """The float64 with the bit pattern of the int64 `i`: 2^n = float64_from_bits((1023 + n) << 52)."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen
