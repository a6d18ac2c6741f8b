"""Checks and strategies of the bad-input suite (tests/test_bad_input.py, issue 11 items 11-12).

Every check is a plain function `check_*(…, data)` that draws what it needs from a hypothesis
`data` object (`st.data()`), calls the public API and raises `Broken` (an AssertionError) listing
each promise it saw broken, tagged with its category of item 12's table. The checks: a layer's
forward and backward (every "layer" case), a loss's forward (every "loss" case), every argument
of every constructor (layers of the case tables, losses, optimizers), an optimizer step failing
on one parameter, load_state_dict, save/load and truncated files, fit's arguments, divergence,
seeding. The categories:

    "bad input"          only ValueError/TypeError comes out, naming the argument
    "state after error"  a refused call changes no parameter, gradient, buffer, saved call or
                         optimizer state
    "divergence"         training that diverges raises TrainingDiverged naming epoch and step
    "determinism"        the same seed gives bit-identical results
    "save/load"          load_state_dict refuses bad dicts naming the keys and writes nothing;
                         save/load round trips bit for bit; truncated files are named errors

A check returns its `Report` (which categories it tried) when nothing is broken. The pytest suite
wraps each check in `@given(st.data())`; a counting harness can run the same checks with a body
that catches `Broken` and tallies tried/failed per category instead of stopping.

Layers come from the gradient-check case tables (scripts/gradcases_*.py through
check_gradients.collect()), so a new family joins by its case table. The only per-family
knowledge here is `fixed_ranks` (which input ranks a layer accepts at all), read from public
attributes; a layer it does not know is still checked for named errors, but a change of rank is
then not required to fail.
"""
import inspect
import math
import numbers
import os
import re
import tempfile

import numpy as np
from hypothesis import strategies as st

from check_gradients import collect
from engine import Sequential
from engine.core import Layer, Parameter, leaves, rebuild

CATEGORIES = ("bad input", "state after error", "divergence", "determinism", "numerics",
              "save/load", "t-SNE", "analysis")


# ---- reporting ------------------------------------------------------------------------------------
class Broken(AssertionError):
    """One or more broken promises: report.failures = [(category, message)]."""

    def __init__(self, report):
        self.report = report
        super().__init__("\n".join(f"[{c}] {m}" for c, m in report.failures))


class Report:
    """What one check tried (categories) and what it found broken."""

    def __init__(self, *tried):
        self.tried = set(tried)
        self.failures = []

    def fail(self, category, message):
        self.tried.add(category)
        self.failures.append((category, message))

    def done(self):
        if self.failures:
            raise Broken(self)
        return self


def names(message, name):
    """True when the message names `name` as a word of its own ("x: …", "widths[1]: …",
    "for x of shape …"), not inside another identifier."""
    return re.search(r"(?<![\w.])" + re.escape(name) + r"(?![\w(])", message) is not None


def describe(v):
    if isinstance(v, np.ndarray):
        return f"array{v.shape} {v.dtype}"
    r = repr(v)
    return r if len(r) < 60 else r[:57] + "..."


def error_text(e):
    return f"{type(e).__name__}: {e}"


def check_refusal(report, e, name, what, category="bad input"):
    """A refused call: e must be a ValueError or TypeError whose message names `name` (a string
    or a tuple of acceptable names)."""
    allowed = (name,) if isinstance(name, str) else tuple(name)
    if not isinstance(e, (ValueError, TypeError)):
        report.fail(category, f"{what}: expected ValueError or TypeError naming {allowed[0]!r}, got {error_text(e)}")
    elif not any(names(str(e), n) for n in allowed):
        report.fail(category, f"{what}: the message does not name {' or '.join(map(repr, allowed))}: {error_text(e)}")


# ---- state of a model --------------------------------------------------------------------------
def _freeze(v):
    if isinstance(v, np.ndarray):
        return ("array", v.shape, v.dtype.str, v.tobytes())
    return ("value", repr(v))


def snapshot(root):
    """Everything a refused call must leave alone: every parameter's value and gradient (under
    every name, shared ones included), every buffer, and every layer's pending calls."""
    s = {}
    for name, p in root.named_parameters(remove_duplicate=False):
        s[f"parameter {name}"] = _freeze(p.value)
        s[f"gradient of {name}"] = _freeze(p.grad)
    for name, b in root.named_buffers():
        s[f"buffer {name}"] = _freeze(np.array(b, copy=True))
    for name, layer in root.named_layers():
        s[f"pending_calls() of {name or type(root).__name__}"] = _freeze(layer.pending_calls())
    return s


def changed(before, after):
    """The names whose state differs between two snapshots."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def optimizer_snapshot(opt):
    s = {"t": _freeze(opt.t), "lr": _freeze(opt.lr)}
    for i, p in enumerate(opt.params):
        s[f"params[{i}].value"] = _freeze(p.value)
        for j, a in enumerate(opt.state[i]):
            s[f"state[{i}][{j}]"] = _freeze(a)
    return s


# ---- the layer cases ---------------------------------------------------------------------------
def build(make, seed=0):
    """(layer, inputs, train) of a "layer" case, built from a seeded Generator."""
    spec = make(np.random.default_rng(seed))
    opts = spec[3] if len(spec) > 3 else {}
    return spec[1], list(spec[2]), opts.get("train", True)


def all_cases():
    """[(id, kind, make, built spec)] of every case of every family table."""
    out = []
    for family, name, make in collect():
        spec = make(np.random.default_rng(0))
        out.append((f"{family}/{name}", spec[0], make, spec))
    return out


def positional_names(method):
    """The names of a method's positional parameters, without `train`."""
    return [p.name for p in inspect.signature(method).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.name != "train"]


def input_names(layer, n):
    ps = positional_names(layer.forward)
    return [ps[min(i, len(ps) - 1)] for i in range(n)]


def optional_input(layer, name):
    """True when the forward's parameter `name` defaults to None (an optional initial state, a
    mask): passing None there is a documented value, not a bad type."""
    import inspect
    p = inspect.signature(layer.forward).parameters.get(name)
    return p is not None and p.default is None


def fixed_ranks(layer):
    """The input ranks the layer accepts, when it accepts only some (None: any, or unknown)."""
    from layers.containers import Concat, Residual
    if isinstance(layer, Sequential):
        return fixed_ranks(layer.layers[0]) if layer.layers else None
    if isinstance(layer, Residual):
        return fixed_ranks(layer.block)
    if isinstance(layer, Concat):
        known = [r for r in map(fixed_ranks, layer.branches) if r is not None]
        return set.intersection(*known) if known else None
    if hasattr(layer, "ranks"):                                     # batch norm
        return set(layer.ranks)
    if any(hasattr(layer, a) for a in ("in_features", "in1_features", "widths")):
        return {2}                                                  # Linear, Bilinear, MLP
    if hasattr(layer, "nd") and hasattr(layer, "in_channels"):      # convolutions: (N, C, *spatial)
        return {layer.nd + 2}
    if hasattr(layer, "nd"):                                        # pools: batched or not
        return {layer.nd + 1, layer.nd + 2}
    return None


def strict_dtype(layer):
    """True when the layer has parameters: then the other float dtype must be refused."""
    return len(layer.parameters()) > 0


OTHER_FLOAT = {np.dtype(np.float64): np.float32, np.dtype(np.float32): np.float64}
BAD_DTYPES = (np.int64, np.float16, np.complex128, np.bool_)


def _astype(x, dt):
    if dt is np.bool_:
        return x > 0
    return x.astype(dt)


INPUT_MUTATIONS = ("type", "dtype", "non-finite", "empty", "rank")
GRADIENT_MUTATIONS = ("type", "shape", "dtype")


@st.composite
def bad_array(draw, cat, x, strict, ranks):
    """(label, bad value, must_raise) for an input array x, of category `cat` (INPUT_MUTATIONS):
    a wrong type, a wrong dtype, a NaN or Inf at a drawn position, a zero-size dimension, or a
    different rank."""
    if x.dtype.kind in "iu" and cat in ("dtype", "non-finite"):    # integer ids (Embedding)
        return draw(bad_ids(cat, x))
    if cat == "type":
        kind = draw(st.sampled_from(["list", "None", "str", "python float", "numpy scalar"]))
        value = {"list": lambda: x.tolist(), "None": lambda: None, "str": lambda: "x",
                 "python float": lambda: 1.0, "numpy scalar": lambda: x.dtype.type(1.0)}[kind]()
        return f"{kind} instead of an array", value, True
    if cat == "dtype":
        dts = list(BAD_DTYPES) + [OTHER_FLOAT[x.dtype]]
        dt = draw(st.sampled_from(dts))
        other = dt is OTHER_FLOAT[x.dtype]
        return f"dtype {np.dtype(dt)} instead of {x.dtype}", _astype(x, dt), strict or not other
    if cat == "non-finite":
        i = draw(st.integers(0, x.size - 1))
        v = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        bad = x.copy()
        bad.flat[i] = v
        return f"{v} at flat position {i}", bad, True
    if cat == "empty":
        axis = draw(st.integers(0, max(x.ndim - 1, 0)))
        shape = list(x.shape) or [1]
        shape[axis] = 0
        return f"zero-size dimension {axis}: shape {tuple(shape)}", np.zeros(shape, x.dtype), True
    kind = draw(st.sampled_from(["0-d", "leading axis", "trailing axis", "flattened"]
                                + (["first two axes merged"] if x.ndim >= 2 else [])))
    bad = {"0-d": lambda: np.asarray(x.flat[0]), "leading axis": lambda: x[None],
           "trailing axis": lambda: x[..., None], "flattened": lambda: x.reshape(-1),
           "first two axes merged": lambda: x.reshape((-1,) + x.shape[2:])}[kind]()
    must = ranks is not None and bad.ndim not in ranks
    return f"rank {bad.ndim} ({kind}): shape {bad.shape}", bad, must


@st.composite
def bad_ids(draw, cat, x):
    """(label, bad value, must_raise) for integer token ids x: a float or boolean array in place of
    ids ("dtype": never cast), or an id that is negative or beyond any table ("non-finite": the
    integers' counterpart of NaN)."""
    if cat == "dtype":
        dt = draw(st.sampled_from([np.float64, np.float32, np.float16, np.bool_]))
        return f"ids of dtype {np.dtype(dt)}", _astype(x, dt), True
    i = draw(st.integers(0, x.size - 1))
    v = draw(st.sampled_from([-1, -(2**40), 2**40]))
    bad = x.copy()
    bad.flat[i] = v
    return f"id {v} at flat position {i}", bad, True


@st.composite
def bad_gradient(draw, cat, g, several_outputs=False):
    """(label, bad upstream gradient) of category `cat` (GRADIENT_MUTATIONS) for a gradient g of
    the output's shape and dtype: every one must be refused (a wrong type, a shape of another
    size, a wrong dtype). None is a bad type only for a layer of one output: with several, it
    means a zero gradient for that output (the layer contract)."""
    if cat == "type":
        kinds = ["list", "str", "python float"] + ([] if several_outputs else ["None"])
        kind = draw(st.sampled_from(kinds))
        return kind, {"list": g.tolist(), "None": None, "str": "dy", "python float": 1.0}[kind]
    if cat == "dtype":
        dt = draw(st.sampled_from(list(BAD_DTYPES) + [OTHER_FLOAT[g.dtype]]))
        return f"dtype {np.dtype(dt)} instead of {g.dtype}", _astype(g, dt)
    options = ["extra axis of size 2"] + (["one more along an axis"] if g.ndim else []) \
        + (["last two axes merged, one more"] if g.ndim >= 2 else [])
    kind = draw(st.sampled_from(options))
    if kind == "extra axis of size 2":
        bad = np.stack([g, g], axis=-1)
    elif kind == "one more along an axis":
        axis = draw(st.integers(0, g.ndim - 1))
        shape = list(g.shape)
        shape[axis] += 1
        bad = np.ones(shape, g.dtype)
    else:
        bad = np.ones(g.shape[:-2] + (g.shape[-2] * g.shape[-1] + 1,), g.dtype)
    return f"shape {bad.shape} instead of {g.shape}", bad


# ---- 1. forward and backward of every layer case ----------------------------------------------
def check_forward(case_id, make, category, data):
    """A bad value of `category` (INPUT_MUTATIONS) in one input of the case's layer: only a named
    ValueError/TypeError, and the layer's state (parameters, gradients, buffers, saved calls)
    unchanged; when the value may be valid (the other float dtype for a layer without
    parameters, a rank a layer may take) and is accepted, the outputs are arrays."""
    layer, inputs, train = build(make)
    argnames = input_names(layer, len(inputs))
    i = data.draw(st.integers(0, len(inputs) - 1), label="input") if len(inputs) > 1 else 0
    label, bad, must = data.draw(bad_array(category, inputs[i], strict_dtype(layer), fixed_ranks(layer)),
                                 label="mutation")
    if bad is None and optional_input(layer, argnames[i]):
        must = False                                    # None is the optional input's default
    args = list(inputs)
    args[i] = bad
    what = f"{case_id}: forward with {argnames[i]} = {label}"
    report = Report("bad input")
    before = snapshot(layer)
    try:
        out = layer.forward(*args, train=train)
    except Exception as e:                              # noqa: BLE001 (what comes out is the test)
        check_refusal(report, e, argnames[i], what)
        report.tried.add("state after error")
        diff = changed(before, snapshot(layer))
        if diff:
            report.fail("state after error", f"{what}: refused, but changed {diff}")
        return report.done()
    if must:
        report.fail("bad input", f"{what}: accepted (no error)")
    elif not all(isinstance(o, np.ndarray) for o in leaves(out)):
        report.fail("bad input", f"{what}: accepted, but returned {describe(out)}, not arrays")
    return report.done()


def _random_grads(out, seed=1):
    rng = np.random.default_rng(seed)
    return rebuild(out, iter([None if o is None else rng.standard_normal(o.shape).astype(o.dtype)
                              for o in leaves(out)]))


def _call_backward(layer, grads):
    return layer.backward(*grads) if isinstance(grads, tuple) else layer.backward(grads)


def _grads_of(layer):
    return {name: p.grad.copy() for name, p in layer.named_parameters(remove_duplicate=False)}


def check_backward(case_id, make, category, data):
    """After a valid forward, a bad upstream gradient: a named ValueError/TypeError, state
    unchanged with the forward's call still pending, and a correct backward afterwards gives
    exactly the gradients of a twin layer that never saw the bad one."""
    layer, inputs, train = build(make)
    out = layer.forward(*inputs, train=train)
    grads = _random_grads(out)
    flat = leaves(grads)
    j = data.draw(st.sampled_from([k for k, g in enumerate(flat) if g is not None]), label="gradient") \
        if len(flat) > 1 else 0
    label, bad = data.draw(bad_gradient(category, flat[j], isinstance(out, tuple)), label="mutation")
    bad_grads = rebuild(grads, iter([bad if k == j else g for k, g in enumerate(flat)]))
    gnames = positional_names(layer.backward)
    top = j if isinstance(out, tuple) and len(gnames) > 1 else 0
    name = gnames[min(top, len(gnames) - 1)]
    what = f"{case_id}: backward with {name} = {label}"
    report = Report("bad input", "state after error")
    before = snapshot(layer)
    try:
        _call_backward(layer, bad_grads)
    except Exception as e:                              # noqa: BLE001
        check_refusal(report, e, name, what)
    else:
        report.fail("bad input", f"{what}: accepted (no error)")
        return report.done()
    diff = changed(before, snapshot(layer))
    if diff:
        report.fail("state after error", f"{what}: refused, but changed {diff}")
    twin, twin_inputs, _ = build(make)
    twin_out = twin.forward(*twin_inputs, train=train)
    want_dx = _call_backward(twin, _random_grads(twin_out))
    try:
        dx = _call_backward(layer, grads)
    except Exception as e:                              # noqa: BLE001
        report.fail("state after error", f"{what}: the correct backward afterwards fails: {error_text(e)}")
        return report.done()
    got, want = _grads_of(layer), _grads_of(twin)
    differ = [k for k in want if not np.array_equal(got[k], want[k])]
    if any(not (a is None and b is None) and not np.array_equal(a, b)
           for a, b in zip(leaves(dx), leaves(want_dx))):
        differ.append("input gradient")
    if differ:
        report.fail("state after error", f"{what}: after the refused call, a correct backward gives other "
                                         f"gradients than without it: {differ}")
    return report.done()


@st.composite
def bad_labels(draw, cat, y, n_classes):
    """(label, bad value) for integer class labels y (N,) of a loss, of category `cat`: a wrong
    type, a non-integer dtype, a label out of range (in place of a non-finite number), no rows,
    a different rank. Every one must be refused."""
    if cat == "type":
        kind = draw(st.sampled_from(["list", "None", "str", "python int"]))
        return f"{kind} instead of labels", {"list": y.tolist(), "None": None, "str": "0", "python int": 1}[kind]
    if cat == "dtype":
        dt = draw(st.sampled_from([np.float64, np.float16, np.complex128, np.bool_]))
        return f"labels of dtype {np.dtype(dt)}", _astype(y, dt) if dt is not np.bool_ else y > 0
    if cat == "non-finite":
        i = draw(st.integers(0, y.size - 1))
        v = draw(st.sampled_from([n_classes, -1, n_classes + 1000]))
        bad = y.copy()
        bad.flat[i] = v                                 # (labels (N, d1, ...) of (N, C, d1, ...) logits)
        return f"label {v} at flat position {i} (classes 0..{n_classes - 1})", bad
    if cat == "empty":
        return "no labels: shape (0,)", np.zeros(0, y.dtype)
    kind = draw(st.sampled_from(["0-d", "trailing axis", "leading axis"]))
    bad = {"0-d": np.asarray(y[0]), "trailing axis": y[:, None], "leading axis": y[None]}[kind]
    return f"labels of shape {bad.shape}", bad


#: loss inputs for which a Python number is a valid value (GaussianNLLLoss's var)
SCALAR_OK = {("GaussianNLLLoss", "var")}


def check_loss_forward(case_id, make, category, data):
    """A bad value of `category` in one input of a loss (pred, target, var): only a ValueError or
    TypeError naming it, and the loss unchanged (its backward still gives the gradient of the
    last valid forward). A dtype or shape that only disagrees with another input may be named
    after either."""
    _, loss, pred, target, kw = make(np.random.default_rng(0))
    inputs = [pred, target] + list(kw.values())
    names_ = positional_names(loss.forward)
    names_ = names_[:2] + list(kw)
    loss.forward(*inputs[:2], **kw)
    want = loss.backward()
    loss.forward(*inputs[:2], **kw)
    i = data.draw(st.integers(0, len(inputs) - 1), label="input")
    x = inputs[i]
    labels = x.dtype.kind in "iu"
    relational = False
    if labels:
        label, bad = data.draw(bad_labels(category, x, pred.shape[1]), label="mutation")   # the class axis
        must = True
    else:
        # the other float dtype disagrees with the other float inputs (none beside labels: valid)
        floats = any(j != i and isinstance(v, np.ndarray) and v.dtype.kind == "f" for j, v in enumerate(inputs))
        label, bad, must = data.draw(bad_array(category, x, floats, None), label="mutation")
        must = must or category == "rank"
        if category == "type" and label.startswith(("python float", "numpy scalar")) \
                and (type(loss).__name__, names_[i]) in SCALAR_OK:
            must = False
        relational = category in ("rank", "empty") or label.endswith(f"instead of {x.dtype}") and \
            np.dtype(OTHER_FLOAT[x.dtype]).name in label
        if category == "rank" and names_[i] in kw:       # several shapes of var are valid
            must = False
    args = list(inputs)
    args[i] = bad
    what = f"{case_id}: forward with {names_[i]} = {label}"
    allowed = tuple(names_) if relational else (names_[i],)
    report = Report("bad input")
    try:
        loss.forward(*args[:2], **dict(zip(kw, args[2:])))
    except Exception as e:                              # noqa: BLE001
        check_refusal(report, e, allowed, what)
        report.tried.add("state after error")
        try:
            got = loss.backward()
        except Exception as e2:                         # noqa: BLE001
            report.fail("state after error", f"{what}: refused, but the backward of the last valid call fails: "
                                             f"{error_text(e2)}")
        else:
            if got.shape != want.shape or not np.array_equal(got, want):
                report.fail("state after error", f"{what}: refused, but the backward no longer gives the last "
                                                 "valid call's gradient")
        return report.done()
    if must:
        report.fail("bad input", f"{what}: accepted (no error)")
    return report.done()


# ---- 2. constructors ------------------------------------------------------------------------------
BAD_VALUES = {
    "bool": ["False", "True", 0, 1, None, 1.0],
    "int": ["3", 2.5, True, None, math.nan],
    "float": ["x", math.nan, math.inf, True, None, 1j],
    "ints": ["3", 2.5, True, None, (2, "3"), (2, 2.5)],
    "floats": ["x", None, (0.9,), (0.9, "x"), (0.9, math.nan), 0.9],
    "int list": [None, "3", [3, "4"], [3, 2.5], [3, True], [3, 0]],
    "layer": [None, 3, "Linear", [3]],
    "params": [None, 3, [3], ["x"], []],
}

#: arguments whose None is a documented value although their default is not None
ACCEPTS_NONE = {("BatchNorm1d", "momentum"), ("BatchNorm2d", "momentum")}
#: required arguments held under another public name (class, argument) -> function of the instance
HELD_AS = {("SkipConcat", "block"): lambda inst: inst.branches[1]}


def bad_choice_values(default):
    vals = ["bogus", "", default + " ", 3, None, default.encode()]
    if default.upper() != default:
        vals.append(default.upper())
    return vals


def arg_kind(value):
    """The kind of an argument from its default or from the value the object holds."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, numbers.Integral):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "choice"
    if isinstance(value, tuple) and value and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                                  for v in value):
        return "ints"
    if isinstance(value, tuple) and value and all(isinstance(v, float) for v in value):
        return "floats"
    if isinstance(value, (list, np.ndarray)) and len(value) and all(isinstance(v, numbers.Integral) for v in value):
        return "int list"
    if isinstance(value, Layer):
        return "layer"
    if isinstance(value, list) and value and all(isinstance(v, Parameter) for v in value):
        return "params"
    return None


def constructor_arguments(cls, inst):
    """(valid positional args, valid keyword args, [(name, kind, bad values)]) for building cls
    like `inst` and spoiling one argument at a time."""
    sig = inspect.signature(cls.__init__)
    args, kwargs, spoil = [], {}, []
    for p in list(sig.parameters.values())[1:]:
        if p.kind == p.VAR_KEYWORD:
            continue
        held = HELD_AS[(cls.__name__, p.name)](inst) if (cls.__name__, p.name) in HELD_AS \
            else getattr(inst, p.name, None)
        if p.kind == p.VAR_POSITIONAL:                  # Sequential(*layers), Concat(*branches)
            if not isinstance(held, (list, tuple)):
                raise LookupError(f"{cls.__name__}(*{p.name}): the object holds no {p.name!r}")
            args += list(held)
            spoil.append((p.name, "varargs", [3, None, "x"]))
            continue
        if p.default is p.empty:
            if held is None:
                raise LookupError(f"{cls.__name__}({p.name}): required, and the object holds no {p.name!r}")
            value = list(held) if isinstance(held, np.ndarray) else held
            kind = arg_kind(held)
        else:
            value = p.default
            kind = None if p.name in ("rng", "dtype") else arg_kind(p.default if p.default is not None else held)
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = value
        elif p.default is p.empty:
            args.append(value)
        else:
            kwargs[p.name] = value
        if kind is None:
            continue
        bad = BAD_VALUES[kind] if kind != "choice" else bad_choice_values(value)
        if p.default is None or (cls.__name__, p.name) in ACCEPTS_NONE:
            bad = [b for b in bad if b is not None]
        spoil.append((p.name, kind, bad))
    names_ = set(sig.parameters)
    if "rng" in names_:
        spoil.append(("rng", "rng", [-1, "a", 2.5, True]))
    if "dtype" in names_:
        spoil.append(("dtype", "dtype", [np.int32, np.float16, np.complex128, "float16", "x"]))
    return args, kwargs, spoil


def construct(cls, args, kwargs, name=None, value=None):
    """cls(*args, **kwargs) with argument `name` replaced by `value` (a varargs name spoils its
    last element)."""
    args, kwargs = list(args), dict(kwargs)
    if name is not None:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        pos = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.POSITIONAL_ONLY)]
        var = [p.name for p in params if p.kind == p.VAR_POSITIONAL]
        if name in var:
            args[-1] = value
        elif name in kwargs:
            kwargs[name] = value
        else:
            args[pos.index(name)] = value
    return cls(*args, **kwargs)


def check_constructor(cls, args, kwargs, name, value):
    what = f"{cls.__name__}({name}={describe(value)})"
    report = Report("bad input")
    try:
        construct(cls, args, kwargs, name, value)
    except Exception as e:                              # noqa: BLE001
        check_refusal(report, e, name, what)
    else:
        report.fail("bad input", f"{what}: accepted (no error)")
    return report.done()


# ---- 3. optimizers, load_state_dict, fit ---------------------------------------------------------
def small_model(dtype=np.float64):
    from layers import Linear, Tanh
    return Sequential(Linear(3, 4, dtype=dtype, rng=0), Tanh(), Linear(4, 2, dtype=dtype, rng=1))


def optimizer_classes():
    from engine import optim
    return [getattr(optim, n) for n in optim.__all__
            if isinstance(getattr(optim, n), type) and n != "Optimizer"]


OPTIMIZER_OPTIONS = {
    "SGD": [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"weight_decay": 0.1}],
    "Adagrad": [{}, {"lr_decay": 0.1, "weight_decay": 0.1}],
    "RMSprop": [{}, {"centered": True, "momentum": 0.5}],
    "Adam": [{}, {"amsgrad": True, "weight_decay": 0.1}],
    "AdamW": [{}, {"amsgrad": True}],
}


def check_optimizer_step(data):
    """An optimizer step that fails on one parameter (its grad replaced by a bad array) raises a
    named error and updates no parameter and no state."""
    cls = data.draw(st.sampled_from(optimizer_classes()), label="optimizer")
    opts = data.draw(st.sampled_from(OPTIMIZER_OPTIONS.get(cls.__name__, [{}])), label="options")
    model = small_model()
    params = model.parameters()
    opt = cls(params, lr=0.01, **opts)
    rng = np.random.default_rng(0)
    for _ in range(2):                                  # a valid step first: non-zero state
        for p in params:
            p.grad[...] = rng.standard_normal(p.shape)
        opt.step()
    for p in params:
        p.grad[...] = rng.standard_normal(p.shape)
    i = data.draw(st.integers(1, len(params) - 1), label="parameter")
    g = params[i].grad
    kind = data.draw(st.sampled_from(["shape", "extra axis", "float32", "int64", "None", "list"]), label="bad grad")
    params[i].grad = {"shape": lambda: np.ones(g.size + 1), "extra axis": lambda: g[..., None].copy(),
                      "float32": lambda: g.astype(np.float32), "int64": lambda: g.astype(np.int64),
                      "None": lambda: None, "list": lambda: g.tolist()}[kind]()
    what = f"{cls.__name__}({opts}).step() with params[{i}].grad = {kind}"
    report = Report("bad input", "state after error")
    before = optimizer_snapshot(opt)
    try:
        opt.step()
    except Exception as e:                              # noqa: BLE001
        check_refusal(report, e, f"params[{i}]", what)
        diff = changed(before, optimizer_snapshot(opt))
        if diff:
            report.fail("state after error", f"{what}: refused, but changed {diff}")
    else:
        report.fail("bad input", f"{what}: accepted (no error)")
    return report.done()


def state_models():
    """(label, model) pairs with parameters or buffers: the layer cases, and float32 models (for
    values that overflow float32)."""
    from layers import MLP, BatchNorm1d, Conv2d, LayerNorm, Linear
    out = [(cid, spec[1]) for cid, kind, _, spec in all_cases() if kind == "layer" and spec[1].state_dict()]
    f32 = np.float32
    out += [("float32 Linear", Linear(3, 2, dtype=f32, rng=0)),
            ("float32 Conv2d", Conv2d(2, 3, 3, dtype=f32, rng=0)),
            ("float32 BatchNorm1d", BatchNorm1d(3, dtype=f32)),
            ("float32 LayerNorm", LayerNorm(4, dtype=f32)),
            ("float32 MLP", MLP([2, 3, 1], dtype=f32, rng=0))]
    return out


@st.composite
def bad_state_dict(draw, model):
    """(description, bad dict, keys the message may name, must-name-all keys) from a model's state dict."""
    sd = model.state_dict()
    keys = sorted(sd)
    n = draw(st.integers(1, min(3, len(keys))))
    chosen = draw(st.lists(st.sampled_from(keys), min_size=n, max_size=n, unique=True))
    bad, notes, named, listed = dict(sd), [], [], []
    for k in chosen:
        v = sd[k]
        kinds = ["missing", "wrong shape", "string", "complex"]
        if v.dtype.kind == "f":
            kinds += ["NaN", "Inf"] + (["1e300 into float32"] if v.dtype == np.float32 else [])
        if v.dtype.kind == "i":
            kinds += ["not a whole number", "1e300 into an integer"]
        kind = draw(st.sampled_from(kinds))
        if kind == "missing":
            del bad[k]
            listed.append(k)
        elif kind == "wrong shape":
            bad[k] = np.zeros(v.shape + (2,))
        elif kind == "string":
            bad[k] = np.full(v.shape, "x")
        elif kind == "complex":
            bad[k] = v.astype(np.complex128) + 1j
        else:
            pos = draw(st.integers(0, max(v.size - 1, 0)))
            w = np.array(v, dtype=np.float64)
            w.flat[pos] = {"NaN": math.nan, "Inf": -math.inf, "1e300 into float32": 1e300,
                           "not a whole number": 2.5, "1e300 into an integer": 1e300}[kind]
            bad[k] = w
        named.append(k)
        notes.append(f"{k}: {kind}")
    if draw(st.booleans()):
        bad["not.a.key"] = np.zeros(1)
        named.append("not.a.key")
        listed.append("not.a.key")
        notes.append("extra key 'not.a.key'")
    return "; ".join(notes), bad, named, listed


def check_load_state_dict(label, model, data):
    """load_state_dict with a corrupted dict: ValueError (TypeError for values that are not real
    numbers) naming a corrupted key (every missing and unexpected key), and nothing written."""
    desc, bad, named, listed = data.draw(bad_state_dict(model), label="corruption")
    what = f"{label}: load_state_dict with {desc}"
    report = Report("save/load")
    before = snapshot(model)
    try:
        model.load_state_dict(bad)
    except Exception as e:                              # noqa: BLE001
        if not isinstance(e, (ValueError, TypeError)):
            report.fail("save/load", f"{what}: expected a ValueError naming the keys, got {error_text(e)}")
        elif not any(k in str(e) for k in named):
            report.fail("save/load", f"{what}: the message names none of {named}: {error_text(e)}")
        elif listed and len(listed) == len(named) and not all(k in str(e) for k in listed):
            report.fail("save/load", f"{what}: the message does not list every missing/unexpected key "
                                     f"{listed}: {error_text(e)}")
        diff = changed(before, snapshot(model))
        if diff:
            report.fail("save/load", f"{what}: refused, but wrote {diff}")
    else:
        report.fail("save/load", f"{what}: accepted (no error)")
    return report.done()


def check_save_load_round_trip(label, make, data):
    """Weights moved to drawn values (float extremes included) survive save → load bit for bit."""
    model, _, _ = build(make)
    sd = model.state_dict()
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="seed"))
    scale = data.draw(st.sampled_from([1.0, 1e-300, 1e300, 5e-324]), label="scale")
    new = {k: (rng.standard_normal(v.shape) * scale).astype(v.dtype) if v.dtype.kind == "f" else v
           for k, v in sd.items()}
    report = Report("save/load")
    model.load_state_dict(new)
    twin, _, _ = build(make, seed=1)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "model")
        model.save(path)
        twin.load(path)
    got, want = twin.state_dict(), model.state_dict()     # (shared parameters: one value, several keys)
    differ = [k for k in want if got[k].dtype != want[k].dtype or got[k].tobytes() != want[k].tobytes()]
    if differ:
        report.fail("save/load", f"{label}: save/load at scale {scale:g} changed {differ}")
    return report.done()


def check_truncated_file(data):
    """A truncated IDX file (raw or gzipped) or model file: an error naming its path, never a
    bare EOFError; the model is unchanged."""
    from engine.data import read_idx, write_idx
    kind = data.draw(st.sampled_from(["idx", "idx.gz", "npz"]), label="file")
    frac = data.draw(st.floats(0.05, 0.95), label="fraction kept")
    report = Report("save/load")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data." + kind)
        model = small_model()
        if kind == "npz":
            model.save(path)
        else:
            write_idx(path, np.arange(600, dtype=np.uint8).reshape(20, 30))
        with open(path, "rb") as f:
            raw = f.read()
        with open(path, "wb") as f:
            f.write(raw[:max(1, int(len(raw) * frac))])
        before = snapshot(model)
        what = f"truncated {kind} file ({frac:.0%} kept)"
        try:
            model.load(path) if kind == "npz" else read_idx(path)
        except Exception as e:                          # noqa: BLE001
            if not isinstance(e, (ValueError, OSError)) or isinstance(e, EOFError) or path not in str(e):
                report.fail("save/load", f"{what}: expected a ValueError or OSError naming the path, "
                                         f"got {error_text(e)}")
        else:
            report.fail("save/load", f"{what}: accepted (no error)")
        diff = changed(before, snapshot(model))
        if diff:
            report.fail("save/load", f"{what}: changed the model: {diff}")
    return report.done()


def fit_setup():
    """A model with every kind of state fit touches (BatchNorm running statistics, a Dropout
    built without rng), its loss and optimizer, and data (N = 10, 3 classes)."""
    from engine.losses import CrossEntropyLoss
    from engine.optim import Adam
    from layers import BatchNorm1d, Dropout, Linear, ReLU
    model = Sequential(Linear(4, 6, rng=0), BatchNorm1d(6), ReLU(), Dropout(0.25), Linear(6, 3, rng=1))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((10, 4))
    y = rng.integers(0, 3, 10)
    return model, CrossEntropyLoss(), Adam(model.parameters(), lr=0.01), X, y


FIT_ARGUMENTS = ("X", "y", "validation_data", "batch_size", "epochs", "seed", "metrics", "progress", "callbacks")


@st.composite
def bad_fit_argument(draw, arg, X, y):
    """(argument, names the error may use, description, kwargs overriding fit's valid ones) for a
    bad value of fit's argument `arg` (FIT_ARGUMENTS)."""
    n = len(X)
    if arg == "X":
        X_nan = X.copy()
        X_nan.flat[draw(st.integers(0, X.size - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        kind, value = draw(st.sampled_from([
            ("list", X.tolist()), ("None", None), ("int64", X.astype(np.int64)), ("float32", X.astype(np.float32)),
            ("5 columns", np.ones((n, 5))), ("rank 1", X[:, 0].copy()), ("rank 3", X[:, :, None].copy()),
            ("zero rows", np.zeros((0, 4))), ("one row fewer than y", X[:-1].copy()),
            ("complex", X + 0j), ("NaN or Inf", X_nan)]))
        names_ = ("X", "y") if kind == "one row fewer than y" else ("X",)
        return arg, names_, f"X = {kind}", {"X": value}
    if arg == "y":
        pos = draw(st.integers(0, n - 1))
        label = draw(st.sampled_from([3, -1, 1000]))     # (-100 is the loss's ignore_index)
        out = y.copy()
        out[pos] = label
        kind, value = draw(st.sampled_from([
            (f"label {label} at row {pos}", out), ("list", y.tolist()), ("None", None),
            ("float labels", y.astype(np.float64)), ("one row fewer", y[:-1].copy()),
            ("(N, 1) labels", y[:, None].copy()), ("0-d", np.array(1))]))
        return arg, ("y",), f"y = {kind}", {"y": value}
    if arg == "validation_data":
        pos = draw(st.integers(0, n - 1))
        y_bad = y.copy()
        y_bad[pos] = 3
        X_nan = X.copy()
        X_nan.flat[draw(st.integers(0, X.size - 1))] = math.nan
        kind, value = draw(st.sampled_from([
            ("X alone", X), ("a triple", (X, y, y)), ("5 columns", (np.ones((n, 5)), y)),
            (f"label 3 at row {pos}", (X, y_bad)), ("NaN in X_val", (X_nan, y)), ("a string", "val"),
            ("rows that do not match", (X, y[:-1]))]))
        return arg, ("validation_data",), f"validation_data = {kind}", {"validation_data": value}
    if arg == "batch_size" and draw(st.booleans()):
        # not a bad value in itself, but BatchNorm cannot train on the last batch of one row: fit must
        # refuse it before the first step, or train; never fail after some steps
        return arg, ("batch_size",), "batch_size = 3 (the last of 10 rows alone in its batch)", {"batch_size": 3}
    values = {"batch_size": [0, -1, 2.5, "32", True, None, math.nan],
              "epochs": [0, -1, 1.5, "1", True, None],
              "seed": [-1, "a", 1.5, True, [1]],
              "metrics": ["accuracy", ["bogus"], [3], None, "x"],
              "progress": ["yes", None, 2],
              "callbacks": [3, [3], "f"]}[arg]
    value = draw(st.sampled_from(values))
    return arg, (arg,), f"{arg} = {describe(value)}", {arg: value}


def check_fit_arguments(arg, data):
    """fit with a bad value of `arg`: a named error before the first step; the model's state dict,
    gradients, saved calls and the optimizer's state bit-identical afterwards."""
    from engine import fit
    model, loss, opt, X, y = fit_setup()
    arg, argnames, desc, override = data.draw(bad_fit_argument(arg, X, y), label="argument")
    kw = dict(X=X, y=y, epochs=2, batch_size=4, validation_data=(X, y), metrics=["accuracy"], seed=0,
              progress=False, callbacks=[])
    kw.update(override)
    what = f"fit with {desc}"
    report = Report("bad input", "state after error")
    before, obefore = snapshot(model), optimizer_snapshot(opt)
    try:
        fit(model, loss, opt, **kw)
    except Exception as e:                              # noqa: BLE001
        check_refusal(report, e, argnames, what)
        diff = changed(before, snapshot(model)) + changed(obefore, optimizer_snapshot(opt))
        if diff:
            report.fail("state after error", f"{what}: refused, but changed {diff}")
    else:
        if "last of 10 rows" not in desc:
            report.fail("bad input", f"{what}: accepted (no error)")
    return report.done()


def check_divergence(data):
    """SGD with a huge learning rate: TrainingDiverged naming the epoch and the step, or a
    normal return with finite weights; never ±inf weights returned silently."""
    from engine import fit
    from engine.losses import CrossEntropyLoss, MSELoss
    from engine.optim import SGD
    from engine.train import TrainingDiverged
    lr = data.draw(st.sampled_from([1e308, 1e300, 1e200, 1e100, 1e30]), label="lr")
    momentum = data.draw(st.sampled_from([0.0, 0.9]), label="momentum")
    batch_size = data.draw(st.sampled_from([16, 4, 1]), label="batch_size")
    epochs = data.draw(st.sampled_from([1, 3]), label="epochs")        # 1 epoch of one batch: one step
    use_ce = data.draw(st.booleans(), label="cross-entropy")
    scale = data.draw(st.sampled_from([100.0, 1.0]), label="data scale")   # gradients up to ~1e3
    model = small_model()
    rng = np.random.default_rng(0)
    X = scale * rng.standard_normal((16, 3))
    y = rng.integers(0, 2, 16) if use_ce else scale * scale * rng.standard_normal((16, 2))
    loss = CrossEntropyLoss() if use_ce else MSELoss()
    what = (f"fit with SGD(lr={lr:g}, momentum={momentum}), epochs={epochs}, batch_size={batch_size}, "
            f"{type(loss).__name__}, data scale {scale:g}")
    report = Report("divergence")
    try:
        fit(model, loss, SGD(model.parameters(), lr=lr, momentum=momentum), X, y, epochs=epochs,
            batch_size=batch_size, seed=0, progress=False)
    except TrainingDiverged as e:
        if not re.search(r"epoch \d+.*step \d+", str(e)):
            report.fail("divergence", f"{what}: TrainingDiverged does not name epoch and step: {e}")
        return report.done()
    except Exception as e:                              # noqa: BLE001
        report.fail("divergence", f"{what}: expected TrainingDiverged, got {error_text(e)}")
        return report.done()
    bad = [n for n, p in model.named_parameters() if not np.isfinite(p.value).all()]
    if bad:
        report.fail("divergence", f"{what}: returned normally with non-finite weights in {bad}")
    return report.done()


def check_fit_determinism(data):
    """fit twice with the same seed on a model with a Dropout built without rng: bit-identical
    weights (whatever the engine's default generator did in between)."""
    import engine
    from engine import fit
    seed = data.draw(st.integers(0, 2**20), label="seed")
    p = data.draw(st.sampled_from([0.1, 0.5, 0.9]), label="p")
    batch_size = data.draw(st.sampled_from([2, 5, 10]), label="batch_size")
    results = []
    for run in range(2):
        model, loss, opt, X, y = fit_setup()
        model.layers[3].p = p
        engine.manual_seed(100 + run)                  # the default generator elsewhere must not matter
        engine.seeding.default_generator().random(7 * run)
        fit(model, loss, opt, X, y, epochs=2, batch_size=batch_size, seed=seed, progress=False)
        results.append(model.state_dict())
    report = Report("determinism")
    differ = [k for k in results[0] if results[0][k].tobytes() != results[1][k].tobytes()]
    if differ:
        report.fail("determinism", f"fit(seed={seed}) twice with Dropout({p}) built without rng: {differ} differ")
    return report.done()


def check_manual_seed(data):
    """engine.manual_seed(s) before building and running a Dropout without rng makes its masks
    reproducible; a layer's own rng= still wins over it."""
    import engine
    from layers import Dropout
    seed = data.draw(st.integers(0, 2**20), label="seed")
    p = data.draw(st.sampled_from([0.2, 0.5, 0.8]), label="p")
    x = np.ones((5, 7))
    masks = []
    for _ in range(2):
        engine.manual_seed(seed)
        d = Dropout(p)
        masks.append((d.forward(x), d.forward(x)))
    own = []
    for s in (seed, seed + 1):
        engine.manual_seed(s)
        own.append(Dropout(p, rng=123).forward(x))
    report = Report("determinism")
    if any(not np.array_equal(a, b) for a, b in zip(masks[0], masks[1])):
        report.fail("determinism", f"manual_seed({seed}): a Dropout({p}) built without rng draws other masks")
    if not np.array_equal(own[0], own[1]):
        report.fail("determinism", f"Dropout({p}, rng=123) depends on engine.manual_seed")
    return report.done()


def constructor_cases(unbuildable=None):
    """[(id, cls, args, kwargs, argument, bad values)]: every argument of every distinct layer
    class in the case tables (each layer of each case's model), every loss class in
    engine.losses and every optimizer class in engine.optim. Classes whose required arguments
    cannot be read from the object are left out and listed in `unbuildable` (when given)."""
    from engine import losses
    examples = {}
    for _, kind, _, spec in all_cases():
        if kind == "layer":
            for _, layer in spec[1].named_layers():
                examples.setdefault(type(layer), layer)
        else:
            examples.setdefault(type(spec[1]), spec[1])
    for n in losses.__all__:
        cls = getattr(losses, n)
        if n != "Loss" and cls not in examples:
            examples[cls] = cls()
    for cls in optimizer_classes():
        examples[cls] = cls(small_model().parameters())
    out = []
    for cls, inst in sorted(examples.items(), key=lambda kv: kv[0].__name__):
        try:
            args, kwargs, spoil = constructor_arguments(cls, inst)
        except LookupError as e:
            if unbuildable is not None:
                unbuildable.append(str(e))
            continue
        for name, kind, bad in spoil:
            out.append((f"{cls.__name__}.{name}", cls, args, kwargs, name, bad))
    return out
