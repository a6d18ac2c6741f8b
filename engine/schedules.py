"""Learning-rate schedules (004 §3.4: "a learning rate scheduler is used to decrease an initially
large ε"), with `torch.optim.lr_scheduler`'s names, arguments and values.

    opt = SGD(params, lr=0.1)
    sched = StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(100):
        train_one_epoch(opt)
        sched.step()              # sets opt.lr for the next epoch

Like PyTorch's, each `step()` computes the new lr from the optimizer's *current* lr (the
"chainable" form), so the sequences equal PyTorch's to float rounding; the closed forms are given
in each docstring. `get_last_lr()` returns a one-element list, as PyTorch does for one group.
"""
import math

from .checks import check_float, check_int


class LRScheduler:
    """Base class: remembers the optimizer, its initial lr `base_lr` and the epoch count."""

    def __init__(self, optimizer):
        if not hasattr(optimizer, "lr"):
            raise TypeError(f"optimizer: expected an optimizer with an `lr` attribute, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = float(optimizer.lr)
        self.last_epoch = 0
        self._last_lr = [self.base_lr]

    def step(self):
        """Advance one epoch and set the optimizer's lr."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(float(self.optimizer.lr))
        self._last_lr = [self.optimizer.lr]

    def get_last_lr(self):
        return list(self._last_lr)

    def _next_lr(self, lr):
        raise NotImplementedError

    # ---- checkpoints ----
    _hyper_names = ()          # the constructor's arguments after `optimizer`, as torch names them

    def state_dict(self):
        """What the schedule holds, torch's names (its `__dict__` without the optimizer):
        {"last_epoch": t, "base_lrs": [base_lr], "_last_lr": [lr], <hyper-parameters>}.
        The optimizer's current lr is part of the *optimizer's* state dict: restore both."""
        d = {"last_epoch": self.last_epoch, "base_lrs": [self.base_lr],
             "_last_lr": list(self._last_lr)}
        d.update({k: getattr(self, k) for k in self._hyper_names})
        return d

    def load_state_dict(self, state_dict):
        """Restore what `state_dict()` returned. Every key and value is checked (exactly the keys
        `state_dict()` gives; last_epoch an int >= 0; base_lrs and _last_lr one number >= 0 each;
        the hyper-parameters the constructor's checks) before anything is written."""
        name = "state_dict"
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}: expected a dict, got {type(state_dict).__name__}")
        expected = {"last_epoch", "base_lrs", "_last_lr"} | set(self._hyper_names)
        missing, unexpected = expected - set(state_dict), set(state_dict) - expected
        if missing or unexpected:
            raise ValueError(f"{name}: missing keys {sorted(missing)}, unexpected keys "
                             f"{sorted(map(str, unexpected))}")
        last_epoch = check_int(f"{name}['last_epoch']", state_dict["last_epoch"], low=0)
        lrs = {}
        for k in ("base_lrs", "_last_lr"):
            v = state_dict[k]
            if not isinstance(v, (list, tuple)) or len(v) != 1:
                raise ValueError(f"{name}['{k}']: expected a list of one learning rate, got "
                                 f"{v!r:.200}")
            lrs[k] = check_float(f"{name}['{k}'][0]", v[0], low=0.0)
        hyper = {k: state_dict[k] for k in self._hyper_names}
        try:                  # the constructor's checks, on a throwaway schedule
            fresh = type(self)(self.optimizer, **hyper)
        except (TypeError, ValueError) as e:
            raise type(e)(f"{name}: {e}") from None
        # all checked: write
        for k in self._hyper_names:
            setattr(self, k, getattr(fresh, k))
        self.last_epoch = last_epoch
        self.base_lr = lrs["base_lrs"]
        self._last_lr = [lrs["_last_lr"]]


class StepLR(LRScheduler):
    """lr_t = base_lr · γ^⌊t / step_size⌋: multiply by γ every `step_size` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size = check_int("step_size", step_size, low=1)
        self.gamma = check_float("gamma", gamma, low=0.0)

    _hyper_names = ("step_size", "gamma")

    def _next_lr(self, lr):
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class ExponentialLR(LRScheduler):
    """lr_t = base_lr · γ^t."""

    def __init__(self, optimizer, gamma):
        super().__init__(optimizer)
        self.gamma = check_float("gamma", gamma, low=0.0)

    _hyper_names = ("gamma",)

    def _next_lr(self, lr):
        return lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """lr_t = η_min + (base_lr − η_min) (1 + cos(π t / T_max)) / 2  (SGDR without restarts;
    past T_max it rises again, as PyTorch's does). Computed as PyTorch does, from the previous lr:

        lr_t = η_min + (lr_{t−1} − η_min) (1 + cos(π t/T_max)) / (1 + cos(π (t−1)/T_max)),
    except at t − 1 ≡ T_max (mod 2 T_max), where the ratio is 0/0 and
        lr_t = lr_{t−1} + (base_lr − η_min)(1 − cos(π/T_max)) / 2.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        super().__init__(optimizer)
        self.T_max = check_int("T_max", T_max, low=1)
        self.eta_min = check_float("eta_min", eta_min, low=0.0)

    _hyper_names = ("T_max", "eta_min")

    def _next_lr(self, lr):
        t, T = self.last_epoch, self.T_max
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / T)) / 2
        return ((1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - self.eta_min) + self.eta_min)


def warmup_cosine_factor(step, warmup_steps, total_steps, min_factor=0.0):
    """The multiplier of the base lr at step t (t = 0, 1, …) of a linear warm-up followed by a
    cosine decay (the schedule of GPT-2/3 style training):

        f(t) = (t + 1) / W                                          t < W   (linear warm-up)
        f(t) = m + (1 − m) (1 + cos(π (t − W) / (S − W))) / 2        W ≤ t < S (cosine to m)
        f(t) = m                                                    t ≥ S

    with W = warmup_steps, S = total_steps, m = min_factor; f reaches 1 at t = W − 1 and W, and
    m at t = S. A plain function of t, so torch's `LambdaLR(opt, lambda t: warmup_cosine_factor(
    t, W, S, m))` runs the same schedule (tests/test_gpt_end_to_end.py does)."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if step >= total_steps:
        return min_factor
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))


class WarmupCosineLR(LRScheduler):
    """lr_t = base_lr · f(t) with f = `warmup_cosine_factor` (linear warm-up over `warmup_steps`,
    then a cosine decay to min_factor · base_lr at `total_steps`, then constant). Computed in
    closed form, as torch's LambdaLR computes `base_lr * lr_lambda(last_epoch)`, so the two agree
    exactly; like LambdaLR it sets the optimizer's lr to base_lr · f(0) when built, and `step()`
    (once per optimizer step) moves to t + 1. warmup_steps in [0, total_steps]."""

    def __init__(self, optimizer, warmup_steps, total_steps, min_factor=0.0):
        total = check_int("total_steps", total_steps, low=1)
        warm = check_int("warmup_steps", warmup_steps, low=0, high=total)
        min_factor = check_float("min_factor", min_factor, low=0.0, high=1.0)
        super().__init__(optimizer)
        self.warmup_steps, self.total_steps, self.min_factor = warm, total, min_factor
        self.optimizer.lr = self.base_lr * self.factor(0)
        self._last_lr = [self.optimizer.lr]

    _hyper_names = ("warmup_steps", "total_steps", "min_factor")

    def factor(self, step):
        """f(step) of this schedule."""
        return warmup_cosine_factor(step, self.warmup_steps, self.total_steps, self.min_factor)

    def _next_lr(self, lr):
        return self.base_lr * self.factor(self.last_epoch)

    def load_state_dict(self, state_dict):
        """As the base class's; the throwaway schedule it builds to check the hyper-parameters
        must not touch the optimizer's lr (this constructor sets it), so it is put back."""
        lr = self.optimizer.lr
        try:
            super().load_state_dict(state_dict)
        finally:
            self.optimizer.lr = lr


__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR", "WarmupCosineLR",
           "warmup_cosine_factor"]
