"""scratch/ never imports or uses torch.autograd, torch.nn, torch.nn.functional, torch.optim or torch.func.

Two independent checks: a static scan of every source file, and a training step run with
autograd's entry points booby-trapped.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import scratch

SCRATCH = Path(scratch.__file__).parent
FORBIDDEN = ("torch.autograd", "torch.nn", "torch.optim", "torch.func", "functorch")
FORBIDDEN_NAMES = {"requires_grad", "requires_grad_", "grad_fn", "retain_grad"}


def dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def violations(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            names = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Attribute):
            names = [dotted(node)]
            if node.attr in FORBIDDEN_NAMES:
                found.append(f"line {node.lineno}: .{node.attr}")
        found += [f"line {node.lineno}: {n}" for n in names
                  if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
    return found


@pytest.mark.parametrize("path", sorted(SCRATCH.glob("*.py")), ids=lambda p: p.name)
def test_source_uses_no_autograd_nn_optim_or_func(path):
    assert violations(path.read_text()) == [], f"{path.name} uses forbidden torch machinery"


@pytest.mark.parametrize("snippet", ["import torch.nn", "from torch import nn", "from torch.nn import functional",
                                     "torch.autograd.grad(y, x)", "import torch.optim as o",
                                     "from torch.func import grad", "x.requires_grad_()"])
def test_scan_catches_forbidden_code(snippet):
    assert violations(snippet) != []


def test_training_step_runs_with_autograd_booby_trapped(monkeypatch):
    def trap(*args, **kwargs):
        raise AssertionError("scratch code called into torch.autograd")

    monkeypatch.setattr(torch.Tensor, "backward", trap)
    monkeypatch.setattr(torch.autograd, "backward", trap)
    monkeypatch.setattr(torch.autograd, "grad", trap)
    model = scratch.MLP(input_size=12, hidden_sizes=(8,), num_classes=3)
    loss_fn = scratch.CrossEntropyLoss()
    optimizer = scratch.SGD(model.parameters(), model.gradients(), lr=0.1)
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 1, 0])
    before = [p.clone() for p in model.parameters()]
    loss = loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    optimizer.step()
    assert loss.grad_fn is None
    assert all(not p.requires_grad for p in model.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
