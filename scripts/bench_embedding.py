"""Benchmark group "embedding": Embedding's backward (the scatter-add of ∂ℓ/∂y into ∂ℓ/∂E) for
32,768 token ids into a 10,000 × 128 table (issue 12, item 13), float32 and float64, and the
forward (the gather) at the same size.

Engine: `Embedding.backward` (its fast kernel: parallel over column blocks of the embedding
dimension). Each timed call consumes one forward call pushed beforehand (the forward only saves
the ids), so only the backward is timed. Peer: PyTorch's `embedding` backward through autograd
(`torch.autograd.grad` of the embedding's output with respect to its weight, which builds the
dense gradient), same thread count, same process. The ids are drawn from a Zipf law (token
frequencies as in text: many repeats of a few ids) clipped to the table.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # runs from a clone too
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import interleaved, main, row, torch_or_none  # noqa: E402


def cases(dtype, n=32768, V=10000, D=128, seed=0, repeats=30):
    from layers import Embedding
    rng = np.random.default_rng(seed)
    ids = np.minimum(rng.zipf(1.2, n) - 1, V - 1).astype(np.int64)
    dy = rng.standard_normal((n, D)).astype(dtype)
    emb = Embedding(V, D, dtype=dtype, rng=seed)
    calls = repeats * 3 + 20                  # interleaved: warm-up + one untimed call per block

    for _ in range(calls):
        emb.forward(ids)

    def backward():
        emb.backward(dy)

    fns = {"engine backward": backward, "engine forward": lambda: emb.forward(ids, train=True)}
    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tw = torch.from_numpy(emb.weight.value.copy()).to(tdt).requires_grad_(True)
        tids, tdy = torch.from_numpy(ids), torch.from_numpy(dy)
        ty = torch.nn.functional.embedding(tids, tw)
        fns["PyTorch backward"] = lambda: torch.autograd.grad(ty, tw, tdy, retain_graph=True)

        def tforward():
            with torch.no_grad():
                torch.nn.functional.embedding(tids, tw)
        fns["PyTorch forward"] = tforward
    return fns, emb


def run(quick=False):
    rows = []
    for dtype in (np.float32, np.float64):
        repeats = 5 if quick else 40
        kw = dict(n=256, V=50, D=8) if quick else {}
        fns, emb = cases(dtype, repeats=repeats, **kw)
        res = interleaved(fns, repeats=repeats)
        emb.clear_saved()
        label = "256 ids into 50 x 8" if quick else "32,768 ids into 10,000 x 128"
        for what in ("backward", "forward"):
            rows.append(row("embedding", f"Embedding {what}, {label}, {np.dtype(dtype).name}",
                            res[f"engine {what}"], "PyTorch", res.get(f"PyTorch {what}")))
    return rows


if __name__ == "__main__":
    main(run)
