"""The layers of the code: imports point down only, along the table of layers in compare/__init__.py's docstring.

Every import of every project module is read with `ast`, at the top of a file and inside
functions alike: an import placed inside a function to dodge a cycle is still a cycle.
Files stay small: none of compare/, scratch/ or torch_impl/ is over MAX_LINES lines but those declared below.
"""

from __future__ import annotations

import ast
import re
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


# a row of the table: "    5      compare/training/, compare/checking/   what they hold"
LAYER_ROW = re.compile(r"^ {4}(\d+) {2,}(\S.*?)(?: {2,}.*)?$")


def layer_table() -> dict[str, int]:
    """{path: layer} from the table in compare/__init__.py's docstring: a folder ("compare/training/") or a file."""
    doc = ast.get_docstring(ast.parse((ROOT / "compare" / "__init__.py").read_text()))
    table: dict[str, int] = {}
    for line in doc.splitlines():
        row = LAYER_ROW.match(line)
        if row:
            for entry in row.group(2).split(","):
                assert entry.strip() not in table, f"{entry.strip()} is given two layers"
                table[entry.strip()] = int(row.group(1))
    return table


def place(path: Path, table: dict[str, int]) -> str | None:
    """The table's entry that holds the file: itself, or the deepest folder above it; None when none does."""
    rel = path.relative_to(ROOT).as_posix()
    folders = [entry for entry in table if entry.endswith("/") and rel.startswith(entry)]
    return rel if rel in table else max(folders, key=len, default=None)


def wrong_imports(graph: dict[str, set[str]], entry_of: dict[str, str], table: dict[str, int]) -> list[str]:
    """Imports that go up the layers, or sideways into another folder of the same layer."""
    wrong = []
    for a, targets in graph.items():
        for b in targets:
            if entry_of[a] != entry_of[b] and table[entry_of[b]] >= table[entry_of[a]]:
                wrong.append(f"{a} (layer {table[entry_of[a]]}, {entry_of[a]}) imports {b} "
                             f"(layer {table[entry_of[b]]}, {entry_of[b]})")
    return wrong


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_layer_table_names_layers_0_to_the_top_and_only_what_exists():
    table = layer_table()
    assert sorted(set(table.values())) == list(range(max(table.values()) + 1)), table
    missing = [entry for entry in table if not (ROOT / entry).exists()]
    assert missing == [], f"the layer table of compare/__init__.py names what does not exist: {missing}"


def test_every_module_has_a_layer():
    """A new top-level module or folder of compare/ must be placed in the table before it can be imported."""
    table = layer_table()
    unplaced = sorted(name for name, path in project_modules().items() if place(path, table) is None)
    assert unplaced == [], f"give these a layer in compare/__init__.py's table: {unplaced}"


def test_imports_point_down_the_layers():
    table = layer_table()
    entry_of = {name: place(path, table) for name, path in project_modules().items()}
    wrong = wrong_imports(import_graph(), entry_of, table)
    assert wrong == [], "imports against the layers of compare/__init__.py: " + "; ".join(wrong)


@pytest.mark.parametrize("imports,wrong", [
    ({"core": {"low"}, "low": set()}, False),
    ({"core": {"core2"}, "core2": set()}, False),
    ({"low": {"core"}, "core": set()}, True),
    ({"core": {"side"}, "side": set()}, True),  # into another folder of the same layer
], ids=["down", "within-one-folder", "up", "sideways"])
def test_the_layer_rule_sees_upward_and_sideways_imports(imports, wrong):
    table = {"low/": 1, "core/": 2, "side/": 2}
    entry_of = {"low": "low/", "core": "core/", "core2": "core/", "side": "side/"}
    assert bool(wrong_imports(imports, entry_of, table)) == wrong


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


# A file over MAX_LINES lines mixes concerns more often than not. The exceptions, each with its reason:
MAX_LINES = 400
LONG_FILES = {
    # The autograd engine: the Value class and every op's forward beside its backward, read top to bottom
    # as one story; its split is the business of the engine's own rewrite.
    "scratch/engine.py",
    # The engine's nn helpers: each layer written on Values, the twin of one scratch file each; same reason.
    "scratch/engine_nn.py",
}


def test_no_file_is_over_the_line_limit():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
             for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}
    long = {path: n for path, n in sizes.items() if n > MAX_LINES}
    unexplained = {path: n for path, n in long.items() if path not in LONG_FILES}
    assert unexplained == {}, \
        f"files over {MAX_LINES} lines (split them, or declare them in LONG_FILES with a reason): {unexplained}"
    stale = sorted(LONG_FILES - set(long))
    assert stale == [], f"declared long but no longer over {MAX_LINES} lines: drop them from LONG_FILES: {stale}"
