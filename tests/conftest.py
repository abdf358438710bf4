"""Shared fixtures: the real datasets (found through $MNIST_DATA_ROOT) and tiny fake ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from idx_files import make_dataset  # tests/ is on the path (pyproject.toml: pythonpath)


def _real_data() -> tuple[str | None, str]:
    """(the data root holding the real MNIST, or None; why not). Files missing under $MNIST_DATA_ROOT are
    downloaded once where there is internet; where that fails too, the real-data tests skip with the reason."""
    root = os.environ.get("MNIST_DATA_ROOT")
    if not root:
        return None, ("set MNIST_DATA_ROOT to a folder holding mnist/ (e.g. ../shared/data) to run the tests on "
                      "real data")
    from compare.data.mnist import DataError, load_dataset

    try:
        load_dataset("mnist", root, normalize=False)
    except DataError as error:
        return None, f"no real MNIST: {error}"
    return root, ""


DATA_ROOT, NO_DATA_REASON = _real_data()
# With the data there the reason is never shown; it still names the tests that read it (the real_data mark).
NO_DATA_REASON = NO_DATA_REASON or "reads the real MNIST ($MNIST_DATA_ROOT)"
requires_data = pytest.mark.skipif(DATA_ROOT is None, reason=NO_DATA_REASON)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="session")
def mnist64():
    """The real MNIST, normalized, in float64 (skips, with the reason, where it cannot be had)."""
    if DATA_ROOT is None:
        pytest.skip(NO_DATA_REASON)
    from compare.data.mnist import load_dataset

    return load_dataset("mnist", DATA_ROOT, dtype=torch.float64, download=False)


@pytest.fixture
def tiny_data_root(tmp_path: Path) -> Path:
    """A data root with fake MNIST files: 200 training and 50 test images of random pixels."""
    make_dataset(tmp_path / "mnist", gz=True, n_train=200, n_test=50)
    return tmp_path


def pytest_collection_modifyitems(config, items) -> None:
    """Mark every test that reads the real datasets `real_data` (`make test-fast` leaves them out)."""
    for item in items:
        reads = "mnist64" in getattr(item, "fixturenames", ()) or any(
            mark.kwargs.get("reason") == NO_DATA_REASON for mark in item.iter_markers("skipif"))
        if reads or item.path.name in ("test_notebooks.py", "test_docs_build.py", "test_examples.py"):
            item.add_marker(pytest.mark.real_data)
