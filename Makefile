# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN = $(VENV)/bin

.PHONY: run test lint system-packages clean

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

lint: $(BIN)/cargobay
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

system-packages:
	scripts/install-system-packages.sh

clean:
	rm -rf $(VENV) build *.egg-info
