# The two commands of the README. Both set up everything on a fresh machine:
# a virtualenv with the package, then FerretDB and Redis through `event-manager services`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: up test services

## make up: services, API (and GraphiQL) on http://127.0.0.1:8000/graphql; Ctrl-C stops it.
up: $(STAMP)
	$(BIN)/event-manager up

## make test: the full test suite against real FerretDB and Redis.
test: $(STAMP)
	$(BIN)/event-manager services start
	$(BIN)/python -m pytest

## make bench: the benchmark (bench/run.py): services, its own API and worker, every
## scenario; a table on stdout, JSON in bench/results/. Options: make bench BENCH_ARGS="--quick".
.PHONY: bench
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

services: $(STAMP)
	$(BIN)/event-manager services start

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is needed" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)
