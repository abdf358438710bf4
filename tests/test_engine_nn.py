"""The engine's building blocks (scratch/engine_nn.py) against their torch.nn twins: what the op table does not see.

The op table's engine layers (tests/ops.py) give each block's forward pass and every gradient, from copied
(random) torch weights, under a random upstream gradient, to the tests generated from it. Here, for each of
those blocks: the same parameter names as the torch module and, from one seed, the same initial values, bit
for bit; and the LSTM's starting state. Run:

    .venv/bin/python -m pytest tests/test_engine_nn.py -q
"""

from __future__ import annotations

import pytest
import torch
from op_kinds import OpInfo
from ops import ENGINE_LAYERS
from torch import nn

from compare.base.agreement import AUTOGRAD_EXPRESSIONS_FLOAT64, assert_agree
from scratch import engine_nn
from scratch.engine import Value

F64 = torch.float64


def torch_parameters(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach() for n, p in module.named_parameters()}


@pytest.mark.parametrize("block", ENGINE_LAYERS, ids=lambda op: op.name)
def test_block_has_torchs_parameter_names_and_initial_values(block: OpInfo) -> None:
    torch.manual_seed(0)
    reference = torch_parameters(block.twin())
    torch.manual_seed(0)
    own = block.ours().state_dict()
    assert list(own) == list(reference), "parameter names, in torch's order"
    for name, value in own.items():
        assert value.dtype == reference[name].dtype and torch.equal(value, reference[name]), \
            f"{block.name}.{name}: not bit-identical to torch's initial value"


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


