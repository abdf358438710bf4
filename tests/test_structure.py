"""The layers of the code: imports point down only (commands -> core of compare -> scratch, torch_impl).

Every import of every project module is read with `ast`, at the top of a file and inside
functions alike: an import placed inside a function to dodge a cycle is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scratch", "torch_impl", "compare")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its file (`from a import b` counts a.b when a.b is a
    module, else a)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # a name inside a module: the module itself
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imported_modules(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A list of modules that import each other in a circle, or None. Importing a package's own
    submodules from its __init__ (a registry importing its entries) is not a cycle unless a
    submodule imports the package back."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def layer(name: str) -> int:
    if name.startswith("compare.commands"):
        return 2
    if name.startswith("compare"):
        return 1
    return 0


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_imports_point_down_only():
    wrong = [f"{a} imports {b}" for a, targets in import_graph().items() for b in targets
             if layer(b) > layer(a) and not (a == "compare.cli" or a == "compare.__main__")]
    assert wrong == [], "the core (or scratch/torch_impl) imports a command: " + "; ".join(wrong)


def test_no_command_imports_another():
    graph = import_graph()
    commands = {n for n in graph if n.startswith("compare.commands.") and n.count(".") == 2}

    def owner(module: str) -> str | None:
        return next((c for c in commands if module == c or module.startswith(c + ".")), None)

    wrong = [f"{a} imports {b}" for a, targets in graph.items() for b in targets
             if owner(a) and owner(b) and owner(a) != owner(b)]
    assert wrong == [], "; ".join(wrong)


def test_scratch_and_torch_impl_import_nothing_of_compare():
    wrong = [f"{a} imports {b}" for a, targets in import_graph().items() for b in targets
             if a.split(".")[0] in ("scratch", "torch_impl") and b.startswith("compare")]
    assert wrong == [], "; ".join(wrong)


@pytest.mark.parametrize("source,cycle", [
    ({"a": "import b", "b": "def f():\n    from a import x\n"}, True),  # a function-local import closes it
    ({"a": "import b", "b": "x = 1"}, False),
])
def test_the_cycle_finder_sees_function_local_imports(tmp_path, source, cycle):
    known = set(source)
    graph = {}
    for name, text in source.items():
        path = tmp_path / f"{name}.py"
        path.write_text(text)
        graph[name] = imported_modules(name, path, known)
    assert (find_cycle(graph) is not None) == cycle


def test_family_names_appear_only_in_the_registry():
    """The loop, the verdict, the tables and the plots ask the family; only compare/models/ names one."""
    from compare.models import FAMILIES

    offenders = []
    for name, path in project_modules().items():
        if not name.startswith("compare") or name.startswith("compare.models"):
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in FAMILIES:
                offenders.append(f"{name}:{node.lineno} {node.value!r}")
    assert offenders == [], "a family named outside compare/models/: " + ", ".join(offenders)
