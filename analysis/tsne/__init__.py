"""t-SNE (notes 004 §4.2): van der Maaten & Hinton (2008) with the Barnes-Hut gradient of
van der Maaten (2014), every kernel hand-written in Numba.

    from analysis.tsne import TSNE, trustworthiness, kl_divergence
    Y = TSNE(perplexity=30, random_state=0).fit_transform(X)

Modules: `affinities` (exact kNN, perplexity calibration, symmetric sparse P), `exact` (gradient
terms, O(N²) repulsion), `barnes_hut` (tree and Barnes-Hut repulsion), `optimize` (the descent),
`metrics` (trustworthiness, KL divergence), `estimator` (the `TSNE` class and its defaults).
"""
from .estimator import TSNE, joint_probabilities
from .metrics import kl_divergence, trustworthiness

__all__ = ["TSNE", "joint_probabilities", "kl_divergence", "trustworthiness"]
