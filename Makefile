# Two commands do all set-up on a fresh clone: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.lock-installed
export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2
export PYTHONHASHSEED := 0

.PHONY: run test bench venv clean

venv: $(STAMP)

# Find Python 3.10 (TFX 1.16 needs < 3.11): on PATH, else through pyenv.
$(STAMP): requirements.lock setup.py pyproject.toml
	@set -e; py="$$(bash scripts/find_python310.sh)"; \
	if [ ! -x "$(PY)" ]; then echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); fi; \
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.lock; \
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .; \
	touch $(STAMP)

run: venv
	$(VENV)/bin/lensflow run $(ARGS)

test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

# Speed figures of docs/PERFORMANCE.md (minutes to hours; not part of the tests).
bench: venv
	$(PY) benchmarks/run.py $(ARGS)

clean:
	rm -rf $(VENV)
