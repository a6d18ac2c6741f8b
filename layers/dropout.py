"""Dropout (notes 004 §3.7; Srivastava et al. 2014), inverted as torch.nn.Dropout.

Train mode: each element is kept with probability 1 − p and scaled by 1/(1 − p),
    y = x ⊙ m,   m_i = 𝟙[u_i ≥ p] / (1 − p),  u_i ~ U[0, 1),    ∂ℓ/∂x = ∂ℓ/∂y ⊙ m;
eval mode (`train=False`): the identity. E[y] = x in both.

The mask is drawn from the layer's generator (engine.seeding): its own when built with `rng` (a
seed or a numpy Generator), else the engine's default one (`engine.manual_seed`); `fit(seed=)`
gives it a stream of its own, so a run is reproducible. By default a new mask is drawn at every train-mode forward, and each call saves
the mask it used for its own backward (a layer used twice in one forward gets two masks, each
backward the right one). Gradient checking needs the layer to be a fixed function while the
inputs are perturbed, so `fix_mask=True` keeps the first mask drawn (for a given input shape and
dtype) as layer state until `resample()` is called; `mask` shows the last mask used.

One kernel pair serves both paths: y = x ⊙ m is already the plainest statement of the maths and
as fast as NumPy makes it, so `engine.reference_kernels()` changes nothing here.
"""
import numpy as np
from numba import njit

from engine.checks import check_array, check_bool, check_float
from engine.core import Layer


@njit(cache=True)
def dropout_forward(x, mask):
    """y = x ⊙ m (m already holds 0 or 1/(1 − p)); reference and fast kernel in one."""
    return x * mask


@njit(cache=True)
def dropout_backward(dy, mask):
    """∂ℓ/∂x = ∂ℓ/∂y ⊙ m; reference and fast kernel in one."""
    return dy * mask


class Dropout(Layer):
    """Dropout(p=0.5, rng=None, fix_mask=False): zero each element with probability p in train mode
    and scale the rest by 1/(1 − p); identity with `train=False`. Any float dtype and shape.
    `rng`: a seed or a numpy Generator of the layer's own, None for the engine's default one."""

    stochastic = True

    def __init__(self, p=0.5, rng=None, fix_mask=False):
        self.p = check_float("p", p, low=0, high=1)
        self.set_generator(rng)
        self.fix_mask = check_bool("fix_mask", fix_mask)
        self._last_mask = None      # the last mask used; with fix_mask, the fixed one

    @property
    def mask(self):
        """The last mask used (0 or 1/(1 − p) per element), None before the first train forward;
        with `fix_mask`, the mask every train forward of that shape uses."""
        return self._last_mask

    def resample(self):
        """Forget the fixed mask: the next train-mode forward draws a new one."""
        self._last_mask = None

    def _draw(self, shape, dtype):
        if self.p == 1:
            return np.zeros(shape, dtype)
        u = np.asarray(self.generator.random(shape))          # (a 0-d shape draws a Python float)
        return ((u >= self.p) / (1.0 - self.p)).astype(dtype)

    def forward(self, x, train=True):
        train = check_bool("train", train)
        x = check_array("x", x)
        if not train or self.p == 0:
            self._save(x.shape, x.dtype, None)
            return x.copy()
        m = self._last_mask
        if not (self.fix_mask and m is not None and m.shape == x.shape and m.dtype == x.dtype):
            m = self._last_mask = self._draw(x.shape, x.dtype)
        self._save(x.shape, x.dtype, m)
        return dropout_forward(x.reshape(-1), m.reshape(-1)).reshape(x.shape)     # flat: a 0-d x stays 0-d

    def backward(self, dy, *, input_grad=True):
        shape, dtype, m = self._saved()
        dy = check_array("dy", dy, shape=shape, dtype=dtype, finite=False)
        input_grad = check_bool("input_grad", input_grad)
        self._release()
        if not input_grad:
            return None
        return dy.copy() if m is None else dropout_backward(dy.reshape(-1), m.reshape(-1)).reshape(shape)

    def extra_repr(self):
        return {"p": self.p, "fix_mask": self.fix_mask}
