"""The scratch network's twin as ordinary `torch.nn.Module`s, trained with `torch.optim`."""

from torch_impl.activations import ACTIVATIONS
from torch_impl.cnn import CNN
from torch_impl.losses import LOSSES, CrossEntropyLoss, MSELoss
from torch_impl.mlp import MLP
from torch_impl.optim import SGD, Adam, AdamW

__all__ = ["ACTIVATIONS", "CNN", "LOSSES", "MLP", "SGD", "Adam", "AdamW", "CrossEntropyLoss", "MSELoss"]
