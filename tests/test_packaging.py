"""The wheel that `pip install .` builds holds every package and every static file of the source tree.

A package list written by hand once left `compare.distributed` out of the wheel, and every `python -m compare`
command of a normal install failed with ModuleNotFoundError. pyproject.toml now discovers packages; this test
builds the wheel from a copy of the tree (so the checkout gets no build/ folder) and compares. `.ci/run` also
installs that wheel into a fresh virtual environment and runs commands from outside the checkout
(scripts/check-wheel.sh).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("scratch", "torch_impl", "compare")  # the top-level packages the wheel ships
STATIC = ROOT / "compare" / "web" / "static"


def source_files() -> set[str]:
    """Every module and static file of the packages, as paths inside the wheel."""
    found = set()
    for top in PACKAGES:
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and (path.suffix == ".py" or STATIC in path.parents):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_every_folder_of_modules_is_a_package():
    """A folder of modules without __init__.py would be left out of the wheel by discovery (namespaces = false)."""
    folders = [folder for top in PACKAGES for folder in [ROOT / top, *(ROOT / top).rglob("*")]]
    missing = sorted(str(folder.relative_to(ROOT)) for folder in folders
                     if folder.is_dir() and "__pycache__" not in folder.parts and any(folder.glob("*.py"))
                     and not (folder / "__init__.py").exists())
    assert not missing, f"folders of modules without __init__.py (not packaged): {missing}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", *PACKAGES):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tree / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                            "--wheel-dir", str(out), str(tree)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stderr[-3000:]}"
    (path,) = out.glob("*.whl")
    return path


def test_wheel_holds_every_package_and_static_file(wheel: Path):
    with zipfile.ZipFile(wheel) as archive:
        names = {n for n in archive.namelist() if not n.endswith("/")}
    missing = sorted(source_files() - names)
    assert not missing, f"{wheel.name} lacks {len(missing)} files of the source tree: {missing[:10]}"
    assert "compare/distributed/__init__.py" in names and "compare/web/static/index.html" in names


def test_wheel_ships_nothing_else(wheel: Path):
    """No tests, docs or build leftovers: only the three packages and the wheel's metadata."""
    with zipfile.ZipFile(wheel) as archive:
        tops = {n.split("/")[0] for n in archive.namelist()}
    assert tops - set(PACKAGES) == {f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
