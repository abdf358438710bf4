"""docs/checking-your-backward.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

import re

from figures import Fields, Run, count, load, load_all, sci

RUNS: dict[str, Run] = {
    "checking-mutants": Run("check --mutants"),
    "checking-linear-sampled": Run("check scratch.linear:Linear --args 784 512 --shape 32,784 --sampled", fast=True),
    "checking-mlp-full": Run("check scratch.mlp:MLP --shape 32,784 --full"),
    "checking-mistake": Run("tests/user_layers_mistake.py", fast=True),  # the worked example's failing test
    # second order: the worked example's SiLU (s saved from forward) fails it; tests/user_second_order.py passes
    "checking-second-order-mistake": Run("check tests.user_layers:SiLU --shape 4,8 --reference "
                                         "torch.nn.functional:silu --order 2", fast=True),
    "checking-second-order": Run("check tests.user_second_order:SiLU --shape 4,8 --reference "
                                 "torch.nn.functional:silu --order 2 --forward-ad", fast=True),
}


def mutants_table(name: str) -> str:
    """The mutant suite, one row per mutant, as `check --mutants` reported it."""
    rows = ["| mutant | checked on | caught | caught by | wrong tensors | the bug |", "|---|---|---|---|---|---|"]
    for m in load("checking-mutants")["report"]["mutants"]:
        caught = "yes" if m["caught"] else "**NO**"
        by = ", ".join(m["caught_by"]) or m["error"] or "-"
        rows.append(f"| `{m['name']}` | {m['subject']} | {caught} | {by} | {', '.join(m['tensors']) or '-'} | "
                    f"{m['bug']} |")
    return "\n".join(rows)


def printed_seconds(record: dict) -> str:
    """What a check printed as its own time: "(21 comparisons in 0.58 s)"."""
    m = re.search(r"comparisons in ([0-9.]+) s\)", record["output"])
    return f"{float(m.group(1)):.1f} s" if m else "-"


TIMED = {  # run: what it checks
    "checking-linear-sampled": "784x512 `Linear`, batch 32, sampled (50 coordinates + 10 directions per tensor, "
                               "3 seeds)",
    "checking-mlp-full": "the lesson's 784-16-16-10 MLP, batch 32, every one of 37,818 coordinates (25,088 input + "
                         "12,730 parameters), 3 seeds",
    "checking-mutants": "the mutant suite: every mutant over 3 seeds, every correct subject over 200 seeds",
}


def timings_table(name: str) -> str:
    rows = ["| what | command | check (printed) | whole command, wall clock | load average before |",
            "|---|---|---|---|---|"]
    for run, record in load_all(TIMED).items():
        rows.append(f"| {TIMED[run]} | `{RUNS[run].command}` | {printed_seconds(record)} | {record['seconds']:.0f} s "
                    f"| {record['machine']['load_average'][0]:.1f} |")
    return "\n".join(rows)


NUMERICAL = ("finite differences", "directional derivative")  # the other answers name their reference


def worst(r: Fields, tensors: str, finite_differences: bool) -> str:
    """The largest relative error over the seeds of "input", "parameters" or "all" tensors (the forward output
    too), against finite differences (coordinates and directions) or against the reference."""
    def chosen(tensor: str) -> bool:
        return tensors == "all" or (tensor == "input") == (tensors == "input") and tensor != "output"

    errors = [c["max_rel_error"] for c in r.check.comparisons
              if chosen(c["tensor"]) and (c["against"] in NUMERICAL) == finite_differences]
    return sci(max(errors)) if max(errors) else "0"


MUTANT_SEEDS = 3  # compare/checking/suite.py: each mutant is checked on this many seeds


def caught(r: Fields) -> str:
    """'37 of 37 mutants caught, each on all of its 3 seeds'."""
    n, on = len(r.mutants), sum(len(m["failed_seeds"]) for m in r.mutants)
    seeds = f"each on all of its {MUTANT_SEEDS} seeds" if on == MUTANT_SEEDS * n else \
        f"on {on} of the {MUTANT_SEEDS * n} (mutant, seed) pairs"
    return f"{r.agreement.mutants_caught} of {n} mutants caught, {seeds}"


def checks(r: Fields) -> str:
    return count(r.seeds * len(r.correct))


def false_positives(r: Fields) -> str:
    return f"{r.false_positives} false positives in {checks(r)} checks"


def suite_verdict(r: Fields) -> str:
    """The suite's two claims, as the run found them."""
    mutants = "Every mutant is caught" if r.agreement.mutants_caught == len(r.mutants) else \
        f"Only {r.agreement.mutants_caught} of {len(r.mutants)} mutants are caught"
    correct = f"none of the {checks(r)} checks of correct code fails" if r.false_positives == 0 else \
        f"{r.false_positives} of the {checks(r)} checks of correct code fail"
    return f"{mutants}; {correct}"


def left_out_sentence(r: Fields) -> str:
    """Whether the sweep left out coordinates as non-differentiable."""
    n = sum(s["non_differentiable"] for s in r.correct)
    if n == 0:
        return ("No correct subject had a coordinate left out as non-differentiable in those checks: random inputs "
                "through a random layer in front do not land within 1e-6 of a kink.")
    where = ", ".join(f"{s['non_differentiable']} in {s['subject']}" for s in r.correct if s["non_differentiable"])
    return f"{count(n)} coordinates of the correct subjects were left out as non-differentiable in those checks " \
           f"({where})."


def only_by(r: Fields, method: str) -> str:
    """How many mutants only `method` ("forward mode", "second order") caught: '5 mutants'."""
    n = sum(m["caught"] and m["caught_by"] == [method] for m in r.mutants)
    return f"{n} mutant{'s' * (n != 1)}"


TABLES = {"mutants": mutants_table, "checking-timings": timings_table}
NAMES = {"worst": worst, "caught": caught, "false_positives": false_positives, "suite_verdict": suite_verdict,
         "left_out_sentence": left_out_sentence, "only_by": only_by}
