"""Every notebook of docs/notebooks/ runs top to bottom (nbclient, a kernel of this Python) on the real MNIST,
and the committed notebooks are what docs/notebooks/build.py writes.

The notebooks read a small slice of the real data through $MNIST_DATA_ROOT; without it they skip with the
reason (the first notebook needs no data and always runs).
"""

from __future__ import annotations

import importlib.util
import os
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
SECONDS_EACH = 60  # "well under a minute each"


def uses_data(notebook) -> bool:
    return any("load_dataset" in cell.source for cell in notebook.cells if cell.cell_type == "code")


def test_the_series_is_there():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    if uses_data(notebook) and DATA_ROOT is None:
        pytest.skip(NO_DATA_REASON)
    # the kernel is a child of this process: it finds the project as this process does, and one thread suffices
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), *sys.path]))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    if DATA_ROOT is not None:
        monkeypatch.setenv("MNIST_DATA_ROOT", DATA_ROOT)
    client = nbclient.NotebookClient(notebook, timeout=SECONDS_EACH, kernel_name="python3",
                                     resources={"metadata": {"path": str(ROOT)}})
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and its traceback, when a cell fails
    seconds = time.perf_counter() - start
    assert seconds < SECONDS_EACH, f"{path.name} took {seconds:.0f} s"
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_committed_notebooks_are_what_build_writes(tmp_path, monkeypatch):
    """Edit the cells in build.py, not the .ipynb files: the two must not drift apart. Committed without outputs."""
    spec = importlib.util.spec_from_file_location("notebooks_build", FOLDER / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    monkeypatch.setattr(build, "HERE", tmp_path)
    for written in build.build():
        committed = (FOLDER / written.name).read_text()
        assert written.read_text() == committed, f"{written.name} differs from build.py: run it again"
        assert '"outputs": []' in committed and '"execution_count": null' in committed
