# `make run` and `make test` do all set-up on a fresh machine: a .venv, the package, the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint venv clean fault-tools

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

test: lint fault-tools
	QT_QPA_PLATFORM=offscreen QT_API=pyside6 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info

# Debian tools the fault suite (tests/faults) injects faults with: strace, faketime, ...
fault-tools:
	@sh tests/faults/install-tools.sh
