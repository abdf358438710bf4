"""Every command shown in README.md and docs/*.md runs, and gives the exit status the text implies: 0, or 1 where
its line in a code block says `# exit status 1` (a check shown failing on purpose).

Commands are read from the text itself: lines of code blocks with `python -m compare ...`, and
inline code that gives a command's name and options (`train --epochs 10`, with or without
`python -m compare` before it; a name alone only names the command).
They run in-process on small fake data (tests/idx_files.py) and for fewer epochs, so that every
one of them fits in the test suite; output paths go to a temporary folder. What the text
measured on the real data is rerun by hand (README "Measured on this machine"); here the
question is whether the command, as printed, works.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import torch
from idx_files import make_dataset

from compare.cli import main
from compare.commands import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PATH_OPTIONS = ("--plots", "--report", "--save", "--checkpoint", "--graph", "--show")
PLACEHOLDERS = re.compile(r"\b(COMMAND|NAME|TARGET|MODE|FAMILY|N|P|LR)\b|\.\.\.|\|")  # a synopsis, not a command
FAST = {  # added where the command does not say otherwise, so that it runs in seconds
    "train": ["--epochs", "1"], "grads": [], "autograd": [], "evaluate": [],
    "playground": ["--epochs", "3", "--samples", "50"],
    "bench": ["--repeats", "1", "--epoch-images", "200", "--block-seconds", "0.01", "--no-compile", "--no-typical"],
    "check": ["--seeds", "1"],
    "ddp": ["--run-timeout", "120"],
    "tp": ["--run-timeout", "120"],
    "serve": ["--dry-run"],  # reads one test digit and stops, instead of serving until Ctrl-C
}
# The user's own package of docs/checking-your-backward.md is tests/user_layers.py here; the tests folder is on the
# path of the test run, so a target the text names `tests.user_layers:...` (from the checkout's top) is found too.
USER_PACKAGES = ("mypackage.layers:", "mypackage.ops:")
FAILS_ON_PURPOSE = "# exit status 1"


def expected_status(line: str) -> int:
    return 1 if FAILS_ON_PURPOSE in line else 0


def commands_in(text: str) -> list[tuple[int, str]]:
    """(line number, command text without `python -m compare`) of every command the text shows."""
    found = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip().startswith("```"):
            in_fence = not in_fence
            continue
        code = in_fence or line.startswith("    ")
        # a command line of a code block starts with it (a program's output may name a command mid-line)
        if code and line.strip().removeprefix(".venv/bin/").startswith("python -m compare "):
            command = line.split("python -m compare ", 1)[1].split("  #")[0].split(" # ")[0]
            found += [(number, part.strip().removeprefix("python -m compare ").strip(), expected_status(line))
                      for part in command.split("&&")]
        elif not code:
            for span in re.findall(r"`([^`]+)`", line):
                span = span.removeprefix(".venv/bin/").removeprefix("python -m compare ").strip()
                if " " in span:  # a command's name alone names it; with options, it is a command to run
                    found.append((number, span, 0))
    return [(n, c, e) for n, c, e in found if c and c.split(" ")[0] in COMMANDS and not PLACEHOLDERS.search(c)]


def all_commands() -> list[tuple[str, str, int]]:
    seen, out = set(), []
    for doc in DOCUMENTS:
        for number, command, status in commands_in(doc.read_text()):
            if command not in seen:
                seen.add(command)
                out.append((f"{doc.relative_to(ROOT)}:{number}", command, status))
    return out


COMMAND_LINES = all_commands()
# Finite differences of a model with tens of thousands of parameters take a few thousand forward passes
# (a minute or more on a busy 2-core machine), two processes of ddp start torch twice, and drawing a training
# run's pictures takes matplotlib seconds a figure: these run with -m slow (make test-all). The default run
# still runs one command of each kind (grads, train, ...) and tests/test_pictures.py draws every picture.
SLOW_COMMANDS = ("grads --model vit", "grads --model lstm", "grads --model cnn", "ddp --nproc", "tp --nproc",
                 "check scratch.mlp:MLP --shape 32,784 --full")


def with_marks(where: str, command: str, status: int):
    slow = command.startswith(SLOW_COMMANDS) or "--plots" in command.split()
    return pytest.param(where, command, status, id=where, marks=[pytest.mark.slow] if slow else [])


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docs-data")
    for name in ("mnist", "fashion-mnist"):
        make_dataset(root / name, gz=True, n_train=120, n_test=40)
    return root


def runnable(command: str, data_root: Path, outputs: Path) -> list[str]:
    for package in USER_PACKAGES:
        command = command.replace(package, "user_layers:")
    command = command.replace(" tests.user_", " user_")
    args = shlex.split(command)
    name, rest = args[0], args[1:]
    fixed: list[str] = []
    k = 0
    while k < len(rest):
        option = rest[k]
        if option in PATH_OPTIONS and k + 1 < len(rest):
            fixed += [option, str(outputs / rest[k + 1].strip("/").replace("/", "_"))]
            k += 2
            continue
        if option == "--epochs" and k + 1 < len(rest):
            fixed += [option, "1"]
            k += 2
            continue
        fixed.append(option)
        k += 1
    extra: list[str] = []
    for k, item in enumerate(FAST[name]):  # its options that the command does not give itself
        if item.startswith("--") and item not in fixed:
            extra += [item] + ([FAST[name][k + 1]] if k + 1 < len(FAST[name]) and
                               not FAST[name][k + 1].startswith("--") else [])
    if name == "bench" and "--show" not in fixed:
        extra += [] if "--models" in fixed else ["--models", "mlp:hidden=8"]
        extra += [] if "--batch-sizes" in fixed else ["--batch-sizes", "32"]
    if "--show" in fixed:
        extra = []
    takes_data = ("train", "grads", "autograd", "evaluate", "bench", "ddp", "tp", "serve")
    if name in takes_data and "--data-root" not in fixed and "--show" not in fixed:
        extra += ["--data-root", str(data_root)]
    return [name, *fixed, *extra]


def test_commands_are_found():
    names = {command.split(" ")[0] for _, command, _ in COMMAND_LINES}
    assert {"train", "grads", "autograd", "bench", "playground", "evaluate"} <= names, names


@pytest.mark.parametrize("where,command,status", [with_marks(w, c, s) for w, c, s in COMMAND_LINES])
def test_documented_command_runs(where, command, status, fake_data, tmp_path_factory, capsys):
    if "--device cuda" in command and not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    outputs = tmp_path_factory.getbasetemp() / "docs-outputs"  # shared: evaluate reads what train --save wrote
    outputs.mkdir(exist_ok=True)
    args = runnable(command, fake_data, outputs)
    if "--show" in args or "--checkpoint" in args:
        target = Path(args[args.index("--show" if "--show" in args else "--checkpoint") + 1])
        if not target.exists():
            pytest.skip(f"reads {target.name}, which a command of the text writes on a GPU machine")
    code = main(args)
    captured = capsys.readouterr()
    assert code == status, f"{where}: `python -m compare {command}` exited {code}, not {status}\n{captured.err[-2000:]}"
