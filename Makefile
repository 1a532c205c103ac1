# nercc: the two commands are `make run` and `make test`; both create or reuse .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install run test test-all bench lint clean

install: $(STAMP)

# Reinstalls only when pyproject.toml changes (the stamp is older), so repeated calls are fast.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) -m nercc.demo

# pytest exits 5 when it collects no test: make fails then, as it should.
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest -m "" $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) scripts/bench_coding.py

lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(PY) -m ruff format --check src tests scripts

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build src/*.egg-info
