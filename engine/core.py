"""Parameter, Layer and Sequential: the machinery every layer shares.

Data flow (DESIGN.md): `forward` keeps what `backward` needs (the notes' "store the
activations"); `backward(dy)` returns the gradient for the input and *accumulates* (+=) the
parameters' gradients until `zero_grad()`.
"""
import numpy as np

from .checks import check_array


class Parameter:
    """A trainable array `value` and its gradient `grad` (same shape and dtype).

    Optimizers and `load_state_dict` update `value` in place, so views of it stay valid.
    """

    def __init__(self, value):
        value = np.asarray(value)
        if value.dtype not in (np.float32, np.float64):
            raise TypeError(f"value: expected a float32 or float64 array, got {value.dtype}")
        self.value = np.ascontiguousarray(value)
        self.grad = np.zeros_like(self.value)

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def zero_grad(self):
        self.grad[...] = 0

    def __repr__(self):
        return f"Parameter(shape={self.value.shape}, dtype={self.value.dtype})"


class Layer:
    """Base class. Subclasses set Parameters and sub-layers as attributes; they are registered
    in assignment order under the attribute's name, as in `torch.nn.Module`.

    Contract: ``forward(x, train=True) -> y``; ``backward(dy, input_grad=True) -> dx`` (None when
    ``input_grad`` is False: the first layer of a model need not compute the gradient of the data).
    A layer keeps a reference to its input (not a copy) for the backward: do not change x in
    place between forward and backward.
    """

    dtype = np.float64

    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self.__dict__.setdefault("_params", {})[name] = value
        elif isinstance(value, Layer):
            self.__dict__.setdefault("_children", {})[name] = value
        object.__setattr__(self, name, value)

    def register_buffer(self, name, array):
        """A non-trainable array saved in the state dict (e.g. BatchNorm's running mean)."""
        self.__dict__.setdefault("_buffers", {})[name] = None
        object.__setattr__(self, name, array)

    def forward(self, x, train=True):
        raise NotImplementedError

    def backward(self, dy, input_grad=True):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- parameters -------------------------------------------------------------------------
    def named_children(self):
        return self.__dict__.get("_children", {}).items()

    def named_parameters(self, prefix=""):
        for name, p in self.__dict__.get("_params", {}).items():
            yield prefix + name, p
        for cname, child in self.named_children():
            yield from child.named_parameters(prefix + cname + ".")

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix=""):
        for name in self.__dict__.get("_buffers", {}):
            yield prefix + name, getattr(self, name)
        for cname, child in self.named_children():
            yield from child.named_buffers(prefix + cname + ".")

    def zero_grad(self):
        for p in self.parameters():
            p.zero_grad()

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self):
        """Copies of every parameter and buffer, keyed as the `torch.nn` counterpart's."""
        d = {name: p.value.copy() for name, p in self.named_parameters()}
        d.update({name: np.array(b, copy=True) for name, b in self.named_buffers()})
        return d

    def load_state_dict(self, state):
        """Copy arrays into the parameters and buffers in place (values are converted to this
        layer's dtype, as copying a float32 PyTorch module into a float64 layer requires).
        Every key and shape is checked before anything is written."""
        targets = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        expected = set(targets) | set(buffers)
        missing, unexpected = expected - set(state), set(state) - expected
        if missing or unexpected:
            raise KeyError(f"state: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}")
        converted = {}
        for k, v in state.items():
            dest = targets[k].value if k in targets else buffers[k]
            v = np.asarray(v)
            if v.shape != dest.shape:
                raise ValueError(f"state[{k!r}]: expected shape {dest.shape}, got {v.shape}")
            if not (np.issubdtype(v.dtype, np.floating) or np.issubdtype(v.dtype, np.integer)
                    or v.dtype == np.bool_):
                raise TypeError(f"state[{k!r}]: expected a real numeric array, got dtype {v.dtype}")
            converted[k] = v.astype(dest.dtype)
        for k, v in converted.items():        # everything checked: now write
            (targets[k].value if k in targets else buffers[k])[...] = v
        return self

    def save(self, path):
        """Write the state dict to an `.npz` file at exactly `path` (bit-exact round trip with `load`)."""
        with open(path, "wb") as f:
            np.savez(f, **self.state_dict())

    def load(self, path):
        with np.load(path) as f:
            return self.load_state_dict({k: f[k] for k in f.files})

    # ---- helpers for subclasses -------------------------------------------------------------
    def _check_input(self, x, name="x", **kw):
        return check_array(name, x, dtype=self.dtype, **kw)

    def _need_forward(self, attr):
        if getattr(self, attr, None) is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")

    def __repr__(self):
        inner = ", ".join(f"{k}={v!r}" for k, v in self.extra_repr().items())
        return f"{type(self).__name__}({inner})"

    def extra_repr(self):
        return {}


class Sequential(Layer):
    """Layers applied in order; parameter names are ``"{index}.{name}"`` as in torch.nn.Sequential."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layers[{i}]: expected a Layer, got {type(layer).__name__}")
            setattr(self, str(i), layer)
        self.layers = list(layers)
        dtypes = {layer.dtype for layer in layers if layer.parameters()}
        if len(dtypes) > 1:
            raise TypeError(f"layers: expected one dtype for all parameters, got {sorted(d.__name__ for d in dtypes)}")
        self.dtype = dtypes.pop() if dtypes else np.float64

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x, train=True):
        for layer in self.layers:
            x = layer.forward(x, train=train)
        return x

    def backward(self, dy, input_grad=True):
        for i in range(len(self.layers) - 1, -1, -1):
            dy = self.layers[i].backward(dy, input_grad=input_grad or i > 0)
        return dy

    def __repr__(self):
        return "Sequential(\n" + "".join(f"  ({i}): {l!r}\n" for i, l in enumerate(self.layers)) + ")"
