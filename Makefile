# Two commands: `make demo` (set up, run the reference closure end to end on local defaults)
# and `make test` (set up, run the whole test suite). Everything installs into ./.venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/notifier demo

test: $(STAMP)
	$(BIN)/ruff check notifier tests bench
	$(BIN)/ruff format --check notifier tests bench
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check notifier tests bench
	$(BIN)/ruff format --check notifier tests bench

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
