"""Parameter, Layer and Sequential: the machinery every layer shares.

Data flow (DESIGN.md): `forward` keeps what `backward` needs (the notes' "store the
activations"); `backward(*grads)` returns the gradients of the inputs and *accumulates* (+=) the
parameters' gradients until `zero_grad()`.

The layer contract
------------------
    y = layer.forward(*inputs, train=True)            an array, or a tuple (nested as torch nests,
                                                       e.g. LSTM's (y, (h_n, c_n)))
    dx = layer.backward(*grads, input_grad=True)      one gradient per output, in the same
                                                       structure; None where it is zero or unused
Returns the input gradients in the inputs' structure (one array for one input, a tuple for
several); None for integer and boolean inputs (token ids, masks) and for inputs whose
`input_grad` is False (a bool for all, or one per input).

Per-call state. A layer (or a Parameter) may be used several times in one forward: an RNN's
weights at every step, a tied embedding. Each forward call pushes what its backward needs onto
the layer's own stack (`_save`), and each backward consumes the newest call (`_saved`, then
`_release`), so backwards run in the reverse order of the forwards, as autograd would. The
saved arrays live until
  (a) nothing is saved at all under `with no_grad():` (evaluation, sampling, gradcheck's
      perturbed forwards),
  (b) the backward that consumes a call releases its arrays,
  (c) `zero_grad()` drops calls whose backward never came (an evaluation pass in train mode, a
      step aborted by an error), so they can neither leak nor misalign the next backward.

Two kernel paths. Every family has reference kernels (the clearest statement of the maths) and
fast ones; `with reference_kernels():` runs every layer on its reference pair.
"""
import contextlib

import numpy as np

from .checks import check_array
from .memory import zero_fill

_modes = {"grad": True, "reference": False}


@contextlib.contextmanager
def no_grad():
    """Inference mode, as torch.no_grad: forwards inside the block record nothing for a backward."""
    old = _modes["grad"]
    _modes["grad"] = False
    try:
        yield
    finally:
        _modes["grad"] = old


def is_grad_enabled():
    return _modes["grad"]


@contextlib.contextmanager
def reference_kernels(enabled=True):
    """Within the block every layer runs its reference kernels (plain loops over the notes'
    equations) instead of the fast ones; `reference_kernels(False)` forces the fast path."""
    old = _modes["reference"]
    _modes["reference"] = bool(enabled)
    try:
        yield
    finally:
        _modes["reference"] = old


def use_reference():
    """True inside `reference_kernels()`: layers pick their reference pair."""
    return _modes["reference"]


def leaves(tree):
    """The arrays of a nested tuple/list of arrays (None kept), depth first."""
    if isinstance(tree, (tuple, list)):
        return [leaf for t in tree for leaf in leaves(t)]
    return [tree]


def rebuild(tree, values):
    """`tree`'s structure filled with `values` (an iterator over its leaves, in `leaves` order)."""
    if isinstance(tree, (tuple, list)):
        return tuple(rebuild(t, values) for t in tree)
    return next(values)


def input_grad_flags(input_grad, n):
    """`input_grad` as one bool per input: a bool for all, or a sequence of n bools."""
    if isinstance(input_grad, (bool, np.bool_)):
        return (bool(input_grad),) * n
    if isinstance(input_grad, (tuple, list)) and len(input_grad) == n and \
            all(isinstance(f, (bool, np.bool_)) for f in input_grad):
        return tuple(bool(f) for f in input_grad)
    raise TypeError(f"input_grad: expected a bool or {n} bools (one per input), got {input_grad!r}")


class Parameter:
    """A trainable array `value` and its gradient `grad` (same shape and dtype).

    Optimizers and `load_state_dict` update `value` in place, so views of it stay valid. `grad`
    may be given: an array of the same shape and dtype to accumulate into (the MLP's Parameters
    are views into one flat θ and one flat ∂ℓ/∂θ, so its fused kernels see a single array).
    """

    def __init__(self, value, grad=None):
        value = np.asarray(value)
        if value.dtype not in (np.float32, np.float64):
            raise TypeError(f"value: expected a float32 or float64 array, got {value.dtype}")
        self.value = np.ascontiguousarray(value)
        if grad is None:
            grad = np.zeros_like(self.value)
        elif not isinstance(grad, np.ndarray) or grad.shape != value.shape or grad.dtype != value.dtype:
            raise ValueError(f"grad: expected an array of shape {value.shape} and dtype {value.dtype}, "
                             f"got {getattr(grad, 'shape', type(grad).__name__)} {getattr(grad, 'dtype', '')}")
        self.grad = grad

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def zero_grad(self):
        zero_fill(self.grad)

    def __repr__(self):
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype})"


class Layer:
    """Base class. Subclasses set Parameters and sub-layers as attributes; they are registered
    in assignment order under the attribute's name, as in `torch.nn.Module`.

    Contract (module docstring): ``forward(*inputs, train=True)``;
    ``backward(*grads, input_grad=True)``. A layer keeps references to its inputs (not copies)
    for the backward: do not change them in place between forward and backward.
    """

    dtype = np.float64

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self.__dict__.setdefault("_params", {})[name] = value
        elif isinstance(value, Layer):
            self.__dict__.setdefault("_children", {})[name] = value
        object.__setattr__(self, name, value)

    def register_parameter(self, name, param):
        """Register a Parameter under `name`, which may be any string ("0.weight" for the MLP's
        torch-compatible names), without making it an attribute."""
        if not isinstance(param, Parameter):
            raise TypeError(f"param: expected a Parameter, got {type(param).__name__}")
        self.__dict__.setdefault("_params", {})[name] = param

    def register_buffer(self, name, array):
        """A non-trainable array saved in the state dict (e.g. BatchNorm's running mean)."""
        self.__dict__.setdefault("_buffers", {})[name] = None
        object.__setattr__(self, name, array)

    def forward(self, *inputs, train=True):
        raise NotImplementedError

    def backward(self, *grads, input_grad=True):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- per-call state (module docstring) ----------------------------------------------------
    def _save(self, *saved):
        """Keep what this call's backward needs (nothing under `no_grad`)."""
        if _modes["grad"]:
            self.__dict__.setdefault("_calls", []).append(saved)

    def _saved(self):
        """What the newest call not yet consumed saved (a tuple), without consuming it: the
        backward checks its arguments against it first, then calls `_release`."""
        calls = self.__dict__.get("_calls")
        if not calls:
            raise RuntimeError(f"{type(self).__name__}.backward: no forward call waits for a backward "
                               "(call forward outside no_grad() first; each forward takes one backward)")
        return calls[-1]

    def _release(self):
        """Drop the newest call's saved arrays: its backward has consumed them."""
        self.__dict__["_calls"].pop()

    def pending_calls(self):
        """How many forward calls of this layer wait for their backward."""
        return len(self.__dict__.get("_calls", ()))

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """A forward through several layers either completes or leaves no trace: when a layer
        refuses its input part-way, the running statistics (buffers) updated by the layers
        before it are restored, and the calls they saved are dropped."""
        buffers = [(b, b.copy()) for _, b in self.named_buffers() if isinstance(b, np.ndarray)]
        pending = [(layer, layer.pending_calls()) for _, layer in self.named_layers()]
        try:
            yield
        except BaseException:
            for b, old in buffers:
                b[...] = old
            for layer, n in pending:
                del layer.__dict__.setdefault("_calls", [])[n:]
            raise

    def named_layers(self, prefix=""):
        """(name, layer) for this layer ("") and every layer below it, depth first in
        registration order, each once (a reused layer under its first name; torch's named_modules)."""
        seen = set()

        def walk(layer, name):
            if id(layer) in seen:
                return
            seen.add(id(layer))
            yield name, layer
            for cname, child in layer.named_children():
                yield from walk(child, f"{name}.{cname}" if name else cname)
        yield from walk(self, prefix)

    # ---- randomness (engine.seeding) ----------------------------------------------------------
    stochastic = False     # True for layers that draw random numbers in forward (Dropout, ...)
    _rng = None            # the layer's own Generator; None: the engine's default one

    @property
    def generator(self):
        """The Generator this layer draws from: its own (rng= at construction, or set by
        `set_generator` and by `fit(seed=...)`), else the engine's default one (engine.manual_seed)."""
        if self._rng is not None:
            return self._rng
        from .seeding import default_generator
        return default_generator()

    def set_generator(self, rng):
        """Draw from `rng` (a seed, a numpy Generator, or None for the engine's default one) from now on."""
        from .checks import check_rng
        object.__setattr__(self, "_rng", None if rng is None else check_rng("rng", rng))

    def clear_saved(self):
        """Forget every call whose backward has not come, in this layer and all below it."""
        self.__dict__.pop("_calls", None)
        for _, child in self.named_children():
            child.clear_saved()

    # ---- parameters -------------------------------------------------------------------------
    def named_children(self):
        return self.__dict__.get("_children", {}).items()

    def named_parameters(self, prefix="", remove_duplicate=True):
        """(name, Parameter) pairs; a Parameter reachable under several names (shared weights)
        comes once, under its first name, unless `remove_duplicate=False` (as torch)."""
        seen = set()
        for name, p in self._all_parameters(prefix):
            if remove_duplicate:
                if id(p) in seen:
                    continue
                seen.add(id(p))
            yield name, p

    def _all_parameters(self, prefix):
        for name, p in self.__dict__.get("_params", {}).items():
            yield prefix + name, p
        for cname, child in self.named_children():
            yield from child._all_parameters(prefix + cname + ".")

    def parameters(self):
        """Every Parameter once, shared ones included once (what optimizers take)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for name in self.__dict__.get("_buffers", {}):
            yield prefix + name, getattr(self, name)
        for cname, child in self.named_children():
            yield from child.named_buffers(prefix + cname + ".")

    def zero_grad(self):
        """Zero every parameter's gradient and drop saved calls whose backward never came."""
        for p in self.parameters():
            p.zero_grad()
        self.clear_saved()

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self):
        """Copies of every parameter and buffer, keyed as the `torch.nn` counterpart's."""
        d = {name: p.value.copy() for name, p in self.named_parameters(remove_duplicate=False)}
        d.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return d

    def load_state_dict(self, state):
        """Copy arrays into the parameters and buffers in place (values are converted to this
        layer's dtype, as copying a float32 PyTorch module into a float64 layer requires).
        Every key, shape and value is checked before anything is written: missing or unexpected
        keys, non-finite values and values that overflow the destination's dtype (1e300 into
        float32) are refused, and the layer is then exactly as it was."""
        if not isinstance(state, dict):
            raise TypeError(f"state: expected a dict of arrays, got {type(state).__name__}")
        targets = dict(self.named_parameters(remove_duplicate=False))
        buffers = dict(self.named_buffers())
        expected = set(targets) | set(buffers)
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise ValueError(f"state: missing keys {sorted(missing)}, unexpected keys {sorted(map(str, unexpected))}")
        converted = {}
        for k, v in state.items():
            dest = targets[k].value if k in targets else buffers[k]
            v = np.asarray(v)
            if v.shape != dest.shape:
                raise ValueError(f"state[{k!r}]: expected shape {dest.shape}, got {v.shape}")
            if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)
                    or v.dtype == np.bool_):
                raise TypeError(f"state[{k!r}]: expected a real numeric array, got dtype {v.dtype}")
            if np.issubdtype(v.dtype, np.floating) and not np.isfinite(v).all():
                raise ValueError(f"state[{k!r}]: expected finite values, got NaN or Inf")
            with np.errstate(over="ignore", invalid="ignore"):
                c = v.astype(dest.dtype)
            if np.issubdtype(dest.dtype, np.floating) and not np.isfinite(c).all():
                raise ValueError(f"state[{k!r}]: values up to {np.abs(v).max():.3g} overflow {dest.dtype}")
            if np.issubdtype(dest.dtype, np.integer) and not np.array_equal(c, v):
                raise ValueError(f"state[{k!r}]: expected whole numbers within {dest.dtype}, got {v.ravel()[:3]}…")
            converted[k] = c
        for k, v in converted.items():        # everything checked: now write
            (targets[k].value if k in targets else buffers[k])[...] = v
        return self

    def save(self, path):
        """Write the state dict to an `.npz` file at exactly `path` (bit-exact round trip with `load`)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path):
        """Read a state dict written by `save` (checked as `load_state_dict` does). A file that is
        not a complete `.npz` archive is refused with a ValueError naming it."""
        import zipfile
        try:
            with np.load(path) as f:
                state = {k: f[k] for k in f.files}
        except (zipfile.BadZipFile, EOFError, ValueError) as e:
            raise ValueError(f"path: {path!r} is not a complete .npz state file ({type(e).__name__}: {e})") from None
        return self.load_state_dict(state)

    # ---- helpers for subclasses -------------------------------------------------------------
    def _check_input(self, x, name="x", **kw):
        return check_array(name, x, dtype=self.dtype, **kw)

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.extra_repr().items())
        return f"{type(self).__name__}({inner})"

    def extra_repr(self):
        return {}


def common_dtype(layers, name="layers"):
    """The one dtype of the layers' parameters (float64 when none has parameters): the rule of
    every container, which refuses to mix float32 and float64 parameters."""
    dtypes = {layer.dtype for layer in layers if layer.parameters()}
    if len(dtypes) > 1:
        raise TypeError(f"{name}: expected one dtype for all parameters, got {sorted(d.__name__ for d in dtypes)}")
    return dtypes.pop() if dtypes else np.float64


def check_layer(name, layer):
    if not isinstance(layer, Layer):
        raise TypeError(f"{name}: expected a Layer, got {type(layer).__name__}")
    return layer


class Sequential(Layer):
    """Layers applied in order; parameter names are ``"{index}.{name}"`` as in torch.nn.Sequential.
    Members take one array and return one, as in torch. The same layer may appear several times
    (its weights are then shared, and each use gets its own saved state)."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            setattr(self, str(i), check_layer(f"layers[{i}]", layer))
        self.layers = list(layers)
        self.dtype = common_dtype(layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x, train=True):
        with self._all_or_nothing():
            for layer in self.layers:
                x = layer.forward(x, train=train)
        return x

    def backward(self, dy, *, input_grad=True):
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[i].backward(dy, input_grad=input_grad or i > 0)
        return dy

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  ({i}): {l!r}\n" for i, l in enumerate(self.layers)) + ")"
