# orch: the two commands of the quick start are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python

# the real agents the end-to-end tests drive, pinned, installed into .agents/: Claude Code and Codex with npm
# (without npm their tests are reported as skipped), Aider from PyPI into its own virtualenv
CLAUDE_CODE_VERSION := 2.1.328
CODEX_VERSION       := 0.169.0
AIDER_VERSION       := 0.86.2
AGENTS_STAMP        := .agents/.installed-$(CLAUDE_CODE_VERSION)-$(CODEX_VERSION)
AIDER_STAMP         := .agents/aider/.installed-$(AIDER_VERSION)

.PHONY: demo test bench soak lint tools test-tools agents clean

tools:
	@scripts/check-tools.sh

# what the tests and the bench drive besides: GitHub's gh (against a scripted forge) and Chromium (the web page)
test-tools:
	@scripts/check-tools.sh --tests

$(PY):
	$(PYTHON) -m venv $(VENV)

# the project, and the project with its test extras (re-installed when pyproject.toml changes)
# (orch's modules are byte-compiled here: an editable install with PYTHONDONTWRITEBYTECODE set would compile them
# from source on every call)
$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	$(PY) -m compileall -q src
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[test]'
	$(PY) -m compileall -q src
	@touch $@ $(VENV)/.installed

demo: tools $(VENV)/.installed
	$(PY) scripts/demo.py

agents:
	@if command -v npm >/dev/null 2>&1; then \
		if [ ! -f $(AGENTS_STAMP) ]; then \
			echo "installing Claude Code $(CLAUDE_CODE_VERSION) and Codex $(CODEX_VERSION) into .agents/"; \
			npm install --silent --no-audit --no-fund --prefix .agents \
				@anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION) @openai/codex@$(CODEX_VERSION) \
				&& touch $(AGENTS_STAMP); \
		fi; \
	else \
		echo "npm not found: the real-agent tests will be skipped (install Node.js and npm to run them)"; \
	fi
	@if [ ! -f $(AIDER_STAMP) ]; then \
		echo "installing Aider $(AIDER_VERSION) into .agents/aider/"; \
		rm -rf .agents/aider && $(PYTHON) -m venv .agents/aider \
			&& .agents/aider/bin/python -m pip install -qq --disable-pip-version-check aider-chat==$(AIDER_VERSION) \
			&& touch $(AIDER_STAMP); \
	fi

test: test-tools agents $(VENV)/.installed-test
	@$(PY) -m compileall -q src
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m mypy
	$(PY) -m pytest -n 3 -q -rs

# the reliability suite's fault campaign for MINUTES minutes (default 10), on both cores
MINUTES ?= 10
soak: test-tools agents $(VENV)/.installed-test
	@$(PY) -m compileall -q src
	ORCH_SOAK_SECONDS=$$(( $(MINUTES) * 60 )) $(PY) -m pytest -n 2 -q -rs tests/test_faults.py

bench: test-tools $(VENV)/.installed-test
	@$(PY) -m compileall -q src
	$(PY) bench/run.py

lint: $(VENV)/.installed-test
	$(PY) -m ruff check src tests bench scripts
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .agents build dist .pytest_cache .ruff_cache .hypothesis
