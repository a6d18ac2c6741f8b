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


# ---- huge_empty: matrices on huge pages ---------------------------------------------------------
HUGE_PROBE = """
import numpy as np
from engine import memory
a = memory.huge_empty((1024, 256), np.float32)
a[...] = np.arange(a.size, dtype=np.float32).reshape(a.shape)
kept = a[3:5].copy()
del a                                   # the mapping goes with the array; a copy stays valid
print(memory.HUGE_PAGES, float(kept.sum()))
"""


def test_huge_empty_gives_an_ordinary_array_of_the_shape_asked_for():
    import numpy as np

    from engine.memory import ALIGN, HUGE_MIN_BYTES, HUGE_PAGE, HUGE_PAGES, huge_empty
    for shape, dt in (((1024, 256), np.float32), ((512, 128), np.float64), ((3, 5), np.float64), ((0, 4), np.float32)):
        a = huge_empty(shape, dt)
        assert a.shape == shape and a.dtype == dt and a.flags.c_contiguous and a.flags.writeable
        a[...] = 1.5
        assert float(a.sum()) == 1.5 * a.size
        if HUGE_PAGES and a.nbytes >= HUGE_MIN_BYTES:
            assert a.ctypes.data % HUGE_PAGE == 0     # starts on a 2 MiB boundary
        else:
            assert a.ctypes.data % ALIGN == 0 or a.size == 0   # small (or no huge pages): 64-byte aligned


@pytest.mark.parametrize("off", [False, True])
def test_huge_pages_can_be_turned_off(off):
    e = dict(os.environ, PYTHONPATH=ROOT)
    e.pop("HANDPROP_HUGEPAGES", None)
    if off:
        e["HANDPROP_HUGEPAGES"] = "0"
    out = subprocess.run([sys.executable, "-c", HUGE_PROBE], env=e, capture_output=True, text=True,
                         check=True).stdout.split()
    want = sum(range(3 * 256, 5 * 256))
    assert float(out[1]) == want
    if off:
        assert out[0] == "False"
