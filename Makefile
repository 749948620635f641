# Two commands on a fresh machine: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint install services

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Run the demo: embedded SNS/SQS emulator, a Celery worker, events, callbacks; cleans up after itself.
demo: $(BIN)/.installed
	$(BIN)/eventbus demo --port 4566

## Start the local services the tests need (PostgreSQL, Redis) if they are down.
services:
	scripts/ensure-services

## The whole test suite: unit, contract and integration (emulator, PostgreSQL, real workers).
test: $(BIN)/.installed services
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src
