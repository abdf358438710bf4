"""Check your own backward: a gradient checker for any layer, proven by the bugs it catches.

    from compare.checking import assert_backward_correct, check_backward
    result = check_backward("scratch.linear:Linear", args=(7, 5), shapes=[(4, 7)])
    assert_backward_correct(MyLayerNorm, args=(8,), shapes=[(4, 8)], reference=torch.nn.LayerNorm)

    python -m compare check scratch.linear:Linear --args 784 512 --shape 32,784 --sampled
    python -m compare check --mutants

finite_diff.py: central and one-sided differences, directions, sampling (for a layer here, and for a
whole network's loss in `grads`); nudges.py: how the checked tensors are moved; targets.py: what can be checked;
backward.py: check_backward; forward_mode.py and second_order.py: its `forward_ad=True` and `order=2`, on a
target's own derivatives as autodiff.py takes them (the engine's or torch's);
optimizers.py: check_optimizer; results.py and report.py: what was found and its table; assertions.py:
the pytest helper; mutants/ and suite.py: the bugs it must catch. derivatives.py: a network's loss differentiated
by the engine's forward mode, double backward and Hessian-vector products, against torch's (`autograd --mode`).
See docs/checking-your-backward.md.
"""

from compare.checking.assertions import assert_backward_correct
from compare.checking.backward import check_backward
from compare.checking.optimizers import check_optimizer
from compare.checking.report import summary
from compare.checking.results import CheckResult, TensorComparison
from compare.checking.targets import TargetError

__all__ = ["CheckResult", "TargetError", "TensorComparison", "assert_backward_correct", "check_backward",
           "check_optimizer", "summary"]
