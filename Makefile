# Everything a fresh machine needs is installed from PyPI into .venv/ by these targets, except the
# browser the browser tests drive: Debian's chromium, which `browser` installs with apt-get when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the browser tests' chromium (tests/support/browser.py reads the same variable)
DEALFLOW_CHROMIUM ?= /usr/bin/chromium

.PHONY: install browser demo test unit bench bench-org soak lint typecheck dev clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP) browser

# nothing to do when the browser is there; as root, Debian's chromium from apt; otherwise a message
browser:
	@if [ -x "$(DEALFLOW_CHROMIUM)" ]; then :; \
	elif [ "$(DEALFLOW_CHROMIUM)" != /usr/bin/chromium ]; then \
		echo "DEALFLOW_CHROMIUM=$(DEALFLOW_CHROMIUM) is not an executable file" >&2; exit 1; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	else \
		echo "the browser tests need Debian's chromium at /usr/bin/chromium; install it as root with:" >&2; \
		echo "    apt-get update && apt-get install -y chromium" >&2; \
		exit 1; \
	fi

demo: $(STAMP)
	$(BIN)/dealflow demo

dev: $(STAMP)
	$(BIN)/dealflow dev

# lint and types first: they fail in seconds, the suite in about a minute
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

# the pure tests alone (tests/unit and the tests marked unit beside their modules; no PostgreSQL,
# no Temporal, no subprocess); one layer alone is `pytest -m store` (engine, application, web, browser)
unit: $(STAMP)
	$(BIN)/pytest -q -m unit

# benchmarks print ratios measured side by side and write bench/results/*.json, with the machine
# and the load they ran under (not part of CI); each stops the servers it started, however it ends.
# `bench` is sized for at most 20 minutes on 2 cores; `bench-org` runs one organisation's sizes
# (10M events, 100,000 closed deals imported, 10,000 open deals held), for an hour or more
bench: $(STAMP)
	$(BIN)/python -m bench.system_bench
	$(BIN)/python -m bench.metrics_bench
	$(BIN)/python -m bench.web_bench
	$(BIN)/python -m bench.import_bench

bench-org: $(STAMP)
	$(BIN)/python -m bench.metrics_bench --size org
	$(BIN)/python -m bench.import_bench --size org
	$(BIN)/python -m bench.system_bench --size org
	$(BIN)/python -m bench.web_bench --size org

# thirty minutes at a steady deal rate, reporting throughput, memory and errors minute by minute
soak: $(STAMP)
	$(BIN)/python -m bench.soak --minutes 30

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy


clean:
	rm -rf $(VENV) .dealflow .pytest_cache .mypy_cache .ruff_cache test-artifacts
