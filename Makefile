# Everything a fresh machine needs is installed from PyPI into .venv/ by these targets.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test unit bench soak lint typecheck dev clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dealflow demo

dev: $(STAMP)
	$(BIN)/dealflow dev

# lint and types first: they fail in seconds, the suite in about a minute
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# the pure tests alone (no PostgreSQL, no Temporal, no subprocess): seconds
unit: $(STAMP)
	$(BIN)/pytest -q -m unit

# benchmarks print ratios measured side by side and write bench/results/*.json (not part of CI)
bench: $(STAMP)
	$(BIN)/python -m bench.system_bench
	$(BIN)/python -m bench.metrics_bench

# thirty minutes at a steady deal rate, reporting throughput, memory and errors minute by minute
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes 30

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy


clean:
	rm -rf $(VENV) .dealflow .pytest_cache .mypy_cache .ruff_cache
