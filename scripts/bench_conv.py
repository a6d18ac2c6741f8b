"""Benchmarks of the convolution family against PyTorch (forward + backward, same process, same threads).

    python scripts/bench_conv.py [--quick]

Rows: Conv2d 64×3×32×32 (3→16) and 64×16×28×28 (16→32), 3×3, padding 1, in float32 and float64;
Conv1d 64×16×256 (16→32, kernel 3, dilation 2); MaxPool2d 2×2 and BatchNorm2d on 64×32×28×28;
one training step (forward, loss, backward, SGD update) of the digits CNN.
Ratio = engine time / PyTorch time (below 1: faster than PyTorch); medians over repeats.
"""
import sys
import time

import numpy as np

from engine.threads import num_threads


def _median_ms(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(ts)), (float(min(ts)), float(max(ts)))


def _row(case, eng, peer, **extra):
    (em, er), (pm, _) = eng, peer
    return dict(group="conv", case=case, engine_ms=em, engine_range=er, peer="PyTorch", peer_ms=pm,
                ratio=em / pm, **extra)


def _layer_pair(make_engine, make_torch, shape, dtype, torch, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    layer = make_engine(dtype)
    tm = make_torch()
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    tm = tm.to(tdt)
    y = layer.forward(x)
    G = rng.standard_normal(y.shape).astype(dtype)

    def eng():
        layer.forward(x)
        layer.backward(G)

    xt = torch.tensor(x, requires_grad=True)
    Gt = torch.tensor(G)

    def peer():
        xt.grad = None
        tm.zero_grad(set_to_none=True)
        tm(xt).backward(Gt)

    # interleave engine and peer measurements so machine noise hits both
    e, p = [], []
    for _ in range(3):
        e.append(_median_ms(eng, max(1, repeats // 3)))
        p.append(_median_ms(peer, max(1, repeats // 3)))
    em = float(np.median([a for a, _ in e]))
    pm = float(np.median([a for a, _ in p]))
    er = (min(r[0] for _, r in e), max(r[1] for _, r in e))
    return (em, er), (pm, None)


def run(quick: bool) -> list:
    import torch
    from layers.conv import Conv1d, Conv2d
    from layers.norm import BatchNorm2d
    from layers.pooling import MaxPool2d
    torch.set_num_threads(num_threads())
    N = 4 if quick else 64
    reps = 3 if quick else 15
    rows = []
    for dt, name in ((np.float32, "f32"), (np.float64, "f64")):
        for (C, H, Co) in ((3, 32, 16), (16, 28, 32)):
            r = _layer_pair(lambda d: Conv2d(C, Co, 3, padding=1, dtype=d, rng=0),
                            lambda: torch.nn.Conv2d(C, Co, 3, padding=1), (N, C, H, H), dt, torch, reps)
            rows.append(_row(f"Conv2d {N}x{C}x{H}x{H} {C}->{Co} 3x3 p1 {name}", *r))
    r = _layer_pair(lambda d: Conv1d(16, 32, 3, dilation=2, dtype=d, rng=0),
                    lambda: torch.nn.Conv1d(16, 32, 3, dilation=2), (N, 16, 256), np.float32, torch, reps)
    rows.append(_row(f"Conv1d {N}x16x256 16->32 k3 d2 f32", *r))
    r = _layer_pair(lambda d: MaxPool2d(2), lambda: torch.nn.MaxPool2d(2), (N, 32, 28, 28), np.float32, torch, reps)
    rows.append(_row(f"MaxPool2d 2x2 {N}x32x28x28 f32", *r))
    r = _layer_pair(lambda d: BatchNorm2d(32, dtype=d), lambda: torch.nn.BatchNorm2d(32), (N, 32, 28, 28),
                    np.float32, torch, reps)
    rows.append(_row(f"BatchNorm2d {N}x32x28x28 f32", *r))
    try:
        from train_digits_cnn import bench_step
        rows.append(bench_step(torch, quick, _median_ms))
    except ImportError:
        pass
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    for r in run(quick):
        print(f"{r['case']:<44} engine {r['engine_ms']:8.2f} ms [{r['engine_range'][0]:.2f}, "
              f"{r['engine_range'][1]:.2f}]  PyTorch {r['peer_ms']:8.2f} ms  ratio {r['ratio']:.2f}")
