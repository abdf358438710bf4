"""An LSTM that reads a digit one row at a time, written by hand: 28 steps of 28 pixels, then a classifier.

    >>> from scratch.sequence import LSTMClassifier
    >>> model = LSTMClassifier()               # 28 inputs per step, 128 hidden units, 10 classes
    >>> logits = model(x)                      # x: [B, 784], [B, 28, 28] or [B, 1, 28, 28]  ->  [B, 10]
    >>> model.backward(dlogits, input_grad=False)   # backpropagation through time; fills every d<name>
    >>> h = model.hidden_states(x)             # [B, 28, 128]: the state after each row

Parameter names match torch_impl.sequence.LSTMClassifier ("lstm.weight_ih_l0", ..., "head.bias").
"""

from __future__ import annotations

from torch import Tensor

from scratch.linear import Linear
from scratch.module import Module
from scratch.rnn import LSTM


class LSTMClassifier(Module):
    """Rows of the image as a sequence, an LSTM over them, a Linear layer on its last hidden state.

    forward:   s = x as [B, T, I] (T = pixels / input_size rows of input_size values)
               h = lstm(s)[:, T-1]                          [B, H]   (the state after the last row)
               logits = h W_head^T + b_head                 [B, classes]
    backward:  dh = head.backward(dlogits)                  [B, H]
               dout = 0 except dout[:, T-1] = dh            [B, T, H]   (only the last state was read)
               dx = lstm.backward(dout), in the input's shape
    cache: the input's shape (dx is returned in it); the layers cache the rest.
    """

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10) -> None:
        super().__init__()
        self.input_size = input_size
        self.lstm = LSTM(input_size, hidden_size)  # drawn first, as in torch_impl
        self.head = Linear(hidden_size, num_classes)
        self.input_shape = None

    def children(self) -> list[tuple[str, Module]]:
        return [("lstm", self.lstm), ("head", self.head)]

    def sequence(self, x: Tensor) -> Tensor:
        """[B, ...] images -> [B, T, input_size]: row after row."""
        if x[0].numel() % self.input_size:
            raise ValueError(f"LSTMClassifier(input_size={self.input_size}) reads each image in steps of "
                             f"{self.input_size} values, but an image of shape {list(x.shape[1:])} has "
                             f"{x[0].numel()}; give [B, 784], [B, 28, 28] or [B, 1, 28, 28] with input_size=28")
        return x.reshape(x.shape[0], -1, self.input_size)  # B,T,I

    def forward(self, x: Tensor) -> Tensor:
        self.input_shape = x.shape
        states = self.lstm.forward(self.sequence(x))  # B,T,H
        return self.head.forward(states[:, -1])  # B,classes

    def backward(self, dlogits: Tensor, input_grad: bool = True) -> Tensor | None:
        """dL/dx in the input's shape, after filling every gradient buffer; input_grad=False skips dL/dx."""
        if self.input_shape is None:
            raise RuntimeError("LSTMClassifier.backward called before forward; run forward on a batch first")
        dh = self.head.backward(dlogits)  # B,H
        batch, hidden = dh.shape
        dout = dh.new_zeros(batch, self.lstm.h.shape[0] - 1, hidden)  # B,T,H
        dout[:, -1] = dh
        dx = self.lstm.backward(dout, input_grad=input_grad)  # B,T,I
        return None if dx is None else dx.reshape(self.input_shape)  # as x

    def hidden_states(self, x: Tensor) -> Tensor:
        """The LSTM's hidden state after each row, [B, T, hidden_size]."""
        return self.lstm.forward(self.sequence(x))  # B,T,H

    def __repr__(self) -> str:
        return f"LSTMClassifier({self.lstm!r}, head={self.head!r})"
