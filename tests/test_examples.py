"""The standalone scripts of examples/ run on a small slice of the real MNIST and say what they should.

Each is read top to bottom in one sitting, so each stays well under 150 lines, and uses the project's
packages (scratch, torch_impl, compare), not copies of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA_ROOT, requires_data

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MNIST_DATA_ROOT": str(DATA_ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_short_and_uses_the_project(path):
    text = path.read_text()
    assert len(text.splitlines()) < 150
    assert "import scratch" in text or "from scratch" in text


@requires_data
def test_side_by_side_trains_both_to_the_same_losses():
    out = run_example("side_by_side.py", "--train-images", "640", "--dtype", "float64", "--log-interval", "5")
    assert "initial weights bit-identical: True" in out
    worst = float(out.split("largest relative difference of a step's loss ")[1].split()[0])
    assert worst < 1e-12, out
    assert "identical predictions on 100.00%" in out


@requires_data
def test_layer_backward_passes():
    out = run_example("layer_backward.py", "--images", "8")
    assert "PASSED" in out and out.count("max relative error") == 3
