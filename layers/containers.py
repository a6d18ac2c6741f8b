"""Skip connections as containers (notes 003 §2.2, 004 §3.7): Residual adds, Concat concatenates.

Residual (He et al. 2016):  y = f(x) + s(x), s the identity unless a `shortcut` layer is given
(e.g. a 1×1 Conv2d when f changes the shape). Backward: the gradient reaches x along both paths,
    ∂ℓ/∂x = (∂f/∂x)ᵀ ∂ℓ/∂y + (∂s/∂x)ᵀ ∂ℓ/∂y     (= f's input gradient + ∂ℓ/∂y for the identity),
which is why the gradient does not vanish through a deep stack of residual blocks.

Concat (DenseNet-style skip):  y = [b_1(x), b_2(x), ...] joined along `dim`; ∂ℓ/∂x is the sum of
each branch's input gradient for its slice of ∂ℓ/∂y. `SkipConcat(block)` = Concat(Identity, block).
"""
import numpy as np

from engine.checks import check_array, check_bool, check_dim, check_int
from engine.core import Layer, check_layer, common_dtype

from .activations import Identity


class Residual(Layer):
    """y = block(x) + x, or block(x) + shortcut(x). Parameter names "block.…" and "shortcut.…"."""

    def __init__(self, block, shortcut=None):
        self.block = check_layer("block", block)
        if shortcut is not None:
            self.shortcut = check_layer("shortcut", shortcut)
        object.__setattr__(self, "_shortcut", shortcut)    # not registered twice
        self.dtype = common_dtype([block] + ([shortcut] if shortcut is not None else []))

    def forward(self, x, train=True):
        train = check_bool("train", train)
        x = check_array("x", x)
        with self._all_or_nothing():
            fx = self.block.forward(x, train=train)
            sx = x if self._shortcut is None else self._shortcut.forward(x, train=train)
            if fx.shape != sx.shape:
                raise ValueError(f"block: output shape {fx.shape} differs from the skip path's {sx.shape} "
                                 "(give a shortcut layer that maps x to the block's output shape)")
        y = np.asarray(fx + sx)                 # (0-d + 0-d is a NumPy scalar, not an array)
        self._save(y.shape, y.dtype)
        return y

    def backward(self, dy, *, input_grad=True):
        shape, dtype = self._saved()
        # all of dy's checks here, before this call is released: the block's backward must not refuse it
        dy = check_array("dy", dy, shape=shape, dtype=dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        # reverse order of the forward (block, then shortcut), as a layer shared by both needs
        dxs = dy if self._shortcut is None else self._shortcut.backward(dy, input_grad=input_grad)
        dxb = self.block.backward(dy, input_grad=input_grad)
        return np.asarray(dxb + dxs) if input_grad else None

    def __repr__(self):
        s = f"Residual(\n  (block): {self.block!r}\n"
        if self._shortcut is not None:
            s += f"  (shortcut): {self._shortcut!r}\n"
        return s + ")"


class Concat(Layer):
    """y = concatenate([branch(x) for branch in branches], axis=dim); names "0.…", "1.…" as Sequential."""

    def __init__(self, *branches, dim=1):
        if not branches:
            raise ValueError("branches: expected at least one Layer, got none")
        for i, b in enumerate(branches):
            setattr(self, str(i), check_layer(f"branches[{i}]", b))
        self.branches = list(branches)
        self.dim = check_int("dim", dim)             # checked against the outputs' rank in forward
        self.dtype = common_dtype(branches, "branches")

    def forward(self, x, train=True):
        train = check_bool("train", train)
        x = check_array("x", x)
        if x.ndim == 0:
            raise ValueError("x: expected an array with at least 1 dimension (the branches' outputs are "
                             "joined along dim), got shape ()")
        with self._all_or_nothing():
            ys = [b.forward(x, train=train) for b in self.branches]
            ref = ys[0]
            if ref.ndim == 0:
                raise ValueError("branches[0]: output of shape () has no axis to concatenate along")
            d = check_dim("dim", self.dim, ref.ndim, ref.shape)
            for i, y in enumerate(ys):
                if y.ndim != ref.ndim or y.shape[:d] + y.shape[d + 1:] != ref.shape[:d] + ref.shape[d + 1:]:
                    raise ValueError(f"branches[{i}]: output shape {y.shape} cannot be concatenated along "
                                     f"dim {self.dim} with {ref.shape}")
        sizes = [y.shape[d] for y in ys]
        y = np.concatenate(ys, axis=d)
        self._save(sizes, d, y.shape, y.dtype)
        return y

    def backward(self, dy, *, input_grad=True):
        sizes, d, shape, dtype = self._saved()
        dy = check_array("dy", dy, shape=shape, dtype=dtype, finite=False)     # all checks before the release
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        parts = np.split(dy, np.cumsum(sizes)[:-1], axis=d)
        dx = None
        for b, g in reversed(list(zip(self.branches, parts))):
            d = b.backward(np.ascontiguousarray(g), input_grad=input_grad)
            if input_grad:
                dx = d.copy() if dx is None else dx + d
        return dx


class SkipConcat(Concat):
    """y = [x, block(x)] along `dim` (a DenseNet-style skip): the input is passed on unchanged next
    to what the block computes from it. Parameter names "1.…" (branch 0 is the identity)."""

    def __init__(self, block, dim=1):
        super().__init__(Identity(), check_layer("block", block), dim=dim)
