"""The three lines that end a comparison (Implementations, Training, What next), and what they rest on.

Equal non-finite values on both sides are agreement (a run that diverged the same way); a NaN or an inf on one
side only is not. A diverged run of agreeing implementations exits 0, or 1 with --fail-on-divergence; a learning
rate the dtype cannot hold is refused before any work.
"""

from __future__ import annotations

import pytest
import torch

from compare import agreement
from compare.cli import main

INF, NAN = float("inf"), float("nan")


@pytest.mark.parametrize("tol", [agreement.RESYNC_FLOAT32, agreement.AUTOGRAD_FLOAT32], ids=["tensor", "element"])
def test_equal_non_finite_values_agree(tol):
    a = torch.tensor([1.0, -INF, INF, NAN, 2.0])
    result = agreement.compare("w", a, a.clone(), tol)
    assert result.passed, result.message
    assert result.max_abs_diff == 0.0 and result.max_rel_error == 0.0


@pytest.mark.parametrize("actual, expected", [
    ([1.0, NAN], [1.0, 2.0]),  # NaN on one side only
    ([1.0, 2.0], [1.0, NAN]),
    ([1.0, INF], [1.0, 2.0]),  # inf against a finite value
    ([1.0, 2.0], [1.0, -INF]),
    ([1.0, INF], [1.0, -INF]),  # opposite infinities
    ([1.0, INF], [1.0, NAN]),
    ([-INF, 1.0], [-INF, 1.5]),  # equal infinities do not hide a finite mismatch beside them
], ids=["nan-finite", "finite-nan", "inf-finite", "finite-inf", "inf-minus-inf", "inf-nan", "finite-beside-inf"])
@pytest.mark.parametrize("tol", [agreement.RESYNC_FLOAT32, agreement.AUTOGRAD_FLOAT32], ids=["tensor", "element"])
def test_one_sided_non_finite_values_or_a_mismatch_beside_them_fail(actual, expected, tol):
    result = agreement.compare("w", torch.tensor(actual), torch.tensor(expected), tol)
    assert not result.passed and "mismatch at index (1,)" in result.message, result.message


@pytest.mark.parametrize("command", ["train", "grads", "playground"])
def test_a_learning_rate_float32_cannot_hold_is_refused_before_any_work(command, tmp_path, capsys):
    missing = ["--data-root", str(tmp_path / "no-data")] if command != "playground" else []
    assert main([command, *missing, "--lr", "1e39", "--dtype", "float32"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--lr 1e+39" in err and "float32" in err, err


def test_the_limit_is_the_dtypes(tmp_path, capsys):
    """float64 holds 1e39: the run goes on to load the data (here missing, so that is where it stops)."""
    assert main(["train", "--data-root", str(tmp_path / "no-data"), "--lr", "1e39", "--dtype", "float64"]) == 2
    err = capsys.readouterr().err
    assert "--lr" not in err and "no-data" in err, err
