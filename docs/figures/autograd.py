"""docs/autograd.md's runs and tables (see docs/figures/__init__.py)."""

from __future__ import annotations

from figures import Fields, Run, load_all, sci

MODE_FAMILIES = ("mlp", "cnn", "vit", "lstm")
MODES = ("forward", "hvp", "double-backward")
MODE_BATCH = 32  # images of the first training batch, for every family (each run takes seconds)


def mode_run(mode: str, family: str) -> str:
    return f"modes-{mode}-{family}"


def mode_command(mode: str, family: str) -> str:
    return f"autograd --mode {mode} --model {family} --dtype float64 --batch-size {MODE_BATCH}"


RUNS: dict[str, Run] = {
    # section 2: the graph of one MLP loss (README's autograd-float64 is the same command, shown whole there)
    "autograd-graph": Run("autograd --dtype float64", fast=True, excerpt=(("node", 26),)),
    # section 6: what jvp and hvp cost, against a forward pass and a gradient, engine and torch.func
    "autograd-modes-cost": Run("bench --autograd-modes", excerpt=(("Median milliseconds", None),)),
    # section 6: second derivatives at work (README's examples quote it too)
    "second-order": Run("examples/second_order.py", fast=True),
    # section 7: every mode of every family against torch
    **{mode_run(mode, family): Run(mode_command(mode, family), fast=True)
       for mode in MODES for family in MODE_FAMILIES},
}


def mode_records() -> dict[tuple[str, str], dict]:
    records = load_all(mode_run(m, f) for m in MODES for f in MODE_FAMILIES)
    return {(m, f): records[mode_run(m, f)] for m in MODES for f in MODE_FAMILIES}


def verdict(record: dict) -> str:
    return "" if record["report"]["agreement"]["passed"] else " (FAILED)"


def modes_table(name: str) -> str:
    """Mode x family: the worst engine-vs-torch relative error of each run, and the hvp's finite-difference error."""
    records = mode_records()
    rows = ["| mode | " + " | ".join(f"`--model {f}`" for f in MODE_FAMILIES) + " |",
            "|---|" + "---|" * len(MODE_FAMILIES)]
    for mode in MODES:
        cells = [sci(records[mode, f]["report"]["agreement"]["max_rel_error"]) + verdict(records[mode, f])
                 for f in MODE_FAMILIES]
        rows.append(f"| `{mode}`, engine vs torch | " + " | ".join(cells) + " |")
        if mode == "hvp":
            cells = [sci(records[mode, f]["report"]["finite_difference_rel_error"]) for f in MODE_FAMILIES]
            rows.append("| `hvp`, engine vs finite differences | " + " | ".join(cells) + " |")
    rows.append("| parameter tensors | " + " | ".join(
        str(len(records["forward", f]["report"]["parameters"])) for f in MODE_FAMILIES) + " |")
    return "\n".join(rows)


def worst_mode_run() -> tuple[float, str, str]:
    """The largest engine-vs-torch relative error over every mode and family: (error, mode, family)."""
    return max((r["report"]["agreement"]["max_rel_error"], m, f) for (m, f), r in mode_records().items())


def worst_mode_text() -> str:
    """'5.1e-14 (`--mode forward --model vit`)'."""
    error, mode, family = worst_mode_run()
    return f"{sci(error)} (`--mode {mode} --model {family}`)"


def modes_all_passed() -> bool:
    return all(r["report"]["agreement"]["passed"] for r in mode_records().values())


def worst_finite_difference() -> float:
    return max(mode_records()["hvp", f]["report"]["finite_difference_rel_error"] for f in MODE_FAMILIES)




def ratio_range(r: Fields, side: str, ratio: str) -> str:
    """'a to b' over the networks of a --autograd-modes report, for one side's ratio."""
    values = [m[side][ratio] for m in r.autograd_modes]
    return f"{min(values):.1f} to {max(values):.1f}"


def above(r: Fields, bound: float = 3.0) -> str:
    """Where a ratio of a --autograd-modes report exceeds `bound`: 'the engine's hvp on lstm (4.6), ...' or 'none'."""
    found = [f"{side}'s {ratio.split('_')[0]} on {m['model']} ({m[side][ratio]:.1f})"
             for m in r.autograd_modes for side in ("engine", "torch.func")
             for ratio in ("jvp_over_forward", "hvp_over_gradient") if m[side][ratio] > bound]
    return ", ".join(found) or "none"


TABLES = {"autograd-modes": modes_table}
NAMES = {"worst_mode_text": worst_mode_text, "modes_all_passed": modes_all_passed,
         "worst_finite_difference": worst_finite_difference, "ratio_range": ratio_range, "above": above}
