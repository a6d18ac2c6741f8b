"""engine.blas's packed products: C += α X Wᵀ through OpenBLAS's packing routines and micro-kernel
(W packed once), against NumPy, with offsets and leading dimensions as the recurrent kernels use
them; the self-check that guards them; and HANDPROP_PACKED=0."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest
from numba import njit

from engine import blas
from engine.memory import huge_empty

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@njit(cache=True)
def _packed_product(kernel, pack_x, m, n, k, alpha, X, x_off, ldx, Wp, C, c_off, ldc):
    Xp = blas.packing_scratch(m * k, C)
    blas.gemm_packed_at(kernel, pack_x, m, n, k, alpha, X, x_off, ldx, Wp, Xp, C, c_off, ldc)
    return Xp.ctypes.data % 64 == 0 and Xp.size == m * k          # the scratch as packing needs it


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_packed_product_adds_alpha_x_wt(dtype, rng):
    available, pack_w, pack_x, kernel = blas.packed_for(dtype)
    if not available:
        pytest.skip("no packed OpenBLAS kernel for this core (or HANDPROP_PACKED=0)")
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-13)
    # (m, n, k): remainders of every panel width, one row, the recurrent layers' 16 × 4H × H
    for m, n, k in ((1, 1, 1), (5, 37, 19), (16, 1024, 256), (17, 100, 33), (3, 8, 64)):
        W = rng.standard_normal((n, k)).astype(dtype)
        Wp = huge_empty((n, k), dtype)
        assert Wp.ctypes.data % 64 == 0
        blas.pack_weight(pack_w, W, Wp)
        # X: rows 2 … 2 + m of a wider array (offset and leading dimension k + 3), C: a block of columns
        Xw = rng.standard_normal((m + 4, k + 3)).astype(dtype)
        Cw = rng.standard_normal((m + 1, n + 5)).astype(dtype)
        want = Cw.copy()
        want[1:, 2:2 + n] += 0.5 * Xw[2:2 + m, 1:1 + k] @ W.T
        assert _packed_product(kernel, pack_x, m, n, k, 0.5, Xw, 2 * (k + 3) + 1, k + 3, Wp, Cw, (n + 5) + 2, n + 5)
        np.testing.assert_allclose(Cw, want, **tol)


def test_self_check_refuses_a_kernel_that_gives_a_wrong_product():
    available, pack_w, pack_x, kernel = blas.packed_for(np.float32)
    if not available:
        pytest.skip("no packed OpenBLAS kernel for this core (or HANDPROP_PACKED=0)")
    assert blas._packed_works(pack_w, pack_x, kernel, np.float32)

    def adds_nothing(*args):
        return 0
    idle = blas._KERNEL[np.float32](adds_nothing)
    assert not blas._packed_works(pack_w, pack_x, idle, np.float32)


PROBE = """
import numpy as np
from engine import blas
print(blas.packed_for(np.float32)[0], blas.packed_for(np.float64)[0], len(blas._PACKED))
"""


def test_packed_products_can_be_turned_off():
    e = dict(os.environ, PYTHONPATH=ROOT, HANDPROP_PACKED="0")
    out = subprocess.run([sys.executable, "-c", PROBE], env=e, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "0"]     # the stand-ins: callers take gemm_at


def test_stand_ins_have_the_pieces_types():
    """Kernels compile once whether the pieces are there or not: the stand-ins share their types."""
    for dt in (np.float32, np.float64):
        real = blas._PACKED.get(dt)
        for a, b in zip(real or (), blas._STAND_IN[dt]):
            assert type(a) is type(b)
            assert isinstance(ctypes.cast(a, ctypes.c_void_p).value, int)
