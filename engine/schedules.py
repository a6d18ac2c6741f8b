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


class StepLR(LRScheduler):
    """lr_t = base_lr · γ^⌊t / step_size⌋: multiply by γ every `step_size` epochs."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        super().__init__(optimizer)
        self.step_size = check_int("step_size", step_size, low=1)
        self.gamma = check_float("gamma", gamma, low=0.0)

    def _next_lr(self, lr):
        return lr * self.gamma if self.last_epoch % self.step_size == 0 else lr


class ExponentialLR(LRScheduler):
    """lr_t = base_lr · γ^t."""

    def __init__(self, optimizer, gamma):
        super().__init__(optimizer)
        self.gamma = check_float("gamma", gamma, low=0.0)

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

    def _next_lr(self, lr):
        t, T = self.last_epoch, self.T_max
        if (t - 1 - T) % (2 * T) == 0:
            return lr + (self.base_lr - self.eta_min) * (1 - math.cos(math.pi / T)) / 2
        return ((1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T))
                * (lr - self.eta_min) + self.eta_min)


__all__ = ["LRScheduler", "StepLR", "ExponentialLR", "CosineAnnealingLR"]
