# l3fab: every target runs as root on a fresh clone (see .ci/setup).
PYTHON := .venv/bin/python

.PHONY: setup test lint demo bench

setup:
	bash .ci/setup

test: setup
	$(PYTHON) -m pytest -q tests

# The static checks (also run by tests/unit/test_static_checks.py); configured in pyproject.toml.
lint: setup
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

demo: setup
	$(PYTHON) -m l3fab.cli.demo

bench: setup
	$(PYTHON) -m l3fab.bench.ingest

bench-tenancy: setup
	$(PYTHON) -m l3fab.bench.tenancy

bench-stall: setup
	$(PYTHON) -m l3fab.bench.stall

# Structure-aware fuzzing of decoder + session + table (bench/fuzz.py); CI runs a short smoke
# (tests/unit/test_fuzz_smoke.py). FUZZ_MESSAGES / FUZZ_SEED override the defaults.
.PHONY: fuzz
fuzz: setup
	$(PYTHON) -m l3fab.bench.fuzz --messages $(or $(FUZZ_MESSAGES),2000000) --seed $(or $(FUZZ_SEED),1)
