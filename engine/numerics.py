"""Numerics every family shares: the one home of the stable sigmoid, the max-shifted
log-sum-exp and the fastmath flag set (DESIGN.md, "Numerics").

- sigmoid(z) = 1/(1 + e^{−z}) evaluated so that e^{·} never overflows: for z < 0 it is
  e^{z}/(1 + e^{z}). The naive form gives 1/(1 + inf) = 0 at z = −720 (σ is 1e-313 there).
- log1p_exp(z) = log(1 + e^{z}) = max(z, 0) + log1p(e^{−|z|}) (softplus; no overflow).
- logsumexp(x, lo, hi) = m + log Σ_i e^{x_i − m}, m = max x_i, over x[lo:hi] of a 1D array.
- float32_from_bits(i), float64_from_bits(i): the float whose bit pattern is the integer i (an LLVM
  bitcast; vectorises, unlike a table lookup): 2^n = float32_from_bits((127 + n) << 23) for a
  normal exponent n (float64: (1023 + n) << 52).
- exp_shifted(row, jc, m): row[:jc] ← e^{row[:jc] − m} in one vectorised loop (for x − m ≤ 0: the
  max-shifted exponentials of a softmax; ≤ 3 ulp), where math.exp is a scalar call per element.
- row_max(row, jc): max(row[:jc]) in eight running maxima (a max reduction does not vectorise).
- FASTMATH: fastmath without the no-NaN/no-Inf assumptions (PERFORMANCE.md, lesson 3), so NaN
  checks and −inf masking keep working while reductions may be reassociated and vectorised.
  Never the blanket fastmath flag (all of LLVM's fast-math, no-NaN and no-Inf included).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

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


@njit(cache=True, inline="always", fastmath=FASTMATH)
def row_max(row, jc):
    """max(row[:jc]) (jc ≥ 1) in 8 running maxima (scalars, kept in registers: a max reduction does
    not vectorise without the no-NaN flag; a 16-element scratch array was reloaded and stored every
    step; 16 scalars ran as fast as 8 but doubled the forward kernel's compile time)."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = row[0]
    j = 0
    while j + 8 <= jc:
        x = row[j]
        m0 = x if x > m0 else m0
        x = row[j + 1]
        m1 = x if x > m1 else m1
        x = row[j + 2]
        m2 = x if x > m2 else m2
        x = row[j + 3]
        m3 = x if x > m3 else m3
        x = row[j + 4]
        m4 = x if x > m4 else m4
        x = row[j + 5]
        m5 = x if x > m5 else m5
        x = row[j + 6]
        m6 = x if x > m6 else m6
        x = row[j + 7]
        m7 = x if x > m7 else m7
        j += 8
    m0 = m4 if m4 > m0 else m0
    m1 = m5 if m5 > m1 else m1
    m2 = m6 if m6 > m2 else m2
    m3 = m7 if m7 > m3 else m3
    m0 = m2 if m2 > m0 else m0
    m1 = m3 if m3 > m1 else m1
    m0 = m1 if m1 > m0 else m0
    for t in range(j, jc):
        m0 = row[t] if row[t] > m0 else m0
    return m0


# A vectorisable e^{x − m} for softmaxes (attention's rows, the cross-entropy's; PERFORMANCE.md,
# lesson 4: math.exp is a scalar call, ~10 ns, and the B·L·S exponentials were a third of attention's
# forward). Range reduction x − m = n ln 2 + r, |r| ≤ ln 2 / 2, with n rounded to nearest by the
# 1.5·2^p trick and ln 2 split in two (Cody & Waite), e^r by its Taylor polynomial (degree 12 in
# float64: remainder ≤ 0.347¹³/13! ≈ 1.7e-16; degree 7 in float32: ≤ 5e-9), times 2^n built from its
# bits (a bit cast, so one vectorised loop). Arguments below the smallest normal result (n < −1021 in
# float64, −125 in float32; −∞ from a mask) give exactly 0. Error bound checked by
# tests/test_attention.py (≤ 3 ulp over [−800, 0]). Compiled without fast-math flags (its own
# function), so that the reduction and the rounding trick are evaluated as written.
_LOG2E = 1.4426950408889634
_LN2_HI, _LN2_LO = 6.93147180369123816490e-01, 1.90821492927058770002e-10         # fdlibm's split
_LN2_HI32, _LN2_LO32 = 0.693145751953125, 1.428606765330187045e-06
_C = tuple(1.0 / math.factorial(i) for i in range(13))
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12 = _C[2:]
_STRICT = {"contract"}      # fused multiply-adds only: no reassociation


def exp_shifted(row, jc, m):
    """row[:jc] ← e^{row[:jc] − m} (vectorisable; for x − m ≤ 0). Python version for tests."""
    x = np.maximum(row[:jc] - m, -745.0 if row.dtype == np.float64 else -104.0)
    row[:jc] = np.where(x * _LOG2E < (-1021.5 if row.dtype == np.float64 else -125.5), 0.0, np.exp(x))


@njit(cache=True, fastmath=_STRICT)
def _exp_shifted64(row, jc, m):
    for j in range(jc):
        x = row[j] - m
        x = x if x > -745.0 else -745.0
        nf = (x * _LOG2E + 6755399441055744.0) - 6755399441055744.0      # round(x / ln 2)
        r = (x - nf * _LN2_HI) - nf * _LN2_LO
        p = _C12
        p = p * r + _C11
        p = p * r + _C10
        p = p * r + _C9
        p = p * r + _C8
        p = p * r + _C7
        p = p * r + _C6
        p = p * r + _C5
        p = p * r + _C4
        p = p * r + _C3
        p = p * r + _C2
        p = p * r + 1.0
        p = p * r + 1.0
        n = np.int64(nf)                             # 2^n from its bits: exponent field n + 1023
        row[j] = p * float64_from_bits((n + np.int64(1023)) << np.int64(52)) if n >= -1021 else 0.0


@njit(cache=True, fastmath=_STRICT)
def _exp_shifted32(row, jc, m):
    m = np.float32(m)               # a float64 m would run the loop in float64, where 1.5·2^23 does not round
    for j in range(jc):
        x = row[j] - m
        x = x if x > np.float32(-104.0) else np.float32(-104.0)
        nf = (x * np.float32(_LOG2E) + np.float32(12582912.0)) - np.float32(12582912.0)
        r = (x - nf * np.float32(_LN2_HI32)) - nf * np.float32(_LN2_LO32)
        p = np.float32(_C7)
        p = p * r + np.float32(_C6)
        p = p * r + np.float32(_C5)
        p = p * r + np.float32(_C4)
        p = p * r + np.float32(_C3)
        p = p * r + np.float32(_C2)
        p = p * r + np.float32(1.0)
        p = p * r + np.float32(1.0)
        n = np.int32(nf)
        row[j] = p * float32_from_bits((n + np.int32(127)) << np.int32(23)) if n >= -125 else np.float32(0.0)


@overload(exp_shifted)
def _exp_shifted_jit(row, jc, m):
    # The work is in @njit functions with fast-math flags of their own (_STRICT): a function without
    # them takes its caller's (Numba inherits unset flags), and reassociation folds the rounding
    # trick (x + 1.5·2^52) − 1.5·2^52 into x.
    if row.dtype == types.float64:
        return lambda row, jc, m: _exp_shifted64(row, jc, m)
    return lambda row, jc, m: _exp_shifted32(row, jc, m)


@njit(cache=True, fastmath=FASTMATH)
def exp_shifted_kernel(row, jc, m):
    """The compiled exp_shifted, called from a FASTMATH function as the kernels call it (for its
    accuracy test: the flags must not reach it)."""
    exp_shifted(row, jc, m)
