# Quick start:  make demo   (set up, then run the main job on generated toy data)
#               make test   (set up, then run the test suite)
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test clean-venv

setup:
	VENV=$(VENV) bash tools/setup_env.sh

demo: setup
	$(PY) tools/run_main_job.py

test: setup
	$(PY) -m pytest tests $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
