"""The scratch network's twin as ordinary `torch.nn.Module`s, trained with `torch.optim`."""

from torch_impl.activations import ACTIVATIONS
from torch_impl.cnn import CNN
from torch_impl.losses import LOSSES, CrossEntropyLoss, MSELoss
from torch_impl.mlp import MLP
from torch_impl.optim import SGD, Adam, AdamW
from torch_impl.sequence import LSTMClassifier
from torch_impl.transformer import TransformerEncoderLayer
from torch_impl.vit import ViT

__all__ = ["ACTIVATIONS", "CNN", "LOSSES", "MLP", "SGD", "Adam", "AdamW", "CrossEntropyLoss", "MSELoss",
           "LSTMClassifier", "TransformerEncoderLayer", "ViT"]
