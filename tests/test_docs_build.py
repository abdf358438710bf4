"""The documents' figures are what docs/build.py writes from the committed runs, and the fast runs reproduce.

- every generated part of README.md and docs/*.md equals what the script writes from docs/runs/*.json (a figure
  typed or edited by hand fails here: edit the command in docs/build.py, rerun it, commit the run);
- every run is committed, used by a document, and shown beside the command that made it;
- the fast runs, rerun here on the real data, give the same figures: exactly what does not depend on the
  machine (exit status, verdict, counts, float64 accuracies), and rounding-level figures to their order of
  magnitude (the last digits depend on the CPU's summation order); pictures pixel for pixel, nearly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA_ROOT, NO_DATA_REASON

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("docs_build", ROOT / "docs" / "build.py")
build = sys.modules["docs_build"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(build)

# While docs/build.py times the test suite itself (its `make test` runs), the suite's own record is the one
# being made: the first time there is none yet. Only then may those records be missing.
TIMING = os.environ.get("DOCS_BUILD_TIMING") == "1"
SELF = {name for name, run in build.RUNS.items() if run.command.startswith("make test")}


def committed(name: str) -> bool:
    return (build.RUNS_DIR / f"{name}.json").exists() or not (TIMING and name in SELF)


# The reruns the default test run makes (seconds each on one thread); the others run with -m slow.
QUICK = ("grads-float64",)


def test_documents_are_what_the_runs_give():
    differ = build.write_documents(check=True, strict=all(committed(n) for n in SELF))
    assert not differ, f"{differ} differ from what docs/build.py writes from docs/runs/: run `python docs/build.py`"


def test_every_run_is_committed_used_and_shown_with_its_command():
    texts = {p.relative_to(ROOT).as_posix(): p.read_text() for p in build.DOCUMENTS}
    used = set().union(*(build.runs_used(t) for t in texts.values()))
    assert used <= set(build.RUNS), f"documents use runs docs/build.py does not define: {used - set(build.RUNS)}"
    assert set(build.RUNS) <= used, f"runs no document uses: {set(build.RUNS) - used}"
    for name, run in build.RUNS.items():
        if not committed(name):
            continue
        record = build.load(name)
        assert record["command"] == build.run_command(run), f"docs/runs/{name}.json is of another command"
    for where, text in texts.items():
        for m in build.BLOCK.finditer(text):
            if m.group(2) == "output":
                before = " ".join(text[max(0, m.start() - 700):m.start()].split())  # a command may wrap
                assert build.RUNS[m.group(3)].command in before, \
                    f"{where}: the output of `{build.RUNS[m.group(3)].command}` is not shown beside that command"


def test_a_hand_edited_figure_is_caught(tmp_path, monkeypatch):
    """The check is not vacuous: change one generated digit and it reports the document."""
    readme = tmp_path / "README.md"
    text = (ROOT / "README.md").read_text()
    m = next((m for m in build.INLINE.finditer(text) if m.group(2) not in SELF), None)  # not the suite's own time
    assert m, "README.md has no generated figure"
    start, end = m.span(4)
    changed = text[:start] + text[start:end] + "9" + text[end:]  # one more digit typed by hand
    assert changed != text
    readme.write_text(changed)
    monkeypatch.setattr(build, "DOCUMENTS", [readme])
    monkeypatch.setattr(build, "ROOT", tmp_path)
    assert build.write_documents(check=True, strict=all(committed(n) for n in SELF)) == ["README.md"]


def rerun_and_compare(name: str, tmp_path: Path) -> None:
    run = build.RUNS[name]
    pictures = tmp_path / "pictures"

    def elsewhere(args: list[str]) -> list[str]:  # pictures into tmp_path, not into the checkout
        return [str(pictures) if k and args[k - 1] == "--plots" else a for k, a in enumerate(args)]

    fresh = build.execute(run, tmp_path / "report.json", rewrite=elsewhere)
    for folder in build.plots_folders(run):  # where the pictures went is no figure
        fresh["output"] = fresh["output"].replace(str(pictures), folder)
    differ = build.differences(build.load(name), fresh)
    assert not differ, f"{name} gives other figures now (rerun `python docs/build.py --rerun {name}`):\n" + \
        "\n".join(differ[:15])
    for folder in build.plots_folders(run):
        import matplotlib.image as mpimg
        import numpy as np

        for picture in sorted((ROOT / folder).glob("*.png")):
            a, b = mpimg.imread(picture), mpimg.imread(pictures / picture.name)
            assert a.shape == b.shape, f"{picture.name}: {a.shape} committed, {b.shape} now"
            changed = float(np.mean(np.abs(a - b).max(axis=-1) > 0.1))
            # On the record's CPU a float64 picture is redrawn to 1% of its pixels, a float32 one to 15% (its
            # curves part where the two sides' rounding does). On another CPU, a float64 picture of rounding-level
            # differences (scratch against torch) is that CPU's rounding: 15%; and a float32 run trains another
            # model there (README, "Tolerances"): its pictures (which digits it gets wrong, ...) are only the same
            # pictures in size.
            record = build.load(name)
            same_cpu = record["machine"].get("cpu") == build.machine()["cpu"]
            float32 = record["report"].get("config", {}).get("dtype") == "float32"
            if float32 and not same_cpu:
                continue
            allowed = 0.01 if same_cpu and not float32 else 0.15
            assert changed < allowed, f"{folder}/{picture.name}: {changed:.1%} of its pixels differ from a fresh run"


@pytest.mark.skipif(DATA_ROOT is None, reason=NO_DATA_REASON)
@pytest.mark.parametrize("name", [pytest.param(n, marks=[] if n in QUICK else [pytest.mark.slow])
                                  for n, r in build.RUNS.items() if r.fast])
def test_fast_runs_reproduce(name, tmp_path):
    rerun_and_compare(name, tmp_path)


def test_every_picture_shown_is_drawn_by_a_run():
    """A picture of the docs comes from a run's --plots folder (the digit page's from `make screenshot`)."""
    folders = {folder for run in build.RUNS.values() for folder in build.plots_folders(run)}
    for path in build.DOCUMENTS:
        for picture in re.findall(r"\]\((docs/pictures/[^)]+\.png)\)", path.read_text()):
            assert picture.rsplit("/", 1)[0] in folders, f"{path.name} shows {picture}, which no run draws"
            assert (ROOT / picture).exists(), f"{path.name} shows {picture}, which is not committed"


def test_runs_are_valid_json_with_their_machine():
    for path in sorted(build.RUNS_DIR.glob("*.json")):
        record = json.loads(path.read_text())
        assert {"command", "exit_status", "seconds", "machine", "output", "report"} <= record.keys(), path.name
        assert path.stem in build.RUNS, f"{path.name} is no run of docs/build.py: remove it"


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout: no commit to check out")
def test_a_run_pinned_to_a_commit_runs_that_commits_code():
    """Run.commit: the "before" of a change is run on the code of its commit, checked out beside this one."""
    shown = subprocess.run(["git", "-C", str(ROOT), "show", "HEAD~1:scratch/conv.py"], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    with build.code_at("HEAD~1") as folder:
        assert folder != ROOT and (folder / "scratch" / "conv.py").read_text() == shown.stdout
    assert not folder.exists()  # the files are removed afterwards
    with build.code_at(None) as folder:
        assert folder == ROOT
    with pytest.raises(RuntimeError, match="cannot check out commit no-such-commit"):
        with build.code_at("no-such-commit"):
            pass


@pytest.mark.parametrize(("path", "committed", "fresh", "same"), [
    ("check.comparisons[4].worst_index[1]", 38, 636, True),  # where a rounding-level error peaks: another CPU
    ("agreement.implementation.worst_name", "dfc1.weight", "dfc2.bias", True),
    ("check.comparisons[4].max_rel_error", 3.1e-16, 2.2e-16, True),  # rounding level: its order of magnitude
    ("check.comparisons[4].max_rel_error", 3.1e-16, 3.1e-13, False),
    ("check.comparisons[4].count", 38, 636, False),  # an index elsewhere is a figure
    ("scratch.test_accuracy", 0.9913, 0.9903, False),
])
def test_what_a_rerun_on_another_machine_may_change(path, committed, fresh, same):
    assert build.same_figure(path, committed, fresh) is same
