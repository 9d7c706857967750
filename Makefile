# l3fab: every target runs as root on a fresh clone (see .ci/setup).
PYTHON := .venv/bin/python

.PHONY: setup test demo bench

setup:
	bash .ci/setup

test: setup
	$(PYTHON) -m pytest -q tests

demo: setup
	$(PYTHON) -m l3fab.cli.demo

bench: setup
	$(PYTHON) -m l3fab.bench.ingest

bench-tenancy: setup
	$(PYTHON) -m l3fab.bench.tenancy
