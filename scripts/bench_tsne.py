"""t-SNE benchmark group: analysis.tsne.TSNE against scikit-learn's TSNE and openTSNE.

Cases: the digits (1,797 × 64) and a 20,000-point, 50-dimensional Gaussian mixture generated
here (`gaussian_mixture`). Every program runs the same schedule at the same perplexity (30):
Barnes-Hut with θ = 0.5, PCA initialisation, 250 iterations with early exaggeration 12, then
750 more (1,000 in all), "auto" learning rate, 2 threads. Peers keep their other defaults
(openTSNE: momentum 0.8 throughout, its own neighbour search; scikit-learn: ⌊3·perplexity + 1⌋
exact neighbours). Importing the engine pins BLAS to one thread (engine.threads); the peers'
BLAS calls get 2 threads back during their runs. Runs are interleaved (engine, scikit-learn,
openTSNE, engine, ...) so that the noise of a shared machine falls on all alike; times are
wall-clock medians with their range.

Quality, computed the same way for every embedding:
- kl_*: KL(P‖Q) under the engine's P (exact neighbours, perplexity 30) with the exact Z over
  all pairs (`analysis.tsne.kl_divergence`), so the numbers compare across programs;
  kl_*_own is what each program reports itself (Barnes-Hut estimates of Z; openTSNE's is the
  KL under its own P).
- trust_*: trustworthiness with 5 neighbours (`analysis.tsne.trustworthiness`, equal to
  scikit-learn's without distance ties, and linear in memory).

    python scripts/bench_tsne.py [--quick] [--case digits|gmm]

`run(quick)` returns the rows (one per case and peer) for scripts/benchmark.py.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

PERPLEXITY = 30.0
N_ITER = 1000
EXAGGERATION_ITER = 250
THREADS = 2


def gaussian_mixture(n=20000, d=50, n_clusters=10, seed=0):
    """n points in d dimensions from `n_clusters` isotropic Gaussians (unit variance) whose
    centres are drawn from N(0, 3² I) — well separated clusters with overlap at their rims —
    and random (Dirichlet) cluster weights. Returns X (n, d) float64 and the labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 3.0, size=(n_clusters, d))
    weights = rng.dirichlet(np.full(n_clusters, 5.0))
    labels = rng.choice(n_clusters, size=n, p=weights)
    X = centres[labels] + rng.standard_normal((n, d))
    return X, labels


def _digits():
    try:
        from engine.data import load_digits
        X, y = load_digits()
    except Exception:  # engine.data not there: scikit-learn's copy (the same rows)
        from sklearn.datasets import load_digits as sk_load
        X, y = sk_load(return_X_y=True)
    return np.ascontiguousarray(X, dtype=np.float64), y


def _engine(X, seed, n_iter):
    from analysis.tsne import TSNE
    t = TSNE(perplexity=PERPLEXITY, max_iter=n_iter, init="pca", method="barnes_hut", angle=0.5,
             random_state=seed)
    t0 = time.perf_counter()
    Y = t.fit_transform(X)
    return time.perf_counter() - t0, Y, t.kl_divergence_


def _peer_blas():
    """Give the peers' BLAS calls (neighbour search, PCA) the benchmark's thread count back:
    importing the engine pins BLAS to one thread for its own kernels."""
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=THREADS, user_api="blas")
    except ImportError:
        import contextlib
        return contextlib.nullcontext()


def _sklearn(X, seed, n_iter):
    with _peer_blas():
        return _sklearn_run(X, seed, n_iter)


def _opentsne(X, seed, n_iter):
    with _peer_blas():
        return _opentsne_run(X, seed, n_iter)


def _sklearn_run(X, seed, n_iter):
    from sklearn.manifold import TSNE
    t = TSNE(perplexity=PERPLEXITY, max_iter=n_iter, init="pca", method="barnes_hut", angle=0.5,
             early_exaggeration=12.0, learning_rate="auto", random_state=seed, n_jobs=THREADS)
    t0 = time.perf_counter()
    Y = t.fit_transform(X)
    return time.perf_counter() - t0, Y, float(t.kl_divergence_)


def _opentsne_run(X, seed, n_iter):
    import openTSNE
    t = openTSNE.TSNE(perplexity=PERPLEXITY, n_iter=n_iter - EXAGGERATION_ITER,
                      early_exaggeration_iter=EXAGGERATION_ITER, early_exaggeration=12.0,
                      learning_rate="auto", negative_gradient_method="bh", theta=0.5,
                      initialization="pca", n_jobs=THREADS, random_state=seed)
    t0 = time.perf_counter()
    emb = t.fit(X)
    return time.perf_counter() - t0, np.asarray(emb), float(emb.kl_divergence)


PEERS = [("scikit-learn", "sklearn", _sklearn), ("openTSNE", "openTSNE", _opentsne)]


def _available(module):
    try:
        __import__(module)
        return True
    except Exception:
        return False


def _quality(X, Y, P):
    from analysis.tsne import kl_divergence, trustworthiness
    return kl_divergence(P, Y), trustworthiness(X, Y, n_neighbors=5)


def bench_case(name, X, repeats, log=print, n_iter=N_ITER):
    """Time engine and peers on X, interleaved, `repeats` times; return the rows."""
    from analysis.tsne import joint_probabilities
    peers = [(label, fn) for label, mod, fn in PEERS if _available(mod)]
    missing = [label for label, mod, _ in PEERS if not _available(mod)]
    times = {"engine": []}
    out = {}
    for label, _ in peers:
        times[label] = []
    for r in range(repeats):
        for label, fn in [("engine", _engine)] + peers:
            t, Y, kl_own = fn(X, r, n_iter)
            times[label].append(t)
            out.setdefault(label, (Y, kl_own))
            log(f"  {name:>24s}  {label:>12s}  run {r + 1}/{repeats}: {t:7.2f} s")
    P = joint_probabilities(X, PERPLEXITY)
    qual = {label: _quality(X, out[label][0], P) for label in out}
    e_ms = [1e3 * t for t in times["engine"]]
    rows = []
    for label, _ in peers:
        p_ms = [1e3 * t for t in times[label]]
        rows.append({
            "group": "tsne", "case": name,
            "engine_ms": statistics.median(e_ms), "engine_range": (min(e_ms), max(e_ms)),
            "peer": label, "peer_ms": statistics.median(p_ms), "peer_range": (min(p_ms), max(p_ms)),
            "ratio": statistics.median(e_ms) / statistics.median(p_ms),
            "kl_engine": qual["engine"][0], "kl_peer": qual[label][0],
            "kl_engine_own": out["engine"][1], "kl_peer_own": out[label][1],
            "trust_engine": qual["engine"][1], "trust_peer": qual[label][1],
            "repeats": repeats, "iterations": n_iter,
        })
    for label in missing:
        rows.append({
            "group": "tsne", "case": name,
            "engine_ms": statistics.median(e_ms), "engine_range": (min(e_ms), max(e_ms)),
            "peer": f"{label} (not installed)", "peer_ms": None, "ratio": None,
            "kl_engine": qual["engine"][0], "trust_engine": qual["engine"][1], "repeats": repeats,
        })
    return rows


def _warm_up():
    """Compile (or load from cache) the engine's kernels outside the timed runs."""
    X, _ = gaussian_mixture(n=200, d=5, n_clusters=3, seed=1)
    from analysis.tsne import TSNE, joint_probabilities, kl_divergence, trustworthiness
    Y = TSNE(perplexity=10, max_iter=60, random_state=0).fit_transform(X)
    kl_divergence(joint_probabilities(X, 10), Y)
    trustworthiness(X, Y, 5)


def run(quick, cases=("digits", "gmm"), log=print):
    """Rows of the t-SNE group. quick: small data, 300 iterations, one repeat (a smoke test)."""
    _warm_up()
    rows = []
    n_iter = 300 if quick else N_ITER
    if "digits" in cases:
        X, _ = _digits()
        if quick:
            X = X[:400]
        rows += bench_case(f"digits {X.shape[0]}x{X.shape[1]}", X, 1 if quick else 5, log, n_iter)
    if "gmm" in cases:
        n, d = (1000, 10) if quick else (20000, 50)
        X, _ = gaussian_mixture(n=n, d=d)
        rows += bench_case(f"gaussian mixture {n}x{d}", X, 1, log, n_iter)
    return rows


def format_rows(rows):
    head = (f"{'case':>26s} {'peer':>14s} {'engine s':>17s} {'peer s':>17s} {'ratio':>6s}"
            f" {'KL eng':>7s} {'KL peer':>7s} {'dKL':>6s} {'T eng':>6s} {'T peer':>6s}")
    lines = [head]
    for r in rows:
        e = f"{r['engine_ms'] / 1e3:.2f} [{r['engine_range'][0] / 1e3:.2f},{r['engine_range'][1] / 1e3:.2f}]"
        if r["peer_ms"] is None:
            lines.append(f"{r['case']:>26s} {r['peer']:>14s} {e:>17s} {'-':>17s} {'-':>6s}"
                         f" {r['kl_engine']:7.4f} {'-':>7s} {'-':>6s} {r['trust_engine']:6.4f} {'-':>6s}")
            continue
        p = f"{r['peer_ms'] / 1e3:.2f} [{r['peer_range'][0] / 1e3:.2f},{r['peer_range'][1] / 1e3:.2f}]"
        dkl = 100.0 * (r["kl_engine"] - r["kl_peer"]) / r["kl_peer"]
        lines.append(f"{r['case']:>26s} {r['peer']:>14s} {e:>17s} {p:>17s} {r['ratio']:6.2f}"
                     f" {r['kl_engine']:7.4f} {r['kl_peer']:7.4f} {dkl:+5.1f}% {r['trust_engine']:6.4f}"
                     f" {r['trust_peer']:6.4f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    ap.add_argument("--case", choices=["digits", "gmm"], action="append",
                    help="run only this case (repeatable); default both")
    args = ap.parse_args(argv)
    cases = tuple(args.case) if args.case else ("digits", "gmm")
    print(f"t-SNE benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores; {300 if args.quick else N_ITER} iterations, perplexity {PERPLEXITY:g}, theta 0.5, "
          f"{THREADS} threads; ratio = engine / peer (median wall time)")
    rows = run(args.quick, cases)
    print(format_rows(rows))
    return rows


if __name__ == "__main__":
    main()
