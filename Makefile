# Each target installs what it needs into .venv first, so a fresh clone needs one command.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint sandbox bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/automations demo

sandbox: $(STAMP)
	$(BIN)/automations sandbox

# Benchmarks (issue 6): results in docs/benchmarks.md; `make bench BENCH_ARGS=--quick` smoke-tests.
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

LINTED := $(wildcard automations tests bench examples)

lint: $(STAMP)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
