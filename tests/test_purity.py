"""scratch/ never uses torch's autograd, nn, nn.functional, optim or func: it may only compute on tensors.

Two independent checks:

- A static scan of every source file's syntax tree (`violations`). The autograd engine in
  scratch/engine.py speaks torch's vocabulary (`Value(data, requires_grad=True)`,
  `.requires_grad`, `.grad`, `.backward()`, `no_grad()`), so the scan does not ban words: it
  bans what could make a torch tensor record a graph, and allows `requires_grad` only where it
  provably belongs to the engine's `Value`. The rules:
    1. no import or use of the modules in FORBIDDEN_MODULES, nor of torch's own grad-mode
       switches and tensor autograd entry points (FORBIDDEN_TORCH), also through an alias
       (`import torch as th`, `from torch import no_grad`);
    2. no attribute that only a torch tensor's autograd has (TORCH_AUTOGRAD_ATTRIBUTES:
       `.requires_grad_()`, `.grad_fn`, `.retain_grad()`, `.register_hook()`, ...), on anything;
    3. a `requires_grad=` keyword only in a call of the engine's `Value` (the name must be bound
       to scratch.engine.Value and to nothing else in that file), never in a torch factory
       (`torch.zeros(3, requires_grad=True)`) or anything else (`dict(requires_grad=True)`);
    4. no assignment to `.requires_grad`, except `self.requires_grad = ...` inside the engine's
       `Value` class, which has no base class (so it is not a torch tensor);
    5. no class derived from a torch class (a torch.Tensor subclass would carry torch's flag);
    6. no string naming autograd machinery (AUTOGRAD_STRINGS, or a forbidden module), which
       closes the indirect routes: `setattr(t, "requires_grad", True)`, `**{"requires_grad": True}`,
       `importlib.import_module("torch.autograd")`.
- A training step of the hand-derived MLP and one of the engine's MLP, run with torch's
  autograd entry points booby-trapped: whatever the scan missed would trip them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

import scratch
from scratch import engine_nn
from scratch.engine import Value, cross_entropy

SCRATCH = Path(scratch.__file__).parent
FORBIDDEN_MODULES = ("torch.autograd", "torch.nn", "torch.optim", "torch.func", "functorch", "torch._functorch",
                     "torch.utils.checkpoint", "torch._C")
# torch's switches of its gradient recording, and its tensor-level autograd entry points
FORBIDDEN_TORCH = {"torch.no_grad", "torch.enable_grad", "torch.set_grad_enabled", "torch.inference_mode",
                   "torch.Tensor.backward", "torch.Tensor.requires_grad", "torch.Tensor.grad"}
TORCH_AUTOGRAD_ATTRIBUTES = {"requires_grad_", "grad_fn", "retain_grad", "retains_grad", "register_hook",
                             "register_post_accumulate_grad_hook", "_make_subclass"}
AUTOGRAD_STRINGS = {"requires_grad", "requires_grad_", "grad_fn", "retain_grad", "register_hook"}
ENGINE_MODULE = "scratch.engine"
ENGINE_VALUE = f"{ENGINE_MODULE}.Value"


def module_name(path: Path) -> str:
    return f"scratch.{path.stem}"


def bindings(tree: ast.Module, module: str) -> dict[str, set[str]]:
    """What each top-level-visible name may refer to: a qualified name for imports and classes
    ("torch", "torch.tensor", "scratch.engine.Value"), "?" for anything else that binds it."""
    bound: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:  # `import a.b` binds a; `import a.b as c` binds c to a.b
                name, target = (alias.asname, alias.name) if alias.asname else (alias.name.split(".")[0],) * 2
                bound.setdefault(name, set()).add(target)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                bound.setdefault(alias.asname or alias.name, set()).add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.ClassDef):
            bound.setdefault(node.name, set()).add(f"{module}.{node.name}")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            bound.setdefault(node.name, set()).add("?")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.setdefault(node.id, set()).add("?")
        elif isinstance(node, ast.arg):
            bound.setdefault(node.arg, set()).add("?")
    return bound


def qualified(node: ast.AST, bound: dict[str, set[str]]) -> str:
    """`th.nn.Linear` -> "torch.nn.Linear" when th is torch; "" when the root is not bound to one thing."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    targets = bound.get(node.id, set())
    root = next(iter(targets)) if len(targets) == 1 else ("?" if targets else node.id)
    return ".".join([root, *reversed(parts)])


def is_forbidden(name: str) -> bool:
    return name in FORBIDDEN_TORCH or any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES)


def engine_value_methods(tree: ast.Module, module: str) -> set[ast.AST]:
    """The method bodies of the engine's own `Value` class (defined in scratch/engine.py, no base class)."""
    if module != ENGINE_MODULE:
        return set()
    nodes = set()
    for cls in tree.body:
        if isinstance(cls, ast.ClassDef) and cls.name == "Value" and not cls.bases and not cls.keywords:
            for method in cls.body:
                if isinstance(method, ast.FunctionDef):
                    nodes.update(ast.walk(method))
    return nodes


def violations(source: str, module: str = "scratch.example") -> list[str]:
    """Every use of torch autograd/nn/optim/func machinery in `source`, as "line N: what"."""
    tree = ast.parse(source)
    bound = bindings(tree, module)
    in_value = engine_value_methods(tree, module)
    found = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            found += [f"line {line}: import {a.name}" for a in node.names if is_forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            found += [f"line {line}: from-import {n}" for n in names if is_forbidden(n)]
        elif isinstance(node, ast.Attribute):
            name = qualified(node, bound)
            if is_forbidden(name):
                found.append(f"line {line}: {name}")
            if node.attr in TORCH_AUTOGRAD_ATTRIBUTES:
                found.append(f"line {line}: .{node.attr} (torch autograd)")
            if (node.attr == "requires_grad" and isinstance(node.ctx, ast.Store)
                    and not (node in in_value and isinstance(node.value, ast.Name) and node.value.id == "self")):
                found.append(f"line {line}: assignment to .requires_grad outside the engine's Value")
        elif isinstance(node, ast.Call):
            keywords = {k.arg for k in node.keywords}
            if "requires_grad" in keywords and qualified(node.func, bound) != ENGINE_VALUE:
                found.append(f"line {line}: requires_grad= in a call of {ast.unparse(node.func)}, "
                             f"not of the engine's Value ({ENGINE_VALUE})")
        elif isinstance(node, ast.ClassDef):
            found += [f"line {line}: class {node.name} derives from {qualified(b, bound)}"
                      for b in node.bases if qualified(b, bound).startswith("torch.")]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value in AUTOGRAD_STRINGS or (re.fullmatch(r"[\w.]+", node.value) and is_forbidden(node.value)):
                found.append(f"line {line}: the string {node.value!r}")
    return found


@pytest.mark.parametrize("path", sorted(SCRATCH.glob("*.py")), ids=lambda p: p.name)
def test_source_uses_no_autograd_nn_optim_or_func(path):
    found = violations(path.read_text(), module_name(path))
    assert found == [], f"{path.name} uses forbidden torch machinery: {found}"


def test_the_engine_value_is_not_a_torch_class():
    """Rule 4 lets the engine's Value assign self.requires_grad because Value is its own plain class."""
    assert Value.__bases__ == (object,) and not issubclass(Value, torch.Tensor)
    assert module_name(SCRATCH / "engine.py") == ENGINE_MODULE


CAUGHT = [
    # modules (rule 1)
    "import torch.nn", "from torch import nn", "from torch.nn import functional", "import torch.optim as o",
    "from torch.func import grad", "import torch\ntorch.autograd.grad(y, x)",
    "import torch\ntorch.nn.functional.relu(x)",
    "import torch as th\nth.nn.Linear(2, 3)", "import torch as th\nth.autograd.backward(y)",
    "from torch.utils.checkpoint import checkpoint", "import torch\ntorch._C._set_grad_enabled(True)",
    # torch's grad mode and tensor entry points (rule 1)
    "import torch\nwith torch.no_grad():\n    pass", "import torch\ntorch.set_grad_enabled(True)",
    "import torch\nwith torch.enable_grad():\n    pass", "from torch import no_grad", "from torch import enable_grad",
    "import torch\nwith torch.inference_mode(False):\n    pass", "import torch\ntorch.Tensor.backward(y)",
    "from torch import Tensor\nTensor.backward(y)", "import torch\ntorch.Tensor.requires_grad.__set__(x, True)",
    # torch-only autograd attributes (rule 2)
    "x.requires_grad_()", "x.detach().requires_grad_(True)", "y.grad_fn", "y.retain_grad()", "y.register_hook(print)",
    "import torch\ntorch.Tensor._make_subclass(cls, x, True)",
    # requires_grad= outside the engine's Value (rule 3)
    "import torch\ntorch.zeros(3, requires_grad=True)", "import torch\ntorch.tensor([1.0], requires_grad=True)",
    "import torch as th\nth.empty_like(x, requires_grad=True)", "x.new_zeros(3, requires_grad=True)",
    "from torch import tensor\ntensor(1.0, requires_grad=True)",
    "from torch import tensor as Value\nValue(1.0, requires_grad=True)",
    "from scratch.engine import Value\nValue = torch.tensor\nValue(1.0, requires_grad=True)",
    "from scratch.other import Value\nValue(1.0, requires_grad=True)",
    "import torch\ntorch.ones(2, **dict(requires_grad=True))", "Value(1.0, requires_grad=True)",
    # assignments to .requires_grad (rule 4)
    "x.requires_grad = True", "x.data.requires_grad = True", "x.requires_grad, y = True, 1",
    "class Value:\n    def __init__(self, d):\n        self.requires_grad = True",  # not in scratch/engine.py
    # torch subclasses (rule 5)
    "import torch\nclass P(torch.Tensor):\n    pass", "from torch import Tensor\nclass P(Tensor):\n    pass",
    # indirect routes through strings (rule 6)
    "setattr(x, 'requires_grad', True)", "getattr(x, 'requires_grad_')()", "x.__setattr__('requires_grad', True)",
    "import torch\ntorch.ones(2, **{'requires_grad': True})",
    "import importlib\nimportlib.import_module('torch.autograd')",
    "__import__('torch.nn')",
]


@pytest.mark.parametrize("snippet", CAUGHT)
def test_scan_catches_torch_autograd_use(snippet):
    assert violations(snippet) != []


ALLOWED = [
    ("from scratch.engine import Value\nw = Value(torch.zeros(3), requires_grad=True, name='w')", "scratch.model"),
    ("from scratch import engine\nw = engine.Value(t, requires_grad=True)", "scratch.model"),
    ("import scratch.engine\nw = scratch.engine.Value(t, requires_grad=True)", "scratch.model"),
    ("import scratch.engine as E\nw = E.Value(t, requires_grad=True)", "scratch.model"),
    ("if w.requires_grad:\n    flag = w.requires_grad", "scratch.model"),
    ("loss.backward()\nw.grad.zero_()\nw.zero_grad()", "scratch.model"),
    ("from scratch.engine import no_grad\nwith no_grad():\n    pass\n@no_grad()\ndef f():\n    pass", "scratch.model"),
    ("import torch\ntorch._foreach_add_(params, grads, alpha=-0.1)", "scratch.optim"),
    ('"""Value(x, requires_grad=True) marks a parameter; torch.nn.Linear does the same."""', "scratch.model"),
    # inside the engine itself: its class, its own flag and the results it makes
    ("class Value:\n    def __init__(self, d, requires_grad=False):\n        self.requires_grad = requires_grad\n"
     "def result(d):\n    return Value(d, requires_grad=True)", ENGINE_MODULE),
]


@pytest.mark.parametrize("snippet,module", ALLOWED)
def test_scan_allows_the_engines_own_vocabulary(snippet, module):
    assert violations(snippet, module) == []


@pytest.fixture
def autograd_trapped(monkeypatch):
    """torch's autograd entry points replaced by a trap that fails the test if anything calls them."""
    def trap(*args, **kwargs):
        raise AssertionError("scratch code called into torch.autograd")

    monkeypatch.setattr(torch.Tensor, "backward", trap)
    monkeypatch.setattr(torch.Tensor, "requires_grad_", trap)
    monkeypatch.setattr(torch.autograd, "backward", trap)
    monkeypatch.setattr(torch.autograd, "grad", trap)
    monkeypatch.setattr(torch.autograd.Function, "apply", classmethod(trap))


def assert_no_torch_graph(tensors: list[torch.Tensor]) -> None:
    assert all(not t.requires_grad and t.grad_fn is None for t in tensors), "a tensor has torch's gradient flag"


def test_the_trap_is_armed(autograd_trapped):
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(AssertionError, match="called into torch.autograd"):
        (w * 2).sum().backward()
    with pytest.raises(AssertionError, match="called into torch.autograd"):
        torch.ones(2).requires_grad_()


def test_training_step_runs_with_autograd_booby_trapped(autograd_trapped):
    model = scratch.MLP(input_size=12, hidden_sizes=(8,), num_classes=3)
    loss_fn = scratch.CrossEntropyLoss()
    optimizer = scratch.SGD(model.parameters(), model.gradients(), lr=0.1)
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 1, 0])
    before = [p.clone() for p in model.parameters()]
    loss = loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    optimizer.step()
    assert_no_torch_graph([loss, *model.parameters(), *model.gradients()])
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_engine_training_step_runs_with_autograd_booby_trapped(autograd_trapped):
    """The engine differentiates by itself: Value.backward() fills every .grad with torch's autograd trapped."""
    model = engine_nn.MLP(input_size=12, hidden_sizes=(8,), num_classes=3)
    params = model.parameters()
    optimizer = scratch.SGD([p.data for p in params], [p.grad for p in params], lr=0.1)
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 1, 0])
    before = [p.data.clone() for p in params]
    model.zero_grad()
    loss = cross_entropy(model(Value(x)), y)
    loss.backward()
    optimizer.step()
    assert all(p.requires_grad and torch.count_nonzero(p.grad) > 0 for p in params)
    assert_no_torch_graph([loss.data, *(p.data for p in params), *(p.grad for p in params)])
    assert all(not torch.equal(a, p.data) for a, p in zip(before, params, strict=True))
