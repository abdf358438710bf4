"""`python -m compare check`: check anyone's hand-written backward, or run the mutant suite that proves the checker.

    python -m compare check scratch.linear:Linear --args 784 512 --shape 32,784 --sampled
    python -m compare check scratch.batchnorm:BatchNorm1d --args 64 --shape 32,64 --report out/bn.json
    python -m compare check mypackage.layers:SiLUFunction --shape 8,16 --reference torch.nn:SiLU
    python -m compare check scratch.optim:Adam --kwargs lr=0.01 weight_decay=0.1
    python -m compare check tests.user_second_order:SiLU --shape 4,8 --reference torch.nn.functional:silu --order 2
    python -m compare check mypackage.ops:norm --engine --shape 4,5 --shape 5 --order 2 --forward-ad
    python -m compare check --mutants                   # every mutant caught? no false positive in 200 seeds?

TARGET is `package.module:Name`: a scratch-style layer (forward/backward), a loss, a torch.autograd.Function,
a class with static forward/backward, a plain function, or an optimizer (compare/checking/targets.py).
Per tensor (the input and every parameter) its own gradient is compared with torch.autograd on its
reference and with central finite differences in float64 (compare/checking/backward.py); the table
shows exact / close / max abs diff / max rel error / worst index. `--order 2` also checks the backward's own
backward (the vjp of the vjp, as torch's gradgradcheck: compare/checking/second_order.py) and `--forward-ad` the
forward mode (J t of each input: compare/checking/forward_mode.py), for a target whose derivatives are themselves
differentiable. Exit status 0 when every tensor passes, 1 when one does not, 2 when the target cannot be found
or run as asked.
"""

from __future__ import annotations

import argparse
import json

from compare.base.errors import UsageError
from compare.checking.backward import DEFAULT_DIRECTIONS, DEFAULT_SAMPLES, DEFAULT_SEEDS, check_backward
from compare.checking.optimizers import check_optimizer
from compare.checking.report import summary, table
from compare.checking.results import CheckResult
from compare.checking.suite import MUTANT_SEEDS, SWEEP_SEEDS, false_positive_sweep, run_mutants
from compare.checking.targets import TargetError, is_optimizer, resolve
from compare.options.command import Command
from compare.options.groups import DTYPE, REPORT, SEED
from compare.training.config import Config

CONFIG_KEYS = ("target", "mutants", "args", "kwargs", "shape", "reference", "seeds", "mode", "samples",
               "directions", "force_dtype", "front_layer", "engine", "order", "forward_ad")
NEEDS_DATA = False


def literal(text: str) -> object:
    """A command-line value: JSON (784, 0.5, true, null, [16, 16], "relu"), else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def keyword(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--kwargs expects KEY=VALUE pairs such as p=0.2 or bias=false, got {text!r}")
    return key, literal(value)


def shape(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shape expects sizes such as 32,784, got {text!r}") from None
    if not sizes or any(s < 0 for s in sizes):
        raise argparse.ArgumentTypeError(f"--shape expects non-negative sizes such as 32,784, got {text!r}")
    return sizes


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", nargs="?", default=None, metavar="TARGET",
                   help="package.module:Name of a layer, loss, torch.autograd.Function, function or optimizer "
                        "(required unless --mutants)")
    p.add_argument("--mutants", action="store_true",
                   help="run the suite of deliberately wrong backward passes: each must be caught, and the correct "
                        "layers must pass over --seeds seeds (default: off)")
    p.add_argument("--args", nargs="*", type=literal, default=[], metavar="VALUE",
                   help="constructor arguments, each JSON or a word, e.g. --args 784 512 (default: none)")
    p.add_argument("--kwargs", nargs="*", type=keyword, default=[], metavar="KEY=VALUE",
                   help="keyword constructor arguments, e.g. --kwargs p=0.2 bias=false (default: none)")
    p.add_argument("--shape", action="append", type=shape, default=None, metavar="SIZES",
                   help="shape of an input, e.g. 32,784; repeat it for each tensor argument of a function "
                        "(default: 4,in_features for a layer that has in_features or num_features)")
    p.add_argument("--reference", default=None, metavar="TARGET",
                   help="the torch counterpart: an nn.Module class built with the same arguments, or a function of "
                        "the same inputs (default: the torch twin of a scratch class; none otherwise)")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"how many seeds, from --seed on (default: {DEFAULT_SEEDS}; with --mutants, the seeds of the "
                        f"false-positive sweep: {SWEEP_SEEDS}, while each mutant gets {MUTANT_SEEDS})")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--sampled", dest="mode", action="store_const", const="sampled",
                      help="random coordinates and random directions per tensor (default: when the tensors hold "
                           "more than 20,000 coordinates in all)")
    mode.add_argument("--full", dest="mode", action="store_const", const="full",
                      help="every coordinate of every tensor (default: up to 20,000 coordinates in all)")
    p.set_defaults(mode="auto")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES,
                   help=f"sampled mode: random coordinates per tensor (default: {DEFAULT_SAMPLES})")
    p.add_argument("--directions", type=int, default=DEFAULT_DIRECTIONS,
                   help=f"sampled mode: random directions per tensor (default: {DEFAULT_DIRECTIONS})")
    p.add_argument("--force-dtype", action="store_true",
                   help="with --dtype float32: really check in float32, with loose tolerances and a warning; "
                        "without it float32 runs the check in float64 anyway and says why (default: off)")
    p.add_argument("--no-front-layer", dest="front_layer", action="store_false",
                   help="feed the input straight in, not through a random linear layer (default: a layer in front)")
    p.add_argument("--engine", action="store_true",
                   help="TARGET is a function of scratch.engine Values, differentiated by the engine; its reference "
                        "is the same function on torch tensors (default: off)")
    p.add_argument("--order", type=int, choices=(1, 2), default=1,
                   help="2: also check the backward's own backward, the vjp of the vjp, against torch.autograd and "
                        "finite differences of the backward (an engine function or a torch.autograd.Function whose "
                        "backward is differentiable) (default: 1)")
    p.add_argument("--forward-ad", action="store_true",
                   help="also check the forward mode: J t of each input against torch's forward AD and finite "
                        "differences (an engine function, or a torch.autograd.Function with a jvp) (default: off)")


def run(config: Config, data: None = None) -> dict:
    extra = config.extra
    if extra["seeds"] is not None and extra["seeds"] < 1:
        raise UsageError(f"--seeds must be at least 1, got {extra['seeds']}")
    if extra["mutants"]:
        if extra["target"]:
            raise UsageError("give either a TARGET or --mutants, not both")
        return run_suite(config.seed, extra["seeds"] or SWEEP_SEEDS)
    if not extra["target"]:
        raise UsageError("give a TARGET such as scratch.linear:Linear, or --mutants")
    if extra["samples"] < 1 or extra["directions"] < 0:
        raise UsageError(f"--samples must be at least 1 and --directions at least 0, "
                         f"got {extra['samples']} and {extra['directions']}")
    try:
        result = check_target(config)
    except TargetError as error:
        raise UsageError(str(error)) from error
    except (ValueError, TypeError, RuntimeError, IndexError) as error:  # raised by the target, run as asked
        raise UsageError(f"{extra['target']} raised {type(error).__name__} when run: {error} "
                         "(check --shape, --args and --kwargs)") from error
    print(summary(result))
    failed = result.failures()
    return dict(
        agreement=dict(passed=result.passed, tensors=len({c.tensor for c in result.comparisons}),
                       failed_tensors=sorted({c.tensor for c in failed}), failed_seeds=result.failed_seeds(),
                       non_differentiable=result.non_differentiable()),
        check=result.to_dict(),
    )


def check_target(config: Config) -> CheckResult:
    extra = config.extra
    kwargs = dict(extra["kwargs"])
    seeds = extra["seeds"] or DEFAULT_SEEDS
    if is_optimizer(resolve(extra["target"])):
        if extra["order"] != 1 or extra["forward_ad"] or extra["engine"]:
            raise TargetError(f"{extra['target']} is an optimizer: --order 2, --forward-ad and --engine check "
                              "derivatives, and an optimizer's update has none; leave them out")
        return check_optimizer(extra["target"], kwargs=kwargs, seeds=seeds, seed=config.seed,
                               reference=extra["reference"], dtype=config.dtype, force_dtype=extra["force_dtype"])
    return check_backward(extra["target"], args=extra["args"], kwargs=kwargs, shapes=extra["shape"],
                          reference=extra["reference"], seeds=seeds, seed=config.seed, mode=extra["mode"],
                          samples=extra["samples"], directions=extra["directions"], dtype=config.dtype,
                          force_dtype=extra["force_dtype"], front_layer=extra["front_layer"],
                          kind="engine" if extra["engine"] else None, order=extra["order"],
                          forward_ad=extra["forward_ad"])


def run_suite(seed: int, seeds: int) -> dict:
    """Every mutant (each must fail its check), then every correct subject over `seeds` seeds (each must pass)."""
    mutants = run_mutants(seed)
    print(f"Mutants: deliberately wrong backward passes, each checked over seeds {seed}-{seed + MUTANT_SEEDS - 1}")
    print(table(["mutant", "subject", "caught", "caught by", "the bug"],
                [[m["name"], m["subject"], m["caught"], ", ".join(m["caught_by"]) or m["error"] or "-", m["bug"]]
                 for m in mutants]))
    sweep = false_positive_sweep(seed, seeds)
    print(f"\nThe correct subjects over seeds {seed}-{seed + seeds - 1}:")
    print(table(["subject", "seeds", "failed seeds", "non-diff. left out", "seconds"],
                [[s["subject"], s["seeds"], len(s["failed_seeds"]), s["non_differentiable"], f"{s['seconds']:.2f}"]
                 for s in sweep["subjects"]]))
    for s in sweep["subjects"]:
        for message in s["failures"]:
            print(f"  FALSE POSITIVE ({s['subject']}): {message}")
    caught = sum(m["caught"] for m in mutants)
    passed = caught == len(mutants) and sweep["false_positives"] == 0
    print(f"\nVerdict: {'PASSED' if passed else 'FAILED'} ({caught} of {len(mutants)} mutants caught; "
          f"{sweep['false_positives']} false positives in {sweep['checks']} checks of {len(sweep['subjects'])} "
          f"correct subjects x {seeds} seeds)")
    return dict(agreement=dict(passed=passed, mutants_caught=caught, mutants=len(mutants),
                               false_positives=sweep["false_positives"]),
                mutants=mutants, false_positives=sweep["false_positives"], seeds=seeds,
                correct=sweep["subjects"])


COMMAND = Command(
    name="check",
    help="check the backward pass of any layer, function or optimizer against torch.autograd and finite "
         "differences; --mutants proves the checker on deliberately wrong backward passes",
    run=run,
    groups=(SEED, DTYPE, REPORT),
    add_arguments=add_arguments,
    config_keys=CONFIG_KEYS,
    needs_data=NEEDS_DATA,
    defaults={"dtype": "float64"},
)
