"""How fast is the hand-written CNN next to PyTorch's, and what did each arrangement of the convolution buy?

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/time_cnn.py                  # LeNet-5, batches 32, 128, 512
    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/time_cnn.py --batch-sizes 32 --batch-norm --pool avg
    PYTHONPATH=. python scripts/time_cnn.py --device cuda                      # on a GPU (scripts/gpu-checks.sh)

Three tables:
- LeNet's two convolutions alone, forward + backward: scratch.Conv2d vs nn.Conv2d. The first layer
  computes no input gradient on either side (its input is the images), the second does.
- Each choice scratch/conv.py makes for this device, against its alternative, on the same layers: the
  alternative's time over the chosen one's (above 1: the choice is faster). A choice is a module
  constant (CHUNK_BYTES, LOWERING, INPUT_GRADIENT, TRANSPOSED_DWEIGHT), set to the alternative
  for the alternative's blocks and back after them; both are the same sums.
- The whole network, one training step (forward, cross-entropy, backward, plain SGD update): scratch.CNN
  vs torch_impl.CNN (autograd), from the same initial parameters and on the same random batch.

Method (as compare/bench.py): warm-up, then blocks of calls of every contender take turns, round after
round, so a burst of load from another program hits all alike; medians over rounds, and each ratio as
the median of every round's paired ratio. On the CPU, times are the process's CPU time
(time.process_time: user + system, page faults included) rather than wall-clock time: with one thread,
that leaves out the time spent waiting while other programs hold the core, which on a shared machine
is most of the noise. On CUDA, wall-clock time around torch.cuda.synchronize().
tests/conv_reference.py times the loop reference against scratch.Conv2d.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

import scratch
import scratch.conv as conv
import torch_impl

ROUNDS = 9
LAYERS = (("conv 1->6, 28x28, pad 2 (no dx)", (1, 6, 28, 2, False)),
          ("conv 6->16, 14x14 (with dx)", (6, 16, 14, 0, True)))


def clock(device: str) -> Callable[[], float]:
    if device == "cuda":
        def wall() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return wall
    return time.process_time


def interleaved(contenders: dict[str, Callable[[], object]], device: str, block_seconds: float = 0.1,
                settings: dict[str, Callable[[], Callable[[], None]]] | None = None) -> dict[str, float]:
    """Median seconds per call of each contender, and the paired ratios of each over the first ("a/b").

    settings[name], if given, is called before that contender's block and returns the function that
    undoes it after the block (how an alternative arrangement is switched on and off)."""
    now, settings = clock(device), settings or {}

    def block(name: str, calls: int) -> float:
        undo = settings[name]() if name in settings else (lambda: None)
        try:
            start = now()
            for _ in range(calls):
                contenders[name]()
            return (now() - start) / calls
        finally:
            undo()

    calls = {}
    for name in contenders:
        block(name, 1)  # warm-up (first-call allocations, lazy initialisation)
        calls[name] = max(1, round(block_seconds / max(block(name, 1), 1e-6)))
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name in contenders:
            times[name].append(block(name, calls[name]))
    first = next(iter(contenders))
    result = {name: statistics.median(t) for name, t in times.items()}
    for name in contenders:
        if name != first:
            result[f"{name}/{first}"] = statistics.median(a / b for a, b in zip(times[name], times[first], strict=True))
    return result


def conv_pair(batch: int, c_in: int, c_out: int, size: int, padding: int, input_grad: bool, device: str):
    """scratch.Conv2d and nn.Conv2d with the same weights; x batch-last, as a layer before it leaves it."""
    torch.manual_seed(0)
    ours = scratch.Conv2d(c_in, c_out, 5, padding=padding).to(device=device)
    theirs = nn.Conv2d(c_in, c_out, 5, padding=padding).to(device)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(c_in, size, size, batch, device=device).permute(3, 0, 1, 2)  # B,C,H,W, batch innermost
    if c_in == 1:
        x = x.contiguous()  # the images: as the data loader gives them
    x_torch = x.contiguous().requires_grad_(input_grad)
    dout = torch.randn_like(ours.forward(x))

    def torch_step() -> None:
        theirs.zero_grad()
        theirs(x_torch).backward(dout)

    def scratch_step() -> None:
        ours.forward(x)
        ours.backward(dout, input_grad=input_grad)

    return ours, scratch_step, torch_step


def setting(table: dict, key: str, value) -> Callable[[], Callable[[], None]]:
    """Switch conv's table[key] to value; returns the undo."""
    def switch() -> Callable[[], None]:
        before = table.get(key)
        table[key] = value
        return lambda: table.__setitem__(key, before)
    return switch


def together(*switches: Callable[[], Callable[[], None]]) -> Callable[[], Callable[[], None]]:
    def switch() -> Callable[[], None]:
        undos = [s() for s in switches]
        return lambda: [undo() for undo in reversed(undos)]
    return switch


def transposed_from(threshold: int) -> Callable[[], Callable[[], None]]:
    def switch() -> Callable[[], None]:
        before = conv.TRANSPOSED_DWEIGHT
        conv.TRANSPOSED_DWEIGHT = threshold
        return lambda: setattr(conv, "TRANSPOSED_DWEIGHT", before)
    return switch


def alternatives(layer: scratch.Conv2d, input_grad: bool, device: str) -> dict[str, Callable]:
    """The alternative to each choice the layer makes on this device: label -> the switch to it."""
    d = torch.device(device).type
    strips = layer.uses_strips(torch.device(device))
    options = {"whole windows (im2col) instead of strips" if strips else "strips instead of whole windows":
               setting(conv.LOWERING, d, "windows" if strips else "strips")}
    if conv.CHUNK_BYTES.get(d) is not None:
        options["all rows in one product instead of chunks"] = setting(conv.CHUNK_BYTES, d, None)
    else:
        options["1 MB chunks of rows instead of all rows at once"] = setting(conv.CHUNK_BYTES, d, 2**20)
    if input_grad:  # dx of whole windows the other way (with strips: whole windows and that way)
        other = "col2im" if conv.INPUT_GRADIENT.get(d, "col2im") == "rotated" else "rotated"
        label = f"dx by {'col2im' if other == 'col2im' else 'the rotated kernel'}"
        windows = setting(conv.LOWERING, d, "windows")
        options[f"whole windows, {label}" if strips else label] = together(windows, setting(conv.INPUT_GRADIENT,
                                                                                             d, other))
    transposed = layer.out_channels >= conv.TRANSPOSED_DWEIGHT
    options["dW as dout cols^T" if transposed else "dW as (cols dout^T)^T"] = transposed_from(
        10**9 if transposed else 1)
    return options


def cnn_contenders(batch: int, device: str, **spec):
    torch.manual_seed(0)
    ours = scratch.CNN(**spec).to(device=device)
    torch.manual_seed(0)
    theirs = torch_impl.CNN(**spec).to(device)
    loss_ours, loss_theirs = scratch.CrossEntropyLoss(), nn.CrossEntropyLoss()
    opt_ours = scratch.SGD(ours.parameters(), ours.gradients(), lr=0.01)
    opt_theirs = torch_impl.SGD(theirs, lr=0.01)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 28, 28, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)

    def torch_step() -> None:
        opt_theirs.zero_grad()
        loss_theirs(theirs(x), y).backward()
        opt_theirs.step()

    def scratch_step() -> None:
        loss_ours.forward(ours.forward(x), y)
        ours.backward(loss_ours.backward(), input_grad=False)
        opt_ours.step()

    return {"torch": torch_step, "scratch": scratch_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128, 512], help="default: 32 128 512")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="default: cpu")
    parser.add_argument("--batch-norm", action="store_true", help="BatchNorm2d in each conv stage (default: off)")
    parser.add_argument("--pool", choices=["max", "avg"], default="max", help="default: max")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available here")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.device}, {args.threads} thread(s), float32; median ms per call, "
          "ratios of paired rounds")
    print("\n| layer | batch | nn.Conv2d | scratch Conv2d | ratio |\n|---|---|---|---|---|")
    choices = []
    for batch in args.batch_sizes:
        for label, shape in LAYERS:
            layer, scratch_step, torch_step = conv_pair(batch, *shape, device=args.device)
            r = interleaved({"scratch": scratch_step, "torch": torch_step}, args.device)
            print(f"| {label} | {batch} | {r['torch'] * 1e3:.3f} | {r['scratch'] * 1e3:.3f} | "
                  f"{1 / r['torch/scratch']:.2f} |")
            switches = alternatives(layer, shape[4], args.device)
            r = interleaved({"chosen": scratch_step, **{name: scratch_step for name in switches}}, args.device,
                            settings=switches)
            choices += [(label, batch, name, r["chosen"], r[name], r[f"{name}/chosen"]) for name in switches]
    print("\n| layer | batch | alternative | chosen ms | alternative ms | alternative/chosen |\n"
          "|---|---|---|---|---|---|")
    for label, batch, name, chosen, other, ratio in choices:
        print(f"| {label} | {batch} | {name} | {chosen * 1e3:.3f} | {other * 1e3:.3f} | {ratio:.2f} |")
    spec = dict(batch_norm=args.batch_norm, pool=args.pool)
    print(f"\n| CNN {spec}: training step | batch | torch_impl | scratch | ratio |\n|---|---|---|---|---|")
    for batch in args.batch_sizes:
        r = interleaved(cnn_contenders(batch, args.device, **spec), args.device)
        print(f"| | {batch} | {r['torch'] * 1e3:.3f} | {r['scratch'] * 1e3:.3f} | {r['scratch/torch']:.2f} |")


if __name__ == "__main__":
    main()
