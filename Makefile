# waybill-watch: every target sets up what it needs (virtualenv, broker jars) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEV_LOCK     := requirements/dev.lock
RUNTIME_LOCK := requirements/runtime.lock
UV_VERSION   := 0.13.9
LOCK_VENV    := .run/lock-tools
UV           := $(LOCK_VENV)/bin/uv
LOCK_COMPILE := --quiet --universal --python-version 3.11 --generate-hashes --custom-compile-command 'make lock'
LOCK_FLAGS   ?=

.PHONY: venv jars run test test-unit lint fmt schemas broker-up broker-down db-up db-down bench clean

# Installs exactly the pinned, hash-checked set of requirements/dev.lock (runtime + dev extra,
# plus pip and the build backend), then the project itself without touching its dependencies.
$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Regenerates the locks from pyproject.toml (+ requirements/build.in) with uv, for Python 3.11
# on every platform (--universal), keeping the current pins where they still fit; to move pins:
#   make lock LOCK_FLAGS=--upgrade   or   make lock LOCK_FLAGS='--upgrade-package aiohttp'
# runtime.lock (runtime dependencies only, for the container image) is constrained by dev.lock,
# so both pin the same versions. uv itself lives in its own venv under .run/.
.PHONY: lock audit
lock: $(UV)
	$(UV) pip compile pyproject.toml requirements/build.in --extra dev $(LOCK_COMPILE) \
	  -o $(DEV_LOCK) $(LOCK_FLAGS)
	$(UV) pip compile pyproject.toml -c $(DEV_LOCK) $(LOCK_COMPILE) -o $(RUNTIME_LOCK) $(LOCK_FLAGS)

$(UV):
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install -q 'uv==$(UV_VERSION)'

# Known vulnerabilities in the locked set (pip-audit). Skips, without failing, when the
# vulnerability service cannot be reached; fails on a vulnerability with a fixed version that
# requirements/audit-ignore.txt does not accept (scripts/audit.py says why).
audit: venv
	$(BIN)/python scripts/audit.py

jars: venv
	$(BIN)/python -m waybill_watch.devbroker fetch

run: venv
	$(BIN)/waybill-watch demo

test: venv
	$(BIN)/pytest

test-unit: venv
	$(BIN)/pytest tests/unit

lint: venv
	$(BIN)/ruff check src tests benchmarks faults
	$(BIN)/ruff format --check src tests benchmarks faults
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff check --fix src tests benchmarks faults
	$(BIN)/ruff format src tests benchmarks faults

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

# Fault harness (faults/): couriers push over HTTP to two ingest replicas while a nemesis kills
# workers, a broker and the data dir; a verifier compares every topic with replay. One summary
# line (FAULTS ok|FAILED ...), non-zero exit on a failed check; report in .run/faults/<time>/.
.PHONY: faults faults-quick soak
faults: venv jars
	$(BIN)/python -m faults

faults-quick: venv jars
	$(BIN)/python -m faults --quick

# Steady load, no faults: RSS, lag, latency and errors every 10 s, plotted; pass = no growth.
SOAK_MINUTES ?= 30
soak: venv jars
	$(BIN)/python -m faults soak --minutes $(SOAK_MINUTES) $(if $(SOAK_RATE),--rate $(SOAK_RATE))
