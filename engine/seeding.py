"""Where random layers draw their numbers from, and how a run is made reproducible by one seed.

- A layer built with `rng=` (a seed or a numpy Generator) draws from its own Generator.
- A layer built without one draws from the engine's default Generator, which
  `engine.manual_seed(s)` resets (as `torch.manual_seed`): after it, the same sequence of
  forwards draws the same masks. Layers whose torch signature has no `rng` argument use it too.
- `fit(..., seed=s)` gives every stochastic layer of the model its own stream derived from s
  (`seed_layers`: the i-th stochastic layer in `named_layers` order gets SeedSequence([s, i])),
  whatever generator it had, so the same seed, model and data give bit-identical weights.

What is reproducible: per seed at a fixed thread count, always; across thread counts, where a
test shows it (the kernels' reductions are split by thread, so float rounding may differ).
"""
import numpy as np

from .checks import check_int

_default = {"gen": np.random.default_rng()}


def manual_seed(seed):
    """Reset the engine's default Generator to `seed` (an int >= 0); returns it."""
    seed = check_int("seed", seed, low=0)
    _default["gen"] = np.random.default_rng(seed)
    return _default["gen"]


def default_generator():
    """The Generator layers without one of their own draw from."""
    return _default["gen"]


def seed_layers(model, seed):
    """Give the i-th stochastic layer of `model` (named_layers order) the Generator
    default_rng([seed, i]); returns how many layers were seeded."""
    seed = check_int("seed", seed, low=0)
    n = 0
    for _, layer in model.named_layers():
        if layer.stochastic:
            layer.set_generator(np.random.default_rng([seed, n]))
            n += 1
    return n
