"""The gradient-check report: every registered layer, loss and option against central differences.

    python scripts/check_gradients.py                # all cases, fast kernels
    python scripts/check_gradients.py conv           # only cases whose name contains "conv"
    python scripts/check_gradients.py --reference    # the same cases on the reference kernels

Cases come from scripts/gradcases_<family>.py, one table per family, which the test suite reads
too (tests/test_gradient_cases.py): each defines CASES = [(name, make)], make(rng) returning
("layer", layer, [inputs]) or ("layer", layer, [inputs], gradcheck_options), or
("loss", loss, pred, target, kwargs). For each case it prints the error of every input and
parameter array (engine.gradcheck: float64, random upstream gradient, element-wise relative error
with a floor scaled to the array's largest gradient) with that largest gradient, and PASS/FAIL;
it exits 1 if any case fails or cannot run.
"""
import argparse
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


def run_case(make, seed=0, reference=False):
    """Build the case from a seeded Generator and check it on the fast (or reference) kernels;
    returns a GradcheckResult."""
    from engine import gradcheck, gradcheck_loss, reference_kernels
    with reference_kernels(reference):
        spec = make(np.random.default_rng(seed))
        if spec[0] == "layer":
            layer, inputs = spec[1], spec[2]
            opts = spec[3] if len(spec) > 3 else {}
            return gradcheck(layer, *inputs, seed=seed, **opts)
        if spec[0] == "loss":
            _, loss, pred, target, kw = spec
            return gradcheck_loss(loss, pred, target, **kw)
    raise ValueError(f"case kind: expected 'layer' or 'loss', got {spec[0]!r}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pattern", nargs="?", default="", help="run only cases whose family/name contains this")
    ap.add_argument("--reference", action="store_true", help="run every layer on its reference kernels")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    failures, total = 0, 0
    start = time.perf_counter()
    for family, name, make in collect():
        if args.pattern not in f"{family}/{name}":
            continue
        total += 1
        try:
            res = run_case(make, reference=args.reference)
            ok = res.passed(TOL)
            detail = str(res)
        except Exception as e:  # a case that cannot run is a failure, reported, not a crash
            ok, detail = False, f"error: {type(e).__name__}: {e}"
        failures += not ok
        print(f"{'PASS' if ok else 'FAIL'}  {family}/{name:40s} {detail}", flush=True)
    path = "reference" if args.reference else "fast"
    print(f"{total - failures} passed, {failures} failed ({time.perf_counter() - start:.1f} s, {path} kernels, "
          f"tolerance {TOL:g})")
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
