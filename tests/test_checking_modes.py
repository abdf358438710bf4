"""The checker beyond the first backward: forward mode (`forward_ad=True`, `check --forward-ad`) and the backward's
own backward (`order=2`, `check --order 2`), on engine functions and torch.autograd.Functions.

    pytest tests/test_checking_modes.py -q

The mutants of tangent rules and of recorded backward passes are in compare/checking/mutants/engine.py and run
with the others in tests/test_checking.py; here: what each mode finds on its own, the refusals, the command line.
"""

from __future__ import annotations

import json

import pytest
import torch
import user_layers
import user_second_order
from torch import Tensor

import scratch
from compare.checking import TargetError, assert_backward_correct, check_backward, summary
from compare.checking.mutants import subjects
from compare.cli import main

SILU = dict(shapes=[(4, 8)], reference=torch.nn.functional.silu)


def failed(result, label: str) -> set[str]:
    """The tensors that failed a comparison whose method starts with `label` ("" for the first backward)."""
    return {c.tensor for c in result.failures()
            if (c.against.startswith(label) if label else not c.against.startswith(("forward mode", "second order")))}


def test_every_mode_of_engine_functions_passes_with_every_input_and_dout_checked():
    result = check_backward(subjects.batch_stats, kind="engine", shapes=[(4, 5), (3, 5), (3,)], order=2,
                            forward_ad=True)
    assert result.passed, summary(result)
    methods = {(c.tensor, c.against.split(" (")[0]) for c in result.comparisons}
    for name in ("x", "weight", "bias"):
        assert {(name, "forward mode: torch forward AD"), (name, "forward mode: finite differences"),
                (name, "second order: torch.autograd"), (name, "second order: finite differences")} <= methods
    assert ("dout", "second order: finite differences") in methods  # d/d(dout) of the vjp: J ddx


def test_a_saved_intermediate_passes_the_first_order_and_fails_the_second():
    """The user's SiLU of docs/checking-your-backward.md saves s = sigmoid(x) from forward: its gradient is right,
    its second derivative misses d s / dx. Recomputing s in backward (tests/user_second_order.py) fixes it."""
    assert check_backward(user_layers.SiLU, **SILU).passed
    result = check_backward(user_layers.SiLU, order=2, **SILU)
    assert not result.passed
    assert failed(result, "second order") == {"x"} and not failed(result, "")
    assert {c.against.split(" (")[0] for c in result.failures()} == {"second order: torch.autograd",
                                                                    "second order: finite differences"}
    user_second_order.test_silu_every_derivative()


def test_the_failure_message_says_which_derivative():
    with pytest.raises(AssertionError) as info:
        assert_backward_correct(user_layers.SiLU, order=2, **SILU)
    first = str(info.value).splitlines()[0]
    assert first.endswith("the backward's own backward is wrong for x"), first
    assert "second order: dx vs finite differences: at index" in str(info.value)
    assert "the double backward gives" in str(info.value)


class SiLUJvpWrong(user_second_order.SiLU):
    @staticmethod
    def jvp(ctx, t: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return t * torch.sigmoid(x)  # the product rule's second term forgotten


def test_a_wrong_jvp_is_caught_by_forward_mode_alone():
    result = check_backward(SiLUJvpWrong, forward_ad=True, order=2, **SILU)
    assert failed(result, "forward mode") == {"x"}
    assert not failed(result, "") and not failed(result, "second order")


def test_the_check_of_dout_catches_a_backward_that_forgets_its_upstream_gradient_is_in_the_graph():
    class DetachedUpstream(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: Tensor) -> Tensor:
            ctx.save_for_backward(x)
            return x.tanh()

        @staticmethod
        def backward(ctx, dout: Tensor) -> Tensor:
            (x,) = ctx.saved_tensors
            return dout.detach() * (1 - x.tanh() ** 2)

    result = check_backward(DetachedUpstream, shapes=[(3, 4)], reference=torch.tanh, order=2)
    assert failed(result, "second order") == {"dout"}, summary(result)


def test_what_cannot_be_differentiated_further_is_refused_with_the_reason():
    with pytest.raises(TargetError, match="records nothing, so it has no order 2"):
        check_backward(scratch.Linear, args=(5, 4), shapes=[(3, 5)], order=2)
    with pytest.raises(TargetError, match="no forward mode"):
        check_backward(scratch.Tanh, shapes=[(3, 5)], forward_ad=True)
    with pytest.raises(TargetError, match="jvp"):
        check_backward(user_layers.SiLU, forward_ad=True, **SILU)
    with pytest.raises(TargetError, match="order must be 1"):
        check_backward(user_layers.SiLU, order=3, **SILU)

    class OnceDifferentiable(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: Tensor) -> Tensor:
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, dout: Tensor) -> Tensor:
            (x,) = ctx.saved_tensors
            return 2 * x * dout

    with pytest.raises(TargetError, match="order 2 needs a backward built from differentiable operations"):
        check_backward(OnceDifferentiable, shapes=[(3, 4)], reference=torch.square, order=2)


def test_a_gradient_zero_by_symmetry_that_moves_no_output_is_not_a_false_positive():
    """A bias before a batch norm: its gradient is 0 and nudging it moves no output bit, so the difference quotient
    is exactly 0 while the engine's cancelling terms leave ~1e-16: allowed as the backward's own rounding."""
    result = check_backward(subjects.batch_stats, kind="engine", shapes=[(4, 5), (3, 5), (3,)], seeds=20)
    assert result.passed, summary(result)  # without that allowance, seed 1 fails: 2.2e-16 against exactly 0


def test_cli_order_2_forward_ad_and_engine(tmp_path, capsys):
    report = tmp_path / "check.json"
    silu = ["--shape", "4,8", "--reference", "torch.nn.functional:silu"]
    assert main(["check", "user_layers:SiLU", *silu, "--order", "2", "--report", str(report)]) == 1
    data = json.loads(report.read_text())
    assert data["config"]["order"] == 2 and data["agreement"]["failed_tensors"] == ["x"]
    assert "second order: finite differences" in capsys.readouterr().out
    assert main(["check", "user_second_order:SiLU", *silu, "--order", "2", "--forward-ad"]) == 0
    out = capsys.readouterr().out
    assert "forward mode: torch forward AD" in out and "Verdict: PASSED" in out
    engine = ["check", "compare.checking.mutants.subjects:attention_weights", "--engine", "--shape", "4,4",
              "--shape", "3,4", "--order", "2", "--forward-ad"]
    assert main(engine) == 0
    assert "against the same function on torch tensors" in capsys.readouterr().out
    for bad in (["check", "scratch.optim:Adam", "--order", "2"], ["check", "user_layers:SiLU", *silu, "--forward-ad"],
                ["check", "scratch.linear:Linear", "--args", "5", "4", "--order", "2"]):
        assert main(bad) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1, err
