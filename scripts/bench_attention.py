"""Benchmark group "attention": forward + backward of scaled dot-product attention and of
MultiheadAttention (issue 13, item 10's shapes), against PyTorch in the same run, same thread
count, same process (benchlib.interleaved).

- attention B8 H4 S128 D32, float32 and float64, causal and not: the engine's
  ScaledDotProductAttention (forward returns y and P; backward from ∂ℓ/∂y) against
  torch.nn.functional.scaled_dot_product_attention with autograd.
- MultiheadAttention embed 128, 4 heads, B16, T128, self-attention (one array as query, key and
  value; the engine's three input gradients summed, as the caller does), need_weights=False on
  both sides (what a transformer block asks for; torch then takes its fused path), float32 and
  float64, causal (torch: an explicit causal mask with is_causal=True) and not.

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


def sdpa_cases(B, H, S, D, causal, dtype, seed=0):
    from layers.attention import ScaledDotProductAttention
    rng = np.random.default_rng(seed)
    q, k, v, dy = (rng.standard_normal((B, H, S, D)).astype(dtype) for _ in range(4))
    layer = ScaledDotProductAttention(dtype=dtype)

    def engine_step():
        layer.forward(q, k, v, is_causal=causal)
        layer.backward(dy)
    fns = {"engine": engine_step}
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
        dq, dk, dv = mha.backward(dy)
        return dq + dk + dv
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
        rows.append(row("attention", f"SDPA B{B} H{H} S{S} D{D}{' causal' if causal else ''} fwd+bwd, "
                        f"{np.dtype(dtype).name}", res["engine"], "PyTorch", res.get("PyTorch")))
    for N, T, E, H, causal, dtype in MHA:
        if quick:
            N, T, E, H = 2, 8, 8, 2
        res = interleaved(mha_cases(N, T, E, H, causal, dtype), repeats=5 if quick else 30)
        rows.append(row("attention", f"MHA E{E} H{H} B{N} T{T}{' causal' if causal else ''} fwd+bwd, "
                        f"{np.dtype(dtype).name}", res["engine"], "PyTorch", res.get("PyTorch")))
    return rows


if __name__ == "__main__":
    main(run)
