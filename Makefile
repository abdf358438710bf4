# make demo   - set up .venv on first use, then compare both networks on MNIST (the lesson's 784-16-16-10)
# make test   - set up .venv on first use, then run the test suite
# make grads  - set up, then the gradient check on one batch of real data
# make serve  - set up, then the digit page at http://127.0.0.1:8000 (trains the lesson's network first)
# make lint   - set up, then ruff (pycodestyle, pyflakes, isort, bugbear, pep8-naming; see pyproject.toml)
# Data: $(MNIST_DATA_ROOT) if set, else ../shared/data if it exists, else ./data (see README).

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
MNIST_DATA_ROOT ?= $(if $(wildcard ../shared/data/mnist),../shared/data,data)
export MNIST_DATA_ROOT

.PHONY: setup demo grads serve lint test test-fast clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev,plots,serve]'
	touch $@

demo: setup
	$(PY) -m compare train --epochs 10

grads: setup
	$(PY) -m compare grads --dtype float64

serve: setup
	$(PY) -m compare serve

lint: setup
	$(VENV)/bin/ruff check .

test: setup
	$(PY) -m pytest

test-fast: setup
	$(PY) -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
