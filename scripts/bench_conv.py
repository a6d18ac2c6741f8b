"""Benchmarks of the convolution family against PyTorch (forward + backward, same process, same threads).

    python scripts/bench_conv.py [--quick]

Rows: Conv2d 64×3×32×32 (3→16) and 64×16×28×28 (16→32), 3×3, padding 1, in float32 and float64;
Conv1d 64×16×256 (16→32, kernel 3, dilation 2); MaxPool2d 2×2 and BatchNorm2d on 64×32×28×28;
one training step (forward, cross-entropy, backward, Adam update) of the plain digits CNN.
Ratio = engine time / PyTorch time (below 1: faster than PyTorch); medians over repeats.

Each Conv2d row comes with a "BLAS floor" row timed in the same alternation: only the three
GEMMs per block of samples that the layer's forward and backward run (same shapes, workspaces of
the same shapes, same threads), without the im2col, col2im and copies around them. No kernel built on
im2col + this BLAS can be faster than its floor.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchlib import interleaved, main, row, torch_or_none  # noqa: E402
from numba import njit, prange  # noqa: E402

from engine.blas import NO_TRANS, TRANS, gemm_at, gemm_for  # noqa: E402
from engine.threads import parallel_call  # noqa: E402


@njit(parallel=True, cache=True)
def conv_gemms(wm, ws, zs, dws, N, S, Q, gemm, nthreads):
    """The GEMMs of Conv2d's forward and backward (groups = 1), per block of S samples on each
    thread t, on workspaces of the layer's shapes: ws (nt, K, ·) holding cols, zs (nt, C_out, ·)
    holding z and ∂ℓ/∂z, dws (nt, C_out, K + 1) holding ∂ℓ/∂Ω, with Q columns per sample."""
    O, K = wm.shape
    SP = ws.shape[2]
    for t in prange(nthreads):
        c0, z0, a0 = t * K * SP, t * O * SP, t * O * (K + 1)      # thread t's blocks
        n, hi = t * N // nthreads, (t + 1) * N // nthreads
        while n < hi:
            m = min(S, hi - n)
            # z = Ω cols
            gemm_at(gemm, O, m * Q, K, 1.0, wm, 0, K, NO_TRANS, ws, c0, SP, NO_TRANS, 0.0, zs, z0, SP)
            # ∂ℓ/∂Ω += ∂ℓ/∂z colsᵀ
            gemm_at(gemm, O, K, m * Q, 1.0, zs, z0, SP, NO_TRANS, ws, c0, SP, TRANS, 1.0, dws, a0, K + 1)
            # ∂ℓ/∂cols = Ωᵀ ∂ℓ/∂z
            gemm_at(gemm, K, m * Q, O, 1.0, wm, 0, K, TRANS, zs, z0, SP, NO_TRANS, 0.0, ws, c0, SP)
            n += m


def gemm_floor(layer, x):
    """conv_gemms for this Conv2d layer and input, as a closure: the layer's own plan (grid
    columns per sample, samples per GEMM, chunks) and workspaces of the layer's shapes."""
    plan = layer.kernel_plan(x.shape)
    Q, S, nt = plan.columns, plan.samples, plan.chunks
    wm = layer.weight.value.reshape(layer.out_channels, -1)
    K = wm.shape[1]
    ws = np.zeros((nt, K, S * Q), x.dtype)
    zs = np.zeros((nt, layer.out_channels, S * Q), x.dtype)
    dws = np.zeros((nt, layer.out_channels, K + 1), x.dtype)
    gemm = gemm_for(x.dtype)
    return lambda: parallel_call(conv_gemms, nt, wm, ws, zs, dws, x.shape[0], S, Q, gemm)


def _layer_case(case, make_engine, make_torch, shape, dtype, torch, repeats, floor=False):
    """Forward + backward (input gradient included, as PyTorch computes it for an input that
    requires grad) of one layer, engine vs PyTorch on the same input and upstream gradient;
    with `floor`, also the layer's GEMMs alone (gemm_floor). Returns a list of rows."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    layer = make_engine(dtype)
    tm = make_torch().to(torch.float32 if dtype == np.float32 else torch.float64)
    G = rng.standard_normal(layer.forward(x).shape).astype(dtype)

    def eng():
        layer.forward(x)
        layer.backward(G)

    xt = torch.tensor(x, requires_grad=True)
    Gt = torch.tensor(G)

    def peer():
        xt.grad = None
        tm.zero_grad(set_to_none=True)
        tm(xt).backward(Gt)

    fns = {"engine": eng, "peer": peer}
    if floor:
        fns["floor"] = gemm_floor(make_engine(dtype), x)
    t = interleaved(fns, repeats=repeats)
    rows = [row("conv", case, t["engine"], "PyTorch", t["peer"])]
    if floor:
        rows.append(row("conv", case + ": BLAS floor, its GEMMs alone", t["floor"], "PyTorch", t["peer"]))
    return rows


def run(quick: bool) -> list:
    torch = torch_or_none()
    if torch is None:
        return []
    from layers.conv import Conv1d, Conv2d
    from layers.norm import BatchNorm2d
    from layers.pooling import MaxPool2d
    from train_digits_cnn import bench_step
    N = 4 if quick else 64
    reps = 3 if quick else 30
    rows = []
    for dt, name in ((np.float32, "f32"), (np.float64, "f64")):
        for (C, H, Co) in ((3, 32, 16), (16, 28, 32)):
            rows += _layer_case(f"Conv2d {N}x{C}x{H}x{H} {C}->{Co} 3x3 p1 {name}",
                                lambda d: Conv2d(C, Co, 3, padding=1, dtype=d, rng=0),
                                lambda: torch.nn.Conv2d(C, Co, 3, padding=1), (N, C, H, H), dt, torch, reps, floor=True)
    rows += _layer_case(f"Conv1d {N}x16x256 16->32 k3 d2 f32",
                        lambda d: Conv1d(16, 32, 3, dilation=2, dtype=d, rng=0),
                        lambda: torch.nn.Conv1d(16, 32, 3, dilation=2), (N, 16, 256), np.float32, torch, reps)
    rows += _layer_case(f"MaxPool2d 2x2 {N}x32x28x28 f32", lambda d: MaxPool2d(2), lambda: torch.nn.MaxPool2d(2),
                        (N, 32, 28, 28), np.float32, torch, reps)
    rows += _layer_case(f"BatchNorm2d {N}x32x28x28 f32", lambda d: BatchNorm2d(32, dtype=d),
                        lambda: torch.nn.BatchNorm2d(32), (N, 32, 28, 28), np.float32, torch, reps)
    rows.append(bench_step(torch, quick))
    return rows


if __name__ == "__main__":
    main(run)
