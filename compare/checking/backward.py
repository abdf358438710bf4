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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from compare.base import agreement
from compare.checking import finite_diff
from compare.checking.results import CheckResult, TensorComparison, compare_tensors
from compare.checking.targets import Bound, Target, TargetError, make_target

FULL_LIMIT = 20_000  # mode "auto": every coordinate when the tensors together have at most this many
DEFAULT_SEEDS = 3
DEFAULT_SAMPLES = 50  # sampled mode: random coordinates per tensor ...
DEFAULT_DIRECTIONS = 10  # ... and random directions per tensor
PARAMETER_NUDGE = 0.5  # each parameter moved by N(0, (0.5 * its rms)^2) before the check (rms 0: N(0, 0.5^2))

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

    plan = Plan(settings, mode, samples, directions, front_layer, nudge_parameters, upstream)
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


def _check_seed(target: Target, seed: int, plan: Plan, shapes: Sequence[Sequence[int]] | None,
                inputs: Sequence[Tensor] | None) -> tuple[list[TensorComparison], str]:
    """Build the target for this seed and compare; returns the comparisons and the mode chosen."""
    torch.manual_seed(seed)  # the target's own initialisation draws from the global stream
    generator = torch.Generator().manual_seed(seed)  # everything the checker draws
    bound = target.bind(plan.settings.dtype, [tuple(s) for s in shapes] if shapes else None,
                        list(inputs) if inputs is not None else None, generator)
    try:
        return _compare(bound, seed, plan, generator, target.reference_name)
    finally:
        bound.restore()


def _compare(bound: Bound, seed: int, plan: Plan, generator: torch.Generator,
             reference_name: str | None) -> tuple[list[TensorComparison], str]:
    st = plan.settings
    dtype = st.dtype
    if plan.nudge_parameters:
        _nudge(bound.params, generator)
    x0 = bound.inputs[0]
    front = _front_matrix(x0, generator) if plan.front_layer and x0.dim() >= 1 and x0.shape[-1] > 0 else None
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
    comparisons = []
    if bound.reference is not None:
        comparisons += _against_reference(bound, seed, front, dout, out_own.detach(), own, stream, st.reference,
                                          f"torch.autograd ({reference_name})")
    total = sum(t.numel() for t in tensors.values())
    chosen = plan.mode if plan.mode != "auto" else ("full" if total <= FULL_LIMIT else "sampled")
    with torch.no_grad():
        for i, (name, tensor) in enumerate(tensors.items()):
            if i == 0 and front is not None:
                nudges = _front_nudges(first, front, run)
            else:
                nudges = _in_place_nudges(tensor, lambda: run(first))
            comparisons += _against_finite_differences(name, seed, tensor, own.get(name), nudges, out0, dout, st,
                                                       chosen, plan.samples, plan.directions, generator)
    return comparisons, chosen


def _against_finite_differences(name: str, seed: int, tensor: Tensor, analytic: Tensor | None,
                                nudges: tuple[finite_diff.Nudge, finite_diff.NudgeAlong], out0: Tensor, dout: Tensor,
                                st: finite_diff.Settings, mode: str, samples: int, directions: int,
                                generator: torch.Generator) -> list[TensorComparison]:
    """One tensor: its coordinates (all, or a sample), then in sampled mode its random directions."""
    if analytic is None or tuple(analytic.shape) != tuple(tensor.shape):
        got = "nothing" if analytic is None else f"shape {list(analytic.shape)}"
        return [TensorComparison(name, "finite differences", seed, list(tensor.shape), False, None, math.inf, math.inf,
                                 None, 0, tensor.numel(),
                                 message=f"{name}: the backward gave {got} for a tensor of shape {list(tensor.shape)}")]
    nudge, along = nudges
    if mode == "full":
        coords = torch.arange(tensor.numel())
    else:
        coords = finite_diff.sample_coordinates(tensor.numel(), samples, generator)
    slopes = finite_diff.coordinate_slopes(nudge, out0, dout, coords, st.step)
    found = [_against_coordinates(name, seed, analytic, coords, slopes, st)]
    if mode == "sampled" and directions:
        vs = finite_diff.random_directions(tensor.numel(), directions, generator)
        slopes = finite_diff.directional_slopes(along, out0, dout, vs, st.step)
        found.append(_against_directions(name, seed, analytic, vs, slopes, st))
    return found


def _nudge(params: dict[str, Tensor], generator: torch.Generator) -> None:
    with torch.no_grad():
        for p in params.values():
            if p.is_floating_point() and p.numel():
                rms = p.double().square().mean().sqrt().item()
                noise = torch.randn(p.shape, generator=generator).double() * PARAMETER_NUDGE
                p.add_((noise * (rms if rms > 0 else 1.0)).to(p.dtype))


def _front_matrix(x0: Tensor, generator: torch.Generator) -> Tensor:
    """A random [F, F] matrix, entries N(0, 1/F): the layer's input keeps about the size of x0."""
    features = x0.shape[-1]
    m = torch.randn(features, features, generator=generator, dtype=torch.float64) / math.sqrt(features)
    return m.to(x0.dtype)


def _in_place_nudges(tensor: Tensor, run_now: Callable[[], Tensor]) -> tuple[finite_diff.Nudge,
                                                                              finite_diff.NudgeAlong]:
    """Nudges of a tensor the target reads directly (a parameter, or an input with nothing in front)."""
    # A NumPy view of the same memory: reading and writing one element costs ~0.1 us instead of ~3 us.
    flat = tensor.detach().view(-1).numpy() if tensor.device.type == "cpu" else tensor.detach().view(-1)

    def nudge(i: int, step: float) -> tuple[Tensor, float]:
        original = float(flat[i])
        flat[i] = original + step
        taken = float(flat[i]) - original  # the step after rounding to the tensor's dtype
        try:
            return run_now(), taken
        finally:
            flat[i] = original

    def along(v: Tensor, step: float) -> Tensor:
        saved = tensor.clone()
        tensor.add_(v.view(tensor.shape).to(tensor.dtype), alpha=step)
        try:
            return run_now()
        finally:
            tensor.copy_(saved)

    return nudge, along


def _front_nudges(first: Tensor, front: Tensor, run: Callable[[Tensor], Tensor]) -> tuple[finite_diff.Nudge,
                                                                                           finite_diff.NudgeAlong]:
    """Nudges of x0, the input of the layer in front: x0[r, j] += step moves row r of x0 M by step * M[j]."""
    features = front.shape[0]
    rows = first.view(-1, features)

    def nudge(i: int, step: float) -> tuple[Tensor, float]:
        r, j = divmod(i, features)
        saved = rows[r].clone()
        rows[r] += step * front[j]
        try:
            return run(first), step
        finally:
            rows[r] = saved

    last: list[Tensor] = []  # [v, v M] of the direction in hand: each is taken twice, +h and -h

    def along(v: Tensor, step: float) -> Tensor:
        if not last or last[0] is not v:  # holding v keeps its identity from being reused
            last[:] = [v, v.view(first.shape).to(first.dtype) @ front]
        return run(first + step * last[1])

    return nudge, along


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
                         st: finite_diff.Settings) -> TensorComparison:
    a_all = analytic.detach().double().reshape(-1)
    scale = max(a_all.abs().max().item(), slopes.central.abs().max().item(), agreement.TINY)
    kinks = slopes.kinks(scale, st.kink_rtol)
    keep = ~kinks
    kept = coords[keep]
    a, e = a_all[kept], slopes.central[keep]
    return _scored(name, "finite differences", seed, list(analytic.shape), a, e, slopes.noise[keep], scale,
                   st.coordinates, kept, analytic.numel(), int(kinks.sum()),
                   lambda k: [int(i) for i in torch.unravel_index(kept[k], analytic.shape)])


def _against_directions(name: str, seed: int, analytic: Tensor, directions: Tensor, slopes: finite_diff.Slopes,
                        st: finite_diff.Settings) -> TensorComparison:
    g = analytic.detach().double().reshape(-1)
    projected = directions @ g  # <g, v> for each direction
    scale = max(g.norm().item(), slopes.central.abs().max().item(), agreement.TINY)  # |<g, v>| <= |g| |v|, |v| = 1
    kinks = slopes.kinks(scale, st.kink_rtol)
    keep = ~kinks
    numbers = torch.arange(len(directions))[keep]
    return _scored(name, "directional derivative", seed, list(analytic.shape), projected[keep],
                   slopes.central[keep], slopes.noise[keep], scale, st.directions, numbers, len(directions),
                   int(kinks.sum()),
                   lambda k: [int(numbers[k])])


def _scored(name: str, against: str, seed: int, shape: list[int], actual: Tensor, numeric: Tensor, noise: Tensor,
            scale: float, tol: agreement.Tolerance, kept: Tensor, total: int, kinks: int,
            index_of: Callable[[int], list[int]]) -> TensorComparison:
    """actual (the target's backward) against numeric differences, both at the kept coordinates/directions;
    allowed: rtol * scale, plus the rounding error of each difference quotient (finite_diff.Slopes.noise)."""
    scale_text = "|g| |v|" if against.startswith("directional") else "max|g|"
    rule = f"{tol.name}: |a-e| <= {tol.rtol:g} * {scale_text} + rounding"
    if len(kept) == 0:
        return TensorComparison(name, against, seed, shape, True, None, 0.0, 0.0, None, 0, total, kinks, rule)
    diff = (actual - numeric).abs()
    excess = torch.nan_to_num(diff - (tol.rtol * scale + noise), nan=math.inf)
    finite = bool(torch.isfinite(actual).all() and torch.isfinite(numeric).all())
    passed = finite and bool((excess <= 0).all())
    k = int(excess.argmax()) if not passed else int(torch.nan_to_num(diff, nan=math.inf).argmax())
    max_abs = diff.max().item()
    index = index_of(k) if max_abs > 0 else None
    message = ""
    if not passed:
        index = index_of(k)
        where = f"direction {index[0]}" if against.startswith("directional") else f"index {tuple(index)}"
        message = (f"d{name} vs {against}: at {where} the backward gives {actual[k].item()!r}, "
                   f"{against} {numeric[k].item()!r} (|diff| {diff[k].item():.3e}, {diff[k].item() / scale:.3e} of "
                   f"{scale_text}; {rule})")
    return TensorComparison(name, against, seed, shape, passed, None, max_abs, max_abs / scale, index,
                            len(kept), total, kinks, rule, message)
