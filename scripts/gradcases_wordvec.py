"""Gradient-check cases for the word-vector family (layers/wordvec.py: CBOW, HierarchicalSoftmax,
NegativeSampling, HeadLoss), read by tests/test_gradient_cases.py (both kernel paths),
tests/test_bad_input.py and scripts/check_gradients.py. Issue 12, item 10.

`CASES` is a list of `(name, make)`; `make(rng)` returns ("layer", layer, [inputs], options) or
("loss", loss, pred, target, {}). All float64 with small sizes; the output layers' weights and
biases are drawn N(0, 0.5²) (their zero start would make ∂ℓ/∂h vanish and hide mistakes in it).

* CBOW: sum and mean, repeated ids within a context and across the batch, batch 1, 2W = 2.
* The output layers on their own: forward(h, target) -> ℓ (N,), checked on h, W and b.
  HierarchicalSoftmax: balanced trees (V a power of two and not), Huffman trees from counts
  (uneven depths, so the padded path slots are exercised), V = 2, no bias, repeated targets.
  NegativeSampling: uniform noise (the notes) and unigram^0.75 (word2vec), k = 1 and 5, no
  bias; `fix_negatives=True` keeps the negatives drawn at the first forward while gradcheck
  perturbs, as recurrent's fix_mask does.
  They are wrapped in `OnFeatures`, whose forward(h, target) is the head's: the bad-input suite
  (tests/badinput.py, `fixed_ranks`) reads a layer with `in_features` as taking rank-2 inputs
  only and would then require a 1-D target of unchanged shape to be refused.
* CBOW → output layer (`Chained`: forward(ctx, target) -> ℓ), so that the gradient reaching the
  shared embedding matrix through h is checked too.
* Loss cases: HeadLoss (mean and sum) on pred = h, ∂/∂pred only (gradcheck_loss); V ≤ the
  feature size there, because the bad-input suite draws out-of-range labels from pred's second axis.

    python scripts/gradcases_wordvec.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from engine.core import Layer  # noqa: E402
from layers.wordvec import CBOW, HeadLoss, HierarchicalSoftmax, NegativeSampling  # noqa: E402

HEADS = (HierarchicalSoftmax, NegativeSampling)


class OnFeatures(Layer):
    """An output layer's forward(h, target) and backward(dloss), unchanged (module docstring)."""

    def __init__(self, head):
        if not isinstance(head, HEADS):
            raise TypeError(f"head: expected a HierarchicalSoftmax or NegativeSampling, got {type(head).__name__}")
        self.head = head
        self.dtype = head.dtype

    def forward(self, h, target, train=True):
        return self.head.forward(h, target, train=train)

    def backward(self, dloss, *, input_grad=True):
        return self.head.backward(dloss, input_grad=input_grad)


class Chained(Layer):
    """CBOW then an output layer: forward(ctx, target) -> ℓ (N,); backward(dloss) -> (None, None)."""

    def __init__(self, cbow, head):
        if not isinstance(cbow, CBOW):
            raise TypeError(f"cbow: expected a CBOW layer, got {type(cbow).__name__}")
        if not isinstance(head, HEADS):
            raise TypeError(f"head: expected a HierarchicalSoftmax or NegativeSampling, got {type(head).__name__}")
        self.cbow = cbow
        self.head = head
        self.dtype = cbow.dtype

    def forward(self, ctx, target, train=True):
        with self._all_or_nothing():
            return self.head.forward(self.cbow.forward(ctx, train=train), target, train=train)

    def backward(self, dloss, *, input_grad=True):
        dh, _ = self.head.backward(dloss)
        self.cbow.backward(dh)
        return None, None


def randomize(head, rng):
    head.weight.value[...] = 0.5 * rng.standard_normal(head.weight.shape)
    if head.bias is not None:
        head.bias.value[...] = 0.5 * rng.standard_normal(head.bias.shape)
    return head


def hs(D, V, tree="balanced", counts=None, bias=True):
    def build(rng):
        c = None if counts is None else np.asarray(counts, np.float64)
        return randomize(HierarchicalSoftmax(D, V, tree=tree, counts=c, bias=bias), rng)
    return build


def ns(D, V, k, counts=None, bias=True):
    def build(rng):
        c = None if counts is None else np.asarray(counts, np.float64)
        head = NegativeSampling(D, V, k=k, counts=c, bias=bias, rng=int(rng.integers(2**31)), fix_negatives=True)
        return randomize(head, rng)
    return build


def head_case(build, N, targets=None):
    def make(rng):
        head = build(rng)
        y = np.array(targets) if targets is not None else rng.integers(0, head.num_classes, N)
        h = rng.standard_normal((len(y), head.in_features))
        return "layer", OnFeatures(head), [h, y], {"input_names": ["h", "target"]}
    return make


def cbow_case(V, D, ctx, mode="sum"):
    def make(rng):
        return "layer", CBOW(V, D, mode=mode, rng=rng), [np.array(ctx, np.int64)], {"input_names": ["ctx"]}
    return make


def chained_case(build, V, N, C, mode="sum"):
    def make(rng):
        cbow = CBOW(V, 4, mode=mode, rng=rng)
        cbow.weight.value *= 0.5
        ctx = rng.integers(0, V, (N, C))
        ctx[0, 1] = ctx[0, 0]                              # a repeat inside one context
        return "layer", Chained(cbow, build(rng)), [ctx, rng.integers(0, V, N)], {"input_names": ["ctx", "target"]}
    return make


def loss_case(build, N, reduction):
    def make(rng):
        head = build(rng)
        h = rng.standard_normal((N, head.in_features))
        return "loss", HeadLoss(head, reduction), h, rng.integers(0, head.num_classes, N), {}
    return make


COUNTS_11 = [40, 3, 1, 17, 9, 9, 2, 25, 1, 6, 12]
COUNTS_6 = [50, 1, 1, 2, 8, 30]

CASES = [
    ("CBOW[sum, repeated ids]", cbow_case(7, 3, [[1, 3, 1, 1], [6, 0, 3, 3], [2, 2, 2, 2]])),
    ("CBOW[mean, repeated ids]", cbow_case(7, 3, [[1, 3, 1, 1], [6, 0, 3, 3], [2, 2, 2, 5]], mode="mean")),
    ("CBOW[batch 1, 2W=2]", cbow_case(4, 5, [[3, 3]])),
    ("CBOW[mean, V=3, 2W=6]", cbow_case(3, 2, [[0, 1, 2, 2, 1, 0], [1, 1, 1, 1, 1, 2]], mode="mean")),
    ("HierarchicalSoftmax[balanced, V=8]", head_case(hs(4, 8), 5)),
    ("HierarchicalSoftmax[balanced, V=11, repeated targets]", head_case(hs(3, 11), 6, [10, 0, 4, 4, 4, 7])),
    ("HierarchicalSoftmax[huffman, V=11]", head_case(hs(4, 11, "huffman", COUNTS_11), 6, [2, 0, 8, 6, 10, 1])),
    ("HierarchicalSoftmax[huffman, V=6, no bias]", head_case(hs(3, 6, "huffman", COUNTS_6, bias=False), 4)),
    ("HierarchicalSoftmax[V=2, batch 1]", head_case(hs(5, 2), 1)),
    ("NegativeSampling[uniform, k=3]", head_case(ns(4, 9, 3), 5)),
    ("NegativeSampling[unigram^0.75, k=5]", head_case(ns(3, 11, 5, COUNTS_11), 4)),
    ("NegativeSampling[k=1, no bias, batch 1]", head_case(ns(4, 6, 1, COUNTS_6, bias=False), 1)),
    ("CBOW+HierarchicalSoftmax[huffman, sum]", chained_case(hs(4, 11, "huffman", COUNTS_11), 11, 5, 4)),
    ("CBOW+HierarchicalSoftmax[balanced, mean]", chained_case(hs(4, 7), 7, 3, 2, mode="mean")),
    ("CBOW+NegativeSampling[unigram^0.75]", chained_case(ns(4, 11, 3, COUNTS_11), 11, 4, 4)),
    ("HeadLoss[HierarchicalSoftmax huffman, mean]", loss_case(hs(6, 5, "huffman", [9, 1, 3, 3, 7]), 4, "mean")),
    ("HeadLoss[NegativeSampling, sum]", loss_case(ns(6, 5, 2), 3, "sum")),
]


if __name__ == "__main__":
    from engine import gradcheck, gradcheck_loss

    for name, make in CASES:
        spec = make(np.random.default_rng(0))
        if spec[0] == "layer":
            res = gradcheck(spec[1], *spec[2], **spec[3])
        else:
            res = gradcheck_loss(*spec[1:4], **spec[4])
        print(f"{name:55s} {res}")
