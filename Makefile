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

## The AsyncAPI project's parser (tools/asyncapi), which validates `eventbus asyncapi` documents in the tests.
ASYNCAPI := tools/asyncapi/node_modules/.installed
$(ASYNCAPI): tools/asyncapi/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix tools/asyncapi --no-audit --no-fund --ignore-scripts && touch $@; \
	else \
		echo "npm not found: tools/asyncapi not installed (the AsyncAPI validation test skips, and fails under CI=true)"; \
	fi

install: $(BIN)/.installed $(ASYNCAPI)

## Run the demo: embedded SNS/SQS emulator, a Celery worker, events, callbacks; cleans up after itself.
demo: $(BIN)/.installed
	$(BIN)/eventbus demo --port 4566

## Start the local services the tests need (PostgreSQL, Redis) if they are down.
services:
	scripts/ensure-services

## The whole test suite: unit, contract and integration (emulator, PostgreSQL, real workers), in TEST_PROCESSES
## pytest processes (pytest-xdist; tests/conftest.py keeps a module's tests, and every PostgreSQL test, in one; 0: none).
TEST_PROCESSES ?= 2
test: $(BIN)/.installed $(ASYNCAPI) services
	$(BIN)/python -m pytest -n $(TEST_PROCESSES)

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict src
