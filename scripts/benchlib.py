"""Timing helpers shared by the benchmark groups (scripts/bench_*.py).

Every ratio compares the engine with a peer timed in the same process and run, on the same thread
count, as medians over repeats (PERFORMANCE.md lesson 7: this VM varies by up to ±30% between
processes, so only same-run ratios mean anything).
"""
import time

import numpy as np

try:
    # PyTorch must be imported before the engine: both bundle an OpenMP runtime with the soname
    # libgomp.so.1, and whichever loads first serves both. With Numba's loaded first, PyTorch's
    # float64 convolutions ran 8x slower (113 vs 14 ms, measured 2026-11-21), which made the
    # engine look faster than it is. Importing torch here, before any bench script imports the
    # engine, times PyTorch as a PyTorch user has it.
    import torch as _torch  # noqa: F401
except ImportError:
    _torch = None


def timeit(fn, repeats=30, warmup=3, min_seconds=0.0):
    """Median and (min, max) wall time of fn() in milliseconds, after `warmup` calls."""
    for _ in range(warmup):
        fn()
    times = []
    start = time.perf_counter()
    while len(times) < repeats or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), (float(np.min(times)), float(np.max(times)))


def interleaved(fns, repeats=30, warmup=3, block=5, rest=0.05):
    """Time several functions in alternation (so machine noise hits them alike), in blocks:
    `block` timed calls of one function, then the next, until each has `repeats` timings.
    Returns {name: (median_ms, (min_ms, max_ms))}.

    Why blocks and a rest: the engine's Numba threads and PyTorch's OpenMP threads both spin for
    about 10 ms after each parallel region before they sleep (measured 2026-11-21: ~12 ms of CPU
    time during a sleep right after one call). Alternating call by call therefore runs each
    function on a 2-core machine against the other runtime's spinning threads, a cost no training
    loop using one framework pays. Before each block: `rest` seconds of sleep (the other runtime's
    threads go quiet), then one untimed call (this function's own threads are awake, as in a loop).
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    while any(len(v) < repeats for v in times.values()):
        for k, fn in fns.items():
            time.sleep(rest)
            fn()
            for _ in range(min(block, repeats - len(times[k]))):
                t = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t) * 1e3)
    return {k: (float(np.median(v)), (float(np.min(v)), float(np.max(v)))) for k, v in times.items()}


def row(group, case, engine, peer_name, peer, **extra):
    """A result row; engine and peer are (median_ms, (min, max)) or None."""
    r = {"group": group, "case": case, "engine_ms": engine[0], "engine_range": engine[1],
         "peer": peer_name, "peer_ms": peer[0] if peer else None,
         "peer_range": peer[1] if peer else None,
         "ratio": engine[0] / peer[0] if peer else None}
    r.update(extra)
    return r


def torch_or_none():
    """PyTorch set to the engine's thread count, or None when it is not installed."""
    if _torch is None:
        return None
    torch = _torch
    from engine.threads import num_threads
    torch.set_num_threads(num_threads())
    return torch


def format_table(rows):
    lines = [f"{'group':8} {'case':52} {'engine ms':>18} {'peer':>10} {'peer ms':>18} {'ratio':>6}"]
    for r in rows:
        e = f"{r['engine_ms']:.2f} [{r['engine_range'][0]:.2f}-{r['engine_range'][1]:.2f}]" if r.get("engine_ms") is not None else "-"
        p = f"{r['peer_ms']:.2f} [{r['peer_range'][0]:.2f}-{r['peer_range'][1]:.2f}]" if r.get("peer_ms") is not None and r.get("peer_range") else (f"{r['peer_ms']:.2f}" if r.get("peer_ms") is not None else "n/a")
        ratio = f"{r['ratio']:.2f}" if r.get("ratio") is not None else "-"
        lines.append(f"{r['group']:8} {r['case']:52} {e:>18} {str(r['peer']):>10} {p:>18} {ratio:>6}")
    return "\n".join(lines)


def quality(r):
    """KL divergence and trustworthiness, engine vs peer, for rows that carry them (t-SNE)."""
    parts = []
    for key, name in (("kl", "KL"), ("trust", "trust.")):
        if r.get(f"{key}_engine") is not None:
            peer = f" vs {r[key + '_peer']:.4f}" if r.get(f"{key}_peer") is not None else ""
            parts.append(f"{name} {r[key + '_engine']:.4f}{peer}")
    return "; ".join(parts) or "–"


def markdown_table(rows, date, machine):
    """The README's benchmark table: one line per row, ms median [range], ratio to the peer."""
    head = (f"Measured {date} on {machine.get('cpu', '?')} ({machine.get('cores', '?')} cores), "
            f"Python {machine.get('python')}, numba {machine.get('numba')}, numpy {machine.get('numpy')}"
            + (f", torch {machine['torch']}" if "torch" in machine else "") + ".\n"
            "Ratio = engine / peer, both timed in the same process and run, same thread count, "
            "alternating in blocks after a rest (benchlib.interleaved), PyTorch imported first; "
            "below 1 the engine is faster. Times are medians [min–max] in ms.\n\n")
    lines = ["| group | case | engine ms | peer | peer ms | ratio | quality |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        e = f"{r['engine_ms']:.2f} [{r['engine_range'][0]:.2f}–{r['engine_range'][1]:.2f}]"
        p = (f"{r['peer_ms']:.2f}" + (f" [{r['peer_range'][0]:.2f}–{r['peer_range'][1]:.2f}]" if r.get("peer_range") else "")
             if r.get("peer_ms") is not None else "–")
        ratio = f"**{r['ratio']:.2f}**" if r.get("ratio") is not None else "–"
        lines.append(f"| {r['group']} | {r['case']} | {e} | {r.get('peer') or '–'} | {p} | {ratio} | {quality(r)} |")
    return head + "\n".join(lines) + "\n"


def main(run):
    """A group's script run on its own: `python scripts/bench_<group>.py [--quick] [--threads N]` prints its table."""
    import sys
    import time
    if "--threads" in sys.argv:          # e.g. --threads 1: both sides on one thread (a loaded machine)
        from engine.threads import set_num_threads
        set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]))
    t0 = time.perf_counter()
    print(format_table(run("--quick" in sys.argv)))
    print(f"({time.perf_counter() - t0:.1f} s)")
