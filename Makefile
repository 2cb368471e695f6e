# orch: the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

.PHONY: demo test bench lint tools clean

tools:
	@scripts/check-tools.sh

$(PY):
	$(PYTHON) -m venv $(VENV)

# the project, and the project with its test extras (re-installed when pyproject.toml changes)
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

demo: tools $(VENV)/.installed
	$(PY) scripts/demo.py

test: tools $(VENV)/.installed-test
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m pytest -n 2 -q

bench: tools $(VENV)/.installed-test
	$(PY) bench/run.py

lint: $(VENV)/.installed-test
	$(PY) -m ruff check src tests bench scripts

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache .hypothesis
