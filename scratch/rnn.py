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
    Storage: one time-major tensor xh [T+1, B, I+1+H] holds, in row t, [x_t | 1 | h_{t-1}]. Each step's z_t
    is then one product, xh[t] @ [W_ih | b_ih + b_hh | W_hh]^T, and all four gradients are ONE product
    after the loop over the steps, over all T*B rows (the ones sum dz into db):
        [dW_ih | db | dW_hh]^T = xh[:T]^T @ dz                         [I+1+H, G*H]
    The states h_t are the view xh[1:, :, I+1:].
    The weights are copied once per forward into w = [W_ih | b_ih + b_hh | W_hh] [G*H, I+1+H], and each step's
    product reads w^T as a view (measured as fast as a transposed copy on this CPU, without the copy).
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
        self.xh: Tensor | None = None

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}(input_size={self.input_size}) expects a sequence [batch, steps, "
                             f"{self.input_size}], got {list(x.shape)}; a 28x28 digit read row by row is "
                             "[batch, 28, 28]")

    def prepare(self, x: Tensor) -> Tensor:
        """Fill xh from x [B, T, I] (h_0 = 0), make w = [W_ih | b_ih + b_hh | W_hh], and return the
        workspace for z [T, B, G*H]. Each step's z_t = xh[t] @ w^T is then one product: input, bias and
        recurrence together (measured faster than one product for the inputs of all steps plus one per step
        for the recurrence, docs/recurrence.md)."""
        batch, steps, inputs = x.shape
        self.xh = x.new_empty(steps + 1, batch, inputs + 1 + self.hidden_size)  # T+1,B,I+1+H: h is returned
        self.xh[:steps, :, :inputs] = x.transpose(0, 1)  # x_t, time-major
        self.xh[steps, :, :inputs] = 0  # no input after the last step (row T holds only h_T)
        self.xh[:, :, inputs] = 1  # the bias's input
        self.xh[0, :, inputs + 1:] = 0  # h_0
        self.h = self.xh[:, :, inputs + 1:]  # T+1,B,H: h_0 .. h_T, a view
        bias = (self.bias_ih_l0 + self.bias_hh_l0).unsqueeze(1)  # G*H,1
        self.w = self.workspace("w", (self.gates * self.hidden_size, inputs + 1 + self.hidden_size), x)  # G*H,I+1+H
        torch.cat((self.weight_ih_l0, bias, self.weight_hh_l0), dim=1, out=self.w)  # [W_ih | b | W_hh]
        return self.workspace("z", (steps, batch, self.gates * self.hidden_size), x)  # T,B,G*H

    def weight_gradients(self, dz: Tensor, input_grad: bool) -> Tensor | None:
        """Fill the four gradient buffers from dz [T, B, G*H], one product; return dx [B, T, I] with input_grad."""
        steps, batch, rows = dz.shape
        inputs = self.input_size
        dz = dz.reshape(steps * batch, rows)  # T*B,G*H (a view: dz is one block)
        grads = self.workspace("grads", (inputs + 1 + self.hidden_size, rows), dz)  # I+1+H,G*H
        torch.mm(self.xh[:steps].reshape(steps * batch, -1).t(), dz, out=grads)  # [dW_ih | db | dW_hh]^T
        self.dweight_ih_l0.copy_(grads[:inputs].t())  # G*H,I
        self.dbias_ih_l0.copy_(grads[inputs])  # G*H
        self.dbias_hh_l0.copy_(grads[inputs])  # G*H: both biases are added to the same z
        self.dweight_hh_l0.copy_(grads[inputs + 1:].t())  # G*H,H
        if not input_grad:
            return None
        return (dz @ self.weight_ih_l0).view(steps, batch, inputs).transpose(0, 1)  # B,T,I

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
    cache: x and every h_t, in xh (h_{t-1} for dW_hh, h_t for tanh's derivative); after backward,
    dh [T, B, H] holds each dL/dh_t (read by hidden_gradient_norms).
    """

    gates = 1

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        steps = x.shape[1]
        z = self.prepare(x)  # T,B,H
        xh, h, w_t = self.xh.unbind(0), self.h.unbind(0), self.w.t()
        for t in range(steps):
            torch.tanh(torch.mm(xh[t], w_t, out=z[t]), out=h[t + 1])  # h_t = tanh([x_t | 1 | h_{t-1}] w^T)
        self.h_n = h[steps]  # B,H
        return self.h[1:].transpose(0, 1)  # B,T,H

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.xh is None:
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
        return self.weight_gradients(dz, input_grad)


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
        dc_t = dc_{t+1} * f_{t+1} + dh_t * D_t                       D_t = o (1 - tanh(c_t)^2)
        dz_o = dh_t * B_o                                            B_o = tanh(c_t) o (1 - o)
        dz_i = dc_t * A_i   dz_f = dc_t * A_f   dz_g = dc_t * A_g     A_i = g i (1 - i), A_f = c_{t-1} f (1 - f),
                                                                      A_g = i (1 - g^2)
        then the weight gradients and dx of RecurrentLayer: one product for all of them, after the loop.
    D, B_o, A_i, A_f and A_g read only the forward's activations, so they are computed for all steps at once,
    before the loop (operations on [T, B, H] blocks, written into dz's own rows and then multiplied in place
    by dh_t or dc_t); the loop over the steps is then five operations per step, the product included. The
    gates that multiply dc_t, i, f and g, are one block of 3H in torch's order: one product.
    tanh is computed as 2 sigmoid(2 z) - 1 (the same function), for g = tanh(z_g) and for tanh(c_t). For g,
    the rows of w that make z_g are doubled (exact in floating point), so one sigmoid call covers all four
    gates and one operation turns the third into g. Why: on this CPU torch's tanh costs more per element
    than its sigmoid, enough that the three calls beat tanh's one (scripts/tanh_cost.py, docs/recurrence.md).
    cache: x and h (in xh), the gate activations, every c_t and tanh(c_t); after backward, dh [T, B, H]
    holds each dL/dh_t (read by hidden_gradient_norms).
    """

    gates = 4

    def prepare(self, x: Tensor) -> Tensor:
        z = super().prepare(x)
        hidden = self.hidden_size
        self.w[2 * hidden:3 * hidden] *= 2  # z_g doubled in the product itself: sigmoid(2 z_g), for tanh(z_g)
        return z

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        batch, steps, _ = x.shape
        hidden = self.hidden_size
        self.acts = self.prepare(x)  # T,B,4H: z_t, made i, f, g, o in place below
        self.c = self.workspace("c", (steps + 1, batch, hidden), x)  # T+1,B,H
        self.c[0] = 0
        self.tanh_c = self.workspace("tanh_c", (steps, batch, hidden), x)  # T,B,H
        minus_one = self.workspace("minus_one", (), x).fill_(-1)  # on x's device, for tanh = -1 + 2 sigmoid(2 z)

        def per_step(acts, c, tanh_c):  # every step's views, made once (Module.step_views)
            gates = acts.view(steps, batch, 4, hidden)  # T,B,4,H: i, f, g, o
            return (acts.unbind(0), *(gates[:, :, k].unbind(0) for k in range(4)), c.unbind(0), tanh_c.unbind(0))

        z, i, f, g, o, c, tanh_c = self.step_views("forward", (self.acts, self.c, self.tanh_c), per_step)
        xh, h, w_t = self.xh.unbind(0), self.h.unbind(0), self.w.t()
        for t in range(steps):
            torch.mm(xh[t], w_t, out=z[t])  # z_t = [x_t | 1 | h_{t-1}] [W_ih | b | W_hh]^T, z_g doubled [B, 4H]
            z[t].sigmoid_()  # i, f, sigmoid(2 z_g), o
            torch.add(minus_one, g[t], alpha=2, out=g[t])  # g = 2 sigmoid(2 z_g) - 1 = tanh(z_g)
            torch.mul(f[t], c[t], out=c[t + 1]).addcmul_(i[t], g[t])  # c_t = f c_{t-1} + i g
            torch.add(c[t + 1], c[t + 1], out=tanh_c[t]).sigmoid_()  # sigmoid(2 c_t)
            torch.add(minus_one, tanh_c[t], alpha=2, out=tanh_c[t])  # tanh(c_t) = 2 sigmoid(2 c_t) - 1
            torch.mul(o[t], tanh_c[t], out=h[t + 1])  # h_t = o tanh(c_t)
        self.h_n, self.c_n = h[steps], c[steps]  # B,H
        return self.h[1:].transpose(0, 1)  # B,T,H

    def backward(self, dout: Tensor, input_grad: bool = True) -> Tensor | None:
        if self.xh is None:
            raise RuntimeError("LSTM.backward called before forward; run forward on a batch first")
        hidden, (steps, batch, _) = self.hidden_size, self.acts.shape
        self.dh = self.workspace("dh", (steps, batch, hidden), dout)  # T,B,H: dout_t, then + dz_{t+1} W_hh
        self.dh.copy_(dout.transpose(0, 1))  # time-major, once: each step's product then adds in place
        dz = self.workspace("dz", (steps, batch, 4 * hidden), dout)  # T,B,4H: dz_i, dz_f, dz_g, dz_o
        d_c = self.workspace("d_c", (steps, batch, hidden), dout)  # T,B,H: D_t = o (1 - tanh(c_t)^2)
        # The factors, for all steps at once, into dz's rows (each block [T, B, H], i and f together [T, B, 2H])
        acts, tanh_c = self.acts, self.tanh_c
        i, f, g, o = (acts[:, :, k * hidden:(k + 1) * hidden] for k in range(4))  # T,B,H each
        a_i, a_f, a_g, b_o = (dz[:, :, k * hidden:(k + 1) * hidden] for k in range(4))  # T,B,H each
        i_f = acts[:, :, :2 * hidden]  # T,B,2H
        torch.addcmul(i_f, i_f, i_f, value=-1, out=dz[:, :, :2 * hidden])  # i (1 - i), f (1 - f)
        a_i.mul_(g)  # A_i = g i (1 - i)
        a_f.mul_(self.c[:-1])  # A_f = c_{t-1} f (1 - f)
        torch.addcmul(i, i, torch.mul(g, g, out=a_g), value=-1, out=a_g)  # A_g = i - i g^2
        torch.addcmul(o, o, o, value=-1, out=b_o).mul_(tanh_c)  # B_o = tanh(c_t) o (1 - o)
        torch.addcmul(o, o, torch.mul(tanh_c, tanh_c, out=d_c), value=-1, out=d_c)  # D = o - o tanh(c)^2
        dc, dcf = (self.workspace(name, (batch, hidden), dout) for name in ("dc", "dcf"))

        def per_step(dz, dh, d_c, acts):  # every step's views, made once (Module.step_views)
            parts = dz.view(steps, batch, 4, hidden)  # T,B,4,H: dz_i, dz_f, dz_g, dz_o
            f = acts.view(steps, batch, 4, hidden)[:, :, 1]  # T,B,H
            return (dz.unbind(0), parts[:, :, :3].unbind(0), parts[:, :, 3].unbind(0), dh.unbind(0), d_c.unbind(0),
                    f.unbind(0))

        dz_t, dz_ifg, dz_o, dh, d_c, f = self.step_views("backward", (dz, self.dh, d_c, acts), per_step)
        dc_rows = dc.unsqueeze(1)  # B,1,H: dc_t for the three gates i, f, g at once
        dcf.zero_()  # nothing flows back into the last step through the cell
        for t in reversed(range(steps)):
            if t < steps - 1:  # nothing flows back into the last step through h either
                torch.addmm(dh[t], dz_t[t + 1], self.weight_hh_l0, out=dh[t])  # dh_t = dout_t + dz_{t+1} W_hh
            dz_o[t].mul_(dh[t])  # dz_o = dh_t B_o
            torch.addcmul(dcf, dh[t], d_c[t], out=dc)  # dc_t = dc_{t+1} f_{t+1} + dh_t D_t
            dz_ifg[t].mul_(dc_rows)  # dz_i, dz_f, dz_g = dc_t [A_i, A_f, A_g]
            torch.mul(dc, f[t], out=dcf)  # what step t-1 receives through the cell
        return self.weight_gradients(dz, input_grad)


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
