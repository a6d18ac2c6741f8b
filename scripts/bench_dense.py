"""Benchmark group "dense": one training step (forward, backward, SGD update) of
Linear(784→512)-ReLU-Linear(→10)-softmax cross-entropy at batch 256, float32 and float64.

Engine: the notes' fused MLP, and the same network as a Sequential of layers. Peers: PyTorch
(same thread count, same process) and a plain NumPy implementation of the same step.

The "BLAS floor" row times, in the same alternation, only the step's two large products (the
forward of Linear(784→512) and its weight gradient, 205 MFLOP each, through the engine's Linear
kernels, so the same BLAS, split and threads as the MLP): no step built on this BLAS is faster.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import interleaved, main, row, torch_or_none  # noqa: E402

LR = 0.01


def numpy_step(X, y, W1, b1, W2, b2):
    """The same step written with NumPy array operations (the peer every student writes first)."""
    f0 = X @ W1.T + b1
    h1 = np.maximum(f0, 0)
    f1 = h1 @ W2.T + b2
    p = np.exp(f1 - f1.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    df1 = p / len(y)
    dW2, db2 = df1.T @ h1, df1.sum(0)
    df0 = (df1 @ W2) * (f0 > 0)
    dW1, db1 = df0.T @ X, df0.sum(0)
    for a, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2)):
        a -= LR * g


def _floor(X, hidden, dtype, seed):
    """Linear(D_in → hidden) forward and weight gradient only (no input gradient, loss or update)."""
    from layers import Linear
    lin = Linear(X.shape[1], hidden, dtype=dtype, rng=seed)
    dF = np.random.default_rng(seed + 1).standard_normal((X.shape[0], hidden)).astype(dtype)

    def floor():
        lin.forward(X)
        lin.backward(dF, input_grad=False)
    return floor


def cases(dtype, batch=256, d_in=784, hidden=512, classes=10, seed=0, peers=True):
    """The step as closures for the engine (MLP, Sequential) and, with `peers`, PyTorch, NumPy and
    the BLAS floor."""
    from engine import Sequential
    from engine.losses import CrossEntropyLoss
    from engine.optim import SGD
    from layers import MLP, Linear, ReLU
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch, d_in)).astype(dtype)
    y = rng.integers(0, classes, batch)
    mlp = MLP([d_in, hidden, classes], dtype=dtype, rng=seed)
    seq = Sequential(Linear(d_in, hidden, dtype=dtype, rng=seed), ReLU(), Linear(hidden, classes, dtype=dtype, rng=seed))
    fns = {}
    for name, model in (("MLP", mlp), ("Sequential", seq)):
        loss, opt = CrossEntropyLoss(), SGD(model.parameters(), lr=LR)

        def step(model=model, loss=loss, opt=opt):
            opt.zero_grad()
            loss.forward(model.forward(X), y)
            model.backward(loss.backward(), input_grad=False)
            opt.step()
        fns[name] = step
    if not peers:
        return fns
    fns["floor"] = _floor(X, hidden, dtype, seed)
    W1, b1, W2, b2 = (mlp.state_dict()[k].copy() for k in ("0.weight", "0.bias", "2.weight", "2.bias"))
    fns["NumPy"] = lambda: numpy_step(X, y, W1, b1, W2, b2)
    torch = torch_or_none()
    if torch is not None:
        tdt = torch.float32 if dtype == np.float32 else torch.float64
        tm = torch.nn.Sequential(torch.nn.Linear(d_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, classes)).to(tdt)
        topt = torch.optim.SGD(tm.parameters(), lr=LR)
        tX, ty, tloss = torch.from_numpy(X), torch.from_numpy(y), torch.nn.CrossEntropyLoss()

        def tstep():
            topt.zero_grad()
            tloss(tm(tX), ty).backward()
            topt.step()
        fns["PyTorch"] = tstep
    return fns


def run(quick=False):
    rows = []
    for dtype in (np.float32, np.float64):
        kw = dict(batch=16, d_in=20, hidden=8, classes=3) if quick else {}
        fns = cases(dtype, **kw)
        res = interleaved(fns, repeats=5 if quick else 60)
        peer = res.get("PyTorch")
        label = "784-512-10 CE step, batch 256" if not quick else "20-8-3 CE step, batch 16"
        for name in ("MLP", "Sequential"):
            rows.append(row("dense", f"{label}, {np.dtype(dtype).name}, {name}", res[name],
                            "PyTorch", peer, numpy_ms=res["NumPy"][0]))
        rows.append(row("dense", f"{label}, {np.dtype(dtype).name}, NumPy peer", res["NumPy"], "PyTorch", peer))
        rows.append(row("dense", f"{label}, {np.dtype(dtype).name}: BLAS floor, its two large GEMMs alone",
                        res["floor"], "PyTorch", peer))
    if not quick:
        rows += first_run_rows()
    return rows


def first_step_seconds(cache_dir, dtype="float32"):
    """Seconds from a fresh process's start of imports to the end of its first MLP training step,
    with Numba's cache in `cache_dir` (empty: everything compiles; warm: loaded from disk)."""
    import subprocess
    # sys.modules["torch"] = None: benchlib imports PyTorch when it can, and its import time is
    # not the engine's
    code = ("import time; t = time.perf_counter(); import sys; sys.modules['torch'] = None; "
            "sys.path.insert(0, %r); sys.path.insert(0, %r); "
            "import bench_dense, numpy as np; bench_dense.cases(np.%s, peers=False)['MLP'](); "
            "print(time.perf_counter() - t)") % (os.path.dirname(os.path.abspath(__file__)),
                                               os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."), dtype)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    return float(out.stdout.strip().splitlines()[-1])


def first_run_rows():
    """The first step's cost with an empty Numba cache and with a warm one (PERFORMANCE.md lesson 6)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        cold = first_step_seconds(d)
        warm = first_step_seconds(d)
    return [{"group": "dense", "case": "first MLP step in a new process (import + compile), empty Numba cache",
             "engine_ms": cold * 1e3, "engine_range": (cold * 1e3, cold * 1e3), "peer": None,
             "peer_ms": None, "ratio": None},
            {"group": "dense", "case": "first MLP step in a new process (import + cache load), warm Numba cache",
             "engine_ms": warm * 1e3, "engine_range": (warm * 1e3, warm * 1e3), "peer": None,
             "peer_ms": None, "ratio": None}]


if __name__ == "__main__":
    main(run)
