"""Forward mode (`check_backward(..., forward_ad=True)`, `check --forward-ad`): a target's tangent rules, checked.

As torch's gradcheck with check_forward_ad. For each input i, on its own, a random tangent t of its shape is
pushed through the target in one forward pass (the engine's tangent rules; a torch.autograd.Function's `jvp`),
giving J_i t, the derivative of every output entry along t. It is compared, entry by entry, with

- torch's forward-mode AD (dual tensors) through the reference, within the reference tolerance, and
- central finite differences of the forward along t: (f(x + h t) - f(x - h t)) / 2h, within the finite-difference
  tolerance of max|J_i t| plus the rounding of a difference (8 eps max|out| / h); an entry whose one-sided
  differences disagree (a kink within h) is left out and counted, as in the backward check.

One input at a time, with the others held, so that a wrong rule is named by the input whose tangent it
mishandles: a tangent on a broadcast bias alone, say, must be stretched to the output's shape by itself.
The input is fed as it is (no layer in front: a random tangent already moves every coordinate of it).
"""

from __future__ import annotations

import torch
from torch import Tensor

from compare.checking import finite_diff
from compare.checking.autodiff import Differentiable
from compare.checking.results import TensorComparison, compare_tensors, scored
from compare.checking.targets import Bound

AGAINST_REFERENCE = "forward mode: torch forward AD"
AGAINST_FINITE_DIFFERENCES = "forward mode: finite differences"


def comparisons(bound: Bound, own: Differentiable, seed: int, st: finite_diff.Settings, generator: torch.Generator,
                reference_name: str | None) -> list[TensorComparison]:
    """J_i t of every input i of `bound`, by the target's forward mode, against the reference and finite differences."""
    stream = torch.get_rng_state()  # each forward pass replays it: a dropout draws the same mask every time
    reference = Differentiable(lambda *ins: bound.reference(list(ins))[0], engine=False) if bound.reference else None

    def run(ins: list[Tensor]) -> Tensor:
        torch.set_rng_state(stream)
        with torch.no_grad():
            return bound.run(ins).detach()

    found = []
    out0 = run(bound.inputs)
    for i, (name, x) in enumerate(zip(bound.input_names, bound.inputs, strict=True)):
        t = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x.dtype)
        torch.set_rng_state(stream)
        pushed = own.jvp(bound.inputs, i, t).detach()
        if reference is not None:
            torch.set_rng_state(stream)
            expected = reference.jvp(bound.inputs, i, t)
            found.append(compare_tensors(name, f"{AGAINST_REFERENCE} ({reference_name})", seed, pushed, expected,
                                         st.reference, what=f"J t for {name}"))
        plus = run([v + st.step * t if k == i else v for k, v in enumerate(bound.inputs)])
        minus = run([v - st.step * t if k == i else v for k, v in enumerate(bound.inputs)])
        found.append(_against_finite_differences(name, seed, pushed, out0, plus, minus, st))
    return found


def _against_finite_differences(name: str, seed: int, pushed: Tensor, out0: Tensor, plus: Tensor, minus: Tensor,
                                st: finite_diff.Settings) -> TensorComparison:
    h = st.step
    rise, fall = (plus - out0).reshape(-1).double(), (out0 - minus).reshape(-1).double()
    # An entry's rounding comes from the intermediate values it was computed from, not from its own size (an output
    # near 0 after a subtraction of large ones): 8 eps of the largest output entry, for every entry.
    largest = out0.abs().max().item() if out0.numel() else 0.0
    rounding = torch.full_like(rise, finite_diff.ROUNDING * torch.finfo(out0.dtype).eps * largest)
    slopes = finite_diff.Slopes((rise + fall) / (2 * h), rise / h, fall / h, rounding / h)  # central, s+, s-, noise
    if tuple(pushed.shape) != tuple(out0.shape):
        message = (f"J t for {name}: the forward mode gave shape {list(pushed.shape)} for an output of shape "
                   f"{list(out0.shape)}")
        return TensorComparison(name, AGAINST_FINITE_DIFFERENCES, seed, list(out0.shape), False, None, float("inf"),
                                float("inf"), None, 0, out0.numel(), message=message)
    actual = pushed.reshape(-1).double()
    scale = max(actual.abs().max().item() if actual.numel() else 0.0, slopes.central.abs().max().item()
                if actual.numel() else 0.0, 1e-300)
    keep = ~slopes.kinks(scale, st.kink_rtol)
    kept = torch.arange(actual.numel())[keep]
    return scored(name, AGAINST_FINITE_DIFFERENCES, seed, list(out0.shape), actual[keep], slopes.central[keep],
                  slopes.noise[keep], scale, st.coordinates, kept, actual.numel(), int((~keep).sum()),
                  lambda k: [int(j) for j in torch.unravel_index(kept[k], out0.shape)],
                  what=f"J t for {name}", by="the forward mode")
