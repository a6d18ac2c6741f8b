"""Benchmark group "recurrent": forward + backward of LSTM and GRU layers (issue 12, item 13's
shapes), float32 and float64, against the same torch.nn module with the same weights, same thread
count, same process (benchlib.interleaved).

Shapes (T, N, input, hidden): the small LSTM T100 B8 I32 H32 and the larger T64 B32 I64 H128;
GRU at the larger shape in float32. Engine: the layer's fast path (one compiled function per
layer and direction). Peer: torch.nn.LSTM / GRU forward and autograd backward (oneDNN's fused RNN).
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import interleaved, main, row, torch_or_none  # noqa: E402

CASES = [("LSTM", 100, 8, 32, 32, np.float32), ("LSTM", 100, 8, 32, 32, np.float64),
         ("LSTM", 64, 32, 64, 128, np.float32), ("LSTM", 64, 32, 64, 128, np.float64),
         ("GRU", 64, 32, 64, 128, np.float32)]


def cases(kind, T, N, I, H, dtype, seed=0):
    import layers
    rng = np.random.default_rng(seed)
    layer = getattr(layers, kind)(I, H, dtype=dtype, rng=seed)
    x = rng.standard_normal((T, N, I)).astype(dtype)
    dy = rng.standard_normal((T, N, H)).astype(dtype)

    def engine_step():
        layer.forward(x)
        layer.backward(dy)
    fns = {"engine": engine_step}
    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tm = getattr(torch.nn, kind)(I, H).to(tdt)
        tm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()})
        tx = torch.from_numpy(x).requires_grad_(True)
        tdy = torch.from_numpy(dy)

        def torch_step():
            out, _ = tm(tx)
            out.backward(tdy)
        fns["PyTorch"] = torch_step
    return fns


def run(quick=False):
    rows = []
    for kind, T, N, I, H, dtype in CASES:
        if quick:
            T, N, I, H = 5, 2, 3, 4
        res = interleaved(cases(kind, T, N, I, H, dtype), repeats=5 if quick else 30)
        rows.append(row("recurrent", f"{kind} T{T} B{N} I{I} H{H} fwd+bwd, {np.dtype(dtype).name}",
                        res["engine"], "PyTorch", res.get("PyTorch")))
    return rows


if __name__ == "__main__":
    main(run)
