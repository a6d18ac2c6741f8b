"""The training loop: shuffled minibatches, forward, loss, backward, optimizer step (notes 000 §5.1).

    history = fit(model, loss, optimizer, X, y, epochs=10, batch_size=64, seed=0)

One epoch is one pass through the data, sampled without replacement in minibatches of
`batch_size` (the last one may be smaller). For the same seed, model and data the run is
bit-identical. Training that diverges stops with `TrainingDiverged`, naming the epoch and step.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .checks import NonFiniteError, all_finite, check_array, check_int
from .core import Layer, no_grad
from .data.batches import minibatches
from .progress import progress as progress_bar
from .seeding import seed_layers


class TrainingDiverged(FloatingPointError):
    """The loss or a gradient became NaN or Inf."""


def accuracy(pred, y):
    """Fraction of rows whose arg-max (or, for one output column, pred > 0) equals the label."""
    if pred.ndim == 2 and pred.shape[1] > 1:
        return float(np.mean(np.argmax(pred, axis=1) == y))
    return float(np.mean((pred.reshape(-1) > 0) == (np.asarray(y).reshape(-1) > 0.5)))


METRICS = {"accuracy": accuracy}


@dataclass
class History:
    """Per-epoch records: history["loss"], history["val_loss"], history["<metric>"], history["val_<metric>"]."""
    history: dict = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, key, value):
        self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]


def _inputs(X):
    """The model's inputs as a tuple: X itself for a model of several inputs, else (X,)."""
    return tuple(X) if isinstance(X, (tuple, list)) else (X,)


def predict(model, X, batch_size=256):
    """The model's outputs on X (an array, or a tuple of arrays for a model of several inputs)
    in evaluation mode (train=False), in batches, recording nothing for a backward (no_grad)."""
    Xs = _inputs(X)
    with no_grad():
        outs = [model.forward(*(x[i:i + batch_size] for x in Xs), train=False)
                for i in range(0, len(Xs[0]), batch_size)]
    return np.concatenate(outs, axis=0)


def evaluate(model, loss, X, y, metrics=(), batch_size=256):
    """(mean loss, {metric: value}) of the model on (X, y) in evaluation mode."""
    pred = predict(model, X, batch_size)
    value = float(loss.forward(pred, y))
    return value, {_metric_name(m): (METRICS[m] if isinstance(m, str) else m)(pred, y) for m in metrics}


def _metric_name(m):
    return m if isinstance(m, str) else getattr(m, "__name__", "metric")


def _probe(model, loss, X, y, xname, yname):
    """Check X against the model and y against the loss and the model's output, without changing
    either: one evaluation-mode forward of X's first row under no_grad (nothing saved, no running
    statistics updated), then the loss on a zero prediction of the full output shape."""
    try:
        with no_grad():
            out = model.forward(*(x[:1] for x in X), train=False)
    except NonFiniteError:
        return          # X is finite: the model's own values are not; the first step reports it
    except (TypeError, ValueError) as e:
        raise type(e)(f"{xname}: the model refuses it: {e}") from None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"model: fit trains models with one output array, got {type(out).__name__}")
    try:
        loss.forward(np.zeros((len(X[0]),) + out.shape[1:], out.dtype), y)
    except (TypeError, ValueError) as e:
        shape = "(" + ", ".join(["N"] + [str(d) for d in out.shape[1:]]) + ")"
        raise type(e)(f"{yname}: the loss refuses it for the model's output of shape {shape}: {e}") from None


def _probe_train(model, X, batch_size):
    """The smallest batch fit will train on (the last one, when N is not a multiple of
    batch_size), forwarded in train mode under no_grad, then every parameter, buffer and random
    generator put back: a model that refuses it (BatchNorm on one row) is refused before the
    first step instead of after some."""
    N = len(X[0])
    rest = N % batch_size
    n = rest if rest else min(batch_size, N)
    buffers = [(b, b.copy()) for _, b in model.named_buffers() if isinstance(b, np.ndarray)]
    gens = {id(l.generator): l.generator for _, l in model.named_layers() if l.stochastic}
    gen_states = {k: g.bit_generator.state for k, g in gens.items()}
    try:
        with no_grad():
            model.forward(*(x[:n] for x in X), train=True)
    except NonFiniteError:
        pass            # as in _probe: divergence is the training loop's to report
    except (TypeError, ValueError) as e:
        raise ValueError(f"batch_size: with {N} rows and batch_size={batch_size} a batch has {n} "
                         f"row(s), which the model refuses in training: {e}") from None
    finally:
        for b, old in buffers:
            b[...] = old
        for k, g in gens.items():
            g.bit_generator.state = gen_states[k]


def _check_fit_args(model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, seed, progress,
                    callbacks):
    """Every argument of `fit`, checked before the first step (nothing is changed if one is bad)."""
    if not isinstance(model, Layer):
        raise TypeError(f"model: expected a Layer, got {type(model).__name__}")
    for name, obj, meths in (("loss", loss, ("forward", "backward")), ("optimizer", optimizer, ("step",))):
        if not all(callable(getattr(obj, m, None)) for m in meths):
            raise TypeError(f"{name}: expected an object with {' and '.join(meths)}(), got {type(obj).__name__}")
    epochs = check_int("epochs", epochs, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    if seed is not None:
        seed = check_int("seed", seed, low=0)
    if not (isinstance(progress, bool) or progress == "auto"):
        raise ValueError(f"progress: expected True, False or 'auto', got {progress!r}")
    if isinstance(metrics, (str, bytes)) or not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics: expected a list of names or callables, got {metrics!r}")
    for i, m in enumerate(metrics):
        if not callable(m) and m not in METRICS:
            raise ValueError(f"metrics[{i}]: expected one of {sorted(METRICS)} or a callable, got {m!r}")
    if not isinstance(callbacks, (list, tuple)) or not all(callable(cb) for cb in callbacks):
        raise TypeError(f"callbacks: expected a list of callables, got {callbacks!r}")
    X = _check_inputs("X", X)
    y = _check_targets("y", y, len(X[0]))
    _probe(model, loss, X, y, "X", "y")
    _probe_train(model, X, batch_size)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"validation_data: expected a pair (X_val, y_val), got {type(validation_data).__name__}")
        X_val = _check_inputs("validation_data[0]", validation_data[0])
        y_val = _check_targets("validation_data[1]", validation_data[1], len(X_val[0]))
        _probe(model, loss, X_val, y_val, "validation_data[0]", "validation_data[1]")
        validation_data = (X_val, y_val)
    return X, y, validation_data, epochs, batch_size, seed


def _check_inputs(name, X):
    """X as a tuple of the model's inputs (an array, or a tuple/list of arrays with the same
    number of rows); floating inputs must be finite, integer ones (token ids) are passed as they are."""
    Xs = _inputs(X)
    if not Xs:
        raise ValueError(f"{name}: expected an array or a non-empty tuple of arrays, got an empty {type(X).__name__}")
    out = []
    for i, x in enumerate(Xs):
        xname = name if len(Xs) == 1 and not isinstance(X, (tuple, list)) else f"{name}[{i}]"
        if isinstance(x, np.ndarray) and x.dtype.kind in "iu" and x.ndim > 0 and x.size > 0:
            out.append(x)
        else:
            out.append(check_array(xname, x, ndim=tuple(range(1, 33))))
        if len(out[-1]) != len(out[0]):
            raise ValueError(f"{xname}: expected {len(out[0])} rows like {name}[0], got {len(out[-1])}")
    return tuple(out)


def _check_targets(name, y, n):
    if not isinstance(y, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray, got {type(y).__name__}")
    if y.ndim == 0 or len(y) != n:
        raise ValueError(f"{name}: expected {n} rows to match the inputs, got shape {y.shape}")
    return y


def fit(model, loss, optimizer, X, y, epochs, batch_size, validation_data=None, metrics=(),
        seed=None, progress="auto", callbacks=()):
    """Train `model` on (X, y) with minibatch gradient descent.

    model:      a Layer; loss: an engine.losses loss; optimizer: an engine.optim optimizer over
                the model's parameters.
    X, y:       arrays with the same first dimension N (y: labels or targets, as the loss expects);
                for a model of several inputs (Bilinear, …) X is a tuple of arrays, forward(*X).
    epochs, batch_size: positive ints.
    validation_data: optional (X_val, y_val), evaluated after every epoch (train=False).
    metrics:    names ("accuracy") or callables m(pred, y) -> float, recorded per epoch on the
                training batches (as a running mean) and on the validation data.
    seed:       None or an int >= 0: seeds the shuffling and gives every stochastic layer of the
                model (Dropout, ...) its own stream derived from it (engine.seeding), so the same
                seed, model and data give bit-identical weights at a fixed thread count.
    progress:   True, False or "auto": a tqdm bar over the steps (engine.progress: on a terminal
                and in Jupyter, none in pipes or when CI is set), one line per epoch.
    callbacks:  functions called as cb(info) after every optimizer step, info = {"epoch", "step",
                "loss", "model"}; gradients of that step are still in the parameters.
    Every argument is checked before the first step: a refused call changes nothing.
    Returns a History. Raises TrainingDiverged, naming the epoch and step, when the model's
    output, the loss, a gradient, a parameter after the update or the validation loss is NaN/Inf.
    """
    X, y, validation_data, epochs, batch_size, seed = _check_fit_args(
        model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, seed, progress, callbacks)
    if seed is not None:
        seed_layers(model, seed)
    rng = np.random.default_rng(seed)
    history = History()
    N = len(X[0])
    steps = (N + batch_size - 1) // batch_size
    start = time.perf_counter()
    with progress_bar(total=epochs * steps, desc="fit", enabled=progress, unit="step") as bar:
        _train(model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, rng, callbacks,
               history, bar)
    history.seconds = time.perf_counter() - start
    return history


def _train(model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, rng, callbacks, history, bar):
    N = len(X[0])
    for epoch in range(1, epochs + 1):
        total, sums = 0.0, {_metric_name(m): 0.0 for m in metrics}
        # the batches' row indices, in engine.data's order (minibatches of the indices themselves)
        for step, (idx, yb) in enumerate(minibatches(np.arange(N), y, batch_size, seed=rng), start=1):
            Xb = tuple(x[idx] for x in X)
            model.zero_grad()
            try:    # X was checked finite, so a non-finite array inside the model means divergence
                pred = model.forward(*Xb, train=True)
                if not all_finite(pred):
                    raise NonFiniteError("the model's output has NaN or Inf")
                value = float(loss.forward(pred, yb))
                if not np.isfinite(value):
                    raise NonFiniteError(f"loss is {value}")
                model.backward(loss.backward(), input_grad=False)
            except NonFiniteError as e:
                model.zero_grad()
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: {e}") from None
            for name, p in model.named_parameters():
                if not all_finite(p.grad):
                    raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: "
                                           f"gradient of {name} has NaN or Inf")
            optimizer.step()
            for name, p in model.named_parameters():
                if not all_finite(p.value):
                    raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: "
                                           f"parameter {name} has NaN or Inf after the update")
            total += value * len(idx)
            for m in metrics:
                sums[_metric_name(m)] += (METRICS[m] if isinstance(m, str) else m)(pred, yb) * len(idx)
            for cb in callbacks:
                cb({"epoch": epoch, "step": step, "loss": value, "model": model})
            bar.update(1)
            if not bar.disable:
                bar.set_postfix(epoch=f"{epoch}/{epochs}", loss=f"{value:.4f}", refresh=False)
        history.add("loss", total / N)
        for k, s in sums.items():
            history.add(k, s / N)
        if validation_data is not None:
            vloss, vmetrics = evaluate(model, loss, validation_data[0], validation_data[1], metrics)
            if not np.isfinite(vloss):
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: "
                                       f"validation loss is {vloss}")
            history.add("val_loss", vloss)
            for k, v in vmetrics.items():
                history.add("val_" + k, v)
        if not bar.disable:
            bar.write(f"epoch {epoch}/{epochs} " + " ".join(f"{k} {v[-1]:.4f}" for k, v in history.history.items()))
