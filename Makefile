# `make run` and `make test` do all set-up on a fresh machine: a .venv, the package, the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGE_STAMP := $(VENV)/.package-installed

.PHONY: run test lint venv clean package package-test gui-test-deps fault-tools

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

# capsh (libcap2-bin): the GUI test of an unreadable file drops root's capabilities
gui-test-deps:
	@command -v capsh >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -q >/dev/null && apt-get install -y --no-install-recommends libcap2-bin >/dev/null; } || true

test: lint gui-test-deps fault-tools $(PACKAGE_STAMP)
	QT_QPA_PLATFORM=offscreen QT_API=pyside6 $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build dist *.egg-info

# -- installers (packaging/README.md) -------------------------------------------
# The Debian tools and Qt's system libraries (packaging/deps.sh), PyInstaller; then the
# bundle, dist/uploader_<version>_amd64.deb and dist/Uploader-<version>-linux-x86_64.tar.gz.
$(PACKAGE_STAMP): $(STAMP) packaging/deps.sh
	bash packaging/deps.sh
	$(BIN)/python -m pip install --quiet -e '.[test,dev,package]'
	touch $(PACKAGE_STAMP)

package: $(PACKAGE_STAMP)
	$(BIN)/python packaging/build.py

package-test: $(PACKAGE_STAMP)
	QT_QPA_PLATFORM=offscreen QT_API=pyside6 $(BIN)/python -m pytest tests/packaging

# Debian tools the fault suite (tests/faults) injects faults with: strace, faketime, ...
fault-tools:
	@sh tests/faults/install-tools.sh

# Benchmarks (bench/, not tests): `bench` writes BENCHMARKS.md, `bench-quick` a check in minutes.
.PHONY: bench bench-quick
bench: $(STAMP)
	sh bench/install-peers.sh
	$(BIN)/python -m bench --mode full

bench-quick: $(STAMP)
	sh bench/install-peers.sh
	$(BIN)/python -m bench --mode quick
