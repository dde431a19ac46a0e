# Two commands do all set-up on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lock-installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

.PHONY: run test test-fast system-deps bench fuzz venv clean

venv: $(STAMP)

# Find Python 3.10 (TFX 1.16 needs < 3.11): on PATH, else through pyenv.
$(STAMP): requirements.lock setup.py pyproject.toml
	@set -e; py="$$(bash scripts/find_python310.sh)"; \
	if [ ! -x "$(PY)" ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi; \
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock; \
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .; \
	touch $(STAMP)

# Exit 3 (already serving: an unchanged re-run) is a success for the demo; other codes are not.
run: venv
	@$(VENV)/bin/lensflow run $(ARGS); status=$$?; [ $$status -eq 0 ] || [ $$status -eq 3 ]

# Debian packages some tests use (Chromium, Fashion-MNIST idx files): set-up, never a test.
system-deps:
	@bash scripts/system_deps.sh

# Two pytest-xdist workers (the machines have 2 cores); tests are grouped in conftest.py.
TEST_WORKERS ?= 2

test: venv system-deps
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The unit layer only (no pipeline runs, no browser): a few minutes. No test here shares a
# pipeline home, so tests spread over the workers one by one, not file by file.
test-fast: venv
	$(PY) -m pytest -n $(TEST_WORKERS) --dist load -m "not e2e and not slow and not browser" $(PYTEST_ARGS)

# Speed figures of docs/PERFORMANCE.md (minutes to hours; not part of the tests).
bench: venv
	$(PY) benchmarks/run.py $(ARGS)

# The fuzz figure of docs/RELIABILITY.md (a few minutes; not part of the tests).
fuzz: venv
	$(PY) benchmarks/fuzz_inputs.py --out /tmp/lensflow-fuzz $(ARGS)

clean:
	rm -rf $(VENV)
