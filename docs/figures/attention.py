"""docs/attention.md's runs and tables (see docs/figures/__init__.py)."""

from figures import Run, count, load, pct, points, ratio_history, sci

SMALL = "--dim 16 --depth 1 --heads 2 --mlp-dim 32"  # a ViT small enough for finite differences of every coordinate
SIZES = "vit:depth=2 vit vit:depth=4 vit:patch_size=4 vit:dim=96"  # the default and what it was chosen over

VIT_BENCH = "bench --models vit --no-compile --no-typical --epoch-images 6000"
# Each change of the ViT's layers, the commit that made it (its bench pinned there: Run.commit)
VIT_STEPS = {"vit-bench-norms": ("079ef6fb40bf021c4d6b843cba49692a94e618ef", "layer norm and GELU in fewer passes"),
             "vit-bench-attention": ("8b3a8f51aebe3d1236d0c283335e296d02b52264",
                                     "attention: Q, K, V in heads once, softmax in place")}
RUNS = {
    **{name: Run(VIT_BENCH, commit=commit) for name, (commit, _) in VIT_STEPS.items()},
    "attention-sizes": Run(f"bench --models {SIZES} --batch-sizes 64 --no-compile --no-typical"),
    "attention-grads-vit-small": Run(f"grads --model vit --dtype float64 {SMALL}", fast=True,
                                     excerpt=((0, 23), ("Verdict", 1))),
    "attention-grads-vit-small-cls": Run(f"grads --model vit --dtype float64 {SMALL} --readout cls", fast=True),
    "attention-autograd-vit": Run("autograd --model vit --dtype float64", fast=True,
                                  excerpt=((0, 9), ("norm.weight", 5), ("Verdict", 1))),
    # three epochs of each depth: what the default was chosen on
    "attention-depth-2": Run("train --model vit --depth 2 --epochs 3"),
    "attention-depth-3": Run("train --model vit --epochs 3"),
    "attention-depth-4": Run("train --model vit --depth 4 --epochs 3"),
    "attention-train-vit-float64-1": Run("train --model vit --dtype float64 --epochs 1"),
}

DEFAULT = "vit p7 d64x3"
# Each size's name in the table, its parameters (compare/models/vit.py: parameter_count: the code's, not measured)
# and the run that trained it for three epochs, if any.
SHOWN = {"vit p7 d64x2": ("depth 2", 71_946, "attention-depth-2"),
         DEFAULT: ("depth 3 (default)", 105_418, "attention-depth-3"),
         "vit p7 d64x4": ("depth 4", 138_890, "attention-depth-4"),
         "vit p4 d64x3": ("4x4 patches (49 tokens)", 105_418, None),
         "vit p7 d96x3": ("dim 96", 194_794, None)}


def vit_size(label: str) -> dict:
    """One size's grid point of the sizes' bench."""
    return next(p for p in load("attention-sizes")["report"]["results"] if p["model"] == label)


def three_epochs(run: str) -> str:
    """scratch / torch test accuracy after a run's three epochs."""
    r = load(run)["report"]
    return f"{pct(r['scratch']['test_accuracy'])} / {pct(r['torch']['test_accuracy'])}"


def sizes(name: str) -> str:
    """Step time of each size at batch 64, its cost next to the default's, and the accuracy of the depths."""
    rows = ["| ViT | parameters | scratch step | torch step | scratch / torch | torch step / default's "
            "| 3 epochs, scratch / torch |", "|---|---|---|---|---|---|---|"]
    for label, (shown, parameters, run) in SHOWN.items():
        p = vit_size(label)
        rows.append(f"| {shown} | {parameters:,} | {1e3 * p['scratch_step_s']:.1f} ms | "
                    f"{1e3 * p['torch_step_s']:.1f} ms | {p['ratio']:.2f} | "
                    f"{p['torch_step_s'] / vit_size(DEFAULT)['torch_step_s']:.1f} | "
                    f"{three_epochs(run) if run else ''} |")
    return "\n".join(rows)


def depth_choice() -> str:
    """What the three-epoch runs say of the default depth, by the torch twin's test accuracy."""
    accuracy = {d: load(f"attention-depth-{d}")["report"]["torch"]["test_accuracy"] for d in (2, 3, 4)}
    best = max(accuracy, key=accuracy.get)
    if best == 3:
        return "Depth 3 reached the highest accuracy of the three, and is the default."
    cost = vit_size(f"vit p7 d64x{best}")["torch_step_s"] / vit_size(DEFAULT)["torch_step_s"]
    return (f"Depth 3 is the default: depth {best} reached {points(accuracy[best] - accuracy[3])} points more in "
            f"these runs, at {cost:.1f} times the step.")


def ten_epochs(label: str = DEFAULT) -> str:
    """Minutes of steps for ten epochs of both sides (9,380 steps each) at one size's bench step times."""
    p = vit_size(label)
    return f"{9380 * (p['scratch_step_s'] + p['torch_step_s']) / 60:.1f}"


def trajectory(r) -> str:
    """How long a training run's two trajectories stayed identical."""
    t = r.agreement.trajectory
    return (f"trajectories within {sci(t.max_step_loss_rel_diff)} relative at every step" if t.separated_at is None
            else f"trajectories identical for {count(t.identical_steps)} steps, then separated")


def vit_history(name: str) -> str:
    """scratch/torch of the ViT at each batch size: before, after each change (its commit's bench), now."""
    runs = {"before": "families-bench-before", **{text: run for run, (_, text) in VIT_STEPS.items()},
            "now (the table above)": "families-bench"}
    return ratio_history(runs, (DEFAULT,))


TABLES = {"attention-sizes": sizes, "vit-history": vit_history}
NAMES = {"vit_size": vit_size, "depth_choice": depth_choice, "vit_ten_epochs": ten_epochs, "DEFAULT_VIT": DEFAULT,
         "trajectory_of": trajectory}
