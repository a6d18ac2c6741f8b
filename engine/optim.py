"""Optimizers (notes 004 §3.4, 003 §1.3.9–1.3.10, 000 §5) with `torch.optim`'s argument names,
defaults and update rules.

    opt = Adam(model.parameters(), lr=1e-3)
    for x, y in batches:
        opt.zero_grad()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()

Each update rule is an `@njit` kernel over one parameter's flat `value` and `grad` arrays and its
state arrays (same length and dtype); it updates `value` *in place* (never rebinding
`p.value`, of which layers may hold views). `g` below is the gradient, θ the parameter, t the
step number (1 for the first step). `opt.lr` is a plain attribute that schedules may set.
"""
import math
import numbers

import numpy as np
from numba import njit, prange

from .checks import check_float
from .core import Parameter
from .numerics import FASTMATH
from .threads import chunks_for, parallel_call


# ---- kernels ----------------------------------------------------------------------------------
@njit(cache=True)
def sgd_step(theta, g, buf, lr, momentum, dampening, nesterov, weight_decay, first):
    """SGD with heavy-ball or Nesterov momentum, PyTorch's form:

        d ← g + λθ;   b ← d (first step) or μ b + (1 − dampening) d;
        d ← d + μ b (nesterov) or b;   θ ← θ − lr d.

    With momentum μ = 0 the buffer `buf` is unused (may be empty) and this is plain GD.
    """
    for i in range(theta.size):
        d = g[i] + weight_decay * theta[i]
        if momentum != 0.0:
            if first:
                buf[i] = d
            else:
                buf[i] = momentum * buf[i] + (1.0 - dampening) * d
            d = d + momentum * buf[i] if nesterov else buf[i]
        theta[i] -= lr * d


@njit(cache=True)
def adagrad_step(theta, g, state_sum, clr, weight_decay, eps):
    """Adagrad (004 §3.4.5: r ← r + g ⊙ g, θ ← θ − ε/(δ + √r) ⊙ g), PyTorch's form:

        d ← g + λθ;   r ← r + d²;   θ ← θ − clr · d / (√r + eps),
    with clr = lr / (1 + (t − 1) lr_decay) computed by the caller.
    """
    for i in range(theta.size):
        d = g[i] + weight_decay * theta[i]
        state_sum[i] += d * d
        theta[i] -= clr * d / (math.sqrt(state_sum[i]) + eps)


@njit(cache=True)
def rmsprop_step(theta, g, square_avg, grad_avg, buf, lr, alpha, eps, weight_decay, momentum,
                 centered):
    """RMSProp (004 §3.4.5: a moving average of squared derivatives), PyTorch's form:

        d ← g + λθ;   v ← α v + (1 − α) d²;   ṽ ← v, or v − ḡ² with ḡ ← α ḡ + (1 − α) d (centered);
        with momentum μ > 0:  b ← μ b + d / (√ṽ + eps),  θ ← θ − lr b;
        else:                 θ ← θ − lr d / (√ṽ + eps).
    `grad_avg` (centered) and `buf` (momentum) are unused otherwise and may be empty.
    """
    for i in range(theta.size):
        d = g[i] + weight_decay * theta[i]
        square_avg[i] = alpha * square_avg[i] + (1.0 - alpha) * d * d
        v = square_avg[i]
        if centered:
            grad_avg[i] = alpha * grad_avg[i] + (1.0 - alpha) * d
            v = v - grad_avg[i] * grad_avg[i]
        step = d / (math.sqrt(v) + eps)
        if momentum > 0.0:
            buf[i] = momentum * buf[i] + step
            step = buf[i]
        theta[i] -= lr * step


@njit(cache=True, parallel=True)
def adam_step(theta, g, m, v, vmax, t, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, nthreads):
    """Adam (Kingma & Ba, bias-corrected; 003 eq. 1.18–1.20, whose 1.20 is garbled in the notes):

        d ← g + λθ  (Adam)   or   θ ← θ (1 − lr λ)  (AdamW, decoupled weight decay);
        m ← β₁ m + (1 − β₁) d;        v ← β₂ v + (1 − β₂) d²;
        m̂ = m / (1 − β₁ᵗ);            v̂ = v / (1 − β₂ᵗ);
        (amsgrad: vmax ← max(vmax, v),  v̂ = vmax / (1 − β₂ᵗ));
        θ ← θ − lr m̂ / (√v̂ + eps),
    evaluated as PyTorch does, θ ← θ − (lr / (1 − β₁ᵗ)) m / (√v / √(1 − β₂ᵗ) + eps), in θ's dtype.
    `vmax` is unused unless amsgrad (may be empty). The elements in `nthreads` disjoint chunks.
    """
    step = lr / (1.0 - beta1 ** t)                     # lr / (1 − β₁ᵗ): m̂'s correction in the step size
    inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - beta2 ** t)   # √v̂ = √v / √(1 − β₂ᵗ)
    n = theta.size
    for c in prange(nthreads):
        _adam_range(theta, g, m, v, vmax, c * n // nthreads, (c + 1) * n // nthreads, lr, beta1, beta2, eps,
                    weight_decay, decoupled, amsgrad, step, inv_sqrt_bc2)


# A function of its own on its chunk's slices: a loop written inside the prange body, or over
# range(lo, hi) of the whole arrays, did not vectorise (2.4 -> 5.1 ms per 811k float32 elements).
# The arithmetic is in the parameters' dtype, as PyTorch's: with the hyperparameters as Python
# floats a float32 update ran in float64, at half the vector width and with float64 division and
# square root (and bias-corrected as lr/bc1 and 1/√bc2, one division per element instead of two):
# the char-LSTM LM's 0.88M float32 parameters, two threads, 1.5 -> 0.4 ms per step (float64 1.5 -> 0.9).
@njit(cache=True, error_model="numpy")      # no zero-division checks: they keep the loop from vectorising
def _adam_range(theta, g, m, v, vmax, lo, hi, lr, beta1, beta2, eps, weight_decay, decoupled, amsgrad, step,
                inv_sqrt_bc2):
    theta, g, m, v = theta[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi]
    if amsgrad:
        vmax = vmax[lo:hi]
    F = theta.dtype.type
    b1, b2, c1, c2, eps, step, rs = F(beta1), F(beta2), F(1.0 - beta1), F(1.0 - beta2), F(eps), F(step), \
        F(inv_sqrt_bc2)
    decay = F(1.0 - lr * weight_decay) if decoupled else F(weight_decay)
    for i in range(theta.size):
        d = g[i]
        if decoupled:
            theta[i] *= decay
        else:
            d = d + decay * theta[i]
        mi = b1 * m[i] + c1 * d
        vi = b2 * v[i] + c2 * d * d
        m[i] = mi
        v[i] = vi
        if amsgrad:
            vi = max(vmax[i], vi)
            vmax[i] = vi
        theta[i] -= step * mi / (math.sqrt(vi) * rs + eps)


@njit(cache=True, fastmath=FASTMATH)
def grad_norm_pow(g, p):
    """Σ_i |g_i|^p (float64), or max_i |g_i| for p = inf. p = 2 and p = 1 have loops of their own:
    `a ** p` with a float p is a scalar pow() call per element (12.8 ms of a 4-layer GPT step's
    16 ms clipping, 811k float32 gradients); without it the sum vectorises (FASTMATH reassociates)."""
    s = 0.0
    if p == 2.0:
        for i in range(g.size):
            a = float(g[i])
            s += a * a
    elif p == 1.0:
        for i in range(g.size):
            s += abs(float(g[i]))
    elif p == np.inf:
        for i in range(g.size):
            s = max(s, abs(float(g[i])))
    else:
        for i in range(g.size):
            s += abs(float(g[i])) ** p
    return s


@njit(cache=True, fastmath=FASTMATH)
def scale_inplace(g, c):
    """g ← c g."""
    for i in range(g.size):
        g[i] *= c


# ---- helpers -----------------------------------------------------------------------------------
def _check_params(params):
    if isinstance(params, Parameter):
        params = [params]
    try:
        params = list(params)
    except TypeError:
        raise TypeError("params: expected an iterable of Parameters, got "
                        f"{type(params).__name__}") from None
    if not params:
        raise ValueError("params: expected a non-empty iterable of Parameters, got an empty one")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}]: expected a Parameter, got {type(p).__name__}")
    if len({id(p) for p in params}) != len(params):
        raise ValueError("params: expected distinct Parameters, got one more than once")
    return params


def _flat(p, attr, i):
    """A flat view of p.value or p.grad (never a copy: the kernels write through it)."""
    a = getattr(p, attr)
    if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and a.shape == p.value.shape
            and a.dtype == p.value.dtype):
        raise ValueError(f"params[{i}].{attr}: expected a C-contiguous array of shape "
                         f"{p.value.shape} and dtype {p.value.dtype}, got "
                         f"{getattr(a, 'shape', type(a).__name__)} {getattr(a, 'dtype', '')}")
    return a.reshape(-1)


def _check_beta(name, v):
    v = check_float(name, v, low=0.0)
    if v >= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {v}")
    return v


# torch.optim's implementation flags: in its param_groups, no effect on the maths here
_TORCH_FLAGS = frozenset({"foreach", "fused", "capturable", "differentiable"})


def _check_step(name, v):
    """A step count: an int >= 0, or an integral float or 0-d array (torch: a float32 tensor)."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected an int >= 0, got {type(v).__name__} {v!r}")
    if not (math.isfinite(v) and v >= 0 and v == int(v)):
        raise ValueError(f"{name}: expected an int >= 0, got {v!r}")
    return int(v)


class Optimizer:
    """Base class: holds `params` (a list of Parameters), `lr`, the step count `t`, and one list of
    state arrays per parameter. Subclasses implement `_update(theta, g, state)`.
    maximize=True ascends: the kernels see −g (PyTorch's `maximize`; `.grad` is not modified)."""

    def __init__(self, params, lr, weight_decay=0.0, maximize=False):
        self.params = _check_params(params)
        self.lr = check_float("lr", lr, low=0.0)
        self.weight_decay = check_float("weight_decay", weight_decay, low=0.0)
        if not isinstance(maximize, bool):
            raise TypeError(f"maximize: expected a bool, got {maximize!r}")
        self.maximize = maximize
        self.t = 0

    def _zeros(self, p, needed=True, fill=0.0):
        """A flat state array like p's value (or an empty one when the option is off)."""
        return np.full(p.value.size if needed else 0, fill, dtype=p.value.dtype)

    def zero_grad(self):
        for p in self.params:
            p.zero_grad()

    def step(self):
        """One update of every parameter from its current `.grad`."""
        # check every parameter before updating any
        flats = [(_flat(p, "value", i), _flat(p, "grad", i)) for i, p in enumerate(self.params)]
        self.t += 1
        for (theta, g), state in zip(flats, self.state):
            self._update(theta, -g if self.maximize else g, state)

    # ---- checkpoints ----
    # Subclasses name their state arrays (self.state[i][j] is called _buffer_names[j]) and their
    # hyper-parameters as torch.optim does; `_needed()` says which arrays the options use.
    _buffer_names = ()
    _hyper_names = ()
    _nonnegative = ()          # buffers that hold sums of squares (a negative one would give NaN)
    _step_optional = False     # SGD: torch's state has no "step"

    def _needed(self):
        return (True,) * len(self._buffer_names)

    def _group_extras(self):
        return {}

    def state_dict(self):
        """The optimizer's state as torch.optim lays it out (copies, NumPy arrays):

            {"state": {i: {"step": t, <buffer name>: array shaped like params[i], ...}},
             "param_groups": [{<hyper-parameters>, "params": [0, 1, ..., n-1]}]}

        with torch's buffer names (momentum_buffer, sum, square_avg, grad_avg, exp_avg,
        exp_avg_sq, max_exp_avg_sq), only those the options use. One parameter group. "step" is
        the number of steps taken (the same for every parameter here; torch keeps one per
        parameter, and SGD keeps none). `lr` is the current one (a schedule may have changed it).
        """
        needed = self._needed()
        state = {}
        for i, (p, arrays) in enumerate(zip(self.params, self.state)):
            s = {"step": self.t}
            for name, need, a in zip(self._buffer_names, needed, arrays):
                if need:
                    s[name] = a.reshape(p.value.shape).copy()
            state[i] = s
        group = {k: getattr(self, k) for k in self._hyper_names}
        group.update(self._group_extras())
        group["params"] = list(range(len(self.params)))
        return {"state": state, "param_groups": [group]}

    def load_state_dict(self, state_dict):
        """Restore what `state_dict()` returned (or a torch.optim state dict converted to NumPy,
        e.g. `{k: v.numpy()}` for its tensors): hyper-parameters, step count and state arrays.

        Everything is checked before anything is written, and a refused dict leaves the optimizer
        exactly as it was: the keys, one parameter group listing params 0..n-1 (as many as this
        optimizer has), each hyper-parameter (the constructor's checks), the state arrays the
        loaded options need (no more, no fewer), their shapes and dtypes (the parameter's: never
        cast, so a resumed run is bit-identical), finiteness, sums of squares >= 0, and one step
        count >= 0 shared by all parameters. An empty "state" (torch's before its first step)
        means fresh state arrays and step 0; torch's SGD keeps no step, and its momentum buffers
        load as step 1 (all SGD needs to know: that it is not the first step). torch's
        implementation flags (foreach, fused, capturable, differentiable) are accepted and ignored.
        """
        name = "state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}: expected a dict with keys 'state' and 'param_groups', got "
                            f"{type(state_dict).__name__}")
        keys = set(state_dict)
        if keys != {"state", "param_groups"}:
            raise ValueError(f"{name}: expected the keys ['param_groups', 'state'], got "
                             f"{sorted(map(str, keys))}")
        n = len(self.params)
        groups = state_dict["param_groups"]
        if not isinstance(groups, (list, tuple)) or len(groups) != 1:
            raise ValueError(f"{name}['param_groups']: expected a list of one parameter group "
                             f"(dict), got {groups!r:.200}")
        group = groups[0]
        gname = f"{name}['param_groups'][0]"
        if not isinstance(group, dict):
            raise TypeError(f"{gname}: expected a dict, got {type(group).__name__}")
        params = group.get("params")
        if not (isinstance(params, (list, tuple)) and list(params) == list(range(n))):
            raise ValueError(f"{gname}['params']: expected [0, ..., {n - 1}] (this optimizer has "
                             f"{n} parameters), got {params!r:.200}")
        extras = self._group_extras()
        allowed = set(self._hyper_names) | set(extras) | {"params"} | _TORCH_FLAGS
        missing = set(self._hyper_names) - set(group)
        unexpected = set(group) - allowed
        if missing or unexpected:
            raise ValueError(f"{gname}: missing keys {sorted(missing)}, unexpected keys "
                             f"{sorted(map(str, unexpected))}")
        for k, v in extras.items():
            if k in group and group[k] != v:
                raise ValueError(f"{gname}['{k}']: expected {v!r} for {type(self).__name__}, "
                                 f"got {group[k]!r}")
        for k in _TORCH_FLAGS & set(group):
            if group[k] is not None and not isinstance(group[k], (bool, np.bool_)):
                raise TypeError(f"{gname}['{k}']: expected None, True or False, got {group[k]!r}")
        hyper = {k: group[k] for k in self._hyper_names}
        try:                  # the constructor's checks, on a throwaway optimizer
            fresh = type(self)(self.params, **hyper)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{gname}: {e}") from None

        state = state_dict["state"]
        sname = f"{name}['state']"
        if not isinstance(state, dict):
            raise TypeError(f"{sname}: expected a dict {{param index: dict}}, got "
                            f"{type(state).__name__}")
        if state and set(state) != set(range(n)):
            raise ValueError(f"{sname}: expected the keys 0..{n - 1} (or none: a fresh state), "
                             f"got {sorted(map(str, state))}")
        wanted = {nm for nm, need in zip(self._buffer_names, fresh._needed()) if need}
        step, arrays = 0, []
        for i in range(len(state)):
            entry, ename = state[i], f"{sname}[{i}]"
            if not isinstance(entry, dict):
                raise TypeError(f"{ename}: expected a dict, got {type(entry).__name__}")
            keys = set(entry)
            optional = self._step_optional and wanted and keys == wanted
            if not (keys == wanted | {"step"} or optional):
                raise ValueError(f"{ename}: expected the keys {sorted(wanted | {'step'})} for "
                                 f"these options, got {sorted(map(str, entry))}")
            # torch's SGD keeps no step: its momentum buffer exists once one step was taken
            s = _check_step(f"{ename}['step']", entry["step"]) if "step" in entry else 1
            if i > 0 and s != step:
                raise ValueError(f"{ename}['step']: expected the same step count for every "
                                 f"parameter ({step}), got {s}")
            step = s
            p = self.params[i].value
            row = []
            for nm, need, init in zip(self._buffer_names, fresh._needed(), fresh.state[i]):
                if not need:
                    row.append(init)
                    continue
                a, aname = entry[nm], f"{ename}['{nm}']"
                if not isinstance(a, np.ndarray):
                    raise TypeError(f"{aname}: expected a numpy.ndarray, got {type(a).__name__}")
                if a.dtype != p.dtype:
                    raise TypeError(f"{aname}: expected dtype {p.dtype} (the parameter's; never "
                                    f"cast), got {a.dtype}")
                if a.shape != p.shape:
                    raise ValueError(f"{aname}: expected shape {p.shape} (params[{i}]'s), got "
                                     f"{a.shape}")
                if not np.isfinite(a).all():
                    raise ValueError(f"{aname}: expected finite values, got NaN or Inf")
                if nm in self._nonnegative and (a < 0).any():
                    raise ValueError(f"{aname}: expected values >= 0 (a sum of squares), got "
                                     f"{a.min()}")
                row.append(np.array(a, dtype=p.dtype, order="C").reshape(-1))
            arrays.append(row)
        # all checked: write
        for k in self._hyper_names:
            setattr(self, k, getattr(fresh, k))
        self.t = step
        self.state = arrays if state else fresh.state

    def __repr__(self):
        return f"{type(self).__name__}(lr={self.lr}, {len(self.params)} parameters)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (000 §5, 004 §3.4.4).

    The notes' heavy-ball form is  v ← γ v − ε g,  θ ← θ + v  (γ momentum, ε learning rate).
    PyTorch's (used here) is       b ← μ b + g,     θ ← θ − lr b.
    Setting v = −lr b and γ = μ, ε = lr gives v ← μ v − lr g, θ ← θ + v: the same iterates while
    lr is constant (with a schedule they differ: PyTorch scales the whole buffer by the new lr).
    Nesterov (004: the gradient taken at the look-ahead point θ + γ v) becomes, in PyTorch's
    reformulation, θ ← θ − lr (g + μ b). weight_decay λ adds λθ to g (L2 penalty).
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False, *, maximize=False):
        super().__init__(params, lr, weight_decay, maximize)
        self.momentum = check_float("momentum", momentum, low=0.0)
        self.dampening = check_float("dampening", dampening)
        if not isinstance(nesterov, bool):
            raise TypeError(f"nesterov: expected a bool, got {nesterov!r}")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov: requires momentum > 0 and dampening = 0, got momentum="
                             f"{self.momentum}, dampening={self.dampening}")
        self.nesterov = nesterov
        self.state = [[self._zeros(p, self.momentum != 0)] for p in self.params]

    _buffer_names = ("momentum_buffer",)
    _hyper_names = ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize")
    _step_optional = True

    def _needed(self):
        return (self.momentum != 0,)

    def _update(self, theta, g, state):
        sgd_step(theta, g, state[0], self.lr, self.momentum, self.dampening, self.nesterov,
                 self.weight_decay, self.t == 1)


class Adagrad(Optimizer):
    """Adagrad (004 §3.4.5): per-parameter step lr / (√(Σ g²) + eps), with the lr decayed as
    lr / (1 + (t − 1) lr_decay) and the accumulator started at initial_accumulator_value."""

    def __init__(self, params, lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                 initial_accumulator_value=0.0, eps=1e-10, *, maximize=False):
        super().__init__(params, lr, weight_decay, maximize)
        self.lr_decay = check_float("lr_decay", lr_decay, low=0.0)
        self.initial_accumulator_value = check_float("initial_accumulator_value",
                                                     initial_accumulator_value, low=0.0)
        self.eps = check_float("eps", eps, low=0.0)
        self.state = [[self._zeros(p, fill=self.initial_accumulator_value)] for p in self.params]

    _buffer_names = ("sum",)
    _nonnegative = ("sum",)
    _hyper_names = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps",
                    "maximize")

    def _update(self, theta, g, state):
        clr = self.lr / (1.0 + (self.t - 1) * self.lr_decay)
        adagrad_step(theta, g, state[0], clr, self.weight_decay, self.eps)


class RMSprop(Optimizer):
    """RMSProp (004 §3.4.5): divide the step by a moving RMS of the gradients; optionally
    centered (divide by an estimate of their standard deviation) and with momentum."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                 centered=False, *, maximize=False):
        super().__init__(params, lr, weight_decay, maximize)
        self.alpha = check_float("alpha", alpha, low=0.0)
        self.eps = check_float("eps", eps, low=0.0)
        self.momentum = check_float("momentum", momentum, low=0.0)
        if not isinstance(centered, bool):
            raise TypeError(f"centered: expected a bool, got {centered!r}")
        self.centered = centered
        self.state = [[self._zeros(p), self._zeros(p, centered), self._zeros(p, self.momentum > 0)]
                      for p in self.params]

    _buffer_names = ("square_avg", "grad_avg", "momentum_buffer")
    _nonnegative = ("square_avg",)
    _hyper_names = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize")

    def _needed(self):
        return (True, self.centered, self.momentum > 0)

    def _update(self, theta, g, state):
        rmsprop_step(theta, g, state[0], state[1], state[2], self.lr, self.alpha, self.eps,
                     self.weight_decay, self.momentum, self.centered)


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015; 003 §1.3.10), with bias correction and optional AMSGrad.
    weight_decay adds λθ to the gradient (L2 penalty; see AdamW for decoupled decay)."""

    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, weight_decay, maximize)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
        self.betas = (_check_beta("betas[0]", betas[0]), _check_beta("betas[1]", betas[1]))
        self.eps = check_float("eps", eps, low=0.0)
        if not isinstance(amsgrad, bool):
            raise TypeError(f"amsgrad: expected a bool, got {amsgrad!r}")
        self.amsgrad = amsgrad
        self.state = [[self._zeros(p), self._zeros(p), self._zeros(p, amsgrad)]
                      for p in self.params]

    _buffer_names = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _nonnegative = ("exp_avg_sq", "max_exp_avg_sq")
    _hyper_names = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")

    def _needed(self):
        return (True, True, self.amsgrad)

    def _group_extras(self):
        return {"decoupled_weight_decay": self._decoupled}

    def _update(self, theta, g, state):
        m, v, vmax = state
        parallel_call(adam_step, chunks_for(theta.size, row_cost=4), theta, g, m, v, vmax, self.t, self.lr,
                      self.betas[0], self.betas[1], self.eps, self.weight_decay, self._decoupled, self.amsgrad)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): θ ← θ (1 − lr λ) before the Adam
    step, instead of adding λθ to the gradient. Default weight_decay = 1e-2 as in PyTorch."""

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize)


def clip_grad_norm(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Rescale the gradients in place so that their joint norm is at most `max_norm`, as
    `torch.nn.utils.clip_grad_norm_`:

        N = ‖(‖g_1‖_p, …, ‖g_k‖_p)‖_p  (= the p-norm of all gradients concatenated);
        g_i ← g_i · min(1, max_norm / (N + 1e-6)).

    norm_type: p > 0 or float("inf"). Returns N (before clipping) as a float.
    """
    if isinstance(params, Parameter):
        params = [params]
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}]: expected a Parameter, got {type(p).__name__}")
    max_norm = check_float("max_norm", max_norm, low=0.0)
    if isinstance(norm_type, bool) or not isinstance(norm_type, numbers.Real) or not norm_type > 0:
        raise ValueError(f"norm_type: expected a number > 0 or inf, got {norm_type!r}")
    norm_type = float(norm_type)
    if not params:
        return 0.0
    grads = [_flat(p, "grad", i) for i, p in enumerate(params)]
    if norm_type == math.inf:
        total = max(grad_norm_pow(g, norm_type) for g in grads)
    else:
        total = sum(grad_norm_pow(g, norm_type) for g in grads) ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm: the total norm of order {norm_type} is {total}")
    coef = min(1.0, max_norm / (total + 1e-6))
    for g in grads:
        scale_inplace(g, coef)
    return total


__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "clip_grad_norm"]
