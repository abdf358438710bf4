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


RUNS: dict[str, Run] = {
    "grads-float64": Run("grads --dtype float64", fast=True, excerpt=((0, 11), (-1, None))),
    "train-float64-3": Run("train --dtype float64 --epochs 3", fast=True, excerpt=(("Epoch 3", 8), ("Largest", None))),
}


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
    """Run `python -m compare COMMAND --report REPORT` in a fresh process with one thread; its record."""
    args = rewrite(shlex.split(run.command))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MNIST_DATA_ROOT=data_root(),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "compare", *args, "--report", str(report)], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):  # 1: the command ran and its verdict failed, which the docs may show
        raise RuntimeError(f"`python -m compare {run.command}` exited {done.returncode}:\n{done.stderr[-3000:]}")
    return dict(command=f"python -m compare {run.command}", exit_status=done.returncode, seconds=round(seconds, 1),
                machine=machine(), output="".join(line for line in done.stdout.splitlines(keepends=True)
                                                  if not line.startswith("Report written to ")),
                report=slim(json.loads(report.read_text())))


def rerun(names: list[str]) -> None:
    RUNS_DIR.mkdir(exist_ok=True)
    for k, name in enumerate(names, start=1):
        print(f"[{k}/{len(names)}] python -m compare {RUNS[name].command}", flush=True)
        scratch_report = RUNS_DIR / f".{name}.report.json"
        try:
            record = execute(RUNS[name], scratch_report)
        finally:
            scratch_report.unlink(missing_ok=True)
        (RUNS_DIR / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"    {record['seconds']:.0f} s, exit {record['exit_status']}", flush=True)


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


FORMATS = dict(pct=pct, sci=sci, count=count, seconds=seconds, max=max, min=min, len=len, abs=abs, round=round)


def figure(name: str, expression: str) -> str:
    record = load(name)
    return str(eval(expression, {"__builtins__": {}}, dict(FORMATS, r=Fields(record["report"]), run=Fields(record))))


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
}

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
    return names | {m.group(2) for m in INLINE.finditer(text)}


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
