"""Every notebook of docs/notebooks/ runs top to bottom (nbclient, a kernel of this Python) on the real MNIST,
and the committed notebooks are what docs/notebooks/build.py writes: the same cells, executed, with outputs
a learner can read on GitHub (at least one figure each), and prose of a readable length.

The notebooks read a small slice of the real data through $MNIST_DATA_ROOT; without it the ones that need it
skip their execution with the reason (the first notebook needs no data and always runs).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA_ROOT, NO_DATA_REASON

nbformat = pytest.importorskip("nbformat", reason="nbformat is in the dev extra: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="nbclient is in the dev extra: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "docs" / "notebooks"
NOTEBOOKS = sorted(FOLDER.glob("*.ipynb"))
IDS = [p.stem for p in NOTEBOOKS]
SECONDS_EACH = 60  # "well under a minute each"
PROSE_WORDS = (300, 600)  # markdown words per notebook: enough to teach, short enough to read
REBUILD = "run python docs/notebooks/build.py and commit the notebooks it writes"

# A difference at rounding level (0, or below 1e-9 in e-notation) depends on the BLAS and the CPU, not on the
# code: the text outputs are compared with these masked, every other character exactly.
ROUNDING_LEVEL = re.compile(r"\b(?:\d(?:\.\d+)?e-(?:1\d|[2-9]\d)|0(?:\.0+)?e[-+]00)\b")


def load_build():
    spec = importlib.util.spec_from_file_location("notebooks_build", FOLDER / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def uses_data(notebook) -> bool:
    return any("load_dataset" in cell.source for cell in code_cells(notebook))


def prose_words(notebook) -> int:
    return sum(len(cell.source.split()) for cell in notebook.cells if cell.cell_type == "markdown")


def readable(output) -> dict:
    """What a reader sees of one output, minus what varies between machines: a figure's bytes (its presence
    is kept) and rounding-level numbers."""
    if output.output_type == "stream":
        return {"stream": output.name, "text": ROUNDING_LEVEL.sub("~0", output.text)}
    if output.output_type == "error":
        return {"error": output.ename}
    return {"type": output.output_type, **{mime: "<image>" if mime.startswith("image/") else
                                           ROUNDING_LEVEL.sub("~0", value) for mime, value in output.data.items()}}


def test_the_series_is_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]
    assert [p.name for p in NOTEBOOKS] == sorted(load_build().NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_cells_are_what_build_writes(path):
    """Edit the cells in build.py, not the .ipynb files: the two must not drift apart."""
    committed = nbformat.read(path, as_version=4)
    written = load_build().notebook(path.name)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in written.cells], \
        f"{path.name}: its cells differ from build.py's; {REBUILD}"
    assert [c.id for c in committed.cells] == [c.id for c in written.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebooks_hold_their_outputs(path):
    """A learner on GitHub sees every output without running anything: each cell executed once, in order,
    without errors, at least one figure, and no metadata that changes at every run."""
    notebook = nbformat.read(path, as_version=4)
    cells = code_cells(notebook)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), \
        f"{path.name} was not executed top to bottom; {REBUILD}"
    outputs = [o for c in cells for o in c.outputs]
    assert outputs, f"{path.name} has no outputs; {REBUILD}"
    assert not [o for o in outputs if o.output_type == "error"], f"{path.name} holds an error output; {REBUILD}"
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"
    assert not [c.id for c in cells if "execution" in c.metadata], f"{path.name} holds execution timings"
    assert "version" not in notebook.metadata.get("language_info", {}), f"{path.name} names a Python version"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_prose_is_of_a_readable_length(path):
    words = prose_words(nbformat.read(path, as_version=4))
    low, high = PROSE_WORDS
    assert low <= words <= high, f"{path.name} has {words} words of prose; a notebook should have {low}-{high}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_top_to_bottom_to_the_committed_outputs(path, monkeypatch):
    pytest.importorskip("matplotlib", reason="the notebooks draw figures: pip install -e '.[plots]'")
    build = load_build()
    notebook = build.notebook(path.name)
    if uses_data(notebook) and DATA_ROOT is None:
        pytest.skip(NO_DATA_REASON)
    # the kernel is a child of this process: it finds the project as this process does
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *sys.path]))
    if DATA_ROOT is not None:
        monkeypatch.setenv("MNIST_DATA_ROOT", DATA_ROOT)
    start = time.perf_counter()
    build.execute(notebook, timeout=SECONDS_EACH)  # raises CellExecutionError, with the cell and its traceback
    seconds = time.perf_counter() - start
    assert seconds < SECONDS_EACH, f"{path.name} took {seconds:.0f} s"
    assert not [o for c in code_cells(notebook) for o in c.outputs if o.output_type == "error"]

    committed = code_cells(nbformat.read(path, as_version=4))
    for ran, kept in zip(code_cells(notebook), committed, strict=True):
        assert [readable(o) for o in ran.outputs] == [readable(o) for o in kept.outputs], \
            f"{path.name}, cell {ran.id}: its output differs from the committed one; {REBUILD}"
