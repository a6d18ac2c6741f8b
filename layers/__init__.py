"""Layers: one module per family, each with its @njit forward/backward kernels and a thin Layer class."""
from .activations import (GELU, Heaviside, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus,
                          Tanh)
from .dense import Linear
from .mlp import MLP

__all__ = ["Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softplus", "Identity",
           "Heaviside", "Softmax", "MLP"]
