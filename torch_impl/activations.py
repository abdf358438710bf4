"""The activations of `scratch/activations.py`, as the ordinary `torch.nn` modules."""

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
    "leaky-relu": nn.LeakyReLU,  # negative_slope 0.01, the scratch default
    "gelu": nn.GELU,  # approximate="none": the exact erf form
    "linear": nn.Identity,
}
