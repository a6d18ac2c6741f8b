"""Embedding (issue 12, item 3): the gather forward, the scatter-add backward (repeated ids
accumulate, the padding row gets nothing), both kernel paths, PyTorch float64, bad ids.
Gradient checks of the plain cases live in scripts/gradcases_embedding.py."""
import numpy as np
import pytest

import engine
from engine import Sequential, gradcheck, no_grad
from engine.gradcheck import numeric_grad, rel_error
from layers import Embedding, Tanh

from crosscheck import crosscheck

PATHS = [False, True]


@pytest.mark.parametrize("reference", PATHS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_forward_gathers_rows_any_shape(reference, dtype):
    emb = Embedding(9, 5, dtype=dtype, rng=0)
    ids = np.random.default_rng(1).integers(0, 9, (2, 3, 4))
    with engine.reference_kernels(reference):
        y = emb.forward(ids)
        assert y.shape == (2, 3, 4, 5) and y.dtype == dtype
        assert np.array_equal(y, emb.weight.value[ids])
        assert emb.forward(np.array(4)).shape == (5,)
        assert emb.forward(ids.astype(np.int32)).shape == (2, 3, 4, 5)
    assert emb.pending_calls() == 3


def test_init_is_standard_normal_with_the_padding_row_zeroed():
    emb = Embedding(2000, 50, padding_idx=-3, rng=0)
    w = emb.weight.value
    assert emb.padding_idx == 1997 and not w[1997].any()
    rest = np.delete(w, 1997, axis=0)
    assert abs(rest.mean()) < 0.01 and abs(rest.std() - 1) < 0.01
    assert list(emb.state_dict()) == ["weight"]
    assert np.array_equal(Embedding(5, 3, rng=7).weight.value, Embedding(5, 3, rng=7).weight.value)


@pytest.mark.parametrize("reference", PATHS)
def test_repeated_ids_accumulate_and_the_padding_row_gets_nothing(reference):
    """Ids hitting the padding row: central differences on every other row, exactly 0 on it (the
    forward reads the row, but torch treats it as a constant)."""
    emb = Embedding(6, 4, padding_idx=2, rng=0)
    emb.weight.value[2] = np.random.default_rng(3).standard_normal(4)     # a non-zero padding row
    ids = np.array([[2, 0, 5, 2], [1, 1, 2, 0], [5, 3, 3, 2]])
    G = np.random.default_rng(1).standard_normal((3, 4, 4))
    with engine.reference_kernels(reference):
        y = emb.forward(ids)
        assert np.array_equal(y[0, 0], emb.weight.value[2])
        emb.backward(G)

        def loss():
            with no_grad():
                return float(np.sum(emb.forward(ids) * G))
        num = numeric_grad(loss, emb.weight.value)
    got = emb.weight.grad
    assert not got[2].any()
    keep = [0, 1, 3, 4, 5]
    assert rel_error(got[keep], num[keep]) < 1e-8
    assert np.allclose(got[1], G[1, 0] + G[1, 1]) and not got[4].any()


@pytest.mark.parametrize("reference", PATHS)
def test_embedding_then_tanh_gradcheck(reference):
    """The upstream gradient of the Embedding depends on its weight (through Tanh)."""
    layer = Sequential(Embedding(6, 3, padding_idx=0, rng=0), Tanh())
    with engine.reference_kernels(reference):
        res = gradcheck(layer, np.array([[2, 4, 4], [5, 3, 1]]))
    assert res.passed(1e-6), str(res)


def test_shared_use_accumulates_and_backwards_pop_in_reverse():
    emb = Embedding(5, 3, rng=0)
    a, b = np.array([0, 1, 1]), np.array([[1, 4]])
    rng = np.random.default_rng(2)
    ga, gb = rng.standard_normal((3, 3)), rng.standard_normal((1, 2, 3))
    emb.forward(a)
    emb.forward(b)
    assert emb.backward(gb) is None
    emb.backward(ga)
    want = np.zeros((5, 3))
    np.add.at(want, a, ga)
    np.add.at(want, b.reshape(-1), gb.reshape(-1, 3))
    assert np.allclose(emb.weight.grad, want, rtol=1e-15, atol=0)
    with no_grad():
        emb.forward(a)
    assert emb.pending_calls() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fast_and_reference_backward_agree_bit_for_bit_on_several_chunks(dtype):
    """n·D large enough for the fast backward to split the embedding dimension over threads;
    each element's sum runs in the ids' order on both paths."""
    rng = np.random.default_rng(0)
    ids = np.minimum(rng.zipf(1.3, 4096) - 1, 99)
    dy = rng.standard_normal((4096, 64)).astype(dtype)
    grads, outs = [], []
    for reference in PATHS:
        emb = Embedding(100, 64, padding_idx=0, dtype=dtype, rng=0)
        with engine.reference_kernels(reference):
            outs.append(emb.forward(ids))
            emb.backward(dy)
        grads.append(emb.weight.grad)
    assert np.array_equal(outs[0], outs[1]) and np.array_equal(grads[0], grads[1])
    assert not grads[0][0].any()


@pytest.mark.parametrize("reference", PATHS)
@pytest.mark.parametrize("padding_idx", [None, 3, -1])
def test_against_pytorch_float64(torch, reference, padding_idx):
    ids = np.random.default_rng(0).integers(0, 7, (3, 5))
    ids[0, :3] = 6                                  # repeats, and the last row (padding_idx=-1)
    ids[1, 1] = 3
    emb = Embedding(7, 4, padding_idx=padding_idx, rng=1)
    emb.weight.value[emb.padding_idx or 0] += 0.5    # the padding row need not stay zero
    tm = torch.nn.Embedding(7, 4, padding_idx=padding_idx)
    with engine.reference_kernels(reference):
        res = crosscheck(emb, tm, ids)
    assert res.input_grads == [None]
    if padding_idx is not None:
        assert not res.param_grads["weight"][emb.padding_idx].any()


@pytest.mark.parametrize("bad,err,what", [
    (np.array([0, 5]), ValueError, r"idx: expected token ids in \[0, 4\], got values in \[0, 5\]"),
    (np.array([[1, -1]]), ValueError, r"idx: expected token ids in \[0, 4\], got values in \[-1, 1\]"),
    (np.array([0.0, 1.0]), TypeError, "idx: expected integer token ids, got dtype float64"),
    (np.array([True, False]), TypeError, "idx: expected integer token ids, got dtype bool"),
    (np.zeros((2, 0), np.int64), ValueError, "idx: expected at least one token id"),
    ([0, 1], TypeError, "idx: expected a numpy.ndarray"),
    (np.array([2**63 - 1], np.uint64) + np.uint64(5), ValueError, "idx: expected token ids in"),
])
def test_bad_ids_refused_by_name_before_any_kernel(bad, err, what):
    emb = Embedding(5, 3, rng=0)
    before = emb.weight.value.copy()
    with pytest.raises(err, match=what):
        emb.forward(bad)
    assert emb.pending_calls() == 0 and np.array_equal(emb.weight.value, before)


def test_bad_upstream_gradient_keeps_the_call():
    emb = Embedding(5, 3, rng=0)
    emb.forward(np.array([[1, 2]]))
    with pytest.raises(ValueError, match="dy"):
        emb.backward(np.ones((2, 3)))
    with pytest.raises(TypeError, match="dy"):
        emb.backward(np.ones((1, 2, 3), np.float32))
    assert emb.pending_calls() == 1 and not emb.weight.grad.any()
    emb.backward(np.ones((1, 2, 3)))
    assert emb.weight.grad[[1, 2]].tolist() == [[1.0] * 3] * 2


@pytest.mark.parametrize("kwargs,err,name", [
    (dict(num_embeddings=0, embedding_dim=3), ValueError, "num_embeddings"),
    (dict(num_embeddings=4, embedding_dim=2.0), TypeError, "embedding_dim"),
    (dict(num_embeddings=4, embedding_dim=3, padding_idx=4), ValueError, "padding_idx"),
    (dict(num_embeddings=4, embedding_dim=3, padding_idx=-5), ValueError, "padding_idx"),
    (dict(num_embeddings=4, embedding_dim=3, padding_idx=True), TypeError, "padding_idx"),
    (dict(num_embeddings=4, embedding_dim=3, dtype=np.int64), TypeError, "dtype"),
    (dict(num_embeddings=4, embedding_dim=3, rng=-1), ValueError, "rng"),
])
def test_constructor_arguments_named(kwargs, err, name):
    with pytest.raises(err, match=name):
        Embedding(**kwargs)
