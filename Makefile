# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test lint bench system-packages clean

$(BIN)/cargobay: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

## Install cargobay and run it on 127.0.0.1:5000, data in ./cargobay-data, with a printed login.
run: $(BIN)/cargobay
	$(BIN)/cargobay quickstart

## Install what the tests need (Debian packages and a venv), check style and types, run every test.
test: system-packages $(BIN)/cargobay lint
	$(BIN)/pytest

## Benchmark cargobay against registry:2 side by side (issue 5): one table, JSON in bench/results/.
## BENCH_ARGS passes options, e.g. `make bench BENCH_ARGS="--quick"` or "--workers 2".
bench: $(BIN)/cargobay
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(BIN)/cargobay
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

system-packages:
	scripts/install-system-packages.sh

clean:
	rm -rf $(VENV) build *.egg-info
