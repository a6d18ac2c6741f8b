"""The training loop: minibatches, forward, loss, backward, optimizer step (notes 000 §5.1), for
ordinary (X, y) data and for token streams with the recurrent state carried across batches
(truncated backpropagation through time, notes 000 §8).

    history = fit(model, loss, optimizer, X, y, epochs=10, batch_size=64, seed=0)
    history = fit(lm, CrossEntropyLoss(), opt, bptt_batches(train_ids, 32, 64), epochs=2,
                  validation_data=bptt_batches(valid_ids, 32, 64), clip_grad_norm=1.0)

Arrays: one epoch is one pass through the data, sampled without replacement in minibatches of
`batch_size` (the last one may be smaller).

Streams (X an engine.data.text.BPTTBatches, y None): one epoch is one pass through the stream's
batches in order. The model is stateful in torch's way, `forward(x, state, train) -> (logits,
new_state)` with `state=None` at the start of every epoch; after each step the new state is
detached (`layers.recurrent.detach_state`) and passed to the next batch's forward, so row b of
batch k+1 starts from where row b of batch k ended while no gradient flows back into batch k.
The logits (…, C) (x's shape followed by the classes) are flattened to (−1, C) and the targets
to (−1,) for the loss; the backward is `model.backward(dlogits, None, input_grad=False)` (no
gradient into the final state, none wanted for the ids or the initial state).

For the same seed, model and data the run is bit-identical. Training that diverges stops with
`TrainingDiverged`, naming the epoch and step. Every argument is checked before the first step.
"""
import time
from dataclasses import dataclass, field

import numpy as np

from .checks import NonFiniteError, all_finite, check_array, check_float, check_int
from .core import Layer, no_grad
from .data.batches import minibatches
from .data.text import BPTTBatches
from .optim import clip_grad_norm as _clip_grad_norm
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
    """Per-epoch records: history["loss"], history["val_loss"], history["<metric>"],
    history["val_<metric>"]; with val_every, the curve history["curve_step"],
    history["curve_seconds"] (training seconds, evaluation excluded) and history["curve_val_loss"].
    `seconds`: wall time of the whole call; `train_seconds`: the training clock (evaluations
    excluded); `steps`: optimizer steps taken; `stopped`: "epochs", "max_steps" or "time_budget"."""
    history: dict = field(default_factory=dict)
    seconds: float = 0.0
    train_seconds: float = 0.0
    steps: int = 0
    stopped: str = ""

    def add(self, key, value):
        self.history.setdefault(key, []).append(value)

    def __getitem__(self, key):
        return self.history[key]

    def __contains__(self, key):
        return key in self.history


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


def evaluate_stream(model, loss, stream, metrics=()):
    """(mean loss per token, {metric: value}) of a stateful model (module docstring) over a
    BPTTBatches in evaluation mode: the state starts at None and is carried through every batch
    (no_grad, train=False), each batch's loss weighted by its number of tokens."""
    if not isinstance(stream, BPTTBatches):
        raise TypeError(f"stream: expected an engine.data.text.BPTTBatches, got {type(stream).__name__}")
    total, count, sums = 0.0, 0, {_metric_name(m): 0.0 for m in metrics}
    state = None
    with no_grad():
        for x, y in stream:
            out, state = model.forward(x, state, train=False)
            pred = out.reshape(-1, out.shape[-1])
            yf = y.reshape(-1)
            total += float(loss.forward(pred, yf)) * yf.size
            for m in metrics:
                sums[_metric_name(m)] += (METRICS[m] if isinstance(m, str) else m)(pred, yf) * yf.size
            count += yf.size
    return total / count, {k: s / count for k, s in sums.items()}


def _metric_name(m):
    return m if isinstance(m, str) else getattr(m, "__name__", "metric")


PROBE_VALUES = 1 << 20     # the largest zero prediction _probe hands the loss (values, not bytes)


def _probe(model, loss, X, y, xname, yname):
    """Check X against the model and y against the loss and the model's output, without changing
    either: one evaluation-mode forward of X's first row under no_grad (nothing saved, no running
    statistics updated), then the loss on a zero prediction of the output's row shape against every
    row of y, in chunks of at most PROBE_VALUES values, one buffer reused (a zero prediction of the
    whole training output was 522 MB for a GPT run): every target is checked, little is allocated."""
    try:
        with no_grad():
            out = model.forward(*(x[:1] for x in X), train=False)
    except NonFiniteError:
        return          # X is finite: the model's own values are not; the first step reports it
    except (TypeError, ValueError) as e:
        raise type(e)(f"{xname}: the model refuses it: {e}") from None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"model: fit trains models with one output array, got {type(out).__name__}")
    N, row = len(X[0]), out.shape[1:]
    k = max(1, min(N, PROBE_VALUES // max(1, int(np.prod(row, dtype=np.int64)))))
    pred = np.zeros((k,) + row, out.dtype)
    try:
        for i in range(0, N, k):
            yi = y[i:i + k]
            loss.forward(pred[:len(yi)], yi)
    except (TypeError, ValueError) as e:
        shape = "(" + ", ".join(["N"] + [str(d) for d in out.shape[1:]]) + ")"
        raise type(e)(f"{yname}: the loss refuses it for the model's output of shape {shape}: {e}") from None


def _probe_stream(model, loss, stream, name):
    """Check a token stream against a stateful model and the loss without changing either: every
    distinct id of the stream goes through one evaluation-mode forward under no_grad (as one
    sequence of batch 1, in the stream's layout), which must return (logits, state) with logits
    of x's shape followed by the classes; then the loss on zero logits against those ids as
    targets (so an id the model or the loss cannot take is refused here, not at some step)."""
    ids = np.unique(stream.streams)
    x = ids[None, :] if stream.batch_first else ids[:, None]
    try:
        with no_grad():
            res = model.forward(x, None, train=False)
    except NonFiniteError:
        return
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name}: the model refuses the stream's ids (in [{ids[0]}, {ids[-1]}]): {e}") from None
    if not (isinstance(res, tuple) and len(res) == 2 and isinstance(res[0], np.ndarray)):
        raise TypeError(f"model: fit trains a stateful model on a stream: forward(x, state, train) must return "
                        f"(logits, state), got {type(res).__name__}")
    out = res[0]
    if out.shape[:-1] != x.shape:
        raise ValueError(f"model: on a stream the logits must have x's shape {x.shape} followed by the classes, "
                         f"got {out.shape}")
    try:
        loss.forward(np.zeros((ids.size, out.shape[-1]), out.dtype), ids)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name}: the loss refuses the stream's targets for {out.shape[-1]} classes: {e}") from None


def _restoring_forward(model, fwd, on_error):
    """Run `fwd()` (a train-mode forward under no_grad), then put every buffer and random
    generator of the model back; a refusal is re-raised by `on_error(e)`."""
    buffers = [(b, b.copy()) for _, b in model.named_buffers() if isinstance(b, np.ndarray)]
    gens = {id(l.generator): l.generator for _, l in model.named_layers() if l.stochastic}
    gen_states = {k: g.bit_generator.state for k, g in gens.items()}
    try:
        with no_grad():
            fwd()
    except NonFiniteError:
        pass            # as in _probe: divergence is the training loop's to report
    except (TypeError, ValueError) as e:
        on_error(e)
    finally:
        for b, old in buffers:
            b[...] = old
        for k, g in gens.items():
            g.bit_generator.state = gen_states[k]


def _probe_train(model, X, batch_size):
    """The smallest batch fit will train on (the last one, when N is not a multiple of
    batch_size), forwarded in train mode under no_grad, then every parameter, buffer and random
    generator put back: a model that refuses it (BatchNorm on one row) is refused before the
    first step instead of after some."""
    N = len(X[0])
    rest = N % batch_size
    n = rest if rest else min(batch_size, N)

    def refuse(e):
        raise ValueError(f"batch_size: with {N} rows and batch_size={batch_size} a batch has {n} "
                         f"row(s), which the model refuses in training: {e}") from None
    _restoring_forward(model, lambda: model.forward(*(x[:n] for x in X), train=True), refuse)


def _probe_stream_train(model, stream):
    """The stream's first and last batches forwarded in train mode (as _probe_train)."""
    batches = list(stream)
    for k in sorted({0, len(batches) - 1}):
        x = batches[k][0]

        def refuse(e, k=k, x=x):
            raise ValueError(f"X: the model refuses batch {k} of the stream (shape {x.shape}) in training: {e}") \
                from None
        _restoring_forward(model, lambda x=x: model.forward(x, None, train=True), refuse)


def _check_fit_args(model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, seed, progress,
                    callbacks, scheduler, clip_grad_norm, max_steps, time_budget, val_every):
    """Every argument of `fit`, checked before the first step (nothing is changed if one is bad)."""
    if not isinstance(model, Layer):
        raise TypeError(f"model: expected a Layer, got {type(model).__name__}")
    for name, obj, meths in (("loss", loss, ("forward", "backward")), ("optimizer", optimizer, ("step",))):
        if not all(callable(getattr(obj, m, None)) for m in meths):
            raise TypeError(f"{name}: expected an object with {' and '.join(meths)}(), got {type(obj).__name__}")
    if scheduler is not None:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"scheduler: expected a learning-rate scheduler with step(), got {type(scheduler).__name__}")
        if getattr(scheduler, "optimizer", optimizer) is not optimizer:
            raise ValueError("scheduler: it schedules another optimizer than the one given to fit")
    if clip_grad_norm is not None:
        clip_grad_norm = check_float("clip_grad_norm", clip_grad_norm, low=0.0, low_open=True)
    if max_steps is not None:
        max_steps = check_int("max_steps", max_steps, low=1)
    if time_budget is not None:
        time_budget = check_float("time_budget", time_budget, low=0.0, low_open=True)
    if epochs is None and max_steps is None and time_budget is None:
        raise TypeError("epochs: expected an int (None only with max_steps or time_budget), got None")
    if epochs is not None:
        epochs = check_int("epochs", epochs, low=1)
    if val_every is not None:
        val_every = check_int("val_every", val_every, low=1)
        if validation_data is None:
            raise ValueError("val_every: a validation curve needs validation_data")
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
    if isinstance(X, BPTTBatches):
        if y is not None:
            raise ValueError(f"y: expected None when X is a BPTTBatches stream (its targets are the next "
                             f"tokens), got {type(y).__name__}")
        if batch_size is not None:
            raise ValueError(f"batch_size: expected None when X is a BPTTBatches stream (it has "
                             f"batch_size={X.batch_size}), got {batch_size!r}")
        _probe_stream(model, loss, X, "X")
        _probe_stream_train(model, X)
        if validation_data is not None:
            if not isinstance(validation_data, BPTTBatches):
                raise TypeError(f"validation_data: expected a BPTTBatches stream when X is one, got "
                                f"{type(validation_data).__name__}")
            if validation_data.batch_first != X.batch_first:
                raise ValueError(f"validation_data: expected batch_first={X.batch_first} like X, "
                                 f"got {validation_data.batch_first}")
            _probe_stream(model, loss, validation_data, "validation_data")
        return (X, y, validation_data, epochs, batch_size, seed, clip_grad_norm, max_steps, time_budget,
                val_every)
    batch_size = check_int("batch_size", batch_size, low=1)
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
    return X, y, validation_data, epochs, batch_size, seed, clip_grad_norm, max_steps, time_budget, val_every


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


def fit(model, loss, optimizer, X, y=None, epochs=None, batch_size=None, validation_data=None, metrics=(),
        seed=None, progress="auto", callbacks=(), scheduler=None, clip_grad_norm=None, max_steps=None,
        time_budget=None, val_every=None):
    """Train `model` with minibatch gradient descent, on arrays (X, y) or on a token stream.

    model:      a Layer; loss: an engine.losses loss; optimizer: an engine.optim optimizer over
                the model's parameters.
    X, y:       arrays with the same first dimension N (y: labels or targets, as the loss expects);
                for a model of several inputs (Bilinear, …) X is a tuple of arrays, forward(*X).
                Or X an engine.data.text.BPTTBatches (`bptt_batches(ids, B, T)`) and y None: the
                model is stateful, forward(x, state, train) -> (logits, state), and the state is
                carried from batch to batch with its gradient cut (module docstring).
    epochs:     a positive int; None only with max_steps or time_budget (then: until they stop it).
    batch_size: a positive int for arrays; None for a stream (it has its own B and T).
    validation_data: optional (X_val, y_val), or a BPTTBatches for a stream, evaluated after every
                epoch (train=False; a stream with its state carried, `evaluate_stream`).
    metrics:    names ("accuracy") or callables m(pred, y) -> float, recorded per epoch on the
                training batches (as a running mean) and on the validation data (for a stream,
                pred is the flattened (−1, C) logits and y the flattened targets).
    seed:       None or an int >= 0: seeds the shuffling and gives every stochastic layer of the
                model (Dropout, ...) its own stream derived from it (engine.seeding), so the same
                seed, model and data give bit-identical weights at a fixed thread count.
    progress:   True, False or "auto": a tqdm bar over the steps (engine.progress: on a terminal
                and in Jupyter, none in pipes or when CI is set), one line per epoch.
    callbacks:  functions called as cb(info) after every optimizer step, info = {"epoch", "step",
                "loss", "model", "lr", "grad_norm"} (grad_norm: the norm before clipping, None
                without clip_grad_norm); gradients of that step are still in the parameters.
    scheduler:  an engine.schedules scheduler of `optimizer`, stepped after every optimizer step
                (not every epoch: give it T_max etc. in steps).
    clip_grad_norm: None or max_norm > 0: after the backward, the gradients of the model's
                parameters are rescaled to a joint 2-norm of at most max_norm
                (engine.optim.clip_grad_norm), before the optimizer step.
    max_steps:  None or an int >= 1: stop after that many optimizer steps in all.
    time_budget: None or seconds > 0: stop after the first step that ends with the training clock
                (wall time of the steps, evaluations excluded) at or past the budget.
                An epoch cut short by either still gets its records (over the batches it ran).
    val_every:  None or an int >= 1: also evaluate the validation data every val_every steps
                (and after the last step), recording the curve history["curve_step"],
                ["curve_seconds"] (training clock) and ["curve_val_loss"].
    Every argument is checked before the first step: a refused call changes nothing.
    Returns a History. Raises TrainingDiverged, naming the epoch and step, when the model's
    output, the loss, a gradient, a parameter after the update or the validation loss is NaN/Inf.
    """
    (X, y, validation_data, epochs, batch_size, seed, clip_grad_norm, max_steps, time_budget,
     val_every) = _check_fit_args(model, loss, optimizer, X, y, epochs, batch_size, validation_data, metrics, seed,
                                  progress, callbacks, scheduler, clip_grad_norm, max_steps, time_budget,
                                  val_every)
    if seed is not None:
        seed_layers(model, seed)
    run = _Run(model, loss, optimizer, X, y, batch_size, validation_data, metrics, np.random.default_rng(seed),
               callbacks, scheduler, clip_grad_norm, max_steps, time_budget, val_every)
    per_epoch = len(X) if run.stream else (len(X[0]) + batch_size - 1) // batch_size
    total = None if epochs is None else epochs * per_epoch
    if max_steps is not None:
        total = max_steps if total is None else min(total, max_steps)
    start = time.perf_counter()
    with progress_bar(total=total, desc="fit", enabled=progress, unit="step") as bar:
        run.train(epochs, bar)
    run.history.seconds = time.perf_counter() - start
    return run.history


class _Run:
    """One call of fit: the loop over epochs and steps, shared by arrays and streams."""

    def __init__(self, model, loss, optimizer, X, y, batch_size, validation_data, metrics, rng, callbacks,
                 scheduler, clip, max_steps, time_budget, val_every):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.X, self.y, self.batch_size = X, y, batch_size
        self.validation_data, self.metrics, self.rng, self.callbacks = validation_data, metrics, rng, callbacks
        self.scheduler, self.clip, self.max_steps, self.time_budget = scheduler, clip, max_steps, time_budget
        self.val_every = val_every
        self.stream = isinstance(X, BPTTBatches)
        self.history = History()
        self.clock = 0.0                    # training seconds (evaluations excluded)
        self._last_eval = None              # (steps, val loss, val metrics) of the last curve point

    def _batches(self):
        """One epoch of (inputs, targets) for the step."""
        if self.stream:
            yield from self.X
            return
        N = len(self.X[0])
        # the batches' row indices, in engine.data's order (minibatches of the indices themselves)
        for idx, yb in minibatches(np.arange(N), self.y, self.batch_size, seed=self.rng):
            yield tuple(x[idx] for x in self.X), yb

    def _evaluate(self):
        if self.stream:
            return evaluate_stream(self.model, self.loss, self.validation_data, self.metrics)
        return evaluate(self.model, self.loss, self.validation_data[0], self.validation_data[1], self.metrics)

    def _validate(self, epoch, step):
        vloss, vmetrics = self._evaluate()
        if not np.isfinite(vloss):
            raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: validation loss is {vloss}")
        return vloss, vmetrics

    def _curve_point(self, epoch, step):
        vloss, vmetrics = self._validate(epoch, step)
        self._last_eval = (self.history.steps, vloss, vmetrics)      # reused at the epoch's end
        h = self.history
        h.add("curve_step", h.steps)
        h.add("curve_seconds", self.clock)
        h.add("curve_val_loss", vloss)

    def _step(self, inputs, target, epoch, step):
        """zero_grad, forward, loss, backward, checks, clipping, optimizer and scheduler step.
        Returns (loss value, prediction, targets as the loss saw them, grad norm or None)."""
        model = self.model
        model.zero_grad()
        try:    # the data were checked, so a non-finite array inside the model means divergence
            if self.stream:
                out, new_state = model.forward(inputs, self.state, train=True)
                pred, target = out.reshape(-1, out.shape[-1]), target.reshape(-1)
            else:
                pred = model.forward(*inputs, train=True)
            if not all_finite(pred):
                raise NonFiniteError("the model's output has NaN or Inf")
            value = float(self.loss.forward(pred, target))
            if not np.isfinite(value):
                raise NonFiniteError(f"loss is {value}")
            g = self.loss.backward()
            if self.stream:
                model.backward(g.reshape(out.shape), None, input_grad=False)
                self.state = detach_state(new_state)          # carried on, its gradient cut
            else:
                model.backward(g, input_grad=False)
        except NonFiniteError as e:
            model.zero_grad()
            raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: {e}") from None
        for name, p in model.named_parameters():
            if not all_finite(p.grad):
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: "
                                       f"gradient of {name} has NaN or Inf")
        norm = None if self.clip is None else _clip_grad_norm(model.parameters(), self.clip)
        self.optimizer.step()
        for name, p in model.named_parameters():
            if not all_finite(p.value):
                raise TrainingDiverged(f"training diverged at epoch {epoch}, step {step}: "
                                       f"parameter {name} has NaN or Inf after the update")
        if self.scheduler is not None:
            self.scheduler.step()
        return value, pred, target, norm

    def _stop(self):
        if self.max_steps is not None and self.history.steps >= self.max_steps:
            return "max_steps"
        if self.time_budget is not None and self.clock >= self.time_budget:
            return "time_budget"
        return ""

    def train(self, epochs, bar):
        h, metrics = self.history, self.metrics
        epoch = 0
        while not h.stopped and (epochs is None or epoch < epochs):
            epoch += 1
            total, count, sums = 0.0, 0, {_metric_name(m): 0.0 for m in metrics}
            self.state = None
            step = 0
            for step, (inputs, target) in enumerate(self._batches(), start=1):
                t0 = time.perf_counter()
                value, pred, target, norm = self._step(inputs, target, epoch, step)
                n = len(pred) if self.stream else len(target)
                total += value * n
                count += n
                for m in metrics:
                    sums[_metric_name(m)] += (METRICS[m] if isinstance(m, str) else m)(pred, target) * n
                self.clock += time.perf_counter() - t0
                h.steps += 1
                for cb in self.callbacks:
                    cb({"epoch": epoch, "step": step, "loss": value, "model": self.model,
                        "lr": getattr(self.optimizer, "lr", None), "grad_norm": norm})
                bar.update(1)
                if not bar.disable:
                    bar.set_postfix(epoch=f"{epoch}/{epochs or '?'}", loss=f"{value:.4f}", refresh=False)
                h.stopped = self._stop()
                if self.val_every is not None and (h.steps % self.val_every == 0 or h.stopped):
                    self._curve_point(epoch, step)
                if h.stopped:
                    break
            h.add("loss", total / count)
            for k, s in sums.items():
                h.add(k, s / count)
            if self.validation_data is not None:
                if self._last_eval is not None and self._last_eval[0] == h.steps:
                    _, vloss, vmetrics = self._last_eval       # the curve's point of this very step
                else:
                    vloss, vmetrics = self._validate(epoch, step)
                h.add("val_loss", vloss)
                for k, v in vmetrics.items():
                    h.add("val_" + k, v)
            if not bar.disable:
                bar.write(f"epoch {epoch}/{epochs or '?'} " + " ".join(
                    f"{k} {v[-1]:.4f}" for k, v in h.history.items() if not k.startswith("curve_")))
        if self.val_every is not None and (not h["curve_step"] or h["curve_step"][-1] != h.steps):
            self._curve_point(epoch, step)
        h.stopped = h.stopped or "epochs"
        h.train_seconds = self.clock


def detach_state(state):
    """The recurrent state carried to the next batch with its gradient link cut: a copy of the
    (nested) arrays, what layers.recurrent.detach_state (torch's .detach()) does; the engine keeps
    no graph between calls, so the copy only keeps the next forward's saved arrays apart from this
    step's outputs. (Here, not imported from layers: the engine does not depend on the layers.)"""
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(detach_state(s) for s in state)
    if not isinstance(state, np.ndarray):
        raise TypeError(f"model: the state returned by forward must be arrays or tuples of arrays, "
                        f"got {type(state).__name__}")
    return state.copy()
