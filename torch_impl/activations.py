"""The activations of `scratch/activations.py`, as the ordinary `torch.nn` modules."""

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}
