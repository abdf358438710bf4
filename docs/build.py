"""Every measured figure of README.md and docs/*.md, written from the run that measured it.

    python docs/build.py                  # rewrite the generated parts of the docs from the reports in docs/runs/
    python docs/build.py --rerun fast     # first rerun the fast commands (pictures included), then rewrite
    python docs/build.py --rerun all      # every command, the 10-epoch trainings too (an hour or more on 2 cores)
    python docs/build.py --rerun NAME ... # only the named runs (`--list` names them)
    python docs/build.py --check          # exit 1, naming the places, where the docs differ from the reports

`make docs` runs the second line. Nothing measured is typed into a document: a run (below, RUNS) is a
command of `python -m compare`, and its JSON in docs/runs/NAME.json holds the command, what it printed, its
`--report`, how long it took and on what machine. The Markdown holds generated parts between markers that
GitHub renders as nothing:

    <!-- begin output:grads-float64 -->  ...  <!-- end output:grads-float64 -->    a block (BLOCKS below)
    <!--= train-float64 pct(r.scratch.test_accuracy) -->95.47%<!--/-->             one figure in a sentence

An inline figure's expression is Python, evaluated with `r` (the run's report, fields by attribute), `run`
(the whole record: `run.seconds`, `run.output`) and the formatting helpers of FORMATS. Commands run with one
CPU thread (OMP_NUM_THREADS=1) on the real data ($MNIST_DATA_ROOT, else ../shared/data): the last digits of
rounding-level figures and every time depend on the machine; what else they print does not
(tests/test_docs_build.py reruns the fast commands and compares what does not).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUNS_DIR = ROOT / "docs" / "runs"
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BULKY = ("step_losses",)  # per-step lists: kept by the command's own report, summarised here by their length


@dataclass(frozen=True)
class Run:
    command: str  # what follows `python -m compare`, exactly as a document shows it
    fast: bool = False  # seconds on one thread: rerun by `make docs` and by the test
    excerpt: tuple[tuple[int | str, int | None], ...] = ((0, None),)  # the lines a block shows (see `excerpt`)
    after: str | None = None  # a run whose files this one reads (`evaluate` of what `train --save` wrote)


RUNS: dict[str, Run] = {
    # README: what it shows, and "Measured on this machine"
    "grads-float64": Run("grads --dtype float64", fast=True, excerpt=((0, 11), (-1, None))),
    "train-float64-3": Run("train --dtype float64 --epochs 3", fast=True, excerpt=(("Epoch 3", 8), ("Largest", None))),
    "train-10": Run("train --epochs 10"),
    "train-10-seed1": Run("train --epochs 10 --seed 1"),
    "train-10-seed2": Run("train --epochs 10 --seed 2"),
    "train-10-seed3": Run("train --epochs 10 --seed 3"),
    "autograd-float64": Run("autograd --dtype float64", fast=True),
    "engine-float64-3": Run("train --engine autograd --epochs 3 --dtype float64", fast=True),
    "bn-adam-10": Run("train --hidden 256,128 --batch-norm --dropout 0.2 --optimizer adam --lr 1e-3 --epochs 10"),
    "bn-adam-float64-1": Run("train --hidden 256,128 --batch-norm --dropout 0.2 --optimizer adam --lr 1e-3 "
                             "--dtype float64 --epochs 1"),
    "grads-bn-dropout": Run("grads --dtype float64 --hidden 64,32 --batch-norm --dropout 0.5", fast=True),
    "unstable-momentum": Run("train --optimizer momentum --lr 0.1 --lr-schedule none --dtype float64 --epochs 1",
                             fast=True),
    "nesterov": Run("train --optimizer nesterov --momentum 0.9 --weight-decay 5e-4 --lr-schedule cosine"),
    "batch-1": Run("train --batch-size 1 --epochs 1"),
    "bn-save": Run("train --batch-norm --epochs 1 --save runs/docs-bn"),
    "bn-evaluate": Run("evaluate --checkpoint runs/docs-bn", after="bn-save"),
    "ddp-float64": Run("ddp --nproc 2 --dtype float64 --epochs 1"),
    "grads-cnn-float64": Run("grads --model cnn --dtype float64"),
    "train-cnn-float64-1": Run("train --model cnn --dtype float64 --epochs 1"),
    "train-cnn-10": Run("train --model cnn --epochs 10"),
    "train-vit-10": Run("train --model vit --epochs 10"),
    "train-lstm-10": Run("train --model lstm --epochs 10"),
    "train-cnn-bn-fashion-10": Run("train --model cnn --batch-norm --dataset fashion-mnist --epochs 10"),
    "autograd-cnn-float64": Run("autograd --model cnn --dtype float64", fast=True),
    # README: pictures
    "pictures-train": Run("train --epochs 2 --plots docs/pictures/train", fast=True),
    "pictures-train-float64": Run("train --epochs 1 --dtype float64 --plots docs/pictures/train-float64", fast=True),
    "pictures-grads": Run("grads --dtype float64 --plots docs/pictures/grads", fast=True),
    "playground": Run("playground --dataset spiral --hidden 16,16 --activation tanh --plots docs/pictures/playground",
                      fast=True),
    "playground-sgd": Run("playground --optimizer sgd --lr 0.2 --lr-schedule none --batch-size 16 --epochs 200 "
                          "--plots docs/pictures/playground-sgd"),
    # README: the test suite's times (run by hand: they take the whole machine for minutes)
    "make-test": Run("make test"),
    "make-test-fast": Run("make test-fast"),
    "make-test-slow": Run("make test-slow"),
    # README: the examples
    "side-by-side-float64": Run("examples/side_by_side.py --dtype float64", fast=False),
}


def measured(run: str, result: Callable[[Fields, Fields], str]) -> tuple[str, Callable[[Fields, Fields], str]]:
    return run, result


def checks(r: Fields) -> str:
    impl = r.agreement.implementation
    return f"{count(impl.count)} re-synchronized checks, worst {sci(impl.worst_rel_error)}"


def accuracies(r: Fields) -> str:
    a, b = r.scratch.test_accuracy, r.torch.test_accuracy
    return f"both {pct(a)}" if a == b else f"scratch {pct(a)}, torch {pct(b)}"


def verdict_word(r: Fields) -> str:
    return "passed" if r.agreement.passed else "FAILED"


def trained(r: Fields, run: Fields) -> str:
    t = r.agreement.trajectory
    path = (f"per-step losses within {sci(t.max_step_loss_rel_diff)} relative over {count(t.steps)} steps"
            if t.separated_at is None else
            f"trajectories identical for {count(t.identical_steps)} steps, then separated ({t.training})")
    return (f"{verdict_word(r)}; {accuracies(r)}; {path}; {pct(t.prediction_agreement)} identical predictions; "
            f"{checks(r)}; {seconds(run)}")


def grads_result(r: Fields, run: Fields) -> str:
    a = r.agreement
    coords = sum(p["finite_diff_coordinates"] for p in r.parameters)
    total = sum(math.prod(p["shape"]) for p in r.parameters)
    where = f" on all {count(coords)} coordinates" if coords == total else f" on {count(coords)} of {count(total)}"
    return (f"{verdict_word(r)}; scratch vs autograd <= {sci(a.max_rel_error)} relative (tolerance "
            f"{a.autograd_tolerance:g}), finite differences <= {sci(a.max_finite_diff_rel_error)}{where} "
            f"(tolerance {a.finite_diff_tolerance:g}); {seconds(run)}")


def autograd_result(r: Fields, run: Fields) -> str:
    e = r.agreement.max_rel_error
    return (f"{verdict_word(r)}; largest relative error hand vs engine {sci(e['hand vs engine'])}, hand vs torch "
            f"{sci(e['hand vs torch'])}, engine vs torch {sci(e['engine vs torch'])}; {seconds(run)}")


def evaluate_result(r: Fields, run: Fields) -> str:
    return f"{verdict_word(r)}; " + "; ".join(f"{k} {pct(v)}" for k, v in r.agreement.accuracies.items())


def ddp_result(r: Fields, run: Fields) -> str:
    return f"{verdict_word(r)}; {seconds(run)}"


MEASURED = [
    measured("grads-float64", grads_result),
    measured("train-float64-3", trained),
    measured("train-10", trained),
    measured("train-10-seed1", trained),
    measured("train-10-seed2", trained),
    measured("train-10-seed3", trained),
    measured("autograd-float64", autograd_result),
    measured("engine-float64-3", trained),
    measured("bn-adam-10", trained),
    measured("bn-adam-float64-1", trained),
    measured("grads-bn-dropout", grads_result),
    measured("unstable-momentum", trained),
    measured("nesterov", trained),
    measured("batch-1", trained),
    measured("bn-save", trained),
    measured("bn-evaluate", evaluate_result),
    measured("ddp-float64", ddp_result),
    measured("grads-cnn-float64", grads_result),
    measured("train-cnn-float64-1", trained),
    measured("train-cnn-10", trained),
    measured("train-vit-10", trained),
    measured("train-lstm-10", trained),
    measured("train-cnn-bn-fashion-10", trained),
    measured("autograd-cnn-float64", autograd_result),
]


# ----------------------------------------------------------------------------------------------------------------
# Running a command and keeping its record
# ----------------------------------------------------------------------------------------------------------------

def data_root() -> str:
    root = os.environ.get("MNIST_DATA_ROOT") or str(ROOT.parent / "shared" / "data")
    if not Path(root, "mnist").is_dir():
        sys.exit(f"error: no MNIST under {root}: set MNIST_DATA_ROOT to the folder holding mnist/ and fashion-mnist/")
    return root


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    import torch  # here, not at the top: rewriting the docs from the reports needs no torch

    return dict(cpu=cpu, cores=os.cpu_count(), threads=1, torch=torch.__version__, python=platform.python_version(),
                load_average=[round(v, 2) for v in os.getloadavg()])


def slim(value):
    """The report without its per-step lists (their lengths stand in)."""
    if isinstance(value, dict):
        return {k: (f"{len(v)} values" if k in BULKY and isinstance(v, list) else slim(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [slim(v) for v in value]
    return value


def execute(run: Run, report: Path, rewrite: Callable[[list[str]], list[str]] = lambda a: a) -> dict:
    """Run the command in a fresh process with one thread (a `python -m compare` command with `--report REPORT`,
    or a script of examples/); its record."""
    args = rewrite(shlex.split(run.command))
    script = args[0].endswith(".py") or args[0] == "make"
    argv = args if args[0] == "make" else [sys.executable, *args] if script else \
        [sys.executable, "-m", "compare", *args, "--report", str(report)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MNIST_DATA_ROOT=data_root(),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    before = machine()  # the load average before the run: what else was running
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1) or (args[0] == "make" and done.returncode):  # 1: a verdict that failed
        raise RuntimeError(f"`{run_command(run)}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    output = "".join(line for line in done.stdout.splitlines(keepends=True) if not line.startswith("Report written"))
    result = {} if script else json.loads(report.read_text())
    if "config" in result:  # where this machine keeps things is no figure
        result["config"].update(report=None, data_root="$MNIST_DATA_ROOT")
    return dict(command=run_command(run), exit_status=done.returncode, seconds=round(elapsed, 1),
                machine=before, output=output, report=slim(result))


def run_command(run: Run) -> str:
    """The command as a document shows it."""
    first = run.command.split()[0]
    return f"python {run.command}" if first.endswith(".py") else run.command if first == "make" else \
        f"python -m compare {run.command}"


def rerun(names: list[str]) -> None:
    """Rerun these runs (and, first, any run whose files one of them reads and which left none)."""
    order: list[str] = []
    for name in names:
        first = RUNS[name].after
        if first and first not in names and first not in order and not files_of(first):
            order.append(first)
        order.append(name)
    order.sort(key=lambda n: any(RUNS[m].after == n for m in order), reverse=True)
    RUNS_DIR.mkdir(exist_ok=True)
    for k, name in enumerate(order, start=1):
        print(f"[{k}/{len(order)}] {run_command(RUNS[name])}", flush=True)
        scratch_report = RUNS_DIR / f".{name}.report.json"
        try:
            record = execute(RUNS[name], scratch_report)
        finally:
            scratch_report.unlink(missing_ok=True)
        (RUNS_DIR / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"    {record['seconds']:.0f} s, exit {record['exit_status']}", flush=True)


def files_of(name: str) -> bool:
    """Whether the folder a run writes with --save exists."""
    args = RUNS[name].command.split()
    return "--save" in args and (ROOT / args[args.index("--save") + 1]).exists()


def load(name: str) -> dict:
    path = RUNS_DIR / f"{name}.json"
    if name not in RUNS:
        raise KeyError(f"{name!r} is not a run of docs/build.py (RUNS names {', '.join(RUNS)})")
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(ROOT)} is missing: run `python docs/build.py --rerun {name}`")
    return json.loads(path.read_text())


# ----------------------------------------------------------------------------------------------------------------
# Writing the documents
# ----------------------------------------------------------------------------------------------------------------

class Fields(dict):
    """A report read by attribute: r.scratch.test_accuracy."""

    def __getattr__(self, name: str):
        try:
            value = self[name]
        except KeyError:
            raise AttributeError(f"the report has no field {name!r} (it has {', '.join(self)})") from None
        return Fields(value) if isinstance(value, dict) else value


def pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}%"


def sci(x: float, digits: int = 1) -> str:
    """2.3e-14 as a document writes it."""
    return f"{x:.{digits}e}".replace("e-0", "e-").replace("e+0", "e")


def count(x: int) -> str:
    return f"{x:,}"


def seconds(run: dict) -> str:
    return f"{run['seconds']:.0f} s"


def minutes(text: str) -> str:
    """pytest's '283.51' seconds as '4.7 min'."""
    return f"{float(text) / 60:.1f} min"


def points(x: float) -> str:
    """An accuracy difference in percentage points."""
    return f"{100 * x:.2f}"


def over(names: tuple[str, ...], field: str) -> list:
    """One field (a dotted path) of several runs' reports."""
    values = []
    for name in names:
        value = load(name)["report"]
        for key in field.split("."):
            value = value[key]
        values.append(value)
    return values


def accuracies_of(r: Fields, field: str, digits: int = 2) -> str:
    """'99.4% for both', or 'scratch 99.4%, torch 99.2%'."""
    a, b = r.scratch[field], r.torch[field]
    return f"{pct(a, digits)} for both" if pct(a, digits) == pct(b, digits) else \
        f"scratch {pct(a, digits)}, torch {pct(b, digits)}"


SEEDS = ("train-10", "train-10-seed1", "train-10-seed2", "train-10-seed3")  # one run, four seeds
FORMATS = dict(pct=pct, sci=sci, count=count, seconds=seconds, points=points, over=over, accuracies_of=accuracies_of,
               SEEDS=SEEDS, checks=checks, minutes=minutes, max=max, min=min, len=len, abs=abs, round=round, sum=sum)


def found(output: str, pattern: str) -> str:
    """The first group of the regular expression in a run's output (a script of examples/ writes no report)."""
    m = re.search(pattern, output)
    if not m:
        raise ValueError(f"no line of the output matches {pattern!r}")
    return m.group(1)


def figure(name: str, expression: str) -> str:
    record = load(name)
    names = dict(FORMATS, r=Fields(record["report"]), run=Fields(record), R=lambda other: Fields(load(other)["report"]),
                 found=lambda pattern: found(record["output"], pattern), __builtins__={})
    return str(eval(expression, names))  # one namespace: a generator expression inside sees the names too


def excerpt(name: str) -> str:
    """The lines of a run's output that its block shows, "..." where lines are left out.

    Run.excerpt is a tuple of (start, count): start is a line's index (negative: from the end) or the text a line
    starts with (its first such line); count is how many lines from there (None: to the end).
    """
    lines = load(name)["output"].rstrip("\n").splitlines()
    shown: list[str] = []
    end = 0  # where the lines shown so far end
    for start, n in RUNS[name].excerpt:
        if isinstance(start, str):
            a = next((k for k, text in enumerate(lines) if text.startswith(start)), None)
            if a is None:
                raise ValueError(f"{name}: no output line starts with {start!r}")
        else:
            a = start if start >= 0 else len(lines) + start
        if a > end:
            shown.append("...")
        stop = len(lines) if n is None else min(a + n, len(lines))
        part = lines[max(a, end):stop]
        while part and not part[-1].strip():
            part.pop()
        shown += part
        end = max(end, stop)
    return "\n".join(shown)


def output_block(name: str) -> str:
    return f"```\n{excerpt(name)}\n```"


def measured_table(name: str) -> str:
    """README's "Measured on this machine": one row per run, its command and what it gave."""
    rows = ["| command | result |", "|---|---|"]
    for run, result in MEASURED:
        record = load(run)
        rows.append(f"| `{RUNS[run].command}` | {result(Fields(record['report']), Fields(record))} |")
    return "\n".join(rows)


BLOCKS: dict[str, Callable[[str], str]] = {
    "output": output_block,
    "table": lambda name: TABLES[name](name),
}
TABLES: dict[str, Callable[[str], str]] = {"measured": measured_table}

BLOCK = re.compile(r"(<!-- begin (\w+):([\w.-]+) -->\n)(.*?)(\n<!-- end \2:\3 -->)", re.S)
INLINE = re.compile(r"(<!--= ([\w.-]+) (.*?) -->)(.*?)(<!--/-->)")


def render(text: str) -> str:
    """The document with every generated part rewritten from the runs."""
    def block(m: re.Match) -> str:
        if m.group(2) not in BLOCKS:
            raise KeyError(f"unknown block kind {m.group(2)!r} (known: {', '.join(BLOCKS)})")
        return m.group(1) + BLOCKS[m.group(2)](m.group(3)) + m.group(5)

    text = BLOCK.sub(block, text)
    return INLINE.sub(lambda m: m.group(1) + figure(m.group(2), m.group(3)) + m.group(5), text)


def runs_used(text: str) -> set[str]:
    names = {m.group(3) for m in BLOCK.finditer(text) if m.group(2) == "output"}
    if any(m.group(2) == "table" and m.group(3) == "measured" for m in BLOCK.finditer(text)):
        names |= {run for run, _ in MEASURED}
    inline = list(INLINE.finditer(text))
    others = {n for m in inline for n in re.findall(r'R\("([\w.-]+)"\)', m.group(3))}
    if "SEEDS" in "".join(m.group(3) for m in inline):
        others |= set(SEEDS)
    pictures = {name for name, run in RUNS.items() for folder in plots_folders(run) if f"]({folder}/" in text}
    return names | {m.group(2) for m in inline} | others | pictures


def plots_folders(run: Run) -> list[str]:
    """The folders a run draws its pictures into (--plots DIR)."""
    args = run.command.split()
    return [args[k + 1] for k, a in enumerate(args[:-1]) if a == "--plots"]


def write_documents(check: bool) -> list[str]:
    """Rewrite (or, with check, compare) every document; the ones that differ."""
    differ = []
    for path in DOCUMENTS:
        text = path.read_text()
        new = render(text)
        if new != text:
            differ.append(str(path.relative_to(ROOT)))
            if not check:
                path.write_text(new)
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rerun", nargs="+", metavar="NAME", default=[],
                        help="rerun these runs first: names, `fast` (the quick ones) or `all` (default: none)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document would change")
    parser.add_argument("--list", action="store_true", help="list the runs and where the docs use them")
    args = parser.parse_args(argv)
    if args.list:
        used = {name: [p.relative_to(ROOT).as_posix() for p in DOCUMENTS if name in runs_used(p.read_text())]
                for name in RUNS}
        for name, run in RUNS.items():
            print(f"{name:<28}{'fast' if run.fast else 'long':<6}{run.command}   [{', '.join(used[name]) or 'unused'}]")
        return 0
    chosen = [n for n in RUNS if "all" in args.rerun or ("fast" in args.rerun and RUNS[n].fast) or n in args.rerun]
    unknown = sorted(set(args.rerun) - set(RUNS) - {"all", "fast"})
    if unknown:
        parser.error(f"unknown runs {', '.join(unknown)} (see --list)")
    rerun(chosen)
    differ = write_documents(check=args.check)
    if args.check and differ:
        print("differ from what docs/build.py writes from docs/runs/: " + ", ".join(differ))
        return 1
    print(("rewrote " + ", ".join(differ)) if differ else "documents up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
