# Two commands on a fresh machine (see README):
#   make demo   install into .venv, then run the whole flow on the embedded default
#   make test   install dev tools, then lint, type-check and run the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo dev test lint typecheck pytest bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/idp-sync demo

dev: $(STAMP)
	$(BIN)/idp-sync dev

lint: $(STAMP)
	$(BIN)/ruff check src workers tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

test: lint typecheck pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_resolver.py
	$(BIN)/python bench/bench_http.py

clean:
	rm -rf $(VENV) .idp-sync .mypy_cache .ruff_cache .hypothesis
