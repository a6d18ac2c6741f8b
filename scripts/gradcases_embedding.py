"""Gradient-check cases for Embedding: the one table read by tests/test_gradient_cases.py (on both
kernel paths), by the bad-input suite (tests/test_bad_input.py) and by the gradient-check report
(scripts/check_gradients.py).

`CASES` is a list of `(name, make)`; `make(rng)` returns ("layer", layer, [ids]). The ids are
integers, which gradcheck does not perturb (their gradient is None), so what is checked is the
weight's gradient: the scatter-add, where a repeated id must accumulate every use's gradient and
the padding row must get none. The padding row is read by the forward but treated as a constant
(torch's padding_idx: a stop-gradient, which central differences cannot see), so the cases with
padding_idx use ids that avoid it here; ids that hit the padding row are checked in
tests/test_embedding.py (central differences on every other row, exactly zero on the padding row,
and against PyTorch). Cases: repeated ids, padding_idx (also negative, counted from the
end), 1-D, 2-D and 3-D id arrays, batch 1 and a single 0-d id (an Embedding inside a
Sequential, where the upstream gradient depends on the weight, is checked in test_embedding.py).

    python scripts/gradcases_embedding.py      # runs the cases itself and prints the errors
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from layers import Embedding  # noqa: E402


def case(V, D, ids, padding_idx=None):
    def make(rng):
        return "layer", Embedding(V, D, padding_idx=padding_idx, rng=rng), [np.array(ids, dtype=np.int64)]
    return make


CASES = [
    ("Embedding[1-D, repeated ids]", case(7, 3, [1, 3, 1, 1, 6, 0])),
    ("Embedding[2-D, padding_idx=2, repeats]", case(6, 4, [[4, 0, 5, 4], [1, 1, 3, 0], [5, 3, 3, 1]], padding_idx=2)),
    ("Embedding[3-D, padding_idx=-1]", case(5, 3, [[[3, 1], [0, 3], [1, 1]], [[2, 3], [2, 2], [0, 2]]], padding_idx=-1)),
    ("Embedding[batch 1, (1, 5)]", case(4, 2, [[3, 0, 3, 3, 1]])),
    ("Embedding[0-d id]", case(3, 5, 2)),
]


if __name__ == "__main__":
    from engine import gradcheck

    for name, make in CASES:
        _, layer, inputs = make(np.random.default_rng(0))
        print(f"{name:50s} {gradcheck(layer, *inputs)}")
