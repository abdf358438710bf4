"""What docs/build.py writes the documents from: the runs, one module per document, and the helpers that format
their figures.

Each module here (readme.py, optimizers.py, ...) defines
    RUNS: dict[str, Run]              the commands whose records docs/runs/NAME.json hold (names unique overall)
    TABLES: dict[str, callable]       optional: `<!-- begin table:NAME -->` blocks, NAME -> the Markdown
and may use everything below: `load(name)` gives a run's record, `Fields` reads a report by attribute, and
the formatting helpers (pct, sci, count, ...) are the names an inline figure's expression can use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
RUNS_DIR = ROOT / "docs" / "runs"


@dataclass(frozen=True)
class Run:
    command: str  # what follows `python -m compare`, exactly as a document shows it
    fast: bool = False  # seconds on one thread: rerun by `make docs` and by the test
    excerpt: tuple[tuple[int | str, int | None], ...] = ((0, None),)  # the lines a block shows (see `excerpt`)
    after: str | None = None  # a run whose files this one reads (`evaluate` of what `train --save` wrote)
    draws: tuple[str, ...] = ()  # folders it draws pictures into, beside the --plots folder of its command
    # Run on the code of this git commit (compare/, scratch/, ... checked out in a temporary worktree; a script
    # of this checkout): the figures of a change's "before", which stay reproducible after the change
    commit: str | None = None


RUNS: dict[str, Run] = {}  # every module's, filled by docs/build.py
TABLES: dict = {}
LOADED: set[str] = set()  # the runs load() has read: which runs a document uses


def load(name: str) -> dict:
    """A run's record: command, exit_status, seconds, machine, output, report."""
    path = RUNS_DIR / f"{name}.json"
    if name not in RUNS:
        raise KeyError(f"{name!r} is not a run of docs/build.py (RUNS names {', '.join(RUNS)})")
    LOADED.add(name)
    if not path.exists():
        raise FileNotFoundError(f"{path.relative_to(ROOT)} is missing: run `python docs/build.py --rerun {name}`")
    return json.loads(path.read_text())


def load_all(names) -> dict[str, dict]:
    """Several runs' records; a missing one is an error naming every missing one."""
    records, missing = {}, []
    for name in names:
        try:
            records[name] = load(name)
        except FileNotFoundError:
            missing.append(name)
    if missing:
        raise FileNotFoundError(f"docs/runs/ lacks {', '.join(missing)}: run `python docs/build.py --rerun "
                                f"{' '.join(missing)}`")
    return records


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


# The names an inline figure's expression can use (modules add their own with NAMES).
FORMATS = dict(pct=pct, sci=sci, count=count, seconds=seconds, points=points, over=over, accuracies_of=accuracies_of,
               minutes=minutes, max=max, min=min, len=len, abs=abs, round=round, sum=sum, sorted=sorted)


def ratio_history(runs: dict[str, str], models: tuple[str, ...]) -> str:
    """A Markdown table of bench runs' scratch/torch: a row per run (label -> run name), a column per grid point
    of `models` (the bench's model names) in the first run ("batch B" with one model, "MODEL B" with several)."""
    results = {label: [p for p in load(run)["report"]["results"] if p["model"] in models]
               for label, run in runs.items()}
    points = [(p["model"], p["batch_size"]) for p in next(iter(results.values()))]
    names = [f"batch {b}" if len(models) == 1 else f"{m} {b}" for m, b in points]
    rows = ["| code | " + " | ".join(names) + " |", "|---" * (len(points) + 1) + "|"]
    for label, measured in results.items():
        ratios = {(p["model"], p["batch_size"]): p["ratio"] for p in measured}
        rows.append(f"| {label} | " + " | ".join(f"{ratios[key]:.2f}" for key in points) + " |")
    return "\n".join(rows)
