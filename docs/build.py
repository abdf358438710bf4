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
import contextlib
import importlib
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # docs/figures/, also when a test loads this file
import figures  # noqa: E402
from figures import FORMATS, ROOT, RUNS, RUNS_DIR, TABLES, Fields, Run, load  # noqa: E402

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BULKY = ("step_losses",)  # per-step lists: kept by the command's own report, summarised here by their length
MODULES = ("readme", "optimizers", "benchmarks", "checking", "cnn", "attention", "recurrence", "data_parallel",
           "autograd")  # docs/figures/NAME.py, one per document
NAMES: dict = {}  # the modules' own names for inline figures


def collect() -> None:
    """Every module's runs, tables and names, into figures.RUNS / TABLES and NAMES; a name used twice is an error."""
    for module_name in MODULES:
        module = importlib.import_module(f"figures.{module_name}")
        for kind, target in (("RUNS", RUNS), ("TABLES", TABLES), ("NAMES", NAMES)):
            mine = getattr(module, kind, {})
            twice = set(mine) & set(target)
            if twice:
                raise ValueError(f"docs/figures/{module_name}.py: {kind} {sorted(twice)} already defined elsewhere")
            target.update(mine)


collect()


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

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    edited = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "compare", "scratch", "torch_impl", "examples"],
                            cwd=ROOT).returncode == 1  # the code measured is not quite that commit's
    return dict(cpu=cpu, cores=os.cpu_count(), threads=1, torch=torch.__version__, python=platform.python_version(),
                load_average=[round(v, 2) for v in os.getloadavg()],
                commit=(commit.stdout.strip() + ("+edits" if edited else "")) or None)


def slim(value):
    """The report without its per-step lists (their lengths stand in)."""
    if isinstance(value, dict):
        return {k: (f"{len(v)} values" if k in BULKY and isinstance(v, list) else slim(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [slim(v) for v in value]
    return value


@contextlib.contextmanager
def code_at(commit: str | None) -> Iterator[Path]:
    """The folder whose code a run runs: this checkout, or the files of the given commit (`git archive`) in a
    temporary folder, removed afterwards."""
    if commit is None:
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="docs-build-") as folder:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit], capture_output=True)
        if archive.returncode:
            raise RuntimeError(f"cannot check out commit {commit} for its run: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        yield Path(folder)


def execute(run: Run, report: Path, rewrite: Callable[[list[str]], list[str]] = lambda a: a) -> dict:
    """Run the command in a fresh process with one thread (a `python -m compare` command with `--report REPORT`,
    the same started by torchrun, or a script of examples/ or scripts/); its record. With run.commit, on the code of
    that commit."""
    args = rewrite(shlex.split(run.command))
    script = args[0].endswith(".py") or args[0] == "make"
    with code_at(run.commit) as code:
        if args[0] == "torchrun":  # torchrun is torch.distributed.run; its own options, then -m compare ...
            argv = [sys.executable, "-m", "torch.distributed.run", *args[1:], "--report", str(report)]
        else:
            argv = args if args[0] == "make" else [sys.executable, str(ROOT / args[0]), *args[1:]] if script else \
                [sys.executable, "-m", "compare", *args, "--report", str(report)]
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MNIST_DATA_ROOT=data_root(),
                   DOCS_BUILD_TIMING="1", PYTHONPATH=os.pathsep.join([str(code), os.environ.get("PYTHONPATH", "")]))
        before = machine()  # the load average before the run: what else was running
        if run.commit:
            before["commit"] = run.commit
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=code, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
    if done.returncode not in (0, 1) or (args[0] == "make" and done.returncode):  # 1: a verdict that failed
        raise RuntimeError(f"`{run_command(run)}` exited {done.returncode}:\n{done.stdout[-3000:]}\n"
                           f"{done.stderr[-3000:]}")
    output = "".join(line for line in done.stdout.splitlines(keepends=True) if not line.startswith("Report written"))
    result = {} if script else json.loads(report.read_text())
    if "config" in result:  # where this machine keeps things is no figure
        result["config"].update(report=None, data_root="$MNIST_DATA_ROOT")
    return dict(command=run_command(run), exit_status=done.returncode, seconds=round(elapsed, 1),
                machine=before, output=output, report=slim(result))


def run_command(run: Run) -> str:
    """The command as a document shows it."""
    first = run.command.split()[0]
    return f"python {run.command}" if first.endswith(".py") else run.command if first in ("make", "torchrun") else \
        f"python -m compare {run.command}"


def rerun(names: list[str], fresh: bool = False) -> None:
    """Rerun these runs (and, first, any run whose files one of them reads and which left none). A committed
    record that the fresh run confirms (`differences`: only times and the last digits of rounding changed) is
    kept, so that regenerating changes nothing on the same kind of machine; fresh=True writes every record."""
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
        path = RUNS_DIR / f"{name}.json"
        changed = differences(json.loads(path.read_text()), record) if path.exists() and not fresh else ["new"]
        if changed:
            path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"    {record['seconds']:.0f} s, exit {record['exit_status']}; " +
              (f"{path.relative_to(ROOT)} rewritten ({changed[0]})" if changed else
               "the same figures as the committed record, which is kept"), flush=True)


# Where a rounding-level error is largest (worst_name, worst_index[0], ...) is rounding: another CPU, another place.
MACHINE_DEPENDENT = re.compile(r"seconds|_s$|time|threads|per_second|load|peak|flop|rate_|throughput|machine"
                               r"|worst_(name|at_step|index)(\[\d+\])*$")
NUMBER = re.compile(r"[-+]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?%?")


def leaves(value, path: str = ""):
    """(dotted path, value) of every number, string and flag of a report."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for k, v in enumerate(value):
            yield from leaves(v, f"{path}[{k}]")
    else:
        yield path, value


def same_figure(path: str, committed, fresh) -> bool:
    """Whether a fresh run's figure is the committed one, as far as it does not depend on the machine: times not
    at all, rounding-level figures (below 1e-6) to their order of magnitude, others to 1e-3 relative; messages
    with their numbers left out."""
    if MACHINE_DEPENDENT.search(path):
        return True
    if isinstance(committed, float) and isinstance(fresh, (int, float)) and not isinstance(fresh, bool):
        if not (math.isfinite(committed) and math.isfinite(fresh)):
            return str(committed) == str(fresh)
        large = max(abs(committed), abs(fresh))
        if large < 1e-6:
            return large < 1e-13 or min(abs(committed), abs(fresh)) * 30 >= large
        return math.isclose(committed, fresh, rel_tol=1e-3, abs_tol=1e-9)
    if isinstance(committed, str) and isinstance(fresh, str):
        return NUMBER.sub("#", committed) == NUMBER.sub("#", fresh)
    return committed == fresh


# Which tensor holds a rounding-level worst error is rounding itself: another CPU names another tensor.
WORST_WHERE = re.compile(r"(worst relative error # in) \S+")


def words(output: str) -> list[str]:
    """What an output says, its numbers left out: the words of each line, without the spaces that align a table's
    columns (a column's width follows the widest number in it, which another CPU's rounding may change), and
    without the name of the tensor where a rounding-level error is largest."""
    return [" ".join(WORST_WHERE.sub(r"\1 -", line).split()) for line in NUMBER.sub("#", output).splitlines()]


def separated(report: dict) -> bool:
    """A training run whose two trajectories drifted apart: from there on, its figures are another CPU's rounding."""
    trajectory = report.get("agreement", {}).get("trajectory") or {}
    return isinstance(trajectory, dict) and trajectory.get("separated_at") is not None


def field_names(report: dict) -> set[str]:
    """The report's fields, without list positions or the numbers in names (how many checks ran is a figure)."""
    return {re.sub(r"\[\d+\]", "[]", NUMBER.sub("#", path)) for path, _ in leaves(report)}


def differences(committed: dict, fresh: dict) -> list[str]:
    """What a fresh record says otherwise than the committed one (see same_figure); [] when nothing. Of a float32
    run, or of one whose trajectories separated, only the exit status, the verdict and the report's fields."""
    if committed["exit_status"] != fresh["exit_status"]:
        return [f"exit status {committed['exit_status']} committed, {fresh['exit_status']} now"]
    old, new = committed["report"], fresh["report"]
    if old.get("config", {}).get("dtype") == "float32" or separated(old) or separated(new):
        # float32 training is chaotic, and so is a float64 run once its trajectories separate: another CPU's
        # rounding makes other runs from the same start (README, "Tolerances"), so only the verdict and the
        # report's shape are the same anywhere
        if field_names(old) != field_names(new):
            return [f"its report's fields changed: {sorted(field_names(old) ^ field_names(new))[:5]}"]
        verdicts = [(k, old["agreement"].get(k), new["agreement"].get(k)) for k in ("passed",)]
        return [f"agreement.{k}: committed {a!r}, now {b!r}" for k, a, b in verdicts if a != b]
    if words(committed["output"]) != words(fresh["output"]):
        return ["its output's words changed"]
    old, new = dict(leaves(committed["report"])), dict(leaves(fresh["report"]))
    if old.keys() != new.keys():
        return [f"its report's fields changed: {sorted(set(old) ^ set(new))[:5]}"]
    return [f"{k}: committed {old[k]!r}, now {new[k]!r}" for k in old
            if "plots" not in k and not same_figure(k, old[k], new[k])]


def files_of(name: str) -> bool:
    """Whether the folder a run writes with --save exists."""
    args = RUNS[name].command.split()
    return "--save" in args and (ROOT / args[args.index("--save") + 1]).exists()


# ----------------------------------------------------------------------------------------------------------------
# Writing the documents
# ----------------------------------------------------------------------------------------------------------------

def found(output: str, pattern: str) -> str:
    """The first group of the regular expression in a run's output (a script of examples/ writes no report)."""
    m = re.search(pattern, output)
    if not m:
        raise ValueError(f"no line of the output matches {pattern!r}")
    return m.group(1)


def figure(name: str, expression: str) -> str:
    record = load(name)
    names = dict(FORMATS, **NAMES, r=Fields(record["report"]), run=Fields(record),
                 R=lambda other: Fields(load(other)["report"]), found=lambda pattern: found(record["output"], pattern),
                 __builtins__={})
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


BLOCKS: dict[str, Callable[[str], str]] = {
    "output": output_block,
    "table": lambda name: TABLES[name](name),
}

BLOCK = re.compile(r"(<!-- begin (\w+):([\w.-]+) -->\n)(.*?)(\n<!-- end \2:\3 -->)", re.S)
INLINE = re.compile(r"(<!--= ([\w.-]+) (.*?) -->)(.*?)(<!--/-->)")


def render(text: str, strict: bool = True) -> str:
    """The document with every generated part rewritten from the runs (strict=False: a part whose run is not
    committed yet is left as it is)."""
    def part(m: re.Match, write: Callable[[], str]) -> str:
        try:
            return write()
        except FileNotFoundError:
            if strict:
                raise
            return m.group(0)

    def block(m: re.Match) -> str:
        if m.group(2) not in BLOCKS:
            raise KeyError(f"unknown block kind {m.group(2)!r} (known: {', '.join(BLOCKS)})")
        return part(m, lambda: m.group(1) + BLOCKS[m.group(2)](m.group(3)) + m.group(5))

    text = BLOCK.sub(block, text)
    return INLINE.sub(lambda m: part(m, lambda: m.group(1) + figure(m.group(2), m.group(3)) + m.group(5)), text)


def runs_used(text: str) -> set[str]:
    """The runs a document reads (its generated parts, found by rendering it) or shows the pictures of."""
    figures.LOADED.clear()
    render(text, strict=False)
    pictures = {name for name, run in RUNS.items() for folder in plots_folders(run) if f"]({folder}/" in text}
    return set(figures.LOADED) | pictures


def plots_folders(run: Run) -> list[str]:
    """The folders a run draws its pictures into (--plots DIR)."""
    args = run.command.split()
    return [args[k + 1] for k, a in enumerate(args[:-1]) if a == "--plots"] + list(run.draws)


def write_documents(check: bool, strict: bool = True) -> list[str]:
    """Rewrite (or, with check, compare) every document; the ones that differ. strict=False leaves the parts whose
    runs are not committed yet as they are, and names those runs."""
    differ = []
    for path in DOCUMENTS:
        text = path.read_text()
        new = render(text, strict=strict)
        if new != text:
            differ.append(str(path.relative_to(ROOT)))
            if not check:
                path.write_text(new)
    if not strict:
        missing = sorted(name for name in RUNS if not (RUNS_DIR / f"{name}.json").exists())
        if missing:
            print(f"not written yet (no record in docs/runs/): {', '.join(missing)}")
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rerun", nargs="+", metavar="NAME", default=[],
                        help="rerun these runs first: names, `fast` (the quick ones) or `all` (default: none)")
    parser.add_argument("--fresh", action="store_true",
                        help="write every rerun's record, also where it confirms the committed one (default: keep it)")
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
    rerun(chosen, fresh=args.fresh)
    differ = write_documents(check=args.check, strict=args.check or not chosen)
    if args.check and differ:
        print("differ from what docs/build.py writes from docs/runs/: " + ", ".join(differ))
        return 1
    print(("rewrote " + ", ".join(differ)) if differ else "documents up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
