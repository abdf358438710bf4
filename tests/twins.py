"""Building a scratch layer's torch twin with the same values, and checking that both start bit-identical.

The op table (tests/ops.py) builds its twins with these; tests/op_kinds.py runs both sides and compares them.
"""

from __future__ import annotations

import torch


def copy_parameters(layer, module: torch.nn.Module) -> torch.nn.Module:
    """Give the torch twin the scratch layer's parameter values (same names, same shapes)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(dict(layer.named_parameters())[name])
    return module


def copy_state(layer, module: torch.nn.Module) -> torch.nn.Module:
    """Parameters and buffers (batch norm's running statistics) from the scratch layer into its torch twin."""
    copy_parameters(layer, module)
    with torch.no_grad():
        for name, b in module.named_buffers():
            b.copy_(dict(layer.named_buffers())[name])
    return module


def assert_identical_init(make_scratch, make_torch, seed: int = 7) -> None:
    """Same names in the same order, bit-identical values, and the same number of random draws."""
    torch.manual_seed(seed)
    ours = dict(make_scratch().named_parameters())
    after_ours = torch.rand(3)
    torch.manual_seed(seed)
    theirs = dict(make_torch().named_parameters())
    after_theirs = torch.rand(3)
    assert list(ours) == list(theirs)
    for name, p in theirs.items():
        assert torch.equal(ours[name], p.detach()), f"{name} differs at initialization"
    assert torch.equal(after_ours, after_theirs), "the two constructors drew a different number of random values"


