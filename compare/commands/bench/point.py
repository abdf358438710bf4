"""One grid point of `python -m compare bench` measured: its step times, epoch times, memory and agreement.

scratch and torch start from the same seed (bit-identical parameters) and train on the same
batches in the same order, so their losses must agree on every benchmarked step:
`agreement.passed` says they did (float64: every step within LOCKSTEP_LOSS_FLOAT64; float32:
the first step within FIRST_STEP_LOSS_FLOAT32, after which rounding differences grow).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from compare.base import agreement
from compare.commands.bench.contenders import (
    Batches,
    TypicalPipeline,
    make_contenders,
    scratch_contender,
    step_arithmetic,
)
from compare.commands.bench.memory import MemoryUnavailableError, peak_memory
from compare.commands.bench.timing import (
    block_steps,
    copy_probe,
    interleaved_epochs,
    interleaved_rounds,
    matmul_probe,
    median_and_spread,
    warm_up,
)
from compare.training.config import Config


def measure_point(config: Config, options: dict, batches: Batches, typical: TypicalPipeline | None,
                  typical_reason: str) -> dict:
    """Warm up, time interleaved blocks, time an epoch, measure memory: one grid point's result."""
    device = torch.device(config.device)
    arithmetic = step_arithmetic(config, input_size=batches.x.shape[1])
    contenders = make_contenders(config, options["compile"], batches, typical, typical_reason,
                                 cuda_graph=options.get("cuda_graph", False))
    odd_batch = batches.odd_batch()
    per_step = {c.name: warm_up(c, device, odd_batch) for c in contenders if c.unavailable is None}
    running = [c for c in contenders if c.unavailable is None]
    probes = {"matmul": matmul_probe(config.torch_dtype, device),
              "copy": copy_probe(config.torch_dtype, device, arithmetic.bytes)}
    for probe, _ in probes.values():
        probe()
    steps = block_steps(running, per_step, options["block_seconds"])
    seconds = interleaved_rounds(running, steps, {name: probe for name, (probe, _) in probes.items()},
                                 options["repeats"], device)
    epoch_s = interleaved_epochs(running, steps, device)

    flops, traffic = arithmetic.flops, arithmetic.bytes
    probe_s, _ = median_and_spread(seconds["matmul"])
    peak_gflops = probes["matmul"][1] / probe_s / 1e9
    limits = Limits(gflops=probes["matmul"][1] / min(seconds["matmul"]) / 1e9,
                    gbytes_per_s=probes["copy"][1] / min(seconds["copy"]) / 1e9)
    result = dict(model=arithmetic.model, spec=config.model.to_dict(), batch_size=config.batch_size,
                  dtype=config.dtype, device=config.device, threads=torch.get_num_threads(),
                  steps_per_block=steps["torch"], flops_per_step=flops, bytes_per_step=traffic,
                  elementwise_share=arithmetic.elementwise_share, matmul_gflops=peak_gflops,
                  matmul_best_gflops=limits.gflops, copy_gbytes_per_s=limits.gbytes_per_s)
    details = {}
    for c in contenders:
        if c.unavailable is not None:
            details[c.name] = dict(status=c.unavailable)
            result.update({f"{c.name}_step_s": None, f"{c.name}_peak_fraction": None})
            continue
        step_s, spread = median_and_spread(seconds[c.name])
        gflops, gbytes = flops / step_s / 1e9, traffic / step_s / 1e9
        why = limits.implausible(gflops, gbytes)
        details[c.name] = dict(status="ok" if why is None else f"implausible: {why}", step_s=step_s,
                               step_spread=spread, step_s_rounds=seconds[c.name], first_step_s=c.first_step_s,
                               epoch_s=epoch_s[c.name], epoch_images=len(batches.x), gflops=gflops,
                               gbytes_per_s=gbytes, peak_fraction=gflops / peak_gflops, plausible=why is None,
                               **memory_figures(fresh_copy(c, config, batches), device))
        plausible = why is None
        result.update({f"{c.name}_step_s": step_s if plausible else None,
                       f"{c.name}_peak_fraction": details[c.name]["peak_fraction"] if plausible else None})
    both = [details[name].get("plausible", False) for name in ("scratch", "torch")]
    ratios = [s / t for s, t in zip(seconds["scratch"], seconds["torch"], strict=True)]
    result["ratio"], result["ratio_spread"] = median_and_spread(ratios) if all(both) else (None, None)
    result["contenders"] = details
    result["agreement"] = loss_agreement(contenders[0].losses, contenders[1].losses, config.dtype)
    graphed = next((c for c in contenders if c.name == "graphed"), None)
    if graphed is not None:
        result["agreement"].update(graphed_agreement(contenders[0].losses, graphed))
        if details["graphed"].get("plausible") and all(both):
            result["graphed_ratio"], _ = median_and_spread([g / t for g, t in zip(seconds["graphed"], seconds["torch"],
                                                                                  strict=True)])
    return result


def graphed_agreement(scratch_losses: list[Tensor], graphed) -> dict:
    """The graphed step replays the very kernels of scratch's step on the same batches: the same losses, bit
    for bit, or the capture changed something (a buffer that moved, a value frozen in the graph)."""
    if graphed.unavailable is not None:
        return dict(passed=False, graphed_identical=False, graphed_check=f"graphed: {graphed.unavailable}")
    same = len(scratch_losses) == len(graphed.losses) and torch.equal(
        torch.stack([v.detach() for v in scratch_losses]), torch.stack([v.detach() for v in graphed.losses]))
    return dict(graphed_identical=same, graphed_check="graphed and scratch losses equal bit for bit on every step",
                **({} if same else dict(passed=False)))


@dataclass(frozen=True)
class Limits:
    """What the machine showed in this run: the best round of the matrix-product probe and of the copy probe."""

    gflops: float
    gbytes_per_s: float

    def implausible(self, gflops: float, gbytes_per_s: float) -> str | None:
        """Why a contender's figures cannot be right (above a limit), or None."""
        reasons = [f"{mine:.1f} {unit} above the {limit:.1f} {unit} {probe} of this run"
                   for mine, limit, unit, probe in ((gflops, self.gflops, "GFLOP/s", "matrix-product peak"),
                                                    (gbytes_per_s, self.gbytes_per_s, "GB/s", "copy bandwidth"))
                   if not mine <= limit]
        return "; ".join(reasons) or None


def fresh_copy(contender, config: Config, batches: Batches):
    """What the memory measure runs: scratch freshly built (so the activations it caches between steps
    count), the others as they are (torch holds only its parameters once zero_grad() freed the gradients)."""
    return scratch_contender(config, batches) if contender.name == "scratch" else contender


def memory_figures(contender, device: torch.device) -> dict:
    """{"peak_memory_bytes": n}, or None and the reason ("memory_status") where it cannot be measured."""
    try:
        return dict(peak_memory_bytes=peak_memory(contender, device))
    except MemoryUnavailableError as why:
        return dict(peak_memory_bytes=None, memory_status=f"unavailable: {why}")


def loss_agreement(scratch_losses: list[Tensor], torch_losses: list[Tensor], dtype: str) -> dict:
    """Did scratch and torch, fed the same batches from the same start, report the same losses?"""
    if not scratch_losses or len(scratch_losses) != len(torch_losses):
        return dict(passed=False, steps=len(scratch_losses), check="scratch and torch ran different step counts")
    s = torch.stack([v.detach() for v in scratch_losses]).double().cpu()
    t = torch.stack([v.detach() for v in torch_losses]).double().cpu()
    rel = (s - t).abs() / t.abs().clamp_min(agreement.TINY)
    finite = bool(torch.isfinite(s).all() and torch.isfinite(t).all())
    if dtype == "float64":
        limit, judged = agreement.LOCKSTEP_LOSS_FLOAT64, rel.max().item()
        check = f"every step's loss within {limit:g} relative"
    else:
        limit, judged = agreement.FIRST_STEP_LOSS_FLOAT32, rel[0].item()
        check = f"first step's loss within {limit:g} relative (float32 rounding grows afterwards)"
    return dict(passed=finite and judged <= limit, check=check, steps=len(s), first_step_rel_diff=rel[0].item(),
                max_step_rel_diff=rel.max().item(), first_loss_scratch=s[0].item(), first_loss_torch=t[0].item())
