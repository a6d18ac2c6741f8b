"""engine.checks: every refusal names the argument, the expected and the received."""
import numpy as np
import pytest

from engine.checks import (check_array, check_choice, check_dtype, check_float, check_int,
                           check_labels)


# ---- check_array ---------------------------------------------------------------------------
def test_check_array_returns_contiguous_without_casting():
    x = np.arange(12.0).reshape(3, 4)[:, ::2]
    out = check_array("x", x, ndim=2, dtype=np.float64)
    assert out.flags.c_contiguous and out.dtype == np.float64
    np.testing.assert_array_equal(out, x)
    y = np.ones((2, 3), np.float32)
    assert check_array("x", y) is y                # already contiguous: no copy


def test_check_array_refuses_non_arrays():
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray, got list"):
        check_array("x", [1.0, 2.0])


def test_check_array_refuses_other_dtype_without_casting():
    with pytest.raises(TypeError, match=r"x: expected dtype float64, got float32"):
        check_array("x", np.ones(3, np.float32), dtype=np.float64)
    with pytest.raises(TypeError, match=r"h: expected dtype float32, got float64"):
        check_array("h", np.ones(3), dtype=np.float32)


@pytest.mark.parametrize("dt", [np.int64, np.int32, np.bool_, np.complex128, np.float16])
def test_check_array_refuses_non_float_arrays(dt):
    with pytest.raises(TypeError, match=rf"x: expected a float32 or float64 array, got {np.dtype(dt)}"):
        check_array("x", np.ones(3, dt))


def test_check_array_ndim_and_shape():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"x: expected a 3-dimensional array, got shape \(2, 3\)"):
        check_array("x", x, ndim=3)
    with pytest.raises(ValueError, match=r"x: expected a 1 or 3-dimensional array"):
        check_array("x", x, ndim=(1, 3))
    check_array("x", x, ndim=(2, 3))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\), got \(2, 3\)"):
        check_array("x", x, shape=(None, 4))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 3, 1\), got \(2, 3\)"):
        check_array("x", x, shape=(None, 3, 1))
    with pytest.raises(ValueError, match=r"x: expected shape \(5,\), got \(2, 3\)"):
        check_array("x", x, shape=(5,))
    check_array("x", x, shape=(None, 3))
    check_array("x", x, shape=(2, None))


def test_check_array_refuses_empty():
    with pytest.raises(ValueError, match=r"x: expected a non-empty array, got shape \(0, 3\)"):
        check_array("x", np.ones((0, 3)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_check_array_refuses_non_finite(bad, dt):
    x = np.ones((2, 2), dt)
    x[1, 0] = bad
    with pytest.raises(ValueError, match=r"x: expected finite values, got NaN or Inf"):
        check_array("x", x)
    assert check_array("x", x, finite=False) is x


# ---- scalars -------------------------------------------------------------------------------
def test_check_int():
    assert check_int("n", 3, low=1) == 3
    assert check_int("n", np.int64(4), low=1, high=4) == 4
    assert type(check_int("n", np.int32(2))) is int
    with pytest.raises(ValueError, match=r"in_features: expected an int in \[1, inf\], got -2"):
        check_int("in_features", -2, low=1)
    with pytest.raises(ValueError, match=r"k: expected an int in \[0, 3\], got 4"):
        check_int("k", 4, low=0, high=3)
    for bad in (True, 2.0, "3", None):
        with pytest.raises(TypeError, match=r"n: expected an int, got"):
            check_int("n", bad)


def test_check_float():
    assert check_float("lr", 1) == 1.0 and type(check_float("lr", np.float32(0.5))) is float
    with pytest.raises(ValueError, match=r"temperature: expected a number in \(0.0, inf\], got 0"):
        check_float("temperature", 0, low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"p: expected a number in \[0, 1\], got 1.5"):
        check_float("p", 1.5, low=0, high=1)
    assert check_float("p", 0, low=0, high=1) == 0.0
    for bad in (np.nan, np.inf, "1", None, True):
        with pytest.raises(TypeError, match=r"lr: expected a finite real number"):
            check_float("lr", bad)


def test_check_choice():
    assert check_choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match=r"mode: expected one of \['a', 'b'\], got 'c'"):
        check_choice("mode", "c", ("a", "b"))


def test_check_dtype():
    assert check_dtype(np.float32) is np.float32
    assert check_dtype("float64") is np.float64
    assert check_dtype(np.dtype(np.float64)) is np.float64
    with pytest.raises(TypeError, match=r"dtype: expected np.float32 or np.float64, got int64"):
        check_dtype(np.int64)
    with pytest.raises(TypeError, match=r"dtype: expected np.float32 or np.float64, got float16"):
        check_dtype(np.float16)


def test_check_labels():
    y = np.array([0, 2, 1], np.int32)
    out = check_labels("y", y, 3, 3)
    assert out.dtype == np.int64 and out.tolist() == [0, 2, 1]
    with pytest.raises(TypeError, match=r"y: expected a numpy.ndarray, got list"):
        check_labels("y", [0, 1], 2, 2)
    with pytest.raises(TypeError, match=r"y: expected integer class labels, got dtype float64"):
        check_labels("y", np.zeros(2), 2, 2)
    with pytest.raises(ValueError, match=r"y: expected shape \(4,\), got \(3,\)"):
        check_labels("y", y, 4, 3)
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 1\], got values in \[0, 2\]"):
        check_labels("y", y, 3, 2)
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 2\], got values in \[-1, 1\]"):
        check_labels("y", np.array([-1, 1, 0]), 3, 3)


# ---- inputs_checked: a composite's parts skip the NaN scan, nothing else --------------------
def test_inputs_checked_skips_only_the_finite_scan():
    from engine.checks import NonFiniteError, inputs_checked
    bad = np.array([1.0, np.nan])
    with inputs_checked():
        with inputs_checked():
            assert check_array("x", bad) is bad
        assert check_array("x", bad) is bad                 # still inside the outer block
        with pytest.raises(TypeError, match=r"x: expected dtype float32"):
            check_array("x", bad, dtype=np.float32)        # dtypes and shapes are still checked
    with pytest.raises(NonFiniteError, match=r"x: expected finite values"):
        check_array("x", bad)                               # restored after the block
    with pytest.raises(RuntimeError):
        with inputs_checked():
            raise RuntimeError
    with pytest.raises(NonFiniteError):
        check_array("x", bad)                               # restored after an exception too


def test_transformer_layer_still_refuses_nan_input_and_a_nan_made_inside_is_reported():
    from engine.checks import NonFiniteError
    from engine.losses import MSELoss
    from layers.transformer import TransformerEncoderLayer
    x = np.random.default_rng(0).standard_normal((2, 3, 8))
    bad = x.copy()
    bad[0, 1, 2] = np.nan
    for norm_first in (False, True):
        layer = TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True, norm_first=norm_first, rng=0)
        with pytest.raises(NonFiniteError, match=r"src: expected finite values"):
            layer.forward(bad)
        assert layer.pending_calls() == 0
        layer.linear1.weight.value[0, 0] = np.nan          # a NaN made inside (a diverged weight)
        if not norm_first:                                  # post-LN: the last LayerNorm's statistics
            with pytest.raises(NonFiniteError, match=r"x: expected finite values"):
                layer.forward(x)
            assert all(part.pending_calls() == 0 for _, part in layer.named_layers())
        else:                                               # pre-LN: the output, then the loss
            y = layer.forward(x)
            assert np.isnan(y).any()
            with pytest.raises(NonFiniteError):
                MSELoss().forward(y, np.zeros_like(y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_on_arrays_scanned_in_chunks(dtype):
    from engine.checks import PARALLEL_SCAN, all_finite
    from engine.threads import num_threads_set_to
    n = 2 * PARALLEL_SCAN + 3
    x = np.ones(n, dtype)
    for threads in (1, 2):
        with num_threads_set_to(threads):
            assert all_finite(x)
            for pos in (0, n // 2 - 1, n // 2 + 1, n - 1):         # in each chunk, at its ends
                for bad in (np.nan, np.inf, -np.inf):
                    y = x.copy()
                    y[pos] = bad
                    assert not all_finite(y.reshape(-1, 1))
