#!/usr/bin/env python
"""Reproduce the lecture notes' figures with the engine.

Writes ``<out>/<id>.png`` (200 dpi) for every figure registered in ``scripts/figures`` (ids of
../shared/FIGURES.md), with ``--format svg`` or ``--format pdf`` a vector file beside each PNG,
and a gallery page ``<out>/index.html`` grouped by the catalogue's sections: each figure's title,
its source in the notes, its caption (filled with the computed numbers) and the numbers its
checks produced; a marked placeholder stands for every catalogue id not produced by the run.
Every figure is drawn in the common style of ``scripts/figures/style.py`` (final size ≤ 7 in
wide, 8-9 pt text, one colour-blind-safe palette).

    python scripts/reproduce_figures.py                  # every figure into figures/
    python scripts/reproduce_figures.py --format pdf     # PNG and PDF of every figure
    python scripts/reproduce_figures.py --list           # registered ids, then exit
    python scripts/reproduce_figures.py --only linreg-fit activations --out /tmp/figs
    python scripts/reproduce_figures.py --quick          # small sizes (smoke test)

A figure that raises is reported and the others still run; the exit code is then 1.
The gallery shows the figures of this run (the others as placeholders). A progress bar over the
figures is shown on a terminal or in Jupyter (engine.progress); one line per figure is printed in any case.

With more than two figures, they are drawn by ``--jobs`` worker processes (default: 2, or the
number of cores if fewer), longest first (the durations of the previous run in the same output
directory, ``.timings.json``, else built-in estimates), each worker's kernels on one thread. Every
figure still computes (and trains) everything it shows during the run. The run ends with the time
that went to Numba: compiling kernels (cache misses) and loading compiled kernels from the cache,
measured with Numba's event API (``numba:compile`` and ``numba:compiler_lock`` events).
"""
import argparse
import html
import json
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed

_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (_HERE, os.path.dirname(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from engine.progress import progress  # noqa: E402
from figures import style  # noqa: E402
from figures.catalogue import CATALOGUE, GROUP_NAMES, TITLES  # noqa: E402
from figures.registry import REGISTRY, format_caption, load_all, ordered_ids, scalars  # noqa: E402

#: vector formats written beside the PNG with --format
VECTOR_FORMATS = ("svg", "pdf")

#: seconds a figure took in a warm run (2-core VM, 2026-12-06), to start the longest first when
#: the output directory holds no timings of a previous run; ids not listed count as DEFAULT_SECONDS
EXPECTED_SECONDS = {
    "tsne-digits": 30.0, "learned-filters": 15.0, "receptive-field": 10.0,
    "universal-approximation": 8.0, "image-kernels": 7.0, "deep-vs-shallow-regions": 6.0,
    "double-descent": 5.5, "optimizers": 5.0, "linreg-fit": 4.5, "residual-variance": 4.0,
    "init-variance": 4.0, "shallow-family": 3.0, "equivariance": 2.5, "activations": 2.5,
}
DEFAULT_SECONDS = 6.0
TIMINGS_FILE = ".timings.json"


class _CompileClock:
    """Wall time spent inside outermost Numba events of one kind (nested events, e.g. a kernel
    compiling the kernels it calls, are counted once). Install with :meth:`install`."""

    def __init__(self, kind):
        from numba.core import event
        clock = self

        class _Listener(event.Listener):
            def on_start(self, ev):
                if clock.depth == 0:
                    clock.t0 = time.perf_counter()
                clock.depth += 1

            def on_end(self, ev):
                clock.depth -= 1
                if clock.depth == 0:
                    clock.total += time.perf_counter() - clock.t0

        self.kind, self.depth, self.t0, self.total = kind, 0, 0.0, 0.0
        self.listener = _Listener()
        event.register(kind, self.listener)

    def close(self):
        from numba.core import event
        event.unregister(self.kind, self.listener)


class KernelClock:
    """Seconds spent compiling kernels (``numba:compile``: cache misses) and in the compiler lock
    at all (``numba:compiler_lock``: compiling plus loading compiled kernels from the cache)."""

    def __init__(self):
        self._compile = _CompileClock("numba:compile")
        self._lock = _CompileClock("numba:compiler_lock")

    def read(self):
        """(compile seconds, compile-or-load seconds) so far."""
        return self._compile.total, self._lock.total

    def close(self):
        self._compile.close()
        self._lock.close()


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list the registered figure ids and exit")
    p.add_argument("--only", nargs="+", metavar="ID", help="draw only these figure ids")
    p.add_argument("--out", default="figures", metavar="DIR",
                   help="output directory (default: figures/)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, for smoke tests (figures are coarser)")
    p.add_argument("--dpi", type=int, default=style.DPI,
                   help=f"PNG resolution (default {style.DPI})")
    p.add_argument("--format", choices=("png",) + VECTOR_FORMATS, default="png",
                   help="png (default): PNG only; svg or pdf: also a vector file beside each PNG")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="worker processes (default: 2 when more than two figures are drawn, at "
                        "most the number of cores; 1: everything in this process)")
    args = p.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        p.error(f"--jobs: expected a positive number of worker processes, got {args.jobs}")
    return args


def save(fig, out, fid, dpi, fmt="png"):
    """Write ``<out>/<fid>.png`` and, for fmt svg/pdf, ``<out>/<fid>.<fmt>``; returns the paths."""
    paths = [os.path.join(out, f"{fid}.png")]
    if fmt in VECTOR_FORMATS:
        paths.append(os.path.join(out, f"{fid}.{fmt}"))
    for path in paths:
        fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.03,
                    metadata={"Date": None} if path.endswith(".svg") else None)
    return paths


def run_one(spec, out, quick, dpi, fmt="png"):
    """Compute and save one figure; returns (caption, numbers, seconds): numbers are the
    scalar entries of the figure's data dict."""
    t0 = time.perf_counter()
    result = spec.func(quick=quick)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"{spec.id}: a figure function must return (fig, data_dict), "
                        f"got {type(result).__name__}")
    fig, data = result
    try:
        with style.rc_context():   # (the registry has brought the figure to the style)
            save(fig, out, spec.id, dpi, fmt)
    finally:
        plt.close(fig)
    data = data if isinstance(data, dict) else {}
    return format_caption(spec.caption, data), scalars(data), time.perf_counter() - t0


def draw_entry(fid, out, quick, dpi, fmt, clock=None):
    """Run one figure and describe the result as a gallery entry (a picklable dict): id, source,
    caption, numbers, ok, error, traceback, seconds, and the Numba seconds spent in it."""
    spec = REGISTRY[fid]
    c0 = clock.read() if clock is not None else (0.0, 0.0)
    t0 = time.perf_counter()
    try:
        caption, numbers, dt = run_one(spec, out, quick, dpi, fmt)
        entry = dict(id=fid, source=spec.source, caption=caption, numbers=numbers, ok=True,
                     error="", traceback="", seconds=dt)
    except Exception as exc:
        entry = dict(id=fid, source=spec.source, caption="", numbers={}, ok=False,
                     error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(),
                     seconds=time.perf_counter() - t0)
    finally:
        plt.close("all")
    c1 = clock.read() if clock is not None else (0.0, 0.0)
    entry["compile_seconds"] = c1[0] - c0[0]
    entry["kernel_seconds"] = c1[1] - c0[1]
    return entry


_WORKER_CLOCK = None


def _worker_init():
    """In a worker process (started fresh, "spawn": the parent may already run OpenMP threads,
    which a fork would break): kernels on one thread (the workers share the cores), the figure
    modules registered, a kernel clock."""
    global _WORKER_CLOCK
    matplotlib.use("Agg")
    from engine import threads
    threads.set_num_threads(1)
    load_all()
    _WORKER_CLOCK = KernelClock()


def _worker_draw(fid, out, quick, dpi, fmt):
    return draw_entry(fid, out, quick, dpi, fmt, _WORKER_CLOCK)


def longest_first(ids, out):
    """``ids`` ordered by expected duration, longest first: the previous run's timings in
    ``out/.timings.json`` where present, else :data:`EXPECTED_SECONDS`."""
    try:
        with open(os.path.join(out, TIMINGS_FILE), encoding="utf-8") as f:
            previous = {k: float(v) for k, v in json.load(f).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        previous = {}
    cost = {fid: previous.get(fid, EXPECTED_SECONDS.get(fid, DEFAULT_SECONDS)) for fid in ids}
    return sorted(ids, key=lambda fid: -cost[fid])


def _save_timings(out, entries):
    path = os.path.join(out, TIMINGS_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            timings = json.load(f)
        if not isinstance(timings, dict):
            timings = {}
    except (OSError, ValueError):
        timings = {}
    timings.update({e["id"]: round(e["seconds"], 2) for e in entries if e["ok"]})
    try:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(timings, f, indent=0, sort_keys=True)
    except OSError:
        pass


def default_jobs(n_figures):
    """Worker processes for a run of ``n_figures``: none (1, in this process) for one or two
    figures, else up to 2, at most the number of cores."""
    if n_figures <= 2:
        return 1
    return max(1, min(2, os.cpu_count() or 1))


def _number(v):
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
        return f"{v:.3g}"
    return f"{v:.4g}"


def write_index(out, entries, quick, fmt="png"):
    """Write ``<out>/index.html``: the figures grouped by the catalogue's sections, in catalogue
    order; entries = list of dicts (id, source, caption, numbers, ok, error). A catalogue id
    without an entry gets a marked placeholder."""
    by_id = {e["id"]: e for e in entries}
    groups = {g: [] for g in GROUP_NAMES}
    for fid, entry in CATALOGUE.items():
        groups[entry["group"]].append(fid)
    others = [e["id"] for e in entries if e["id"] not in CATALOGUE]
    if others:
        groups["Other"] = others
    n_missing = sum(fid not in by_id for fid in CATALOGUE)
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             "<title>handprop: figures of the lecture notes</title>",
             "<style>body{font-family:sans-serif;max-width:1000px;margin:auto;padding:1em}"
             "figure{margin:2em 0;border-bottom:1px solid #ddd;padding-bottom:1em}"
             "img{width:100%;max-width:6.5in}.src{color:#555}.err{color:#b00;white-space:pre-wrap}"
             ".missing{border:2px dashed #c90;background:#fff8e6;padding:.5em 1em}"
             ".nums{font-size:90%;color:#333}.nums td{padding:0 1em 0 0}"
             "figcaption{margin-top:.5em}nav a{margin-right:1em}</style></head><body>",
             "<h1>Figures of the lecture notes, computed by handprop</h1>",
             "<p>Every figure below is computed by the engine (scripts/figures/); "
             "the numbers in the captions are those of this run"
             + (" (<b>quick mode</b>: small sizes)" if quick else "") + ". "
             f"{len(by_id)} figure(s) in this run; {n_missing} catalogue figure(s) not produced "
             "(marked <i>not produced</i>).</p>",
             "<nav>" + "".join(f"<a href='#sec-{i}'>{html.escape(g)}</a>"
                               for i, g in enumerate(groups)) + "</nav>"]
    for i, (group, ids) in enumerate(groups.items()):
        parts.append(f"<h2 id='sec-{i}'>{html.escape(group)}</h2>")
        for fid in ids:
            entry = CATALOGUE.get(fid, {})
            e = by_id.get(fid)
            title = TITLES.get(fid, fid)
            source = e["source"] if e else entry.get("source", "")
            cls = "" if e else " class='missing'"
            parts.append(f"<figure id='{html.escape(fid)}'{cls}>")
            parts.append(f"<h3>{html.escape(title)} <small>({html.escape(fid)})</small></h3>")
            parts.append(f"<p class='src'>Source in the notes: {html.escape(source)}"
                         + (f" &mdash; shows: {html.escape(entry['shows'])}"
                            if entry.get("shows") else "") + "</p>")
            if e is None:
                why = ("not registered yet" if fid not in REGISTRY else "not drawn in this run")
                parts.append(f"<p><b>Not produced</b> ({why}).</p>")
            elif e["ok"]:
                links = "".join(f" <a href='{html.escape(fid)}.{x}'>{x.upper()}</a>"
                                for x in VECTOR_FORMATS if x == fmt)
                parts.append(f"<img src='{html.escape(fid)}.png' alt='{html.escape(title)}'>")
                parts.append(f"<figcaption>{html.escape(e['caption'])}{links}</figcaption>")
                checks = entry.get("checks", "")
                if checks and checks != "—":
                    parts.append(f"<p class='nums'>Checked: {html.escape(checks)}</p>")
                nums = e.get("numbers") or {}
                if nums:
                    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(_number(v))}"
                                   "</td></tr>" for k, v in nums.items())
                    parts.append("<details class='nums'><summary>Numbers of this run</summary>"
                                 f"<table>{rows}</table></details>")
            else:
                parts.append(f"<p class='err'>Failed: {html.escape(e['error'])}</p>")
            parts.append("</figure>")
    parts.append("</body></html>")
    with open(os.path.join(out, "index.html"), "w", encoding="utf-8") as f:
        f.write("\n".join(parts) + "\n")


def main(argv=None):
    args = parse_args(argv)
    import_failures = load_all()
    for name, exc in import_failures.items():
        print(f"error: could not import {name}: {type(exc).__name__}: {exc}", file=sys.stderr)
    ids = ordered_ids()

    if args.list:
        for fid in ids:
            spec = REGISTRY[fid]
            print(f"{fid:28s} {spec.source:28s} {CATALOGUE[fid]['group']}")
        return 1 if import_failures else 0

    if args.only:
        unknown = [fid for fid in args.only if fid not in REGISTRY]
        if unknown:
            known = ", ".join(ids)
            print(f"error: unknown figure id(s): {', '.join(unknown)}. "
                  f"Registered ids: {known}", file=sys.stderr)
            return 2
        ids = [fid for fid in ids if fid in set(args.only)]

    os.makedirs(args.out, exist_ok=True)
    entries, failed = [], []
    n = len(ids)
    jobs = args.jobs if args.jobs is not None else default_jobs(n)
    clock = KernelClock()
    t_all = time.perf_counter()
    with progress(total=n, desc="figures", unit="fig") as bar:
        def say(text, file=None):  # a line (stdout by default) above the bar, if one is shown
            file = sys.stdout if file is None else file
            bar.write(text, file=file)
            file.flush()

        def report(entry):
            entries.append(entry)
            i = len(entries)
            fid = entry["id"]
            comp = entry.get("compile_seconds", 0.0)
            if entry["ok"]:
                say(f"[{i}/{n}] {fid} … {entry['seconds']:.1f} s"
                    + (f" (compiling kernels {comp:.1f} s)" if comp >= 0.05 else ""))
            else:
                failed.append(fid)
                say(f"[{i}/{n}] {fid} … FAILED after {entry['seconds']:.1f} s: {entry['error']}")
                say(entry["traceback"].rstrip("\n"), file=sys.stderr)
            bar.set_postfix_str(fid)
            bar.update()

        if jobs == 1:
            for fid in ids:
                bar.set_postfix_str(fid)
                report(draw_entry(fid, args.out, args.quick, args.dpi, args.format, clock))
        else:
            order = longest_first(ids, args.out)
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx,
                                     initializer=_worker_init) as ex:
                futures = {ex.submit(_worker_draw, fid, args.out, args.quick, args.dpi,
                                     args.format): fid for fid in order}
                for fut in as_completed(futures):
                    try:
                        report(fut.result())
                    except Exception as exc:   # the worker itself died
                        fid = futures[fut]
                        report(dict(id=fid, source=REGISTRY[fid].source, caption="", numbers={},
                                    ok=False, error=f"{type(exc).__name__}: {exc}",
                                    traceback=traceback.format_exc(), seconds=0.0,
                                    compile_seconds=0.0, kernel_seconds=0.0))
    wall = time.perf_counter() - t_all
    clock.close()
    _save_timings(args.out, entries)
    write_index(args.out, entries, args.quick, args.format)
    print(f"{n - len(failed)}/{n} figures written to {args.out}/ "
          f"(gallery: {os.path.join(args.out, 'index.html')}) in {wall:.1f} s"
          + (f" ({jobs} worker processes)" if jobs > 1 else ""))
    fig_s = sum(e["seconds"] for e in entries)
    comp = sum(e["compile_seconds"] for e in entries)
    kern = sum(e["kernel_seconds"] for e in entries)
    print(f"Numba: {comp:.1f} s compiling kernels (cache misses) and {max(kern - comp, 0.0):.1f} s "
          f"loading compiled kernels from the cache, of {fig_s:.1f} s spent drawing figures"
          + (" (summed over the workers)" if jobs > 1 else ""))
    if failed:
        print(f"error: {len(failed)} figure(s) failed: {', '.join(failed)}", file=sys.stderr)
    if failed or import_failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
