"""docs/recurrence.md's runs and tables (see docs/figures/__init__.py)."""

from figures import Fields, Run, count, load, pct, ratio_history

BEFORE = "348831d1a2cb78c2bc21dc8bd72468d0c85857cc"  # the code before the work on speed (docs/benchmarks.md)
GATES = "a1ef6971930d2777b603aa964d05a73013e07bbf"  # its first step on the LSTM (docs/recurrence.md, "Speed")
# its second step: one buffer per step, the factors computed in the backward loop
ONE_BUFFER = "10732f3e142699f87bcf813912500c5c02da56aa"
LSTM_PROFILE = "scripts/profile_step.py --models lstm --batch-sizes 32 512 --top 6"
LSTM_BENCH = "bench --models lstm --no-compile --no-typical --epoch-images 6000"
RUNS = {
    "recurrence-gradient-reach": Run("scripts/gradient_reach.py", fast=True),
    "recurrence-autograd-lstm": Run("autograd --model lstm --dtype float64", fast=True,
                                    excerpt=((0, 14), ("Verdict", 1))),
    "recurrence-grads-lstm-small": Run("grads --model lstm --dtype float64 --hidden-size 16", fast=True,
                                       excerpt=((0, 10), ("Verdict", 1))),
    "recurrence-train-lstm-float64-1": Run("train --model lstm --dtype float64 --epochs 1"),
    "recurrence-sizes": Run("bench --models lstm:hidden_size=64 lstm --batch-sizes 64 --no-compile --no-typical "
                            "--epoch-images 6000"),
    # three epochs of each hidden size: what the default was chosen on
    "recurrence-hidden-64": Run("train --model lstm --hidden-size 64 --epochs 3"),
    "recurrence-hidden-128": Run("train --model lstm --epochs 3"),
    # "Speed": torch.profiler on today's code and before, and the bench of the LSTM at each step of the changes
    "lstm-profile": Run(LSTM_PROFILE, excerpt=((0, 1), ("lstm batch 32", None))),
    "lstm-profile-before": Run(LSTM_PROFILE, commit=BEFORE, excerpt=((0, 1), ("lstm batch 32", None))),
    "lstm-bench-gates": Run(LSTM_BENCH, commit=GATES),
    "lstm-bench-one-buffer": Run(LSTM_BENCH, commit=ONE_BUFFER),
    "lstm-tanh-cost": Run("scripts/tanh_cost.py", fast=True),
}


def gradient_reach(name: str) -> str:
    """The script prints the Markdown table itself."""
    return load("recurrence-gradient-reach")["output"].strip()


def tanh_cost(name: str) -> str:
    """The script prints the Markdown table itself, under a line naming torch and the rounds."""
    return load("lstm-tanh-cost")["output"].strip().split("\n", 1)[1]


def reach(label: str, t: int) -> float:
    """|dL/dh_t| of one row of the script's table ("RNN, trained", ...), t = 28, 21, 14, 7 or 1."""
    lines = load("recurrence-gradient-reach")["output"].splitlines()
    columns = [cell.strip() for cell in lines[0].strip("|").split("|")]
    row = next([cell.strip() for cell in line.strip("|").split("|")]
               for line in lines if line.startswith(f"| {label} |"))
    return float(row[columns.index(f"t = {t}")])


def reach_accuracy(label: str) -> str:
    """The test accuracy the script's table gives a trained layer."""
    line = next(line for line in load("recurrence-gradient-reach")["output"].splitlines()
                if line.startswith(f"| {label}, trained |"))
    return line.strip("| \n").rsplit("|", 1)[1].strip()


def parting(r) -> str:
    """How a training run's trajectories went: identical throughout, or for how long and how they parted."""
    t = r.agreement.trajectory
    if t.separated_at is None:
        return f"The trajectories stay identical for all {count(t.steps)} steps."
    return (f"The trajectories are identical for {count(t.identical_steps)} steps and then part, the difference "
            f"doubling every {t.steps_per_doubling:.0f} steps ({t.training}): Adam amplifies last-bit differences, "
            "so even float64 does not keep a whole run identical.")


def epoch_accuracies(r) -> str:
    """Test accuracy scratch/torch after each epoch, in percent."""
    return ", ".join(f"{100 * a['test_accuracy']:.2f}/{100 * b['test_accuracy']:.2f}"
                     for a, b in zip(r.scratch.history, r.torch.history, strict=True))


def nodes_per_step(text: str, steps: int = 28) -> str:
    return f"{int(text) / steps:.0f}"


# Each size's name in the table and its parameters (the code's, not measured).
SHOWN = {"lstm h64": ("hidden 64", 24_714, "recurrence-hidden-64"),
         "lstm h128": ("hidden 128 (default)", 82_186, "recurrence-hidden-128")}


def lstm_size(r, label: str) -> dict:
    """One size's grid point of a bench report."""
    return next(p for p in r.results if p["model"] == label)


def ten_epochs(r, label: str = "lstm h128") -> str:
    """Minutes of steps for ten epochs of both sides (9,380 steps each) at one size's bench step times."""
    p = lstm_size(r, label)
    return f"{9380 * (p['scratch_step_s'] + p['torch_step_s']) / 60:.1f}"


def sizes(name: str) -> str:
    """Step time of each hidden size at batch 64 (the bench run), and its accuracy after three epochs."""
    r = Fields(load("recurrence-sizes")["report"])
    rows = ["| LSTMClassifier | parameters | scratch step | torch step | scratch / torch | 3 epochs, scratch / torch |",
            "|---|---|---|---|---|---|"]
    for label, (shown, parameters, run) in SHOWN.items():
        p, trained = lstm_size(r, label), load(run)["report"]
        rows.append(f"| {shown} | {parameters:,} | {1e3 * p['scratch_step_s']:.1f} ms | "
                    f"{1e3 * p['torch_step_s']:.1f} ms | {p['ratio']:.2f} | "
                    f"{pct(trained['scratch']['test_accuracy'])} / {pct(trained['torch']['test_accuracy'])} |")
    return "\n".join(rows)


def changes(name: str) -> str:
    """scratch/torch of the LSTM at each batch size: before, after the first step of the changes, now."""
    return ratio_history({"before": "families-bench-before",
                          "1. gates, derivatives before the loop, workspaces": "lstm-bench-gates",
                          "2. one buffer per step, derivatives in the loop": "lstm-bench-one-buffer",
                          "3. derivatives before the loop into dz, tanh by sigmoid, views made once (now)":
                              "families-bench"}, ("lstm h128",))


def compared_to(r, earlier: str, label: str = "lstm h128") -> str:
    """Where a bench report's scratch/torch is below (faster) or above (slower) an earlier run's, by batch size."""
    before = {p["batch_size"]: p["ratio"] for p in load(earlier)["report"]["results"] if p["model"] == label}
    now = {p["batch_size"]: p["ratio"] for p in r.results if p["model"] == label}
    faster = [b for b in now if now[b] < before[b]]
    if len(faster) == len(now):
        return "faster at every batch size"
    slower = [b for b in now if b not in faster]
    batches = lambda sizes: " and ".join(str(b) for b in sizes)  # noqa: E731
    return (f"faster at batch {batches(faster)} and slower at {batches(slower)}" if faster
            else "slower at every batch size")


def tanh_words(run) -> str:
    """Whether the sigmoid way beat torch.tanh at every size of scripts/tanh_cost.py's table."""
    rows = [line for line in run["output"].splitlines() if line.startswith("| float")]
    beaten = [line for line in rows if float(line.split("|")[5]) > 1]
    if len(beaten) == len(rows):
        return "beat the one call of tanh at every size"
    return f"beat the one call of tanh at {len(beaten)} of the {len(rows)} sizes"


def lstm_speed_words(r) -> str:
    """What the families' bench says of the LSTM: at most 1.0 everywhere, or where and why not."""
    above = [p for p in r.results if p["model"].startswith("lstm") and p["ratio"] > 1]
    if not above:
        return "Every batch size is at most 1.0 now."
    where = ", ".join(f"{p['ratio']:.2f} at batch {p['batch_size']}" for p in above)
    return (f"Above 1.0 where the step is shortest ({where}): there each of the scratch loop's operations (10 per "
            "step forward and 5 backward, the matrix products included) is a call whose fixed cost is a large "
            "share of its work on a [32, 128] tensor, where torch's two fused kernels make one pass over each step "
            "(the profiles above: the calls per step of each side). The larger the batch, the more of the time is "
            "in the matrix products, which both sides run with the same libraries, and the scratch step pulls "
            "ahead.")


TABLES = {"recurrence-gradient-reach": gradient_reach, "recurrence-sizes": sizes, "lstm-changes": changes,
          "lstm-tanh-cost": tanh_cost}
NAMES = {"lstm_speed_words": lstm_speed_words, "compared_to": compared_to, "tanh_words": tanh_words,
         "lstm_size": lstm_size, "lstm_ten_epochs": ten_epochs,
         "parting": parting,
         "epoch_accuracies": epoch_accuracies, "nodes_per_step": nodes_per_step, "reach": reach,
         "reach_accuracy": reach_accuracy}
