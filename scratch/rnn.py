"""Recurrent layers written by hand: a plain tanh RNN and an LSTM, trained by backpropagation through time.

    >>> lstm = LSTM(input_size=28, hidden_size=128)
    >>> out = lstm(x)                  # x: [B, T, 28] -> all hidden states [B, T, 128]; lstm.h_n, lstm.c_n: [B, 128]
    >>> dx = lstm.backward(dout)       # dout: [B, T, 128]; fills dweight_ih_l0, dweight_hh_l0, dbias_ih_l0, dbias_hh_l0
    >>> hidden_gradient_norms(RNN(28, 128), x)   # |dL/dh_t| for t = 1..T: how far back a gradient reaches

A recurrent layer reads a sequence one step at a time and carries a hidden state h from step to
step, with the same weights at every step. Backward runs the steps in reverse (backpropagation
through time, BPTT): the gradient reaching h_t is what step t's output receives plus what flows
back from step t+1. In the tanh RNN that backward flow is multiplied at every step by
W_hh^T diag(1 - h^2), which tends to shrink it geometrically (the vanishing gradient); the
LSTM's cell state c is carried forward by a multiplication with the forget gate only, so its
gradient can survive many steps. Derivations with shapes: docs/recurrence.md.

Parameter names and shapes are those of PyTorch's `nn.RNN` / `nn.LSTM(batch_first=True)` with one
layer (weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0), so state dicts copy across.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from scratch.module import Module


class RecurrentLayer(Module):
    """What RNN and LSTM share: the parameters, their initialization, and the gradients of the weights.

    With G = gates (1 for the RNN, 4 for the LSTM), pre-activations of step t are
        z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh                 [B, G*H]
    so, with dz_t the gradient of z_t (from the layer's own backward):
        dW_ih = sum_t dz_t^T x_t      dW_hh = sum_t dz_t^T h_{t-1}      db_ih = db_hh = sum_{b,t} dz_t
        dx_t  = dz_t W_ih
    Time-major storage ([T, B, ...]) keeps each step's slice contiguous; the sums over t then become
    single matrix products over all T*B rows.
    """

    param_names = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    gates = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(f"{type(self).__name__} needs positive sizes, got input_size={input_size}, "
                             f"hidden_size={hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        rows = self.gates * hidden_size
        self.weight_ih_l0 = torch.empty(rows, input_size)  # G*H,I
        self.weight_hh_l0 = torch.empty(rows, hidden_size)  # G*H,H
        self.bias_ih_l0 = torch.empty(rows)  # G*H
        self.bias_hh_l0 = torch.empty(rows)  # G*H
        # As torch's RNNBase.reset_parameters: every parameter, in this order, from U(-1/sqrt(H), 1/sqrt(H)).
        stdv = 1.0 / math.sqrt(hidden_size)
        for name in self.param_names:
            getattr(self, name).uniform_(-stdv, stdv)
            setattr(self, "d" + name, torch.zeros_like(getattr(self, name)))
        self.x: Tensor | None = None

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}(input_size={self.input_size}) expects a sequence [batch, steps, "
                             f"{self.input_size}], got {list(x.shape)}; a 28x28 digit read row by row is "
                             "[batch, 28, 28]")

    def input_projection(self, x: Tensor) -> Tensor:
        """x_t W_ih^T + b_ih + b_hh for every step at once: one matrix product instead of T. [T, B, G*H]"""
        steps, batch = x.shape[1], x.shape[0]
        self.x = x.transpose(0, 1).reshape(steps * batch, self.input_size)  # T*B,I (time-major copy)
        bias = self.bias_ih_l0 + self.bias_hh_l0  # G*H
        return torch.addmm(bias, self.x, self.weight_ih_l0.t()).view(steps, batch, -1)  # T,B,G*H

    def weight_gradients(self, dz: Tensor, h: Tensor, input_grad: bool) -> Tensor | None:
        """Fill the four gradient buffers from dz [T, B, G*H] and the states h [T+1, B, H]; return dx [B, T, I]."""
        steps, batch, rows = dz.shape
        dz = dz.view(steps * batch, rows)  # T*B,G*H
        torch.mm(dz.t(), self.x, out=self.dweight_ih_l0)  # G*H,I
        torch.mm(dz.t(), h[:-1].reshape(steps * batch, self.hidden_size), out=self.dweight_hh_l0)  # G*H,H
        torch.sum(dz, dim=0, out=self.dbias_ih_l0)  # G*H
        self.dbias_hh_l0.copy_(self.dbias_ih_l0)  # G*H: both biases are added to the same z
        if not input_grad:
            return None
        return (dz @ self.weight_ih_l0).view(steps, batch, self.input_size).transpose(0, 1)  # B,T,I

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_size}, {self.hidden_size})"


class RNN(RecurrentLayer):
    """Elman RNN with tanh, one layer (as PyTorch's `nn.RNN(input_size, hidden_size, batch_first=True)`).

    forward (h_0 = 0):   h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)        [B, H],  t = 1..T
                         out = [h_1, ..., h_T]                                        [B, T, H]
    backward (dout: [B, T, H]; from t = T down to 1, with dh_{T+1} carried = 0):
        dh_t = dout_t + dz_{t+1} W_hh                   (its own output, plus the next step's use of h_t)
        dz_t = dh_t * (1 - h_t^2)                                                      [B, H]
        then the weight gradients and dx of RecurrentLayer.
    cache: x (time-major) and every h_t (h_{t-1} for dW_hh, h_t for tanh's derivative); after backward,
    dh [T, B, H] holds each dL/dh_t (read by hidden_gradient_norms).
    """

    gates = 1

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        batch, steps, _ = x.shape
        xw = self.input_projection(x)  # T,B,H
        self.h = x.new_zeros(steps + 1, batch, self.hidden_size)  # T+1,B,H; h[0] = 0, the initial state
        for t in range(steps):
            torch.tanh(torch.addmm(xw[t], self.h[t], self.weight_hh_l0.t()), out=self.h[t + 1])  # B,H
        self.h_n = self.h[steps]  # B,H
        return self.h[1:].transpose(0, 1)  # B,T,H

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.x is None:
            raise RuntimeError("RNN.backward called before forward; run forward on a batch first")
        steps = self.h.shape[0] - 1
        dout = dout.transpose(0, 1)  # T,B,H (a view; each step reads one slice)
        self.dh = torch.empty_like(self.h[1:])  # T,B,H
        dz = torch.empty_like(self.h[1:])  # T,B,H
        dh_next = torch.zeros_like(self.h[0])  # B,H: nothing flows back into the last step from later ones
        for t in reversed(range(steps)):
            dh = torch.add(dout[t], dh_next, out=self.dh[t])  # B,H
            h = self.h[t + 1]  # B,H
            torch.mul(dh, 1 - h * h, out=dz[t])  # B,H
            dh_next = dz[t] @ self.weight_hh_l0  # B,H
        return self.weight_gradients(dz, self.h, input_grad)


class LSTM(RecurrentLayer):
    """Long short-term memory, one layer (as PyTorch's `nn.LSTM(input_size, hidden_size, batch_first=True)`).

    forward (h_0 = c_0 = 0; gates in torch's order i, f, g, o, each [B, H], cut from z_t [B, 4H]):
        z_t = x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh              [B, 4H]
        i = sigmoid(z_i)   f = sigmoid(z_f)   g = tanh(z_g)   o = sigmoid(z_o)      (input, forget, cell, output)
        c_t = f * c_{t-1} + i * g                                    [B, H]   (the cell state: the memory)
        h_t = o * tanh(c_t)                                          [B, H]
        out = [h_1, ..., h_T]                                        [B, T, H];  h_n = h_T, c_n = c_T
    backward (dout: [B, T, H]; from t = T down to 1, dh and dc carried from step t+1, both 0 at the end):
        dh_t = dout_t + dz_{t+1} W_hh
        dc_t = dc_carried + dh_t * o * (1 - tanh(c_t)^2)
        dz_i = dc_t * g * i (1 - i)       dz_f = dc_t * c_{t-1} * f (1 - f)
        dz_g = dc_t * i * (1 - g^2)       dz_o = dh_t * tanh(c_t) * o (1 - o)
        dc carried to step t-1 = dc_t * f
        then the weight gradients and dx of RecurrentLayer.
    cache: x (time-major), the gate activations i, f, g, o, every c_t, tanh(c_t) and h_t; after backward,
    dh [T, B, H] holds each dL/dh_t (read by hidden_gradient_norms).
    """

    gates = 4

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        batch, steps, _ = x.shape
        hidden = self.hidden_size
        xw = self.input_projection(x)  # T,B,4H
        self.h = x.new_zeros(steps + 1, batch, hidden)  # T+1,B,H; h[0] = 0
        self.c = x.new_zeros(steps + 1, batch, hidden)  # T+1,B,H; c[0] = 0
        self.acts = torch.empty_like(xw)  # T,B,4H: i, f, g, o after their non-linearities
        self.tanh_c = torch.empty_like(self.h[1:])  # T,B,H
        for t in range(steps):
            z = torch.addmm(xw[t], self.h[t], self.weight_hh_l0.t())  # B,4H
            acts = self.acts[t]  # B,4H
            torch.sigmoid(z, out=acts)  # B,4H: i, f, o are right; g is overwritten next
            torch.tanh(z[:, 2 * hidden:3 * hidden], out=acts[:, 2 * hidden:3 * hidden])  # B,H
            i, f, g, o = acts.chunk(4, dim=1)  # B,H each
            torch.addcmul(f * self.c[t], i, g, out=self.c[t + 1])  # B,H
            torch.tanh(self.c[t + 1], out=self.tanh_c[t])  # B,H
            torch.mul(o, self.tanh_c[t], out=self.h[t + 1])  # B,H
        self.h_n, self.c_n = self.h[steps], self.c[steps]  # B,H
        return self.h[1:].transpose(0, 1)  # B,T,H

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.x is None:
            raise RuntimeError("LSTM.backward called before forward; run forward on a batch first")
        steps = self.h.shape[0] - 1
        dout = dout.transpose(0, 1)  # T,B,H (a view; each step reads one slice)
        self.dh = torch.empty_like(self.h[1:])  # T,B,H
        dz = torch.empty_like(self.acts)  # T,B,4H
        dh_next = torch.zeros_like(self.h[0])  # B,H
        dc_next = torch.zeros_like(self.h[0])  # B,H
        for t in reversed(range(steps)):
            dh = torch.add(dout[t], dh_next, out=self.dh[t])  # B,H
            i, f, g, o = self.acts[t].chunk(4, dim=1)  # B,H each
            dz_i, dz_f, dz_g, dz_o = dz[t].chunk(4, dim=1)  # B,H each: views written in place
            tanh_c = self.tanh_c[t]  # B,H
            dc = dc_next + dh * o * (1 - tanh_c * tanh_c)  # B,H
            torch.mul(dc * g, i * (1 - i), out=dz_i)  # B,H
            torch.mul(dc * self.c[t], f * (1 - f), out=dz_f)  # B,H
            torch.mul(dc * i, 1 - g * g, out=dz_g)  # B,H
            torch.mul(dh * tanh_c, o * (1 - o), out=dz_o)  # B,H
            dc_next = dc * f  # B,H
            dh_next = dz[t] @ self.weight_hh_l0  # B,H
        return self.weight_gradients(dz, self.h, input_grad)


def hidden_gradient_norms(layer: RecurrentLayer, x: Tensor, seed: int = 0) -> Tensor:
    """|dL/dh_t| for t = 1..T [T], averaged over the batch, for a loss that reads only the last state.

    L = <h_T, u> with u a random unit vector (seeded), as a classifier on the last hidden state would
    see it. How fast the norm falls from t = T back to t = 1 shows how much an early step can
    still learn from the loss: the tanh RNN's usually fades by orders of magnitude, the LSTM's far less.
    """
    out = layer.forward(x)  # B,T,H
    u = torch.randn(out.shape[2], generator=torch.Generator().manual_seed(seed), dtype=out.dtype)  # H
    dout = torch.zeros_like(out)  # B,T,H
    dout[:, -1] = u / u.norm()
    layer.backward(dout, input_grad=False)
    return layer.dh.norm(dim=2).mean(dim=1)  # T
