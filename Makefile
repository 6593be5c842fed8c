# `make run` and `make test` do all set-up on a fresh machine: a .venv, the package, the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint venv clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/uploader

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	QT_QPA_PLATFORM=offscreen QT_API=pyside6 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info

# Benchmarks (bench/, not tests): `bench` writes BENCHMARKS.md, `bench-quick` a check in minutes.
.PHONY: bench bench-quick
bench: $(STAMP)
	sh bench/install-peers.sh
	$(BIN)/python -m bench --mode full

bench-quick: $(STAMP)
	sh bench/install-peers.sh
	$(BIN)/python -m bench --mode quick
