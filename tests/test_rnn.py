"""The recurrent layers by hand (RNN, LSTM, LSTMClassifier): what the op table does not see.

Their gradients through time (finite differences and torch's nn.RNN / nn.LSTM under autograd), forward passes,
dtypes, layouts and documented errors are checked by the tests generated from tests/ops.py. Here: the
bit-identical initialisation, backward without the input gradient, gradients written in place, state dicts,
and the gradient-norm measure |dL/dh_t|.
"""

from __future__ import annotations

import pytest
import torch
from ops import TINY_CLASSIFIER, LSTMOutput, RNNOutput
from torch import nn
from twins import assert_identical_init, copy_parameters

import scratch
import torch_impl
from scratch.rnn import hidden_gradient_norms

INITS = {
    "rnn": (lambda: scratch.RNN(28, 32), lambda: nn.RNN(28, 32, batch_first=True)),
    "lstm": (lambda: scratch.LSTM(28, 32), lambda: nn.LSTM(28, 32, batch_first=True)),
    "lstm-classifier": (scratch.LSTMClassifier, torch_impl.LSTMClassifier),
}


@pytest.mark.parametrize("name", INITS)
def test_init_is_bit_identical(name):
    assert_identical_init(*INITS[name])


def test_backward_without_input_gradient_fills_the_same_gradients():
    torch.manual_seed(0)
    model = scratch.LSTMClassifier(**TINY_CLASSIFIER).to(dtype=torch.float64)
    x, dlogits = torch.randn(3, 16, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    model.forward(x)
    assert model.backward(dlogits).shape == x.shape  # returned in the input's own shape, here flattened
    full = {n: g.clone() for n, g in model.named_gradients()}
    model.forward(x)
    assert model.backward(dlogits, input_grad=False) is None
    for name, g in model.named_gradients():
        assert torch.equal(g, full[name]), name


def test_gradients_are_written_in_place():
    """An optimizer holds the gradient buffers from model.gradients(); backward must fill those very tensors."""
    torch.manual_seed(0)
    model = scratch.LSTMClassifier(**TINY_CLASSIFIER)
    buffers = model.gradients()
    model.forward(torch.randn(2, 16))
    model.backward(torch.randn(2, 3), input_grad=False)
    for (name, g), held in zip(model.named_gradients(), buffers, strict=True):
        assert g is held, f"d{name} was replaced by a new tensor"
        assert g.abs().sum() > 0, f"d{name} was not filled"


def test_state_dict_loads_across_and_hidden_states_agree():
    torch.manual_seed(1)
    ours = scratch.LSTMClassifier()
    torch.manual_seed(2)
    theirs = torch_impl.LSTMClassifier()
    theirs.load_state_dict(ours.state_dict())  # strict: every key, every shape
    x = torch.randn(3, 28, 28)
    states = ours.hidden_states(x)
    assert states.shape == (3, 28, 128)
    torch.testing.assert_close(states, theirs.hidden_states(x))
    torch.manual_seed(3)
    other = torch_impl.LSTMClassifier()
    ours.load_state_dict(other.state_dict())
    for name, p in other.named_parameters():
        assert torch.equal(dict(ours.named_parameters())[name], p.detach()), name


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_hidden_gradient_norms_match_autograd(kind):
    """|dL/dh_t| from the scratch BPTT vs torch: for each t, torch runs the rest of the sequence from
    (h_t, c_t) as leaves that need a gradient, and autograd gives dL/dh_t."""
    torch.manual_seed(0)
    steps, hidden = 6, 4
    layer = (scratch.RNN if kind == "rnn" else scratch.LSTM)(3, hidden).to(dtype=torch.float64)
    twin = copy_parameters(layer, (RNNOutput if kind == "rnn" else LSTMOutput)(3, hidden)).to(dtype=torch.float64)
    x = torch.randn(2, steps, 3, dtype=torch.float64)
    norms = hidden_gradient_norms(layer, x, seed=5)
    u = torch.randn(hidden, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    u = u / u.norm()
    expected = torch.empty(steps, dtype=torch.float64)
    for t in range(steps):
        h = layer.h[t + 1].clone().requires_grad_(True)  # B,H: the state after step t
        if t == steps - 1:
            last = h
        else:
            state = h.unsqueeze(0) if kind == "rnn" else (h.unsqueeze(0), layer.c[t + 1].unsqueeze(0))
            last = twin(x[:, t + 1:], state)[:, -1]  # B,H: h_T, reached from h_t
        (grad,) = torch.autograd.grad((last * u).sum(), h)
        expected[t] = grad.norm(dim=1).mean()
    torch.testing.assert_close(norms, expected, rtol=1e-10, atol=0)




def test_lstm_agrees_with_torch_as_the_batch_size_changes():
    """The layer keeps its workspaces and the per-step views of them (Module.step_views) from call to call; a
    new batch size makes new workspaces, and the views must follow them, there and back again."""
    torch.manual_seed(0)
    layer = scratch.LSTM(3, 4).to(dtype=torch.float64)
    twin = copy_parameters(layer, LSTMOutput(3, 4)).to(dtype=torch.float64)
    for batch in (4, 3, 4, 1):
        x = torch.randn(batch, 5, 3, dtype=torch.float64)
        dout = torch.randn(batch, 5, 4, dtype=torch.float64)
        out = layer.forward(x)
        dx = layer.backward(dout)
        xt = x.clone().requires_grad_(True)
        expected = twin(xt)
        expected.backward(dout)
        torch.testing.assert_close(out, expected.detach(), rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(dx, xt.grad, rtol=1e-12, atol=1e-14)
        for name, p in twin.named_parameters():
            torch.testing.assert_close(getattr(layer, "d" + name), p.grad, rtol=1e-12, atol=1e-14, msg=name)
            p.grad = None


def test_step_views_are_made_again_only_for_new_bases():
    layer = scratch.LSTM(3, 4)
    made = []

    def make(a, b):
        made.append((a, b))
        return a.unbind(0), b.unbind(0)

    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    first = layer.step_views("pair", (a, b), make)
    assert layer.step_views("pair", (a, b), make) is first and len(made) == 1  # the same tensors: kept
    other = torch.zeros(2, 3)  # equal values, another tensor
    again = layer.step_views("pair", (other, b), make)
    assert len(made) == 2 and again[0][0].data_ptr() == other.data_ptr()
    assert layer.step_views("other", (a, b), make) is not again and len(made) == 3  # each name its own
