"""See the computation graph the autograd engine recorded: as a text table, and as Graphviz DOT.

    python -m compare autograd --dtype float64 --graph out/loss.dot   # also out/loss.svg if `dot` is installed

Each node shows the op that made it (or, for a leaf, its name), its shape and, once
backward() has run, the norm of its gradient. Leaves are the inputs (grey: data, no
gradient) and the parameters (blue); the loss is the last node.

    >>> from compare.pictures.graph import graph_text, write_graph
    >>> print(graph_text(loss))
    >>> write_graph(loss, "loss.dot")
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from compare.base.report import table
from scratch.engine import Value

INSTALL_HINT = ("install Graphviz to render it (Debian/Ubuntu: sudo apt-get install graphviz; macOS: "
                "brew install graphviz; conda: conda install graphviz), then run: dot -Tsvg {dot} -o {svg}")


def graph_nodes(root: Value) -> list[Value]:
    """Every value `root` was computed from, constants included, each after its parents; `root` last."""
    return root.topological_order(constants=True)


def describe(node: Value) -> str:
    """What a node is: its op, or for a leaf its name and whether it is a parameter or data."""
    if node._op:
        return node._op
    kind = "parameter" if node.requires_grad else "constant"
    if node.name:
        return f"{node.name} ({kind})"
    return f"{kind} {node.item():g}" if node.numel() == 1 else kind  # a number from the formula, like 0.5


def shape_text(node: Value) -> str:
    return "x".join(map(str, node.shape)) if node.dim() else "scalar"


def grad_norm(node: Value) -> float | None:
    return None if node.grad is None else node.grad.double().norm().item()


def graph_text(root: Value) -> str:
    """The graph as a table, one node per row, each listed after the nodes it was computed from."""
    nodes = graph_nodes(root)
    ids = {node: i for i, node in enumerate(nodes)}
    rows = []
    for node in nodes:
        norm = grad_norm(node)
        rows.append([f"#{ids[node]}", describe(node), shape_text(node),
                     ", ".join(f"#{ids[p]}" for p in node._parents) or "-",
                     "-" if norm is None else f"{norm:.4e}"])
    return table(["node", "op / leaf", "shape", "inputs", "|grad|"], rows)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def graph_dot(root: Value, title: str = "loss") -> str:
    """The graph in Graphviz DOT: data flows left to right, from the leaves to `root`."""
    nodes = graph_nodes(root)
    ids = {node: i for i, node in enumerate(nodes)}
    lines = [f"digraph {_quote(title)} {{", "  rankdir=LR;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];']
    for node in nodes:
        norm = grad_norm(node)
        label = f"{describe(node)}\\n{shape_text(node)}" + ("" if norm is None else f"\\n|grad| {norm:.3e}")
        if node is root:
            color = "#ffd8a8"  # the loss
        elif not node._parents:
            color = "#cfe2ff" if node.requires_grad else "#e9ecef"  # parameter / data
        else:
            color = "#ffffff"
        label = label.replace('"', '\\"')
        lines.append(f'  n{ids[node]} [label="{label}", fillcolor="{color}"];')
    for node in nodes:
        for parent in node._parents:
            lines.append(f"  n{ids[parent]} -> n{ids[node]};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_path: Path) -> tuple[Path | None, str]:
    """Render DOT to SVG next to it with Graphviz's `dot`; (None, how to get it) when it is not installed."""
    svg_path = dot_path.with_suffix(".svg")
    dot = shutil.which("dot")
    if dot is None:
        return None, "Graphviz's `dot` program is not installed, so no SVG was made; " + \
            INSTALL_HINT.format(dot=dot_path, svg=svg_path)
    result = subprocess.run([dot, "-Tsvg", str(dot_path), "-o", str(svg_path)], capture_output=True, text=True)
    if result.returncode != 0:
        return None, f"`dot` could not render {dot_path}: {result.stderr.strip()}"
    return svg_path, f"Graph rendered to {svg_path}"


def write_graph(root: Value, path: str | Path, title: str = "loss") -> tuple[Path, Path | None, str]:
    """Write the DOT file, then try to render it: (dot path, svg path or None, a message for the user)."""
    dot_path = Path(path)
    dot_path.parent.mkdir(parents=True, exist_ok=True)
    dot_path.write_text(graph_dot(root, title))
    svg_path, message = render_svg(dot_path)
    return dot_path, svg_path, message
