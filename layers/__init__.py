"""Layers: one module per family, each with its @njit forward/backward kernels and a thin Layer class
(names, constructor arguments and parameter names as torch.nn)."""
from .activations import (GELU, Heaviside, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus,
                          Tanh)
from .containers import Concat, Residual, SkipConcat
from .conv import Conv1d, Conv2d
from .dense import Bilinear, Linear
from .dropout import Dropout
from .embedding import Embedding
from .mlp import MLP
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, detach_state
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d

__all__ = ["Linear", "Bilinear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softplus", "Identity",
           "Heaviside", "Softmax", "MLP",
           "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Flatten", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout",
           "Residual", "Concat", "SkipConcat", "Embedding",
           "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "detach_state"]
