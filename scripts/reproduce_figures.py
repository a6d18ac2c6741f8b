#!/usr/bin/env python
"""Reproduce the lecture notes' figures with the engine.

Writes ``<out>/<id>.png`` for every figure registered in ``scripts/figures`` (ids of
../shared/FIGURES.md) and a gallery page ``<out>/index.html`` grouped like FIGURES.md, with each
figure's title, its source in the notes and its caption (filled with the computed numbers).

    python scripts/reproduce_figures.py                  # every figure into figures/
    python scripts/reproduce_figures.py --list           # registered ids, then exit
    python scripts/reproduce_figures.py --only linreg-fit activations --out /tmp/figs
    python scripts/reproduce_figures.py --quick          # small sizes (smoke test)

A figure that raises is reported and the others still run; the exit code is then 1.
The gallery lists the figures of this run only. A progress bar over the figures is shown on a
terminal or in Jupyter (engine.progress); one line per figure is printed in any case.
"""
import argparse
import html
import os
import sys
import time
import traceback

_HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (_HERE, os.path.dirname(_HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import matplotlib  # noqa: E402
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from engine.progress import progress  # noqa: E402
from figures.catalogue import CATALOGUE, GROUP_NAMES, TITLES  # noqa: E402
from figures.registry import REGISTRY, format_caption, load_all, ordered_ids  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--list", action="store_true", help="list the registered figure ids and exit")
    p.add_argument("--only", nargs="+", metavar="ID", help="draw only these figure ids")
    p.add_argument("--out", default="figures", metavar="DIR",
                   help="output directory (default: figures/)")
    p.add_argument("--quick", action="store_true",
                   help="small sizes, for smoke tests (figures are coarser)")
    p.add_argument("--dpi", type=int, default=110, help="PNG resolution (default 110)")
    return p.parse_args(argv)


def run_one(spec, out, quick, dpi):
    """Compute and save one figure; returns (caption, seconds)."""
    t0 = time.perf_counter()
    result = spec.func(quick=quick)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"{spec.id}: a figure function must return (fig, data_dict), "
                        f"got {type(result).__name__}")
    fig, data = result
    try:
        fig.savefig(os.path.join(out, f"{spec.id}.png"), dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return format_caption(spec.caption, data if isinstance(data, dict) else {}), \
        time.perf_counter() - t0


def write_index(out, entries, quick):
    """Write ``<out>/index.html``: entries = list of dicts (id, source, caption, ok, error)."""
    by_group = {}
    for e in entries:
        by_group.setdefault(CATALOGUE.get(e["id"], {}).get("group", "Other"), []).append(e)
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             "<title>handprop: figures of the lecture notes</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
             "figure{margin:2em 0;border-bottom:1px solid #ddd;padding-bottom:1em}"
             "img{max-width:100%}.src{color:#666}.err{color:#b00;white-space:pre-wrap}"
             "figcaption{margin-top:.5em}</style></head><body>",
             "<h1>Figures of the lecture notes, computed by handprop</h1>",
             "<p>Every figure below is computed by the engine (scripts/figures/); "
             "the numbers in the captions are those of this run"
             + (" (<b>quick mode</b>: small sizes)" if quick else "") + ".</p>"]
    for group in GROUP_NAMES + ["Other"]:
        if group not in by_group:
            continue
        parts.append(f"<h2>{html.escape(group)}</h2>")
        for e in by_group[group]:
            shows = CATALOGUE.get(e["id"], {}).get("shows", "")
            parts.append(f"<figure id='{html.escape(e['id'])}'>")
            title = TITLES.get(e["id"], e["id"])
            parts.append(f"<h3>{html.escape(title)} <small>({html.escape(e['id'])})</small></h3>")
            parts.append(f"<p class='src'>Source in the notes: {html.escape(e['source'])}"
                         + (f" &mdash; shows: {html.escape(shows)}" if shows else "") + "</p>")
            if e["ok"]:
                parts.append(f"<img src='{html.escape(e['id'])}.png' "
                             f"alt='{html.escape(e['id'])}'>")
                parts.append(f"<figcaption>{html.escape(e['caption'])}</figcaption>")
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
    t_all = time.perf_counter()
    with progress(total=n, desc="figures", unit="fig") as bar:
        def say(text, file=None):  # a line (stdout by default) above the bar, if one is shown
            file = sys.stdout if file is None else file
            bar.write(text, file=file)
            file.flush()

        for i, fid in enumerate(ids, 1):
            spec = REGISTRY[fid]
            bar.set_postfix_str(fid)
            t0 = time.perf_counter()
            try:
                caption, dt = run_one(spec, args.out, args.quick, args.dpi)
                entries.append(dict(id=fid, source=spec.source, caption=caption, ok=True, error=""))
                say(f"[{i}/{n}] {fid} … {dt:.1f} s")
            except Exception as exc:
                dt = time.perf_counter() - t0
                failed.append(fid)
                entries.append(dict(id=fid, source=spec.source, caption="", ok=False,
                                    error=f"{type(exc).__name__}: {exc}"))
                say(f"[{i}/{n}] {fid} … FAILED after {dt:.1f} s: {type(exc).__name__}: {exc}")
                say(traceback.format_exc().rstrip("\n"), file=sys.stderr)
            finally:
                plt.close("all")
                bar.update()
    write_index(args.out, entries, args.quick)
    print(f"{n - len(failed)}/{n} figures written to {args.out}/ "
          f"(gallery: {os.path.join(args.out, 'index.html')}) in "
          f"{time.perf_counter() - t_all:.1f} s")
    if failed:
        print(f"error: {len(failed)} figure(s) failed: {', '.join(failed)}", file=sys.stderr)
    if failed or import_failures:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
