"""engine.memory: freed arrays stay in the process (no page faults per reuse), and the user's own
choice (HANDPROP_MALLOC=0, MALLOC_*_ variables) is left alone. Each case runs in a fresh
interpreter, since the settings are made once, on import."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PROBE = """
import resource, numpy as np, engine
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def step():                             # ten 4 MiB arrays alive at once, then all freed: a training step
    arrays = [np.empty(1 << 19) for _ in range(10)]
    for a in arrays:
        a.fill(1.0)
step()
f0 = faults()
for _ in range(20):
    step()
print(engine.memory.settings()["applied"], faults() - f0)
"""


def _run(**env):
    e = {k: v for k, v in os.environ.items() if not (k.startswith("MALLOC_") or k in ("GLIBC_TUNABLES", "HANDPROP_MALLOC"))}
    e.update(env)
    e["PYTHONPATH"] = ROOT
    out = subprocess.run([sys.executable, "-c", PROBE], env=e, capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt settings are glibc's")


@glibc
def test_reused_arrays_fault_no_pages():
    applied, faults = _run()
    assert applied
    assert faults < 200                 # fresh pages every step would be 20 × 10 × 1024 faults


@glibc
def test_the_users_choice_is_kept():
    applied, faults = _run(HANDPROP_MALLOC="0")
    assert not applied
    assert faults > 20 * 10 * 1024 // 4  # glibc's default: the freed heap top is trimmed each step
    assert _run(MALLOC_ARENA_MAX_="2")[0] is False
