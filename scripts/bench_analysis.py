"""Benchmark group "analysis": exact 2-D linear-region counting and the variance-propagation
measurement.

- regions_2d: the exact enumeration of `analysis.regions.regions_2d` for a random ReLU MLP
  [64, 32, 32, 32, 10] (He-scaled weights) on the slice through three digits of the bundled data
  set (regions per second reported).
  Peer: the sampled estimate (distinct activation patterns on a 400 × 400 grid of the slice, one
  NumPy forward pass), which is cheaper but only a lower-ish estimate (see `count_patterns`).
- variance: `analysis.signal.measure_variance` (forward + backward of the engine's MLP over seeds,
  per-layer second moments). Peer: the same measurement with PyTorch autograd, same thread count.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import format_table, row, timeit, torch_or_none  # noqa: E402


def _region_case(quick):
    from analysis.regions import count_patterns, regions_2d, slice_through
    from layers import MLP

    from engine.data import digits_split

    width = 8 if quick else 32
    (X, _), _ = digits_split()
    net = MLP([64, width, width, width, 10], rng=3)
    for W in net.weights:            # He scale (default U(±1/√n) has variance 1/(3n)): more regions
        W *= np.sqrt(6.0)
    o, u, v, ext = slice_through(X[0], X[1], X[2])
    r = regions_2d(net, o, u, v, ext)
    eng = timeit(lambda: regions_2d(net, o, u, v, ext), repeats=3 if quick else 5, warmup=1)
    n = 100 if quick else 400
    s = np.linspace(ext[0][0], ext[0][1], n)
    S, T = np.meshgrid(s, s)
    pts = o + S.reshape(-1, 1) * u + T.reshape(-1, 1) * v
    peer = timeit(lambda: count_patterns(net, pts), repeats=3 if quick else 5, warmup=1)
    est = count_patterns(net, pts)
    return row("analysis", f"regions_2d exact, MLP [64,{width},{width},{width},10], slice through 3 digits", eng,
               f"grid {n}x{n}", peer, regions=r.n_activation_regions, linear_regions=r.n_linear_regions,
               regions_per_s=r.n_activation_regions / (eng[0] / 1e3), grid_estimate=est)


def _torch_measure(torch, widths, seeds, batch, rng):
    import math
    from analysis.signal import weight_variance
    F = np.zeros(len(widths) - 1)
    B = np.zeros(len(widths) - 1)
    for _ in range(seeds):
        Ws = [torch.tensor(rng.normal(0, math.sqrt(weight_variance("he", widths[k], widths[k + 1])),
                                      (widths[k + 1], widths[k])), requires_grad=True)
              for k in range(len(widths) - 1)]
        x = torch.tensor(rng.normal(size=(batch, widths[0])))
        fs, h = [], x
        for k, W in enumerate(Ws):
            f = h @ W.T
            f.retain_grad()
            fs.append(f)
            h = torch.relu(f) if k < len(Ws) - 1 else f
        dy = torch.tensor(rng.normal(size=(batch, widths[-1])))
        h.backward(dy)
        F += np.array([float((f.detach() ** 2).mean()) for f in fs])
        B += np.array([float((f.grad ** 2).mean()) for f in fs])
    return F / seeds, B / seeds


def _variance_case(quick):
    from analysis.signal import measure_variance

    widths = [32] * 4 if quick else [256] * 8
    seeds = 3 if quick else 20
    eng = timeit(lambda: measure_variance(widths, "relu", "he", n_seeds=seeds, batch_size=128),
                 repeats=3 if quick else 7, warmup=1)
    torch = torch_or_none()
    peer = None
    if torch is not None:
        rng = np.random.default_rng(0)
        peer = timeit(lambda: _torch_measure(torch, widths, seeds, 128, rng), repeats=3 if quick else 7, warmup=1)
    return row("analysis", f"measure_variance He+ReLU widths {widths[0]}x{len(widths) - 1}, {seeds} seeds",
               eng, "PyTorch" if peer else None, peer)


def run(quick: bool):
    return [_region_case(quick), _variance_case(quick)]


if __name__ == "__main__":
    rows = run(quick="--quick" in sys.argv)
    print(format_table(rows))
    for r in rows:
        if "regions_per_s" in r:
            print(f"exact 2-D regions: {r['regions']} activation regions ({r['linear_regions']} linear) in "
                  f"{r['engine_ms']:.0f} ms = {r['regions_per_s']:.0f} regions/s; grid estimate {r['grid_estimate']}")
