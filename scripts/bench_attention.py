"""Benchmark group "attention": forward + backward of scaled dot-product attention and of
MultiheadAttention (issue 13, item 10's shapes), against PyTorch in the same run, same thread
count, same process (benchlib.interleaved).

- attention B8 H4 S128 D32, float32 and float64, causal and not: the engine's
  ScaledDotProductAttention (forward returns y and P; backward from ∂ℓ/∂y) against
  torch.nn.functional.scaled_dot_product_attention with autograd.
- "BLAS floor" rows for the SDPA cases: only the six products per problem the engine's kernels
  run (QKᵀ and ∂ℓ/∂Y Vᵀ against Kᵀ and Vᵀ stored once, PV, ∂ℓ/∂S K, ∂ℓ/∂Sᵀ Q, Pᵀ ∂ℓ/∂Y; causal
  in the kernels' blocks of CAUSAL_ROWS query rows stopping at the diagonal), same BLAS, threads
  and split over the problems, timed in the same alternation: no kernel built on them is faster.
- MultiheadAttention embed 128, 4 heads, B16, T128, self-attention (one array as query, key and
  value; the engine's backward with summed=True, the one input gradient ∂ℓ/∂q + ∂ℓ/∂k + ∂ℓ/∂v,
  as a transformer layer asks for it), need_weights=False on both sides (what a transformer block
  asks for; torch then takes its fused path), float32 and float64, causal (torch: an explicit
  causal mask with is_causal=True) and not.

    python scripts/bench_attention.py [--quick] [--threads N]     (N: both sides' thread count)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import interleaved, main, row, torch_or_none  # noqa: E402

SDPA = [(8, 4, 128, 32, causal, dt) for dt in (np.float32, np.float64) for causal in (False, True)]
MHA = [(16, 128, 128, 4, causal, dt) for dt in (np.float32, np.float64) for causal in (False, True)]


_FLOOR = []


def _floor_kernel():
    """The six products of scaled dot-product attention per problem, compiled once on first use."""
    if _FLOOR:
        return _FLOOR[0]
    from numba import njit, prange

    from engine.blas import NO_TRANS, TRANS, gemm_at

    @njit(parallel=True)
    def floor(q, k, kt, v, vt, p, y, dy, ds, dq, dk, dv, B, L, S, E, R, causal, gemm, nchunks):
        for c in prange(nchunks):
            lo, hi = c * B // nchunks, (c + 1) * B // nchunks
            for b in range(lo, hi):
                oq, ok = b * L * E, b * S * E
                for i0 in range(0, L, R):               # forward: S = Q Kᵀ, Y = P V
                    i1 = min(i0 + R, L)
                    jn = min(i1, S) if causal else S
                    gemm_at(gemm, i1 - i0, jn, E, 1.0, q, oq + i0 * E, E, NO_TRANS, kt, b * E * S, S, NO_TRANS,
                            0.0, p, (b * L + i0) * S, S)
                    gemm_at(gemm, i1 - i0, E, jn, 1.0, p, (b * L + i0) * S, S, NO_TRANS, v, ok, E, NO_TRANS,
                            0.0, y, oq + i0 * E, E)
                for i0 in range(0, L, R):               # backward: ∂ℓ/∂A, ∂ℓ/∂Q, ∂ℓ/∂K, ∂ℓ/∂V
                    i1 = min(i0 + R, L)
                    jn = min(i1, S) if causal else S
                    beta = 0.0 if i0 == 0 else 1.0
                    gemm_at(gemm, i1 - i0, jn, E, 1.0, dy, oq + i0 * E, E, NO_TRANS, vt, b * E * S, S, NO_TRANS,
                            0.0, ds, c * R * S, S)
                    gemm_at(gemm, i1 - i0, E, jn, 1.0, ds, c * R * S, S, NO_TRANS, k, ok, E, NO_TRANS,
                            0.0, dq, oq + i0 * E, E)
                    gemm_at(gemm, jn, E, i1 - i0, 1.0, ds, c * R * S, S, TRANS, q, oq + i0 * E, E, NO_TRANS,
                            beta, dk, ok, E)
                    gemm_at(gemm, jn, E, i1 - i0, 1.0, p, (b * L + i0) * S, S, TRANS, dy, oq + i0 * E, E, NO_TRANS,
                            beta, dv, ok, E)
    _FLOOR.append(floor)
    return floor


def sdpa_floor(q, k, v, dy, causal):
    """The engine's attention products alone (module docstring) on (B, H, S, D) arrays."""
    from engine.blas import gemm_for
    from engine.threads import chunks_for, parallel_call
    from layers.attention import CAUSAL_ROWS
    B = q.shape[0] * q.shape[1]
    L, E = q.shape[2:]
    S = k.shape[2]
    R = min(CAUSAL_ROWS, L) if causal else L
    flat = [np.ascontiguousarray(a).reshape(-1) for a in (q, k, v, dy)]
    kt = np.ascontiguousarray(k.reshape(B, S, E).transpose(0, 2, 1)).reshape(-1)
    vt = np.ascontiguousarray(v.reshape(B, S, E).transpose(0, 2, 1)).reshape(-1)
    p = np.zeros(B * L * S, q.dtype)                # zeros: rows the causal blocks do not write stay finite
    y, dq, dk, dv = (np.zeros(B * L * E, q.dtype) for _ in range(4))
    n = chunks_for(B, min_rows=1, row_cost=L * S * 2 * E)
    ds = np.zeros(n * R * S, q.dtype)
    kernel = _floor_kernel()

    def run():
        parallel_call(kernel, n, flat[0], flat[1], kt, flat[2], vt, p, y, flat[3], ds, dq, dk, dv, B, L, S, E, R, causal,
                      gemm_for(q.dtype))
        return y, dq, dk, dv
    return run


def sdpa_cases(B, H, S, D, causal, dtype, seed=0):
    from layers.attention import ScaledDotProductAttention
    rng = np.random.default_rng(seed)
    q, k, v, dy = (rng.standard_normal((B, H, S, D)).astype(dtype) for _ in range(4))
    layer = ScaledDotProductAttention(dtype=dtype)

    def engine_step():
        layer.forward(q, k, v, is_causal=causal)
        layer.backward(dy)
    fns = {"engine": engine_step, "floor": sdpa_floor(q, k, v, dy, causal)}
    torch = torch_or_none()
    if torch is not None:
        tq, tk, tv = (torch.from_numpy(a).requires_grad_(True) for a in (q, k, v))
        tdy = torch.from_numpy(dy)

        def torch_step():
            y = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal)
            y.backward(tdy)
        fns["PyTorch"] = torch_step
    return fns


def mha_cases(N, T, E, H, causal, dtype, seed=0):
    from layers.attention import MultiheadAttention
    rng = np.random.default_rng(seed)
    mha = MultiheadAttention(E, H, dtype=dtype, rng=seed)
    x = rng.standard_normal((T, N, E)).astype(dtype)
    dy = rng.standard_normal((T, N, E)).astype(dtype)

    def engine_step():
        mha.forward(x, x, x, need_weights=False, is_causal=causal)
        return mha.backward(dy, summed=True)
    fns = {"engine": engine_step}
    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tm = torch.nn.MultiheadAttention(E, H, dtype=tdt)
        tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in mha.state_dict().items()})
        tx = torch.from_numpy(x).requires_grad_(True)
        tdy = torch.from_numpy(dy)
        mask = torch.nn.Transformer.generate_square_subsequent_mask(T, dtype=tdt) if causal else None

        def torch_step():
            out, _ = tm(tx, tx, tx, need_weights=False, attn_mask=mask, is_causal=causal)
            out.backward(tdy)
        fns["PyTorch"] = torch_step
    return fns


def run(quick=False):
    rows = []
    for B, H, S, D, causal, dtype in SDPA:
        if quick:
            B, H, S, D = 2, 2, 8, 4
        res = interleaved(sdpa_cases(B, H, S, D, causal, dtype), repeats=5 if quick else 30)
        case = f"SDPA B{B} H{H} S{S} D{D}{' causal' if causal else ''} fwd+bwd, {np.dtype(dtype).name}"
        rows.append(row("attention", case, res["engine"], "PyTorch", res.get("PyTorch")))
        rows.append(row("attention", case + ": BLAS floor, its GEMMs alone", res["floor"], "PyTorch",
                        res.get("PyTorch")))
    for N, T, E, H, causal, dtype in MHA:
        if quick:
            N, T, E, H = 2, 8, 8, 2
        res = interleaved(mha_cases(N, T, E, H, causal, dtype), repeats=5 if quick else 30)
        rows.append(row("attention", f"MHA E{E} H{H} B{N} T{T}{' causal' if causal else ''} fwd+bwd, "
                        f"{np.dtype(dtype).name}", res["engine"], "PyTorch", res.get("PyTorch")))
    return rows


if __name__ == "__main__":
    main(run)
