"""The training loop: shuffled minibatches, forward, loss, backward, optimizer step (notes 000 §5.1).

    history = fit(model, loss, optimizer, X, y, epochs=10, batch_size=64, seed=0)

One epoch is one pass through the data, sampled without replacement in minibatches of
`batch_size` (the last one may be smaller). For the same seed, model and data the run is
bit-identical. Training that diverges stops with `TrainingDiverged`, naming the epoch and step.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .checks import all_finite, check_int
from .core import Layer, no_grad
from .data.batches import minibatches
from .progress import progress as progress_bar


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


def predict(model, X, batch_size=256):
    """The model's outputs on X in evaluation mode (train=False), in batches, recording nothing
    for a backward (no_grad)."""
    with no_grad():
        outs = [model.forward(X[i:i + batch_size], train=False) for i in range(0, len(X), batch_size)]
    return np.concatenate(outs, axis=0)


def evaluate(model, loss, X, y, metrics=(), batch_size=256):
    """(mean loss, {metric: value}) of the model on (X, y) in evaluation mode."""
    pred = predict(model, X, batch_size)
    value = float(loss.forward(pred, y))
    return value, {_metric_name(m): (METRICS[m] if isinstance(m, str) else m)(pred, y) for m in metrics}


def _metric_name(m):
    return m if isinstance(m, str) else getattr(m, "__name__", "metric")


def fit(model, loss, optimizer, X, y, epochs, batch_size, validation_data=None, metrics=(),
        seed=None, progress="auto", callbacks=()):
    """Train `model` on (X, y) with minibatch gradient descent.

    model:      a Layer; loss: an engine.losses loss; optimizer: an engine.optim optimizer over
                the model's parameters.
    X, y:       arrays with the same first dimension N (y: labels or targets, as the loss expects).
    epochs, batch_size: positive ints.
    validation_data: optional (X_val, y_val), evaluated after every epoch (train=False).
    metrics:    names ("accuracy") or callables m(pred, y) -> float, recorded per epoch on the
                training batches (as a running mean) and on the validation data.
    seed:       seeds the shuffling: the same seed gives a bit-identical run.
    progress:   True, False or "auto": a tqdm bar over the steps (engine.progress: on a terminal
                and in Jupyter, none in pipes or when CI is set), one line per epoch.
    callbacks:  functions called as cb(info) after every optimizer step, info = {"epoch", "step",
                "loss", "model"}; gradients of that step are still in the parameters.
    Returns a History. Raises TrainingDiverged when the loss or a gradient is NaN/Inf.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"model: expected a Layer, got {type(model).__name__}")
    for name, obj, meths in (("loss", loss, ("forward", "backward")), ("optimizer", optimizer, ("step",))):
        if not all(callable(getattr(obj, m, None)) for m in meths):
            raise TypeError(f"{name}: expected an object with {' and '.join(meths)}(), got {type(obj).__name__}")
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise ValueError(f"y: expected {len(X)} rows to match X, got {len(y)}")
    epochs = check_int("epochs", epochs, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    for m in metrics:
        if isinstance(m, str) and m not in METRICS:
            raise ValueError(f"metrics: expected names in {sorted(METRICS)} or callables, got {m!r}")
    if validation_data is not None and (not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2):
        raise ValueError("validation_data: expected a pair (X_val, y_val)")

    rng = np.random.default_rng(seed)
    history = History()
    N = len(X)
    steps = (N + batch_size - 1) // batch_size
    start = time.perf_counter()
    with progress_bar(total=epochs * steps, desc="fit", enabled=progress, unit="step") as bar:
        _train(model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, rng, callbacks,
               history, bar)
    history.seconds = time.perf_counter() - start
    return history


def _train(model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, rng, callbacks, history, bar):
    N = len(X)
    for epoch in range(1, epochs + 1):
        total, sums = 0.0, {_metric_name(m): 0.0 for m in metrics}
        for step, (Xb, yb) in enumerate(minibatches(X, y, batch_size, seed=rng), start=1):
            model.zero_grad()
            pred = model.forward(Xb, train=True)
            if not all_finite(pred):
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: "
                                       "the model's output has NaN or Inf")
            value = float(loss.forward(pred, yb))
            if not np.isfinite(value):
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: loss is {value}")
            model.backward(loss.backward(), input_grad=False)
            for name, p in model.named_parameters():
                if not all_finite(p.grad):
                    raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: "
                                           f"gradient of {name} has NaN or Inf")
            optimizer.step()
            total += value * len(Xb)
            for m in metrics:
                sums[_metric_name(m)] += (METRICS[m] if isinstance(m, str) else m)(pred, yb) * len(Xb)
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
            history.add("val_loss", vloss)
            for k, v in vmetrics.items():
                history.add("val_" + k, v)
        if not bar.disable:
            bar.write(f"epoch {epoch}/{epochs} " + " ".join(f"{k} {v[-1]:.4f}" for k, v in history.history.items()))
