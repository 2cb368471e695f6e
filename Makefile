# orch: the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test bench lint tools clean

tools:
	@scripts/check-tools.sh

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	@touch $(STAMP)

demo: tools $(STAMP)
	$(PY) -m orch.demo

test: tools $(STAMP)
	$(PY) -m ruff check src tests bench
	$(PY) -m pytest -n 2 -q

bench: tools $(STAMP)
	$(PY) bench/run.py

lint: $(STAMP)
	$(PY) -m ruff check src tests bench

clean:
	rm -rf $(VENV) build dist .pytest_cache
