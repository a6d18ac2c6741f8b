"""Layers: one module per family, each with its @njit forward/backward kernels and a thin Layer class
(names, constructor arguments and parameter names as torch.nn)."""
from .attention import MultiheadAttention, ScaledDotProductAttention, causal_mask, scaled_dot_product_attention
from .activations import (GELU, Heaviside, Identity, LeakyReLU, ReLU, Sigmoid, Softmax, Softplus,
                          Tanh)
from .containers import Concat, Residual, SkipConcat
from .conv import Conv1d, Conv2d
from .dense import Bilinear, Linear
from .dropout import Dropout
from .embedding import Embedding
from .language_models import FFNNLM, RecurrentLM
from .mlp import MLP
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, detach_state
from .transformer import (LearnedPositionalEmbedding, SinusoidalPositionalEncoding, TransformerEncoder,
                          TransformerEncoderLayer)
from .gpt import GPT
from .wordvec import CBOW, HierarchicalSoftmax, NegativeSampling
from .pooling import AdaptiveAvgPool2d, AvgPool1d, AvgPool2d, Flatten, MaxPool1d, MaxPool2d

__all__ = ["Linear", "Bilinear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Softplus", "Identity",
           "Heaviside", "Softmax", "MLP",
           "Conv1d", "Conv2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
           "AdaptiveAvgPool2d", "Flatten", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout",
           "Residual", "Concat", "SkipConcat", "Embedding",
           "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell", "detach_state",
           "CBOW", "HierarchicalSoftmax", "NegativeSampling", "FFNNLM", "RecurrentLM",
           "ScaledDotProductAttention", "MultiheadAttention", "causal_mask", "scaled_dot_product_attention",
           "SinusoidalPositionalEncoding", "LearnedPositionalEmbedding", "TransformerEncoderLayer",
           "TransformerEncoder", "GPT"]
