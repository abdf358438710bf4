"""The scratch LSTMClassifier's twin: `nn.LSTM(batch_first=True)` over the rows of a digit, then `nn.Linear`.

    >>> from torch_impl.sequence import LSTMClassifier
    >>> model = LSTMClassifier()          # parameters "lstm.weight_ih_l0", ..., "head.weight", "head.bias"
    >>> loss = nn.CrossEntropyLoss()(model(x), y); loss.backward()   # autograd through time
    >>> h = model.hidden_states(x)        # [B, 28, 128]
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class LSTMClassifier(nn.Module):
    """x as [B, T, input_size] (row after row) -> one-layer LSTM -> Linear on the last hidden state."""

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.input_size = input_size
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, num_classes)

    def sequence(self, x: Tensor) -> Tensor:
        if x[0].numel() % self.input_size:
            raise ValueError(f"LSTMClassifier(input_size={self.input_size}) reads each image in steps of "
                             f"{self.input_size} values, but an image of shape {list(x.shape[1:])} has "
                             f"{x[0].numel()}; give [B, 784], [B, 28, 28] or [B, 1, 28, 28] with input_size=28")
        return x.reshape(x.shape[0], -1, self.input_size)

    def forward(self, x: Tensor) -> Tensor:
        states, _ = self.lstm(self.sequence(x))
        return self.head(states[:, -1])

    @torch.no_grad()
    def hidden_states(self, x: Tensor) -> Tensor:
        """The LSTM's hidden state after each row, [B, T, hidden_size]."""
        return self.lstm(self.sequence(x))[0]
