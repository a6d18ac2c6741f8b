"""3×3 convolutions (stride 1, dilation 1, one group) by Winograd's minimal filtering F(2×2, 3×3).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016): a 2×2 block of
outputs of a 3×3 correlation, read from a 4×4 tile d of the zero-padded input, is

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A            (16 multiplications instead of 36)

        Bᵀ = [1  0 −1  0]     G = [ 1    0    0 ]     Aᵀ = [1  1  1  0]
             [0  1  1  0]         [ ½    ½    ½ ]          [0  1 −1 −1]
             [0 −1  1  0]         [ ½   −½    ½ ]
             [0  1  0 −1]         [ 0    0    1 ]

Summed over input channels, the ⊙ becomes 16 matrix products, one per tile position ξ = (r, s):

    U_ξ[o, c] = (G ω[o, c] Gᵀ)_ξ,   V_ξ[c, t] = (Bᵀ d_{c,t} B)_ξ,   M_ξ = U_ξ V_ξ,   z_t = Aᵀ M_t A

over the tiles t of every output 2×2 block (the output grid is rounded up to even sizes; the extra
row/column is discarded). The backward pass is the adjoint of each linear step, in reverse:

    ∂ℓ/∂M_t = A (∂ℓ/∂z_t) Aᵀ,   ∂ℓ/∂U_ξ = Σ_t ∂ℓ/∂M_ξ V_ξᵀ,   ∂ℓ/∂V_ξ = U_ξᵀ ∂ℓ/∂M_ξ,
    ∂ℓ/∂ω[o, c] = Gᵀ (∂ℓ/∂U)[o, c] G,   ∂ℓ/∂d_{c,t} = B (∂ℓ/∂V)_{c,t} Bᵀ  (added over overlapping tiles).

It takes 2.25× fewer multiply-adds than im2col, but its products are 16 small GEMMs per batch of
tiles and its transforms move 16/4 values per output; measured 2026-11-21 on this project's VM
it is 10-15% faster than im2col for 16 channels of 28×28, and slower for fewer channels or small
images, so Conv2d uses it only above WINOGRAD_MIN_CHANNELS and WINOGRAD_MIN_WIDTH. The transforms
use only 0, ±1 and ±½: float64 results equal the direct sum to rounding (tests/test_winograd.py).
"""
import numpy as np
from numba import njit, prange

from engine.threads import FASTMATH

from .im2col import NO_TRANS, ROW_MAJOR, TRANS, crop_add, pad_into


def tiles_per_sample(OH, OW):
    """Tiles of one sample: (OH/2 rounded up) rows of (OW/2 rounded up) + 1 (see below)."""
    return ((OH + 1) // 2) * ((OW + 1) // 2 + 1)


@njit(cache=True)
def _padded(TH, TW):
    """(Hp, Wp) = (2TH + 2, 2TW + 2): the zero-padded sample holding every 4×4 tile (for a 3×3
    stride-1 convolution this also holds x at (pt, pl): W + pl = OW + 2 − pr ≤ 2TW + 2)."""
    return 2 * TH + 2, 2 * TW + 2


@njit(cache=True)
def weight_transform(w, U):
    """U[ξ, o, c] = (G ω[o, c] Gᵀ)_ξ, ξ = 4r + s; w (C_out, C, 3, 3)."""
    C_out, C = w.shape[0], w.shape[1]
    t = np.empty((4, 3), w.dtype)
    for o in range(C_out):
        for c in range(C):
            g = w[o, c]
            for j in range(3):                       # t = G g
                t[0, j] = g[0, j]
                t[1, j] = 0.5 * (g[0, j] + g[1, j] + g[2, j])
                t[2, j] = 0.5 * (g[0, j] - g[1, j] + g[2, j])
                t[3, j] = g[2, j]
            for r in range(4):                       # U = t Gᵀ
                U[4 * r, o, c] = t[r, 0]
                U[4 * r + 1, o, c] = 0.5 * (t[r, 0] + t[r, 1] + t[r, 2])
                U[4 * r + 2, o, c] = 0.5 * (t[r, 0] - t[r, 1] + t[r, 2])
                U[4 * r + 3, o, c] = t[r, 2]


@njit(cache=True)
def weight_transform_adjoint(dU, dw):
    """dw[o, c] += Gᵀ dU[:, o, c] G (the adjoint of weight_transform); dw (C_out, C, 3, 3)."""
    C_out, C = dw.shape[0], dw.shape[1]
    t = np.empty((3, 4), dw.dtype)
    for o in range(C_out):
        for c in range(C):
            for s in range(4):                       # t = Gᵀ e
                e0, e1, e2, e3 = dU[s, o, c], dU[4 + s, o, c], dU[8 + s, o, c], dU[12 + s, o, c]
                t[0, s] = e0 + 0.5 * (e1 + e2)
                t[1, s] = 0.5 * (e1 - e2)
                t[2, s] = 0.5 * (e1 + e2) + e3
            for i in range(3):                       # dw += t G
                dw[o, c, i, 0] += t[i, 0] + 0.5 * (t[i, 1] + t[i, 2])
                dw[o, c, i, 1] += 0.5 * (t[i, 1] - t[i, 2])
                dw[o, c, i, 2] += 0.5 * (t[i, 1] + t[i, 2]) + t[i, 3]


# Tiles are numbered t = i·(TW + 1) + j: one extra tile per tile row, so that with the padded width
# Wp = 2(TW + 1) the tile (i, j) of a tile row's data D (TH, Wp) starts at D[2t] and every
# transform below is one flat loop over t (vectorised), not a short loop per tile row. The extra
# tile reads the next row's first columns: its outputs are discarded and its gradients are zero.

@njit(cache=True, fastmath=FASTMATH)
def input_transform(xp, D, V, t0, C, Wp, TH):
    """V[ξ, c, t0 + t] = (Bᵀ d B)_ξ for the 4×4 tile d of the padded sample xp (flat, C planes of
    (2TH + 2)·Wp, then 2 zeros) at tile t; D (4, TH·Wp + 2) is scratch."""
    Hp = 2 * TH + 2
    T = TH * (Wp // 2)
    for c in range(C):
        plane = xp[c * Hp * Wp:(c + 1) * Hp * Wp + 2]
        for i in range(TH):                          # D_r = rows of Bᵀ d: (d0 − d2, d1 + d2, d2 − d1, d1 − d3)
            a = plane[2 * i * Wp:(2 * i + 1) * Wp]
            b = plane[(2 * i + 1) * Wp:(2 * i + 2) * Wp]
            e = plane[(2 * i + 2) * Wp:(2 * i + 3) * Wp]
            f = plane[(2 * i + 3) * Wp:(2 * i + 4) * Wp]
            d0, d1 = D[0, i * Wp:(i + 1) * Wp], D[1, i * Wp:(i + 1) * Wp]
            d2, d3 = D[2, i * Wp:(i + 1) * Wp], D[3, i * Wp:(i + 1) * Wp]
            for q in range(Wp):
                d0[q] = a[q] - e[q]
                d1[q] = b[q] + e[q]
                d2[q] = e[q] - b[q]
                d3[q] = b[q] - f[q]
        for r in range(4):                           # then the same across the columns of each row
            dr = D[r]
            v0, v1 = V[4 * r, c, t0:t0 + T], V[4 * r + 1, c, t0:t0 + T]
            v2, v3 = V[4 * r + 2, c, t0:t0 + T], V[4 * r + 3, c, t0:t0 + T]
            for t in range(T):
                k = 2 * t
                v0[t] = dr[k] - dr[k + 2]
                v1[t] = dr[k + 1] + dr[k + 2]
                v2[t] = dr[k + 2] - dr[k + 1]
                v3[t] = dr[k + 1] - dr[k + 3]


@njit(cache=True, fastmath=FASTMATH)
def input_transform_adjoint(dV, t0, D, dxp, C, Wp, TH):
    """dxp (zeroed by the caller) += the adjoint of input_transform applied to dV: each tile adds
    B dV_t Bᵀ onto its 4×4 window (windows overlap by two rows and columns)."""
    Hp = 2 * TH + 2
    T = TH * (Wp // 2)
    for c in range(C):
        for r in range(4):                           # columns: D_r[2t + s] += (e Bᵀ)_s, e = row r of dV_t
            dr = D[r]
            e0, e1 = dV[4 * r, c, t0:t0 + T], dV[4 * r + 1, c, t0:t0 + T]
            e2, e3 = dV[4 * r + 2, c, t0:t0 + T], dV[4 * r + 3, c, t0:t0 + T]
            # (e Bᵀ) = (e0, e1 − e2 + e3, −e0 + e1 + e2, −e3); entries 2 and 3 of tile t − 1 land
            # on entries 0 and 1 of tile t, so each D entry is written once
            dr[0] = e0[0]
            dr[1] = e1[0] - e2[0] + e3[0]
            for t in range(1, T):
                dr[2 * t] = e0[t] + e1[t - 1] + e2[t - 1] - e0[t - 1]
                dr[2 * t + 1] = e1[t] - e2[t] + e3[t] - e3[t - 1]
            dr[2 * T] = e1[T - 1] + e2[T - 1] - e0[T - 1]
            dr[2 * T + 1] = -e3[T - 1]
        plane = dxp[c * Hp * Wp:(c + 1) * Hp * Wp + 2]
        for i in range(TH):                          # rows: B (·) = (D0, D1 − D2 + D3, −D0 + D1 + D2, −D3)
            a = plane[2 * i * Wp:(2 * i + 1) * Wp]
            b = plane[(2 * i + 1) * Wp:(2 * i + 2) * Wp]
            e = plane[(2 * i + 2) * Wp:(2 * i + 3) * Wp]
            f = plane[(2 * i + 3) * Wp:(2 * i + 4) * Wp]
            d0, d1 = D[0, i * Wp:(i + 1) * Wp], D[1, i * Wp:(i + 1) * Wp]
            d2, d3 = D[2, i * Wp:(i + 1) * Wp], D[3, i * Wp:(i + 1) * Wp]
            for q in range(Wp):
                a[q] += d0[q]
                b[q] += d1[q] - d2[q] + d3[q]
                e[q] += d1[q] + d2[q] - d0[q]
                f[q] -= d3[q]


@njit(cache=True, fastmath=FASTMATH)
def output_transform(M, t0, Z, z, b, OH, OW, TH, TWp):
    """z[o, 2i + u, 2j + v] = (Aᵀ M_t A)[u, v] + β_o for the tile t = i·TWp + j, inside the output
    (z: one sample, (C_out, OH·OW)); Z (4, TH·TWp) is scratch."""
    C_out = z.shape[0]
    T = TH * TWp
    z00, z01, z10, z11 = Z[0], Z[1], Z[2], Z[3]
    for o in range(C_out):
        # one 1D slice per tile entry (a 2D slice's rows are not known to be contiguous: no SIMD)
        m0, m1, m2, m3 = M[0, o, t0:t0 + T], M[1, o, t0:t0 + T], M[2, o, t0:t0 + T], M[3, o, t0:t0 + T]
        m4, m5, m6, m7 = M[4, o, t0:t0 + T], M[5, o, t0:t0 + T], M[6, o, t0:t0 + T], M[7, o, t0:t0 + T]
        m8, m9, m10, m11 = M[8, o, t0:t0 + T], M[9, o, t0:t0 + T], M[10, o, t0:t0 + T], M[11, o, t0:t0 + T]
        m12, m13, m14, m15 = M[12, o, t0:t0 + T], M[13, o, t0:t0 + T], M[14, o, t0:t0 + T], M[15, o, t0:t0 + T]
        for t in range(T):
            # rows of Aᵀ m: (m0 + m1 + m2, m1 − m2 − m3) for each column s, then across the columns
            u0, v0 = m0[t] + m4[t] + m8[t], m4[t] - m8[t] - m12[t]
            u1, v1 = m1[t] + m5[t] + m9[t], m5[t] - m9[t] - m13[t]
            u2, v2 = m2[t] + m6[t] + m10[t], m6[t] - m10[t] - m14[t]
            u3, v3 = m3[t] + m7[t] + m11[t], m7[t] - m11[t] - m15[t]
            z00[t] = u0 + u1 + u2
            z01[t] = u1 - u2 - u3
            z10[t] = v0 + v1 + v2
            z11[t] = v1 - v2 - v3
        _interleave(Z, z[o], b[o], OH, OW, TH, TWp)


@njit(cache=True)
def _interleave(Z, zo, bo, OH, OW, TH, TWp):
    """zo[(2i + u)·OW + 2j + v] = Z[2u + v, i·TWp + j] + bo inside the output."""
    for i in range(TH):
        for u in range(2):
            y = 2 * i + u
            if y >= OH:
                break
            row = zo[y * OW:(y + 1) * OW]
            a = Z[2 * u, i * TWp:(i + 1) * TWp]
            c = Z[2 * u + 1, i * TWp:(i + 1) * TWp]
            for j in range(OW // 2):
                row[2 * j] = a[j] + bo
                row[2 * j + 1] = c[j] + bo
            if OW % 2:
                row[OW - 1] = a[OW // 2] + bo


@njit(cache=True, fastmath=FASTMATH)
def output_transform_adjoint(dz, Z, dM, t0, OH, OW, TH, TWp):
    """dM[:, o, t0 + t] = A g_t Aᵀ with g_t the 2×2 block of ∂ℓ/∂z (dz: one sample, (C_out, OH·OW))
    at tile t, 0 outside the output and on the extra tiles; Z (4, TH·TWp) is scratch."""
    C_out = dz.shape[0]
    T = TH * TWp
    g00, g01, g10, g11 = Z[0], Z[1], Z[2], Z[3]
    Z[:] = 0                                         # the entries no output reaches stay 0
    for o in range(C_out):
        do = dz[o]
        for i in range(TH):
            for u in range(2):
                y = 2 * i + u
                if y >= OH:
                    break
                row = do[y * OW:(y + 1) * OW]
                a = Z[2 * u, i * TWp:(i + 1) * TWp]
                c = Z[2 * u + 1, i * TWp:(i + 1) * TWp]
                for j in range(OW // 2):
                    a[j] = row[2 * j]
                    c[j] = row[2 * j + 1]
                if OW % 2:
                    a[OW // 2] = row[OW - 1]
        m0, m1, m2, m3 = dM[0, o, t0:t0 + T], dM[1, o, t0:t0 + T], dM[2, o, t0:t0 + T], dM[3, o, t0:t0 + T]
        m4, m5, m6, m7 = dM[4, o, t0:t0 + T], dM[5, o, t0:t0 + T], dM[6, o, t0:t0 + T], dM[7, o, t0:t0 + T]
        m8, m9, m10, m11 = dM[8, o, t0:t0 + T], dM[9, o, t0:t0 + T], dM[10, o, t0:t0 + T], dM[11, o, t0:t0 + T]
        m12, m13, m14, m15 = dM[12, o, t0:t0 + T], dM[13, o, t0:t0 + T], dM[14, o, t0:t0 + T], dM[15, o, t0:t0 + T]
        for t in range(T):
            # rows of A g: (g0, g0 + g1, g0 − g1, −g1) over u; each row's columns the same over v
            a0, a1 = g00[t], g01[t]
            b0, b1 = g00[t] + g10[t], g01[t] + g11[t]
            c0, c1 = g00[t] - g10[t], g01[t] - g11[t]
            d0, d1 = -g10[t], -g11[t]
            m0[t], m1[t], m2[t], m3[t] = a0, a0 + a1, a0 - a1, -a1
            m4[t], m5[t], m6[t], m7[t] = b0, b0 + b1, b0 - b1, -b1
            m8[t], m9[t], m10[t], m11[t] = c0, c0 + c1, c0 - c1, -c1
            m12[t], m13[t], m14[t], m15[t] = d0, d0 + d1, d0 - d1, -d1


@njit(parallel=True, cache=True)
def conv3x3_forward(x, U, b, pt, pl, OH, OW, Vs, Ms, nthreads, gemm):
    """z (N, C_out, OH·OW) of the 3×3 convolution (stride 1, padding (pt, pl) top/left) of x
    (N, C, H, W) with the transformed weights U (16, C_out, C) (weight_transform) and bias b.
    Vs (nthreads, 16, C, Tc), Ms (nthreads, 16, C_out, Tc): per-thread workspaces for the tiles
    of S = Tc // tiles_per_sample(OH, OW) samples at a time."""
    N, C, H, W = x.shape
    C_out = U.shape[1]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    T1 = TH * (TW + 1)
    Tc = Vs.shape[3]
    S = Tc // T1
    if S < 1:
        raise ValueError("Vs: the workspace must hold at least one sample's tiles")
    Hp, Wp = _padded(TH, TW)
    isz = x.itemsize
    z = np.empty((N, C_out, OH * OW), x.dtype)
    xps = np.zeros((nthreads, C * Hp * Wp + 2), x.dtype)
    for t in prange(nthreads):
        V, M = Vs[t], Ms[t]
        D = np.zeros((4, TH * Wp + 2), x.dtype)      # its last 2 columns stay 0: the last extra tile reads them
        Z = np.empty((4, T1), x.dtype)
        n, hi = t * N // nthreads, (t + 1) * N // nthreads
        while n < hi:
            m = min(S, hi - n)
            for s in range(m):
                pad_into(x[n + s], xps[t], pt, pl, Hp, Wp)
                input_transform(xps[t], D, V, s * T1, C, Wp, TH)
            for xi in range(16):        # M_ξ (C_out, m·T1) = U_ξ (C_out, C) @ V_ξ (C, m·T1)
                gemm(ROW_MAJOR, NO_TRANS, NO_TRANS, C_out, m * T1, C, 1.0, U.ctypes.data + xi * C_out * C * isz, C,
                     V.ctypes.data + xi * C * Tc * isz, Tc, 0.0, M.ctypes.data + xi * C_out * Tc * isz, Tc)
            for s in range(m):
                output_transform(M, s * T1, Z, z[n + s], b, OH, OW, TH, TW + 1)
            n += m
    return z


@njit(parallel=True, cache=True)
def conv3x3_backward(dz, x, U, dU, db, pt, pl, OH, OW, Vs, Ms, dUs, nthreads, input_grad, gemm):
    """Given ∂ℓ/∂z (N, C_out, OH·OW): dU (16, C_out, C) += ∂ℓ/∂U (to be mapped to ∂ℓ/∂ω by
    weight_transform_adjoint), db += Σ ∂ℓ/∂z, and returns ∂ℓ/∂x (empty when not `input_grad`).
    Workspaces as conv3x3_forward; dUs (nthreads, 16, C_out, C + 1): per-thread ∂ℓ/∂U and ∂ℓ/∂β."""
    N, C, H, W = x.shape
    C_out = U.shape[1]
    TH, TW = (OH + 1) // 2, (OW + 1) // 2
    T1 = TH * (TW + 1)
    Tc = Vs.shape[3]
    S = Tc // T1
    if S < 1:
        raise ValueError("Vs: the workspace must hold at least one sample's tiles")
    Hp, Wp = _padded(TH, TW)
    isz = x.itemsize
    dx = np.zeros(x.shape if input_grad else (0, 0, 0, 0), x.dtype)
    xps = np.zeros((nthreads, 2, C * Hp * Wp + 2), x.dtype)
    for t in prange(nthreads):
        V, M, acc = Vs[t], Ms[t], dUs[t]
        acc[:] = 0
        D = np.zeros((4, TH * Wp + 2), x.dtype)      # its last 2 columns stay 0: the last extra tile reads them
        Z = np.empty((4, T1), x.dtype)
        n, hi = t * N // nthreads, (t + 1) * N // nthreads
        while n < hi:
            m = min(S, hi - n)
            for s in range(m):
                pad_into(x[n + s], xps[t, 0], pt, pl, Hp, Wp)
                input_transform(xps[t, 0], D, V, s * T1, C, Wp, TH)
                output_transform_adjoint(dz[n + s], Z, M, s * T1, OH, OW, TH, TW + 1)
                for o in range(C_out):
                    acc[0, o, C] += dz[n + s, o].sum()
            for xi in range(16):        # ∂ℓ/∂U_ξ (C_out, C; row stride C + 1) += ∂ℓ/∂M_ξ V_ξᵀ
                gemm(ROW_MAJOR, NO_TRANS, TRANS, C_out, C, m * T1, 1.0, M.ctypes.data + xi * C_out * Tc * isz, Tc,
                     V.ctypes.data + xi * C * Tc * isz, Tc, 1.0, acc.ctypes.data + xi * C_out * (C + 1) * isz, C + 1)
            if input_grad:              # V is free again: ∂ℓ/∂V_ξ (C, m·T1) = U_ξᵀ ∂ℓ/∂M_ξ
                for xi in range(16):
                    gemm(ROW_MAJOR, TRANS, NO_TRANS, C, m * T1, C_out, 1.0, U.ctypes.data + xi * C_out * C * isz, C,
                         M.ctypes.data + xi * C_out * Tc * isz, Tc, 0.0, V.ctypes.data + xi * C * Tc * isz, Tc)
                for s in range(m):
                    dxp = xps[t, 1]
                    dxp[:] = 0
                    input_transform_adjoint(V, s * T1, D, dxp, C, Wp, TH)
                    crop_add(dxp, dx[n + s], pt, pl, Hp, Wp)
            n += m
    for t in range(nthreads):
        dU += dUs[t, :, :, :C]
        db += dUs[t, 0, :, C]
    return dx
