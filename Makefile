# Two entry points: `make run` (the app on its embedded default model) and `make test`.
# Each creates .venv on first use. torch is pinned first so that pip keeps a CPU build where one is on disk.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0

$(VENV)/.app: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q "$(TORCH)" || $(PY) -m pip install -q "torch>=2.2,<2.15"
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.test: $(VENV)/.app
	$(PY) -m pip install -q -e ".[test]"
	touch $@

.PHONY: run test lint
run: $(VENV)/.app
	$(PY) -m streamlit run app.py

test: $(VENV)/.test
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
	$(PY) -m pytest -q

lint: $(VENV)/.test
	$(PY) -m ruff check . && $(PY) -m ruff format --check .
