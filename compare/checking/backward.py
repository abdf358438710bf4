"""`check_backward`: a hand-written backward pass against torch.autograd and against finite differences.

    >>> from compare import check_backward
    >>> result = check_backward("scratch.linear:Linear", args=(7, 5), shapes=[(4, 7)])
    >>> result.passed
    True
    >>> print(summary(result))          # compare.checking.report.summary: a table per tensor

Per seed, the target is built afresh (`torch.manual_seed(seed)` first, so its own initialisation
varies too) and driven through the fake loss L = sum(out * dout). Then, for the input and every
parameter, its own gradient is compared with

1. torch.autograd on the reference (the torch twin, given the same parameter values), within
   `agreement.AUTOGRAD_FLOAT64`; the forward outputs are compared too;
2. central finite differences of L, at every coordinate (full mode) or at random coordinates plus
   random directions (sampled mode), within `agreement.FINITE_DIFF_FLOAT64`; coordinates where the
   one-sided differences disagree (kinks, ties) are left out and counted (compare/checking/finite_diff.py).

What keeps the common mistakes of gradient checks out:

- dout is random, never all ones: sum(out) hides any error that sums to zero over the outputs (the
  normalising layers, a loss that ignores its upstream gradient);
- the parameters are moved at random first: a fresh batch norm's weight of ones hides a forgotten
  multiplication by it;
- the input comes out of a random linear layer in front (x -> x M), and the gradient checked is the
  one at x: the layer's dx must be right at every coordinate, as when it is not the first layer;
- every forward pass replays the same random stream, so a dropout layer draws the same mask each time;
- float64 throughout, unless float32 is forced (then with loose tolerances, and a warning).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from compare.base import agreement
from compare.checking import finite_diff, forward_mode, nudges, second_order
from compare.checking.autodiff import NotDifferentiableError
from compare.checking.results import CheckResult, TensorComparison, compare_tensors, scored
from compare.checking.targets import Bound, Target, TargetError, make_target

FULL_LIMIT = 20_000  # mode "auto": every coordinate when the tensors together have at most this many
DEFAULT_SEEDS = 3
DEFAULT_SAMPLES = 50  # sampled mode: random coordinates per tensor ...
DEFAULT_DIRECTIONS = 10  # ... and random directions per tensor

FLOAT32_NOTE = ("float32 was asked for; the check ran in float64 anyway. In float32 a finite difference is off "
                "by ~1e-3 relative (rounding eps/h plus truncation h^2), as much as a real bug, so a float32 "
                "check either fails correct code or is loosened until it hides bugs. A backward's formulas do not "
                "depend on the type, so float64 judges them; force_dtype (--force-dtype) checks in float32 with "
                "loose tolerances.")
FORCED_FLOAT32_WARNING = ("float32 forced: the tolerances are loose (finite differences within 1e-2 of the "
                          "gradient's scale, autograd within torch.testing's float32 defaults); a bug that moves a "
                          "gradient by less than about 1% is not seen. Check in float64 for a verdict.")


def check_backward(
    target: object,
    *,
    args: Sequence = (),
    kwargs: dict | None = None,
    shapes: Sequence[Sequence[int]] | None = None,
    inputs: Sequence[Tensor] | None = None,
    reference: object = None,
    kind: str | None = None,
    seeds: int | Sequence[int] = DEFAULT_SEEDS,
    seed: int = 0,
    mode: str = "auto",
    samples: int = DEFAULT_SAMPLES,
    directions: int = DEFAULT_DIRECTIONS,
    dtype: str | torch.dtype = "float64",
    force_dtype: bool = False,
    front_layer: bool = True,
    nudge_parameters: bool = True,
    upstream: str = "random",
    order: int = 1,
    forward_ad: bool = False,
) -> CheckResult:
    """Check `target`'s own gradients (input and every parameter) against torch.autograd and finite differences.

    target:      a layer class or instance, a torch.autograd.Function, a forward/backward pair, a function, or
                 `package.module:Name` of one (compare/checking/targets.py); `kind="engine"` for a function of
                 scratch autograd Values
    args/kwargs: constructor arguments of a layer class (constant trailing arguments of a function)
    shapes:      the shape of each tensor input (a layer: its input; default [4, in_features] where it has one)
    inputs:      the input tensors themselves, instead of random ones of `shapes`
    reference:   its torch counterpart: an nn.Module class (built with the same arguments) or instance, or a
                 function of the same inputs; default: the torch twin of a scratch layer; None: finite differences only
    seeds:       how many seeds (seed, seed + 1, ...), or the seeds themselves
    mode:        "full" (every coordinate), "sampled" (`samples` coordinates and `directions` directions per
                 tensor) or "auto" (full up to FULL_LIMIT coordinates in all)
    dtype:       "float64"; "float32" runs in float64 and says why, unless force_dtype (then loose tolerances)
    front_layer: feed the first input through a random linear layer, so its gradient is checked as in a network
    upstream:    "random" dout; "ones" only to show what an all-ones upstream gradient hides
    order:       2 also checks the backward's own backward, the vjp of the vjp (compare/checking/second_order.py)
    forward_ad:  also checks the forward mode, J t of each input (compare/checking/forward_mode.py)
    Both need a target whose derivatives are themselves differentiable: an engine function, a
    torch.autograd.Function (with a `jvp` for forward_ad) or a plain function of torch operations.
    """
    start = time.perf_counter()
    requested = _dtype_name(dtype)
    used = requested if force_dtype else "float64"
    if mode not in ("auto", "full", "sampled"):
        raise TargetError(f"mode must be auto, full or sampled, got {mode!r}")
    if upstream not in ("random", "ones"):
        raise TargetError(f"upstream must be random or ones, got {upstream!r}")
    if samples < 1 or directions < 0:
        raise TargetError(f"sampled mode needs samples >= 1 and directions >= 0, got {samples} and {directions}")
    settings = finite_diff.settings_for(getattr(torch, used))
    resolved = make_target(target, args, kwargs, reference, kind)
    if order not in (1, 2):
        raise TargetError(f"order must be 1 (the backward) or 2 (also the backward's backward), got {order!r}")
    if (order == 2 or forward_ad) and resolved.kind in ("layer", "loss", "pair"):
        asked = "order 2" if order == 2 else "forward mode"
        raise TargetError(f"{resolved.name} is a {resolved.kind}: its backward runs on plain tensors and records "
                          f"nothing, so it has no {asked} to check; {asked} checks an engine function (--engine), a "
                          "torch.autograd.Function or a plain function of torch operations")
    seed_list = list(range(seed, seed + seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list:
        raise TargetError("at least one seed is needed")
    notes = list(resolved.notes)
    if requested == "float32" and not force_dtype:
        notes.append(FLOAT32_NOTE)
    if used == "float32":
        notes.append(FORCED_FLOAT32_WARNING)
        warnings.warn(FORCED_FLOAT32_WARNING, stacklevel=2)
    if upstream == "ones":
        notes.append("upstream gradient all ones: errors that sum to zero over the outputs are not seen")

    plan = Plan(settings, mode, samples, directions, front_layer, nudge_parameters, upstream, order, forward_ad)
    result = CheckResult(resolved.name, resolved.kind, resolved.reference_name, requested, used, mode,
                         None, None, seed_list, settings.step, notes)
    with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
        for s in seed_list:
            comparisons, chosen = _check_seed(resolved, s, plan, shapes, inputs)
            result.comparisons += comparisons
            result.mode = chosen
    if result.mode == "sampled":
        result.samples, result.directions = samples, directions
    result.seconds = time.perf_counter() - start
    return result


def _dtype_name(dtype: str | torch.dtype) -> str:
    name = str(dtype).replace("torch.", "")
    if name not in ("float32", "float64"):
        raise TargetError(f"dtype must be float32 or float64, got {dtype!r}")
    return name


@dataclass(frozen=True)
class Plan:
    """How each seed is checked (check_backward's options, resolved)."""

    settings: finite_diff.Settings  # step, tolerances and kink threshold of the dtype used
    mode: str  # "auto", "full" or "sampled"
    samples: int
    directions: int
    front_layer: bool
    nudge_parameters: bool
    upstream: str
    order: int = 1  # 2: the backward's own backward too
    forward_ad: bool = False  # the forward mode too


def _check_seed(target: Target, seed: int, plan: Plan, shapes: Sequence[Sequence[int]] | None,
                inputs: Sequence[Tensor] | None) -> tuple[list[TensorComparison], str]:
    """Build the target for this seed and compare; returns the comparisons and the mode chosen."""
    torch.manual_seed(seed)  # the target's own initialisation draws from the global stream
    generator = torch.Generator().manual_seed(seed)  # everything the checker draws
    bound = target.bind(plan.settings.dtype, [tuple(s) for s in shapes] if shapes else None,
                        list(inputs) if inputs is not None else None, generator)
    try:
        comparisons, chosen = _compare(bound, seed, plan, generator, target.reference_name)
        return comparisons + _beyond_the_backward(target, bound, seed, plan, generator), chosen
    finally:
        bound.restore()


SECOND_ORDER = "second order: "  # the label of the comparisons of the backward's own backward


def _beyond_the_backward(target: Target, bound: Bound, seed: int, plan: Plan,
                         generator: torch.Generator) -> list[TensorComparison]:
    """The forward mode and the backward's backward, as asked (forward_ad, order=2)."""
    found: list[TensorComparison] = []
    if plan.forward_ad:
        try:
            found += forward_mode.comparisons(bound, bound.differentiable, seed, plan.settings, generator,
                                              target.reference_name)
        except NotDifferentiableError as error:
            raise TargetError(f"{target.name}: {error} (forward mode needs a tangent rule for every op: an engine op "
                              "has one, a torch.autograd.Function needs a `jvp(ctx, *tangents)` staticmethod, with "
                              "what it reads saved by ctx.save_for_forward)") from error
    if plan.order == 2:
        backward = second_order.derived(bound, bound.differentiable, generator)
        try:
            twice, _ = _compare(backward, seed, plan, generator, target.reference_name, prefix=SECOND_ORDER)
        except NotDifferentiableError as error:
            raise TargetError(f"{target.name}: {error} (order 2 needs a backward built from differentiable "
                              "operations: torch operations on what forward saved, without @once_differentiable "
                              "or .detach())") from error
        for c in twice:  # the double backward's messages, named as such
            c.message = c.message and SECOND_ORDER + c.message.replace(SECOND_ORDER, "").replace(
                "the backward gives", "the double backward gives")
        found += [c for c in twice if c.tensor != "output"]  # its output, the gradients, is checked above
    return found
    try:
        if plan.forward_ad:
            found += forward_mode.comparisons(bound, bound.differentiable, seed, plan.settings, generator,
                                              target.reference_name)
        if plan.order == 2:
            backward = second_order.derived(bound, bound.differentiable, generator)
            twice, _ = _compare(backward, seed, plan, generator, target.reference_name, prefix=SECOND_ORDER)
            for c in twice:  # the double backward's messages, named as such
                c.message = c.message and SECOND_ORDER + c.message.replace(SECOND_ORDER, "").replace(
                    "the backward gives", "the double backward gives")
            found += [c for c in twice if c.tensor != "output"]  # its output, the gradients, is checked above
    except NotDifferentiableError as error:
        hint = ("a torch.autograd.Function needs a `jvp(ctx, *tangents)` for forward mode, and for order 2 a "
                "backward built from torch operations (no @once_differentiable, no .detach())")
        raise TargetError(f"{target.name}: {error} ({hint})") from error
    return found


def _compare(bound: Bound, seed: int, plan: Plan, generator: torch.Generator, reference_name: str | None,
             prefix: str = "") -> tuple[list[TensorComparison], str]:
    """One bound target's gradients against its reference and finite differences; `prefix` labels the methods."""
    st = plan.settings
    dtype = st.dtype
    if plan.nudge_parameters:
        nudges.parameters(bound.params, generator)
    x0 = bound.inputs[0]
    front = nudges.front_matrix(x0, generator) if plan.front_layer and x0.dim() >= 1 and x0.shape[-1] > 0 else None
    first = x0 @ front if front is not None else x0
    rest = bound.inputs[1:]
    stream = torch.get_rng_state()  # every forward pass starts from here: the same dropout mask each time

    def run(first_input: Tensor) -> Tensor:
        torch.set_rng_state(stream)
        return bound.run([first_input, *rest]).detach()

    with torch.no_grad():
        out0 = run(first)
    dout = (torch.randn(out0.shape, generator=generator, dtype=torch.float64).to(dtype)
            if plan.upstream == "random" else torch.ones_like(out0))
    torch.set_rng_state(stream)
    out_own, d_inputs, d_params = bound.own([first, *rest], dout)
    own = dict(zip(bound.input_names, [g.detach() for g in d_inputs], strict=True))
    if front is not None and own[bound.input_names[0]].shape == first.shape:
        own[bound.input_names[0]] = own[bound.input_names[0]] @ front.T  # dL/dx0 = dL/dfirst M^T
    own.update({n: g.detach() for n, g in d_params.items()})
    tensors = dict(zip(bound.input_names, bound.inputs, strict=True)) | bound.params
    # The rounding of the backward itself: where a gradient is 0 by symmetry (a bias before a batch norm) and no
    # output moves, the difference quotient is exactly 0 while the backward's cancelling terms leave ~eps of the
    # gradients' size. 8 eps of the largest gradient entry of this check is allowed for it.
    floor = finite_diff.ROUNDING * torch.finfo(dtype).eps * max(
        (g.abs().max().item() for g in own.values() if g.numel() and g.is_floating_point()), default=0.0)
    comparisons = []
    if bound.reference is not None:
        comparisons += _against_reference(bound, seed, front, dout, out_own.detach(), own, stream, st.reference,
                                          f"{prefix}torch.autograd ({reference_name})")
    total = sum(t.numel() for t in tensors.values())
    chosen = plan.mode if plan.mode != "auto" else ("full" if total <= FULL_LIMIT else "sampled")
    with torch.no_grad():
        for i, (name, tensor) in enumerate(tensors.items()):
            if i == 0 and front is not None:
                moves = nudges.through_front(first, front, run)
            else:
                moves = nudges.in_place(tensor, lambda: run(first))
            comparisons += _against_finite_differences(name, seed, tensor, own.get(name), moves, out0, dout, st,
                                                       chosen, plan.samples, plan.directions, generator, prefix,
                                                       floor)
    return comparisons, chosen


def _against_finite_differences(name: str, seed: int, tensor: Tensor, analytic: Tensor | None,
                                nudges: tuple[finite_diff.Nudge, finite_diff.NudgeAlong], out0: Tensor, dout: Tensor,
                                st: finite_diff.Settings, mode: str, samples: int, directions: int,
                                generator: torch.Generator, prefix: str = "", floor: float = 0.0
                                ) -> list[TensorComparison]:
    """One tensor: its coordinates (all, or a sample), then in sampled mode its random directions."""
    if analytic is None or tuple(analytic.shape) != tuple(tensor.shape):
        got = "nothing" if analytic is None else f"shape {list(analytic.shape)}"
        return [TensorComparison(name, f"{prefix}finite differences", seed, list(tensor.shape), False, None, math.inf,
                                 math.inf, None, 0, tensor.numel(),
                                 message=f"{name}: the backward gave {got} for a tensor of shape {list(tensor.shape)}")]
    nudge, along = nudges
    if mode == "full":
        coords = torch.arange(tensor.numel())
    else:
        coords = finite_diff.sample_coordinates(tensor.numel(), samples, generator)
    slopes = finite_diff.coordinate_slopes(nudge, out0, dout, coords, st.step)
    slopes.noise += floor
    found = [_against_coordinates(name, seed, analytic, coords, slopes, st, prefix)]
    if mode == "sampled" and directions:
        vs = finite_diff.random_directions(tensor.numel(), directions, generator)
        slopes = finite_diff.directional_slopes(along, out0, dout, vs, st.step)
        slopes.noise += floor
        found.append(_against_directions(name, seed, analytic, vs, slopes, st, prefix))
    return found


def _against_reference(bound: Bound, seed: int, front: Tensor | None, dout: Tensor, out_own: Tensor,
                       own: dict[str, Tensor], stream: Tensor, tol: agreement.Tolerance,
                       against: str) -> list[TensorComparison]:
    leaves_in = [t.detach().clone().requires_grad_(True) for t in bound.inputs]
    first = leaves_in[0] @ front if front is not None else leaves_in[0]
    torch.set_rng_state(stream)
    with torch.enable_grad():
        out_ref, ref_params = bound.reference([first, *leaves_in[1:]])
        leaves = leaves_in + [ref_params[n] for n in bound.params]
        grads = torch.autograd.grad(out_ref, leaves, dout, allow_unused=True)
    names = bound.input_names + list(bound.params)
    expected = {"output": out_ref.detach()}
    expected.update({n: torch.zeros_like(t) if g is None else g for n, t, g in zip(names, leaves, grads, strict=True)})
    actual = {"output": out_own, **own}
    return [compare_tensors(n, against, seed, actual.get(n), expected[n], tol) for n in expected]


def _against_coordinates(name: str, seed: int, analytic: Tensor, coords: Tensor, slopes: finite_diff.Slopes,
                         st: finite_diff.Settings, prefix: str = "") -> TensorComparison:
    a_all = analytic.detach().double().reshape(-1)
    scale = max(a_all.abs().max().item(), slopes.central.abs().max().item(), agreement.TINY)
    kinks = slopes.kinks(scale, st.kink_rtol)
    keep = ~kinks
    kept = coords[keep]
    a, e = a_all[kept], slopes.central[keep]
    return scored(name, f"{prefix}finite differences", seed, list(analytic.shape), a, e, slopes.noise[keep], scale,
                   st.coordinates, kept, analytic.numel(), int(kinks.sum()),
                   lambda k: [int(i) for i in torch.unravel_index(kept[k], analytic.shape)])


def _against_directions(name: str, seed: int, analytic: Tensor, directions: Tensor, slopes: finite_diff.Slopes,
                        st: finite_diff.Settings, prefix: str = "") -> TensorComparison:
    g = analytic.detach().double().reshape(-1)
    projected = directions @ g  # <g, v> for each direction
    scale = max(g.norm().item(), slopes.central.abs().max().item(), agreement.TINY)  # |<g, v>| <= |g| |v|, |v| = 1
    kinks = slopes.kinks(scale, st.kink_rtol)
    keep = ~kinks
    numbers = torch.arange(len(directions))[keep]
    return scored(name, f"{prefix}directional derivative", seed, list(analytic.shape), projected[keep],
                   slopes.central[keep], slopes.noise[keep], scale, st.directions, numbers, len(directions),
                   int(kinks.sum()),
                   lambda k: [int(numbers[k])])
