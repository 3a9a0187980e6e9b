# priorscan — the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck imports pytest bench system lock migration clean notebooks

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -c constraints.txt -e '.[test,spark]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/priorscan --db sqlite:///./demo.db demo

system:
	bash scripts/setup-system.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check priorscan mpi imaging dedupe api regionsynth tests bench scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# the import contract (.importlinter): layers priorscan < mpi < imaging < dedupe < api, and each package's front
imports: $(STAMP)
	$(VENV)/bin/lint-imports

pytest: $(STAMP) system
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

test: lint typecheck imports pytest

bench: $(STAMP)
	$(PIP) install -q -c constraints.txt -e '.[test,spark,bench]'
	$(PY) -m bench $(BENCH_ARGS)

# every analysts' notebook executed against a freshly generated region, rendered with its figures to docs/notebooks/
notebooks: $(STAMP)
	$(PIP) install -q -c constraints.txt -e '.[test,spark,notebooks]'
	$(PY) scripts/notebooks.py $(NOTEBOOK_ARGS)

lock:
	$(PIP) freeze --exclude-editable | grep -v '^-e' > constraints.txt

migration: $(STAMP)
	$(PY) -m priorscan.migrations.regenerate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
