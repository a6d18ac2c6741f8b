"""The gradient-check report: every registered layer, loss and option against central differences.

    python scripts/check_gradients.py            # all cases
    python scripts/check_gradients.py conv        # only cases whose name contains "conv"

Cases come from scripts/gradcases_<family>.py (each defines CASES = [(name, make)], make(rng)
returning ("layer", layer, [inputs]) or ("loss", loss, pred, target, kwargs)). For each case it
prints the largest relative error |a − n| / max(1e-8, |a| + |n|) of every input and parameter
array (engine.gradcheck, float64, random upstream gradient) and PASS/FAIL; it exits 1 if any
case fails or cannot run.
"""
import glob
import importlib
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

TOL = 1e-6


def collect():
    """[(family, name, make)] from every scripts/gradcases_*.py, sorted by file."""
    cases = []
    for path in sorted(glob.glob(os.path.join(HERE, "gradcases_*.py"))):
        mod = importlib.import_module(os.path.basename(path)[:-3])
        family = mod.__name__[len("gradcases_"):]
        cases += [(family, name, make) for name, make in mod.CASES]
    return cases


def run_case(make, seed=0):
    """Build the case from a seeded Generator and check it; returns a GradcheckResult."""
    from engine import gradcheck, gradcheck_loss
    spec = make(np.random.default_rng(seed))
    if spec[0] == "layer":
        _, layer, inputs = spec
        return gradcheck(layer, *inputs, seed=seed)
    if spec[0] == "loss":
        _, loss, pred, target, kw = spec
        return gradcheck_loss(loss, pred, target, **kw)
    raise ValueError(f"case kind: expected 'layer' or 'loss', got {spec[0]!r}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    pattern = argv[0] if argv else ""
    failures, total = 0, 0
    start = time.perf_counter()
    for family, name, make in collect():
        if pattern not in f"{family}/{name}":
            continue
        total += 1
        try:
            res = run_case(make)
            ok = res.passed(TOL)
            detail = str(res)
        except Exception as e:  # a case that cannot run is a failure, reported, not a crash
            ok, detail = False, f"error: {type(e).__name__}: {e}"
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {family}/{name:40s} {detail}", flush=True)
    print(f"{total - failures} passed, {failures} failed ({time.perf_counter() - start:.1f} s, tolerance {TOL:g})")
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
