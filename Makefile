# Each target installs what it needs into .venv first, so a fresh clone needs one command.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-shifted-clock lint sandbox bench screenshots clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/automations demo

# `make sandbox PORT=9000 HOST=0.0.0.0` serves it elsewhere (set on the command line only:
# zsh and some CI systems export HOST or PORT for other purposes).
HOST = 127.0.0.1
PORT = 8765

sandbox: $(STAMP)
	$(BIN)/automations sandbox --host $(HOST) --port $(PORT)

# Benchmarks (issue 6): results in docs/benchmarks.md; `make bench BENCH_ARGS=--quick` smoke-tests.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# The demo's digest in headless Chromium, light and dark, 375 and 800 px wide:
# docs/digest-{light,dark}-{375,800}.png (tools/screenshots.py; Debian: apt-get install chromium).
screenshots: $(STAMP)
	$(BIN)/python -m tools.screenshots --out docs

LINTED := $(wildcard automations tests bench examples tools)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

# Three workers (pytest-xdist): the suite waits on subprocesses and sockets more than on the CPU.
PYTEST := $(BIN)/pytest -q -n 3

test: lint
	$(PYTEST)
	$(MAKE) --no-print-directory test-shifted-clock

# The whole suite again with the host clock a year ahead (libfaketime, inherited by every
# subprocess): a test that depends on the date it runs at fails here.
test-shifted-clock: $(STAMP)
	eval "$$($(BIN)/python-libfaketime)" && FAKETIME=+365d $(PYTEST)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
