"""`assert_backward_correct`: the gradient checker as one assertion in your own tests.

    def test_my_layer_norm():
        assert_backward_correct(MyLayerNorm, args=(8,), shapes=[(4, 8)], reference=torch.nn.LayerNorm)

On failure the AssertionError names the tensors whose gradient is wrong, where (index and seed),
both values and the tolerance, followed by the whole table.
"""

from __future__ import annotations

from compare.checking.backward import check_backward
from compare.checking.report import summary
from compare.checking.results import CheckResult

BEYOND = {"forward mode": "the forward mode (J t)", "second order": "the backward's own backward"}


def failure_message(result: CheckResult) -> str:
    """One line naming the wrong tensors (of the gradient, the forward mode, the second order), then the table
    with the worst failure of each tensor and method."""
    wrong: dict[str, dict[str, None]] = {}
    for c in result.failures():
        label = c.against.split(":")[0]
        wrong.setdefault(BEYOND.get(label, "the gradient"), {})[c.tensor] = None
    said = "; ".join(f"{what} is wrong for {', '.join(tensors)}" for what, tensors in wrong.items())
    return f"{result.target}: {said}\n\n{summary(result)}"


def assert_backward_correct(target: object, **options: object) -> CheckResult:
    """`check_backward(target, **options)`; raises AssertionError with a readable message unless every tensor passes."""
    __tracebackhide__ = True  # pytest points at the caller's line
    result = check_backward(target, **options)
    if not result.passed:
        raise AssertionError(failure_message(result))
    return result
