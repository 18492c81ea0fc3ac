# Quick start:  make demo   (set up, then run the main job on generated toy data)
#               make test   (set up, then run the test suite)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test lint format clean-venv

setup:
	VENV=$(VENV) bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_main_job.py

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean-venv:
	rm -rf $(VENV)
