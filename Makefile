# TecsaS3: `make demo` shows the system working, `make test` proves it. Both install what they
# need into .venv on first run (and again whenever pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint format bench clean help train

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

install: $(STAMP)  ## create .venv and install the project with every extra but [train]

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; set PYTHON=python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

DEMO_ARGS ?= --for 30s

demo: $(STAMP)  ## run the whole system on embedded defaults for 30 s, then check nothing was lost
	$(BIN)/tecsa-demo $(DEMO_ARGS)

test: $(STAMP)  ## run the test suite (needs PostgreSQL and Mosquitto on 127.0.0.1; .ci/run starts them)
	@$(BIN)/pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure, not a pass" >&2; fi; \
	exit $$rc

lint: $(STAMP)  ## formatting, lint, strict types, package boundaries
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)  ## apply the formatter and safe lint fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## print the performance figures the issues name (nothing is asserted)
	$(BIN)/python -m bench

TRAIN_VENV := .venv-train
TRAIN_STAMP := $(TRAIN_VENV)/.installed

$(TRAIN_STAMP): pyproject.toml
	@test -x $(TRAIN_VENV)/bin/python || $(PYTHON) -m venv $(TRAIN_VENV)
	$(TRAIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TRAIN_VENV)/bin/python -m pip install --quiet -e '.[train]'
	@touch $@

train: $(TRAIN_STAMP)  ## train the triage model on SYNTHETIC data (.venv-train, tensorflow-cpu); writes cloud/models/artifacts and docs/models
	$(TRAIN_VENV)/bin/python -m cloud.models train

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .import_linter_cache
