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
    single matrix products over all T*B rows, after the loop over the steps.
    `rolled`: the rows of the gates are used rolled down by this many (the LSTM's gates in the order
    o, i, f, g instead of torch's i, f, g, o: see LSTM), z and dz alike; the gradients are rolled back.
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
        self.rolled = 0

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}(input_size={self.input_size}) expects a sequence [batch, steps, "
                             f"{self.input_size}], got {list(x.shape)}; a 28x28 digit read row by row is "
                             "[batch, 28, 28]")

    def roll(self, rows: Tensor) -> Tensor:
        """The gate rows of a weight or bias in the order the layer computes them (a copy, or rows itself)."""
        return rows.roll(self.rolled, dims=0) if self.rolled else rows

    def input_projection(self, x: Tensor) -> Tensor:
        """x_t W_ih^T + b_ih + b_hh for every step at once: one matrix product instead of T. [T, B, G*H]

        Also keeps W_hh with its rows rolled (`self.w_hh`), for the steps of forward and backward."""
        steps, batch = x.shape[1], x.shape[0]
        self.x = self.workspace("x", (steps, batch, self.input_size), x)  # T,B,I
        self.x.copy_(x.transpose(0, 1))  # time-major
        self.x = self.x.view(steps * batch, self.input_size)  # T*B,I
        self.w_ih, self.w_hh = self.roll(self.weight_ih_l0), self.roll(self.weight_hh_l0)  # G*H,I and G*H,H
        bias = self.roll(self.bias_ih_l0 + self.bias_hh_l0)  # G*H
        z = self.workspace("z", (steps * batch, self.gates * self.hidden_size), x)  # T*B,G*H
        return torch.addmm(bias, self.x, self.w_ih.t(), out=z).view(steps, batch, -1)  # T,B,G*H

    def weight_gradients(self, dz: Tensor, h: Tensor, input_grad: bool) -> Tensor | None:
        """Fill the four gradient buffers from dz [T, B, G*H] and the states h [T+1, B, H]; return dx [B, T, I].

        dW^T = x^T dz rather than dW = dz^T x: the same sums, and the BLAS library (MKL) runs this orientation
        of the long-inner product up to 1.4x faster here (docs/recurrence.md)."""
        steps, batch, rows = dz.shape
        dz = dz.reshape(steps * batch, rows)  # T*B,G*H (a view when dz is contiguous)
        unroll = (lambda t: t.roll(-self.rolled, dims=0)) if self.rolled else (lambda t: t)
        self.dweight_ih_l0.copy_(unroll((self.x.t() @ dz).t()))  # G*H,I
        h_prev = h[:-1].reshape(steps * batch, self.hidden_size)  # T*B,H
        self.dweight_hh_l0.copy_(unroll((h_prev.t() @ dz).t()))  # G*H,H
        self.dbias_ih_l0.copy_(unroll(dz.sum(dim=0)))  # G*H
        self.dbias_hh_l0.copy_(self.dbias_ih_l0)  # G*H: both biases are added to the same z
        if not input_grad:
            return None
        return (dz @ self.w_ih).view(steps, batch, self.input_size).transpose(0, 1)  # B,T,I

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
            torch.tanh(torch.addmm(xw[t], self.h[t], self.w_hh.t()), out=self.h[t + 1])  # B,H
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
            dh_next = dz[t] @ self.w_hh  # B,H
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
        dc_t = dc_{t+1} * f_{t+1} + dh_t * o * (1 - tanh(c_t)^2)
        dz_i = dc_t * g * i (1 - i)       dz_f = dc_t * c_{t-1} * f (1 - f)
        dz_g = dc_t * i * (1 - g^2)       dz_o = dh_t * tanh(c_t) * o (1 - o)
        then the weight gradients and dx of RecurrentLayer (one product each over all steps, after the loop).
    The factors that multiply dc_t and dh_t do not depend on them: they are computed for all steps at once,
    before the loop (`local_derivatives`), which leaves four operations per step:
        A_c = o (1 - tanh(c)^2)     A = [tanh(c) o (1 - o),  g i (1 - i),  c_{t-1} f (1 - f),  i (1 - g^2)]
        dh_t = dout_t + dz_{t+1} W_hh          dc_t = dcf_{t+1} + dh_t A_c
        [dz_i, dz_f, dz_g, dcf_t] = dc_t [A_i, A_f, A_g, f]          dz_o = dh_t A_o
    (dcf_t = dc_t f_t: what step t-1 receives through the cell).
    Gate order: the layer computes its gates in the order o, i, f, g (W's rows rolled by H, RecurrentLayer):
    the three sigmoid gates are then one block of 3H (one sigmoid call, none wasted on g), and the gates that
    multiply dc_t are one block too (i, f, g: one call). The parameters and their gradients keep torch's order.
    cache: x (time-major), the gate activations, every c_t, tanh(c_t) and h_t; after backward, dh [T, B, H]
    holds each dL/dh_t (read by hidden_gradient_norms).
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size)
        self.rolled = hidden_size  # o, i, f, g

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        batch, steps, _ = x.shape
        hidden = self.hidden_size
        self.acts = self.input_projection(x)  # T,B,4H: z_t without h's term, made o, i, f, g in place below
        self.h = x.new_empty(steps + 1, batch, hidden)  # T+1,B,H: returned, so made afresh
        self.h[0] = 0
        self.c = self.workspace("c", (steps + 1, batch, hidden), x)  # T+1,B,H
        self.c[0] = 0
        self.tanh_c = self.workspace("tanh_c", (steps, batch, hidden), x)  # T,B,H
        w_hh_t = self.w_hh.t()  # H,4H
        # Every step's views made once, before the loop (each view costs a call, and the loop is 28 steps long)
        gates = self.acts.view(steps, batch, 4, hidden)  # T,B,4,H: o, i, f, g
        z, sigmoids, g = (self.acts.unbind(0), self.acts[:, :, :3 * hidden].unbind(0), gates[:, :, 3].unbind(0))
        o, i, f = gates[:, :, 0].unbind(0), gates[:, :, 1].unbind(0), gates[:, :, 2].unbind(0)
        h, c, tanh_c = self.h.unbind(0), self.c.unbind(0), self.tanh_c.unbind(0)
        for t in range(steps):
            z[t].addmm_(h[t], w_hh_t)  # z_t = x_t W_ih^T + b + h_{t-1} W_hh^T  [B, 4H]
            sigmoids[t].sigmoid_()  # o, i, f
            g[t].tanh_()
            torch.mul(f[t], c[t], out=c[t + 1]).addcmul_(i[t], g[t])  # c_t = f c_{t-1} + i g
            torch.tanh(c[t + 1], out=tanh_c[t])
            torch.mul(o[t], tanh_c[t], out=h[t + 1])  # h_t = o tanh(c_t)
        self.h_n, self.c_n = self.h[steps], self.c[steps]  # B,H
        return self.h[1:].transpose(0, 1)  # B,T,H

    def local_derivatives(self) -> tuple[Tensor, Tensor]:
        """A_c [T, B, H] and A [T, B, 5H] = [A_o, A_i, A_f, A_g, f] for every step at once (see the docstring)."""
        hidden, (steps, batch, _) = self.hidden_size, self.acts.shape
        o, i, f, g = self.acts.view(steps, batch, 4, hidden).unbind(2)  # T,B,H each
        local = self.workspace("local", (steps, batch, 5, hidden), self.acts)  # T,B,5,H
        a_o, a_i, a_f, a_g, carry = local.unbind(2)  # T,B,H each (views), written below
        for a, s, other in ((a_o, o, self.tanh_c), (a_i, i, g), (a_f, f, self.c[:-1])):
            torch.addcmul(s, s, s, value=-1, out=a).mul_(other)  # s (1 - s) times the other factor
        torch.mul(i, g, out=a_g)
        torch.addcmul(i, a_g, g, value=-1, out=a_g)  # A_g = i (1 - g^2) = i - (i g) g
        carry.copy_(f)  # f, which carries dc_t back to step t-1
        cell = self.workspace("cell", (steps, batch, hidden), self.acts)  # T,B,H
        torch.mul(o, self.tanh_c, out=cell)
        torch.addcmul(o, cell, self.tanh_c, value=-1, out=cell)  # A_c = o (1 - tanh(c)^2) = o - (o tanh) tanh
        return cell, local.view(steps, batch, 5 * hidden)

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.x is None:
            raise RuntimeError("LSTM.backward called before forward; run forward on a batch first")
        hidden, (steps, batch, _) = self.hidden_size, self.acts.shape
        dout = dout.transpose(0, 1)  # T,B,H (a view; each step reads one slice)
        cell, local = self.local_derivatives()  # T,B,H and T,B,5H
        self.dh = self.workspace("dh", (steps, batch, hidden), dout)  # T,B,H
        dz5 = self.workspace("dz", (steps, batch, 5 * hidden), dout)  # T,B,5H: dz_o, dz_i, dz_f, dz_g, dcf per step
        dc = self.workspace("dc", (batch, hidden), dout)  # B,H
        # Every step's views made once, before the loop (see forward)
        dz, dcf = dz5[:, :, :4 * hidden].unbind(0), dz5[:, :, 4 * hidden:].unbind(0)  # [B, 4H] and [B, H] per step
        parts, factors = dz5.view(steps, batch, 5, hidden), local.view(steps, batch, 5, hidden)
        by_dc, by_dc_factors = parts[:, :, 1:].unbind(0), factors[:, :, 1:].unbind(0)  # [B, 4, H]: i, f, g, carry
        dz_o, a_o = parts[:, :, 0].unbind(0), factors[:, :, 0].unbind(0)  # [B, H]
        dh, cell, dout = self.dh.unbind(0), cell.unbind(0), dout.unbind(0)
        dc_rows = dc.unsqueeze(1)  # B,1,H: dc_t for each of the four products
        for t in reversed(range(steps)):
            if t == steps - 1:
                dh[t].copy_(dout[t])
                torch.mul(dh[t], cell[t], out=dc)  # nothing flows back into the last step through the cell
            else:
                torch.addmm(dout[t], dz[t + 1], self.w_hh, out=dh[t])  # dh_t = dout_t + dz_{t+1} W_hh
                torch.addcmul(dcf[t + 1], dh[t], cell[t], out=dc)  # dc_t = dcf_{t+1} + dh_t A_c
            torch.mul(dc_rows, by_dc_factors[t], out=by_dc[t])  # dz_i, dz_f, dz_g, dcf_t = dc_t [A_i, A_f, A_g, f]
            torch.mul(dh[t], a_o[t], out=dz_o[t])  # dz_o = dh_t A_o
        return self.weight_gradients(dz5[:, :, :4 * hidden], self.h, input_grad)


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
