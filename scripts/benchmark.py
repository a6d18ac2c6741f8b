"""Benchmarks: the engine against PyTorch (and NumPy, scikit-learn, openTSNE) in the same run.

    python scripts/benchmark.py                 # every group
    python scripts/benchmark.py --only dense    # one group (scripts/bench_<group>.py)
    python scripts/benchmark.py --quick         # tiny sizes: a smoke test of the script itself

Prints one row per case, ms per step (median [min-max]) and the ratio engine / peer (below 1 is
faster than the peer), and writes the rows with the machine and date to a JSON file. Each group
lives in scripts/bench_<group>.py and exposes run(quick) -> rows; the groups are discovered from
those files, so a new family adds its bench_<family>.py and nothing else.
"""
import argparse
import datetime
import glob
import importlib
import json
import os
import platform
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))   # runs from a clone too
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import format_table, markdown_table  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GROUPS = sorted(os.path.basename(p)[len("bench_"):-3] for p in glob.glob(os.path.join(HERE, "bench_*.py")))


def machine():
    import numba
    import numpy
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numba": numba.__version__, "numpy": numpy.__version__}
    try:
        import torch
        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=GROUPS, help="groups to run")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--json", default="bench_results.json", help="where to write the rows")
    args = ap.parse_args(argv)
    rows = []
    for g in args.only or GROUPS:
        try:
            mod = importlib.import_module(f"bench_{g}")
        except ImportError as e:
            print(f"[{g}] skipped: {e}")
            continue
        print(f"[{g}] running ...", flush=True)
        rows += mod.run(args.quick)
    print(format_table(rows))
    out = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
           "machine": machine(), "quick": args.quick, "rows": rows}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    md = os.path.splitext(args.json)[0] + ".md"
    with open(md, "w") as f:
        f.write(markdown_table(rows, out["date"], out["machine"]))
    print(f"wrote {args.json} and {md} (the README's table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
