"""A neural network written by hand on plain tensors: forward pass, backpropagation, SGD.

Nothing here uses PyTorch's autograd, nn, nn.functional, optim or func
modules (tests/test_purity.py enforces it): every gradient is a formula in a
layer's `backward`.
"""

from scratch.activations import ACTIVATIONS, GELU, Identity, LeakyReLU, ReLU, Sigmoid, Tanh
from scratch.attention import MultiheadAttention
from scratch.batchnorm import BatchNorm1d, BatchNorm2d
from scratch.cnn import CNN
from scratch.conv import Conv2d
from scratch.dropout import Dropout
from scratch.layernorm import LayerNorm
from scratch.linear import Linear
from scratch.losses import LOSSES, CrossEntropyLoss, MSELoss
from scratch.lr_scheduler import CosineAnnealingLR, StepLR
from scratch.mlp import MLP
from scratch.module import Module, Sequential
from scratch.optim import SGD, Adam, AdamW
from scratch.pooling import AvgPool2d, MaxPool2d
from scratch.rnn import LSTM, RNN
from scratch.sequence import LSTMClassifier
from scratch.shape import Flatten
from scratch.transformer import TransformerEncoderLayer
from scratch.vit import ViT

__all__ = [
    "ACTIVATIONS", "LOSSES", "MLP", "SGD", "CrossEntropyLoss", "Linear", "MSELoss",
    "Module", "ReLU", "Sequential", "Sigmoid", "Tanh",
    "Adam", "AdamW", "BatchNorm1d", "CosineAnnealingLR", "Dropout", "GELU", "Identity", "LeakyReLU", "StepLR",
    "CNN", "AvgPool2d", "BatchNorm2d", "Conv2d", "Flatten", "MaxPool2d",
    "LSTM", "LSTMClassifier", "LayerNorm", "MultiheadAttention", "RNN", "TransformerEncoderLayer", "ViT",
]
