# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-faults mutation lint bench bench-operations bench-tracking bench-load bench-stages bench-pipeline bench-request bench-durability bench-wakeups screenshots clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

run: $(VENV)/.installed  ## the example app with its worker and clock
	$(PY) -m examples.run $(ARGS)

test: $(VENV)/.installed  ## unit and integration tests (fault tests only with AUDIT_TEST_FAULTS=1)
	$(PY) -m pytest $(ARGS)

test-faults: $(VENV)/.installed  ## the fault tests: they stop and restart the PostgreSQL cluster
	AUDIT_TEST_FAULTS=1 $(PY) -m pytest -m faults $(ARGS)

mutation: $(VENV)/.installed  ## mutmut over the core modules, then the score per module and the survivors
	$(PY) -m pip install --quiet 'mutmut>=3.4,<4'
	rm -rf mutants
	$(VENV)/bin/mutmut run --max-children 2 $(ARGS) || true
	$(PY) tools/mutation_report.py

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed  ## the performance tables: the pipeline, then tamper evidence at 1,000,000 rows
	$(PY) bench/run.py $(ARGS)
	$(PY) bench/integrity.py

bench-operations: $(VENV)/.installed  ## query plans, viewer requests, export and purge on 1,000,000 rows
	$(PY) bench/operations.py $(ARGS)

bench-request: $(VENV)/.installed  ## audit.log's cost inside a Flask request, in one process (ARGS="--against REV", "--instructions")
	$(PY) bench/request_cost.py $(ARGS)

bench-durability: $(VENV)/.installed  ## audit.log's latency with a replica, WAIT 1 and the append-only file
	$(PY) bench/durability.py $(ARGS)

bench-tracking: $(VENV)/.installed  ## change tracking's cost on a commit of 10,000 rows, beside flask-audit-logger
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) bench/tracking.py $(ARGS)

bench-load: $(VENV)/.installed  ## the whole stack under wrk: plain, direct and buffered, CPU per request
	$(PY) bench/load.py $(ARGS)

bench-wakeups: $(VENV)/.installed  ## a wake-up's cost on one core and across cores (a socket pair, a lock)
	$(PY) bench/wakeups.py $(ARGS)

bench-stages: $(VENV)/.installed  ## the drain's and the sealer's Python instructions per event, under callgrind (ARGS="--against REV")
	$(PY) bench/stage_cost.py $(ARGS)

bench-pipeline: $(VENV)/.installed  ## worker, clock, Redis and PostgreSQL CPU per event at a steady rate, no web server
	$(PY) bench/pipeline.py $(ARGS)

screenshots: $(VENV)/.installed  ## docs/viewer-*.png, from headless Chromium
	$(PY) tools/viewer_screenshots.py

clean:
	rm -rf $(VENV) instance *.egg-info
