"""Skip connections as containers (notes 003 §2.2, 004 §3.7): Residual adds, Concat concatenates.

Residual (He et al. 2016):  y = f(x) + s(x), s the identity unless a `shortcut` layer is given
(e.g. a 1×1 Conv2d when f changes the shape). Backward: the gradient reaches x along both paths,
    ∂ℓ/∂x = (∂f/∂x)ᵀ ∂ℓ/∂y + (∂s/∂x)ᵀ ∂ℓ/∂y     (= f's input gradient + ∂ℓ/∂y for the identity),
which is why the gradient does not vanish through a deep stack of residual blocks.

Concat (DenseNet-style skip):  y = [b_1(x), b_2(x), ...] joined along `dim`; ∂ℓ/∂x is the sum of
each branch's input gradient for its slice of ∂ℓ/∂y. `SkipConcat(block)` = Concat(Identity, block).
"""
import numpy as np

from engine.checks import check_array, check_int
from engine.core import Layer


def _dtype_of(layers):
    dts = {l.dtype for l in layers if l.parameters()}
    if len(dts) > 1:
        raise TypeError(f"layers: expected one dtype for all parameters, got {sorted(d.__name__ for d in dts)}")
    return dts.pop() if dts else np.float64


class Residual(Layer):
    """y = block(x) + x, or block(x) + shortcut(x). Parameter names "block.…" and "shortcut.…"."""

    def __init__(self, block, shortcut=None):
        if not isinstance(block, Layer):
            raise TypeError(f"block: expected a Layer, got {type(block).__name__}")
        if shortcut is not None and not isinstance(shortcut, Layer):
            raise TypeError(f"shortcut: expected a Layer or None, got {type(shortcut).__name__}")
        self.block = block
        if shortcut is not None:
            self.shortcut = shortcut
        object.__setattr__(self, "_shortcut", shortcut)    # not registered twice
        self.dtype = _dtype_of([block] + ([shortcut] if shortcut is not None else []))
        self._shape = None

    def forward(self, x, train=True):
        x = check_array("x", x)
        fx = self.block.forward(x, train=train)
        sx = x if self._shortcut is None else self._shortcut.forward(x, train=train)
        if fx.shape != sx.shape:
            raise ValueError(f"block: output shape {fx.shape} differs from the skip path's {sx.shape} "
                             "(give a shortcut layer that maps x to the block's output shape)")
        self._shape = fx.shape
        return fx + sx

    def backward(self, dy, input_grad=True):
        self._need_forward("_shape")
        dy = check_array("dy", dy, shape=self._shape, finite=False)
        dxb = self.block.backward(dy, input_grad=input_grad)
        if self._shortcut is None:
            return dxb + dy if input_grad else None
        dxs = self._shortcut.backward(dy, input_grad=input_grad)
        return dxb + dxs if input_grad else None

    def __repr__(self):
        s = f"Residual(\n  (block): {self.block!r}\n"
        if self._shortcut is not None:
            s += f"  (shortcut): {self._shortcut!r}\n"
        return s + ")"


class _Identity(Layer):
    def forward(self, x, train=True):
        return x

    def backward(self, dy, input_grad=True):
        return dy if input_grad else None


class Concat(Layer):
    """y = concatenate([branch(x) for branch in branches], axis=dim); names "0.…", "1.…" as Sequential."""

    def __init__(self, *branches, dim=1):
        if not branches:
            raise ValueError("branches: expected at least one Layer, got none")
        for i, b in enumerate(branches):
            if not isinstance(b, Layer):
                raise TypeError(f"branches[{i}]: expected a Layer, got {type(b).__name__}")
            setattr(self, str(i), b)
        self.branches = list(branches)
        self.dim = check_int("dim", dim)
        self.dtype = _dtype_of(branches)
        self._sizes = None

    def forward(self, x, train=True):
        x = check_array("x", x)
        ys = [b.forward(x, train=train) for b in self.branches]
        ref = ys[0]
        d = self.dim % ref.ndim
        for i, y in enumerate(ys):
            if y.ndim != ref.ndim or y.shape[:d] + y.shape[d + 1:] != ref.shape[:d] + ref.shape[d + 1:]:
                raise ValueError(f"branches[{i}]: output shape {y.shape} cannot be concatenated along dim "
                                 f"{self.dim} with {ref.shape}")
        self._sizes, self._d = [y.shape[d] for y in ys], d
        self._shape = ref.shape[:d] + (sum(self._sizes),) + ref.shape[d + 1:]
        return np.concatenate(ys, axis=d)

    def backward(self, dy, input_grad=True):
        self._need_forward("_sizes")
        dy = check_array("dy", dy, shape=self._shape, finite=False)
        parts = np.split(dy, np.cumsum(self._sizes)[:-1], axis=self._d)
        dx = None
        for b, g in zip(self.branches, parts):
            d = b.backward(np.ascontiguousarray(g), input_grad=input_grad)
            if input_grad:
                dx = d.copy() if dx is None else dx + d
        return dx


class SkipConcat(Concat):
    """y = [x, block(x)] along `dim` (a DenseNet-style skip): the input is passed on unchanged next
    to what the block computes from it. Parameter names "1.…" (branch 0 is the identity)."""

    def __init__(self, block, dim=1):
        super().__init__(_Identity(), block, dim=dim)
