# waybill-watch: every target sets up what it needs (virtualenv, broker jars) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: venv jars run test test-unit lint fmt schemas broker-up broker-down db-up db-down bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

jars: venv
	$(BIN)/python -m waybill_watch.devbroker fetch

run: venv
	$(BIN)/waybill-watch demo

test: venv
	$(BIN)/pytest

test-unit: venv
	$(BIN)/pytest tests/unit

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

schemas: venv
	$(BIN)/waybill-watch schemas --out schemas

broker-up: venv
	$(BIN)/python -m waybill_watch.devbroker up

broker-down: venv
	$(BIN)/python -m waybill_watch.devbroker down

# Prints the database URL (default port 5433); data and log in .run/postgres.
db-up: venv
	$(BIN)/python -m waybill_watch.devdb up

db-down: venv
	$(BIN)/python -m waybill_watch.devdb down

bench: venv
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) .run .pytest_cache .mypy_cache .ruff_cache
