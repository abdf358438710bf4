#!/usr/bin/env bash
# Builds the wheel, installs it into a fresh virtual environment and runs commands from a folder outside the
# checkout, as a user of `pip install scratch-vs-torch` would. The new environment gets no packages of its own:
# a .pth file lends it the project venv's torch, numpy and tqdm (a second 5 GB torch would take minutes), and
# the project itself comes only from the wheel (the editable install's hook is not loaded from a .pth path).
#     bash scripts/check-wheel.sh [PROJECT_VENV]     # default .venv; needs MNIST_DATA_ROOT for `grads`
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(cd "${1:-.venv}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tree="$work/tree"
mkdir "$tree"
cp -r pyproject.toml README.md scratch torch_impl compare "$tree"  # a copy: no build/ folder in the checkout
"$venv/bin/python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$work/dist" "$tree" \
    2> >(grep -v "is ignored" >&2)
wheel="$(ls "$work"/dist/*.whl)"
"$venv/bin/python" -m venv "$work/env"
site="$("$work/env/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
"$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' > "$site/project-deps.pth"
"$work/env/bin/python" -m pip install --quiet --no-deps --no-index "$wheel" 2> >(grep -v "is ignored" >&2)
cd "$work"  # outside the checkout: only the installed wheel can be imported
where="$("$work/env/bin/python" -c 'import compare, compare.distributed; print(compare.__file__)')"
case "$where" in "$site"/*) ;; *) echo "compare was imported from $where, not from the wheel"; exit 1 ;; esac
echo "wheel $(basename "$wheel") installed; compare imports from the new environment"
"$work/env/bin/python" -m compare --help > /dev/null
"$work/env/bin/python" -m compare ddp --help > /dev/null
OMP_NUM_THREADS=1 "$work/env/bin/python" -m compare grads --hidden 8 --batch-size 8 | tail -n 4
echo "wheel check passed: python -m compare --help, ddp --help and grads --hidden 8 --batch-size 8 ran from $work"
