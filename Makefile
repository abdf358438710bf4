# make demo   - set up .venv on first use, then compare both networks on MNIST (the lesson's 784-16-16-10)
# make test   - set up .venv on first use, then run the test suite (both cores; minutes)
# make test-fast - the quickest check: the suite less what trains on real data or reruns documented commands
# make test-all  - make test, then the tests marked slow (long trainings, full sweeps): what CI runs
# make docs   - rerun the fast documented commands, then rewrite the docs' figures and pictures (docs/build.py)
# make screenshot - the pictures of the digit page and the playground in the README, taken by the browser tests
# make grads  - set up, then the gradient check on one batch of real data
# make serve  - set up, then the digit page at http://127.0.0.1:8000 (trains the lesson's network first)
# make playground - set up, then the live playground alone at http://127.0.0.1:8000/playground (no MNIST needed)
# make playground-checks - the playground's slow checks (learning through the API, load test, the page), figures printed
# make lint   - set up, then ruff (pycodestyle, pyflakes, isort, bugbear, pep8-naming; see pyproject.toml)
# Data: $(MNIST_DATA_ROOT) if set, else ../shared/data if it exists, else ./data (see README).

VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
MNIST_DATA_ROOT ?= $(if $(wildcard ../shared/data/mnist),../shared/data,data)
export MNIST_DATA_ROOT

.PHONY: setup demo grads serve playground playground-checks lint test test-fast test-all test-slow docs screenshot clean

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

playground: setup
	$(PY) -m compare serve --playground-only

playground-checks: setup
	OMP_NUM_THREADS=1 $(PY) -m pytest tests/test_playground_web.py tests/test_playground_page.py -m slow -q -s

lint: setup
	$(VENV)/bin/ruff check .

# pytest-xdist spreads the tests over both cores; one torch thread each, so the two do not fight over them.
JOBS ?= 2
PYTEST := OMP_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS)

test: setup
	$(PYTEST) -m "not slow"

test-fast: setup
	$(PYTEST) -m "not slow and not real_data" --ignore tests/test_docs.py

test-slow: setup
	$(PYTEST) -m slow

test-all: test test-slow

docs: setup
	$(PY) docs/build.py --rerun fast

# the digit page as the browser test draws on it, and the playground as its browser test leaves it (needs chromium
# and chromedriver)
screenshot: setup
	SCREENSHOT_DIR=docs/pictures/serve $(PY) -m pytest tests/test_serve.py tests/test_playground_page.py -q -k browser

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
