# The two commands the README promises: `make demo` (main job) and `make test` (tests).
# Both set everything up first on a fresh Debian machine (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test test-fast lint

setup:
	VENV=$(VENV) bash scripts/setup.sh

# Main job: describe every registered model at Fashion-MNIST scale.
demo: setup
	bash scripts/demo.sh

# Full test suite (what CI runs).
test: setup
	$(BIN)/python -m pytest -q

# Skip the slow (multi-process, multi-epoch) tests.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests analysis benchmarks
