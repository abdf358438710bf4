"""The engine's building blocks (scratch/engine_nn.py) against their torch.nn twins.

For each block: the same parameter names and shapes as the torch module; from one seed the
same initial values, bit for bit; and, from copied (random) torch weights in float64, the same
output and the same gradient of every parameter and of the input, under a random upstream
gradient. Run:

    .venv/bin/python -m pytest tests/test_engine_nn.py -q
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from compare.base.agreement import AUTOGRAD_EXPRESSIONS_FLOAT64, assert_agree
from scratch import engine_nn
from scratch.engine import Value

F64 = torch.float64


@dataclass(frozen=True)
class Block:
    name: str
    engine: Callable[[], engine_nn.Layer]
    torch: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    # how each side is called: the outputs as a list (LSTM returns three, MultiheadAttention takes x three times)
    call_engine: Callable = lambda block, x: [block(x)]
    call_torch: Callable = lambda module, x: [module(x)]


def lstm_outputs(lstm, x) -> list:
    out, (h_n, c_n) = lstm(x)
    return [out, h_n, c_n]


BLOCKS = [
    Block("Linear-3d-input", lambda: engine_nn.Linear(5, 4), lambda: nn.Linear(5, 4), (2, 3, 5)),
    Block("Conv2d", lambda: engine_nn.Conv2d(3, 4, 3, padding=1), lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 8, 8)),
    Block("Conv2d-stride-2-no-bias", lambda: engine_nn.Conv2d(2, 3, 5, stride=2, padding=2, bias=False),
          lambda: nn.Conv2d(2, 3, 5, stride=2, padding=2, bias=False), (2, 2, 9, 9)),
    Block("MaxPool2d", lambda: engine_nn.MaxPool2d(2), lambda: nn.MaxPool2d(2), (2, 3, 8, 8)),
    Block("MaxPool2d-3-stride-2", lambda: engine_nn.MaxPool2d(3, 2), lambda: nn.MaxPool2d(3, 2), (2, 2, 9, 9)),
    Block("AvgPool2d", lambda: engine_nn.AvgPool2d(2), lambda: nn.AvgPool2d(2), (2, 3, 8, 9)),
    Block("Flatten", lambda: engine_nn.Flatten(), lambda: nn.Flatten(), (2, 3, 4, 4)),
    Block("LayerNorm", lambda: engine_nn.LayerNorm(6), lambda: nn.LayerNorm(6), (2, 5, 6)),
    Block("LayerNorm-2d", lambda: engine_nn.LayerNorm((4, 6)), lambda: nn.LayerNorm((4, 6)), (3, 4, 6)),
    Block("MultiheadAttention", lambda: engine_nn.MultiheadAttention(8, 2),
          lambda: nn.MultiheadAttention(8, 2, batch_first=True), (3, 5, 8),
          call_torch=lambda m, x: [m(x, x, x, need_weights=False)[0]]),
    Block("LSTM", lambda: engine_nn.LSTM(4, 6), lambda: nn.LSTM(4, 6, batch_first=True), (3, 7, 4),
          call_engine=lstm_outputs, call_torch=lstm_outputs),
]


def torch_parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in module.named_parameters()}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_block_has_torchs_parameter_names_and_initial_values(block: Block) -> None:
    torch.manual_seed(0)
    reference = torch_parameters(block.torch())
    torch.manual_seed(0)
    own = block.engine().state_dict()
    assert list(own) == list(reference), "parameter names, in torch's order"
    for name, value in own.items():
        assert value.dtype == reference[name].dtype and torch.equal(value, reference[name]), \
            f"{block.name}.{name}: not bit-identical to torch's initial value"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.name)
def test_block_forward_and_every_gradient_match_torch(block: Block) -> None:
    g = torch.Generator().manual_seed(0)
    module = block.torch().to(F64)
    with torch.no_grad():  # random weights (LayerNorm and attention biases start at exactly 1 or 0)
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) * 0.5)
    own = block.engine().to(dtype=F64)
    own.load_state_dict(torch_parameters(module))
    x = torch.randn(block.input_shape, generator=g, dtype=F64)
    x_value, x_leaf = Value(x.clone(), requires_grad=True), x.clone().requires_grad_(True)

    outs_e, outs_t = block.call_engine(own, x_value), block.call_torch(module, x_leaf)
    douts = [torch.randn(o.shape, generator=g, dtype=F64) for o in outs_t]
    sum((o * d).sum() for o, d in zip(outs_e, douts, strict=True)).backward()
    sum((o * d).sum() for o, d in zip(outs_t, douts, strict=True)).backward()

    tol = AUTOGRAD_EXPRESSIONS_FLOAT64
    for k, (out_e, out_t) in enumerate(zip(outs_e, outs_t, strict=True)):
        assert out_e.shape == out_t.shape, f"{block.name} output {k}: shape {list(out_e.shape)} vs {list(out_t.shape)}"
        assert_agree(f"{block.name} output {k}", out_e.data, out_t.detach(), tol)
    assert_agree(f"{block.name} dx", x_value.grad, x_leaf.grad, tol)
    params = dict(own.named_parameters())
    for name, p in module.named_parameters():
        assert_agree(f"{block.name} d{name}", params[name].grad, p.grad, tol)


def test_lstm_takes_a_starting_state() -> None:
    """(h_0, c_0) as torch takes it, [1, B, H] each; its gradients are checked too."""
    g = torch.Generator().manual_seed(1)
    module = nn.LSTM(3, 4, batch_first=True).to(F64)
    own = engine_nn.LSTM(3, 4).to(dtype=F64)
    own.load_state_dict(torch_parameters(module))
    x, h0, c0 = (torch.randn(s, generator=g, dtype=F64) for s in [(2, 5, 3), (1, 2, 4), (1, 2, 4)])
    leaves = [t.clone().requires_grad_(True) for t in (x, h0, c0)]
    values = [Value(t.clone(), requires_grad=True) for t in (x, h0, c0)]
    out_t, _ = module(leaves[0], (leaves[1], leaves[2]))
    out_e, _ = own(values[0], (values[1], values[2]))
    dout = torch.randn(out_t.shape, generator=g, dtype=F64)
    out_t.backward(dout)
    out_e.backward(dout)
    assert_agree("LSTM output from (h_0, c_0)", out_e.data, out_t.detach(), AUTOGRAD_EXPRESSIONS_FLOAT64)
    for name, v, leaf in zip(("dx", "dh_0", "dc_0"), values, leaves, strict=True):
        assert_agree(f"LSTM {name}", v.grad, leaf.grad, AUTOGRAD_EXPRESSIONS_FLOAT64)


@pytest.mark.parametrize("make,x_shape,message", [
    (lambda: engine_nn.Conv2d(3, 4, 3), (2, 1, 8, 8), r"expects input \[batch, 3, height, width\]"),
    (lambda: engine_nn.MaxPool2d(2), (8, 8), r"expects input \[batch, channels, height, width\]"),
    (lambda: engine_nn.LayerNorm(6), (2, 5), r"expects input \[\.\.\., 6\]"),
    (lambda: engine_nn.MultiheadAttention(8, 2), (2, 8), r"expects input \[batch, time, 8\]"),
    (lambda: engine_nn.LSTM(4, 6), (2, 4), r"expects input \[batch, time, 4\]"),
])
def test_blocks_say_which_input_shape_they_expect(make: Callable, x_shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()(Value(torch.zeros(x_shape)))


def test_attention_heads_must_divide_the_embedding() -> None:
    with pytest.raises(ValueError, match="divisible by num_heads"):
        engine_nn.MultiheadAttention(10, 3)
