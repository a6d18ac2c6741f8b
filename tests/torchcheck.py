"""Run an engine layer and its PyTorch counterpart on the same input and upstream gradient."""
import numpy as np


def run_both(layer, torch_module, x, G=None, train=True, seed=1):
    """Forward x through both, backward one random upstream gradient G (never all ones) through
    both. Returns (y, dx, y_torch, dx_torch) as NumPy arrays; parameter gradients stay in the
    layer and the module for the caller to compare."""
    import torch
    y = layer.forward(x, train=train)
    if G is None:
        G = np.random.default_rng(seed).standard_normal(y.shape)
    dx = layer.backward(G)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch_module(xt)
    yt.backward(torch.tensor(G))
    return y, dx, yt.detach().numpy(), xt.grad.numpy()
