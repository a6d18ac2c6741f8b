"""Analysis of networks built with the engine (public API only):

- `analysis.regions`   exact linear regions of ReLU/LeakyReLU nets on 1-D segments and 2-D slices
- `analysis.bounds`    Zaslavsky, 2^H, Montúfar et al. and Serra et al. region bounds
- `analysis.signal`    mean-field signal propagation, variance through depth (theory and measured)
- `analysis.gradients` per-layer gradient norms at initialisation and along training; gradient
                       traces through time for RNN/LSTM/GRU (‖∂ℓ/∂h_t‖, ‖∂h_T/∂x_t‖_F vs T − t)
- `analysis.recurrent` an LSTM's gates recomputed from its public parameters
- `analysis.embeddings` nearest neighbours and analogies by cosine similarity
- `analysis.attention` the variance argument for 1/√d_k: Var(q·k) and softmax saturation with and
                       without the scale (theory and measured)
- `analysis.theory`    closed-form answers to the notes' exercises
- `analysis.tsne`      t-SNE (exact and Barnes–Hut), trustworthiness
"""
import importlib

_SUBMODULES = {"regions", "bounds", "signal", "gradients", "theory", "tsne", "recurrent", "embeddings", "attention"}


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'analysis' has no attribute {name!r}")
