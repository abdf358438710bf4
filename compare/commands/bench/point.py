"""One grid point of `python -m compare bench` measured: its step times, epoch times, memory and agreement.

scratch and torch start from the same seed (bit-identical parameters) and train on the same
batches in the same order, so their losses must agree on every benchmarked step:
`agreement.passed` says they did (float64: every step within LOCKSTEP_LOSS_FLOAT64; float32:
the first step within FIRST_STEP_LOSS_FLOAT32, after which rounding differences grow).
"""

from __future__ import annotations

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
    contenders = make_contenders(config, options["compile"], batches, typical, typical_reason)
    odd_batch = batches.odd_batch()
    per_step = {c.name: warm_up(c, device, odd_batch) for c in contenders if c.unavailable is None}
    running = [c for c in contenders if c.unavailable is None]
    probe, probe_flops = matmul_probe(config.torch_dtype, device)
    probe()
    steps = block_steps(running, per_step, options["block_seconds"])
    seconds = interleaved_rounds(running, steps, probe, options["repeats"], device)
    epoch_s = interleaved_epochs(running, steps, device)

    flops = arithmetic.flops
    probe_s, _ = median_and_spread(seconds["matmul"])
    peak_gflops = probe_flops / probe_s / 1e9
    ratios = [s / t for s, t in zip(seconds["scratch"], seconds["torch"], strict=True)]
    ratio, ratio_spread = median_and_spread(ratios)
    result = dict(model=arithmetic.model, spec=config.model.to_dict(), batch_size=config.batch_size,
                  dtype=config.dtype, device=config.device, threads=torch.get_num_threads(),
                  steps_per_block=steps["torch"], flops_per_step=flops,
                  elementwise_share=arithmetic.elementwise_share, matmul_gflops=peak_gflops, ratio=ratio,
                  ratio_spread=ratio_spread)
    details = {}
    for c in contenders:
        if c.unavailable is not None:
            details[c.name] = dict(status=c.unavailable)
            result.update({f"{c.name}_step_s": None, f"{c.name}_peak_fraction": None})
            continue
        step_s, spread = median_and_spread(seconds[c.name])
        details[c.name] = dict(status="ok", step_s=step_s, step_spread=spread, step_s_rounds=seconds[c.name],
                               first_step_s=c.first_step_s, epoch_s=epoch_s[c.name], epoch_images=len(batches.x),
                               gflops=flops / step_s / 1e9, peak_fraction=flops / step_s / 1e9 / peak_gflops,
                               **memory_figures(scratch_contender(config, batches) if c.name == "scratch" else c,
                                                device))
        result.update({f"{c.name}_step_s": step_s, f"{c.name}_peak_fraction": details[c.name]["peak_fraction"]})
    result["contenders"] = details
    result["agreement"] = loss_agreement(contenders[0].losses, contenders[1].losses, config.dtype)
    return result


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
