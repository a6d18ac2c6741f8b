"""Analysis of networks built with the engine (public API only):

- `analysis.regions`   exact linear regions of ReLU/LeakyReLU nets on 1-D segments and 2-D slices
- `analysis.bounds`    Zaslavsky, 2^H, Montúfar et al. and Serra et al. region bounds
- `analysis.signal`    mean-field signal propagation, variance through depth (theory and measured)
- `analysis.gradients` per-layer gradient norms at initialisation and along training
- `analysis.theory`    closed-form answers to the notes' exercises
- `analysis.tsne`      t-SNE (exact and Barnes–Hut), trustworthiness
"""
import importlib

_SUBMODULES = {"regions", "bounds", "signal", "gradients", "theory", "tsne"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
