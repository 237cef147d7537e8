# handwritten-digits: the commands of the README.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
ARGS ?=
PORT ?= 5000
HOST ?= 127.0.0.1
BACKEND ?=
AUTH ?=
DATA ?=
# make test's pytest workers (pytest-xdist; each test file runs whole in one of them): 0 runs the suite in
# this process, one test after another
JOBS ?= 2

.PHONY: help install system test test-fast lint hooks format docs docs-build train sweep ui server serve-model bench bench-full clean

help:  ## this list: each target and what it does
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z-]+):.*## /\1\t/' | awk -F'\t' '{printf "  make %-12s %s\n", $$1, $$2}'

install: system  ## create .venv and install the project with its test tools (and the Debian packages below)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'

# handwriting fonts made from people's writing: the reading benchmark's other hands (src/data/other_hands.py)
HAND_FONTS := fonts-dkg-handwriting fonts-bwht fonts-breip fonts-humor-sans fonts-ecolier-court fonts-dancingscript \
  fonts-klee fonts-rufscript fonts-sjfonts fonts-kaushanscript fonts-seto fonts-yusei-magic
# other handwriting fonts: digits the recommended model trains on (src/data/training_fonts.py), never measured on
TRAINING_FONTS := fonts-nanum-extra fonts-tlwg-purisa-ttf fonts-comic-neue fonts-tomsontalks fonts-aoyagi-soseki \
  fonts-staypuft

system:  ## Debian's Chromium (browser tests, driven headless by Playwright), PostgreSQL (server tests), handwriting fonts
	@missing=""; \
	test -x /usr/bin/chromium || missing="chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	for font in $(HAND_FONTS) $(TRAINING_FONTS); do dpkg -s $$font >/dev/null 2>&1 || missing="$$missing $$font"; done; \
	if [ -n "$$missing" ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

test:  ## the whole suite, as CI runs it (in an empty HOME of its own: tests/conftest.py), JOBS files at a time; the 15 slowest
	$(PY) -m pytest -n $(JOBS) --dist loadfile --durations=15 $(ARGS)

test-fast:  ## the edit-test loop: the tests that train no more than a few steps (under 4 minutes)
	$(PY) -m pytest -n $(JOBS) --dist loadfile -m "not slow" --durations=15 $(ARGS)

lint:  ## ruff (lint and format check) and mypy (the types of src/, hydra_plugins/ and bench/)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

hooks:  ## run make lint's checks before each commit (pre-commit, .pre-commit-config.yaml)
	$(VENV)/bin/pre-commit install

format:  ## fix what ruff can fix and format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

DOCS_PORT ?= 8001
docs:  ## the documentation site, served with live reload on http://127.0.0.1:$(DOCS_PORT)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:$(DOCS_PORT)

docs-build:  ## build the site into site/ with --strict: a broken link or a page missing from the nav fails
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

train:  ## the main job: python -m src.train (extra overrides: make train ARGS="backbone=vgg19")
	$(PY) -m src.train $(ARGS)

sweep:  ## compare the three ImageNet backbones with the seed's settings (a Hydra multirun)
	$(PY) -m src.train +experiment=compare_backbones $(ARGS)

ui:  ## the MLflow UI on the project's store (MLFLOW_TRACKING_URI, else mlruns/), on 127.0.0.1:$(PORT)
	$(PY) -m src.ui --port $(PORT)

server:  ## a shared MLflow tracking server with the UI: SQLite in mlruns/server/ (or BACKEND=postgresql://...); AUTH=1: logins
	$(PY) -m src.server --host $(HOST) --port $(PORT) $(if $(BACKEND),--backend $(BACKEND)) $(if $(AUTH),--auth) $(ARGS)

MODEL ?= models:/handwritten-digits@champion
serve-model:  ## MLflow's model server for MODEL on $(HOST):$(PORT) (POST /invocations); uvicorn from the venv
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/mlflow models serve -m "$(MODEL)" --env-manager local -h $(HOST) -p $(PORT)

bench:  ## quick benchmark (aim: 10 minutes on 2 cores): tables in experiments/bench/ and docs/results.md (DATA=path/mnist.npz: full MNIST)
	$(PY) -m bench --quick $(if $(DATA),--data $(DATA))

bench-full:  ## the full benchmark: full MNIST, 25 epochs where the targets say so (about an hour on 2 cores; docs/results.md)
	$(PY) -m bench $(if $(DATA),--data $(DATA))

clean:  ## remove run outputs (Hydra directories and the local MLflow store)
	find experiments -mindepth 1 ! -name README.md -exec rm -rf {} +
	find mlruns -mindepth 1 ! -name README.md -exec rm -rf {} +
