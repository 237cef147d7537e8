# handwritten-digits: the commands of the README.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
ARGS ?=

.PHONY: install test lint format train sweep ui clean

install:  ## create .venv and install the project with its test tools
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'

test:  ## the whole suite, as CI runs it
	$(PY) -m pytest

lint:  ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format:
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

train:  ## the main job: python -m src.train (extra overrides: make train ARGS="backbone=vgg19")
	$(PY) -m src.train $(ARGS)

clean:  ## remove run outputs (Hydra directories and the local MLflow store)
	find experiments -mindepth 1 ! -name README.md -exec rm -rf {} +
	find mlruns -mindepth 1 ! -name README.md -exec rm -rf {} +
