"""The standalone scripts of examples/ run on a small slice of the real MNIST and say what they should.

Each is read top to bottom in one sitting, so each stays well under 150 lines, and uses the project's
packages (scratch, torch_impl, compare), not copies of them.
"""

from __future__ import annotations

import os
import re
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


@requires_data
def test_second_order_newton_beats_gradient_descent_and_the_sharpness_is_torchs():
    """Newton's method reaches the neuron's minimum in a handful of steps, gradient descent in hundreds; the power
    iteration on engine.hvp converges, to the eigenvalue that torch's double backward gives, at every step measured."""
    out = run_example("second_order.py", "--train-images", "3200", "--hessian-images", "500", "--measure-at", "10,50")
    reached = re.search(r"Newton's method is within 1e-10 of its last loss after (\d+) steps; "
                        r"gradient descent \(lr 0.1\) after (\d+) steps", out)
    assert reached, out
    newton, gd = int(reached[1]), int(reached[2])
    assert newton <= 7 and gd >= 100, out
    newton_losses = [float(v) for v in re.findall(r"Newton step +\d+ +loss (\S+)", out)]
    assert newton_losses[:newton + 1] == sorted(newton_losses[:newton + 1], reverse=True), f"Newton went uphill: {out}"
    assert "along an epoch of SGD at lr 0.1: 2/lr = 20" in out
    rows = re.findall(r"step +(\d+)  lambda_max +(\S+) \(residual (\S+)\)  torch +(\S+) \(relative difference (\S+)\)  "
                      r"(below|ABOVE) 2/lr", out)
    assert [int(step) for step, *_ in rows] == [0, 10, 50, 100], out
    for _, ours, residual, theirs, difference, side in rows:
        assert float(difference) <= 1e-10 and abs(float(ours) - float(theirs)) <= 1e-4 * float(theirs), out
        assert float(residual) < 1e-3, f"the power iteration has not converged: {out}"  # |H v - lambda v| / lambda
        assert float(ours) > 0 and side == ("below" if float(ours) < 20 else "ABOVE"), out
    assert rows[0][5] == "below"  # at initialization SGD at lr 0.1 is stable
    assert "after the epoch (100 steps): test accuracy" in out


def test_second_order_without_data_says_so_in_one_line(tmp_path):
    """No dataset (here the data root is a file, so that no download can be tried into it): one line naming what
    is missing and how to supply it, exit status 2, no traceback."""
    (tmp_path / "not-a-folder").write_text("")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "second_order.py"), "--data-root",
                           str(tmp_path / "not-a-folder")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: Could not find the mnist files") and done.stderr.count("\n") == 1
    assert "MNIST_DATA_ROOT" in done.stderr and not done.stdout
