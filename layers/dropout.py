"""Dropout (notes 004 §3.7; Srivastava et al. 2014), inverted as torch.nn.Dropout.

Train mode: each element is kept with probability 1 − p and scaled by 1/(1 − p),
    y = x ⊙ m,   m_i = 𝟙[u_i ≥ p] / (1 − p),  u_i ~ U[0, 1),    ∂ℓ/∂x = ∂ℓ/∂y ⊙ m;
eval mode (`train=False`): the identity. E[y] = x in both.

The mask comes from the layer's own generator `rng` (a seed or a numpy Generator), so a run is
reproducible. By default a new mask is drawn at every train-mode forward. Gradient checking
needs the layer to be a fixed function while the inputs are perturbed, so `fix_mask=True` keeps
the first mask drawn (for a given input shape) until `resample()` is called; `mask` shows it.
"""
import numpy as np
from numba import njit

from engine.checks import check_array, check_float
from engine.core import Layer


@njit(cache=True)
def dropout_forward(x, mask):
    """y = x ⊙ m (m already holds 0 or 1/(1 − p))."""
    return x * mask


@njit(cache=True)
def dropout_backward(dy, mask):
    """∂ℓ/∂x = ∂ℓ/∂y ⊙ m."""
    return dy * mask


class Dropout(Layer):
    """Dropout(p=0.5, rng=None, fix_mask=False): zero each element with probability p in train mode
    and scale the rest by 1/(1 − p); identity with `train=False`. Any float dtype and shape."""

    def __init__(self, p=0.5, rng=None, fix_mask=False):
        self.p = check_float("p", p, low=0, high=1)
        self.rng = np.random.default_rng(rng)
        self.fix_mask = bool(fix_mask)
        self._mask = None
        self._x = None

    @property
    def mask(self):
        """The last mask used (0 or 1/(1 − p) per element), None before the first train forward."""
        return self._mask

    def resample(self):
        """Forget the fixed mask: the next train-mode forward draws a new one."""
        self._mask = None

    def forward(self, x, train=True):
        x = check_array("x", x)
        self._x, self._train = x, bool(train)
        if not train or self.p == 0:
            return x.copy()
        keep = self._mask is not None and self.fix_mask and self._mask.shape == x.shape \
            and self._mask.dtype == x.dtype
        if not keep:
            if self.p == 1:
                self._mask = np.zeros(x.shape, x.dtype)
            else:
                u = self.rng.random(x.shape)
                self._mask = ((u >= self.p) / (1.0 - self.p)).astype(x.dtype)
        return dropout_forward(x, self._mask)

    def backward(self, dy, input_grad=True):
        self._need_forward("_x")
        dy = check_array("dy", dy, shape=self._x.shape, dtype=self._x.dtype, finite=False)
        if not input_grad:
            return None
        if not self._train or self.p == 0:
            return dy.copy()
        return dropout_backward(dy, self._mask)

    def extra_repr(self):
        return {"p": self.p, "fix_mask": self.fix_mask}
