# Two commands: `make demo` (set up, run the reference closure end to end on local defaults)
# and `make test` (set up, run the whole test suite). Everything installs into ./.venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint setup clean bench lock

# The sandbox (local Twilio-compatible and SMTP servers) is a second distribution in sandbox/:
# the demo, the tests and the benchmarks need it; the runtime install and the image do not.
$(STAMP): pyproject.toml sandbox/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./sandbox
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/notifier demo

# Two test processes by default: half the suite waits on subprocesses, servers and sockets, so on
# two cores this takes 10-12 minutes instead of 17-18 (`make test TEST_WORKERS=0` runs in one).
TEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# Gates: style, strict types for notifier/ (migrations aside), and the layering contracts.
lint: $(STAMP)
	$(BIN)/ruff check notifier tests bench sandbox
	$(BIN)/ruff format --check notifier tests bench sandbox
	$(BIN)/mypy
	$(BIN)/lint-imports

# The image's pinned dependencies (with hashes), from pyproject.toml's runtime dependencies.
lock: $(STAMP)
	$(BIN)/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
