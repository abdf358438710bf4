"""Shared fixtures: the real datasets (found through $MNIST_DATA_ROOT) and tiny fake ones."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from idx_files import make_dataset  # tests/ is on the path (pyproject.toml: pythonpath)

DATA_ROOT = os.environ.get("MNIST_DATA_ROOT")
requires_data = pytest.mark.skipif(
    not DATA_ROOT,
    reason="set MNIST_DATA_ROOT to a folder holding mnist/ and fashion-mnist/ (e.g. ../shared/data) "
           "to run the tests on real data",
)
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="session")
def mnist64():
    """The real MNIST, normalized, in float64 (skips without $MNIST_DATA_ROOT)."""
    if not DATA_ROOT:
        pytest.skip(requires_data.kwargs["reason"])
    from compare.data import load_dataset

    return load_dataset("mnist", DATA_ROOT, dtype=torch.float64, download=False)


@pytest.fixture
def tiny_data_root(tmp_path: Path) -> Path:
    """A data root with fake MNIST files: 200 training and 50 test images of random pixels."""
    make_dataset(tmp_path / "mnist", gz=True, n_train=200, n_test=50)
    return tmp_path
