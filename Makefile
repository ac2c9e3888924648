# The two commands the README promises: `make demo` (main job) and `make test` (tests).
# Both set everything up first on a fresh Debian machine (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: setup demo test test-fast lint docs

setup:
	VENV=$(VENV) bash scripts/setup.sh

# Main job: a real small ablation (ablations/quick.yaml: 4 mixers x 2 patch sizes x 3 seeds
# on Fashion-MNIST, embedded local Ray) ending in a report. Writes to $(RESULTS)/quick;
# the committed results/quick was made with `make demo RESULTS=results`.
RESULTS ?= runs
demo: setup
	$(BIN)/mixerlab sweep ablations/quick.yaml --results $(RESULTS)
	$(BIN)/mixerlab analyze $(RESULTS)/quick

# Full test suite (what CI runs): the layers contract (pyproject.toml, [tool.importlinter]),
# the manual built with --strict (a broken link or missing page fails),
# then the tests.
test: setup
	$(BIN)/lint-imports
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir $${TMPDIR:-/tmp}/mixerlab-site
	$(BIN)/python -m pytest -q --durations=25

# Skip the slow (multi-process, multi-epoch) tests.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests analysis benchmarks

# The manual (mkdocs.yml, docs/): served at http://127.0.0.1:8000, rebuilt as files change;
# warnings are shown but do not stop the server (make test builds it with --strict).
docs: setup
	$(BIN)/mkdocs serve --no-strict
