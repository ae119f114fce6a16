# The two commands of the README: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: demo test bench lint install clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/trackline demo $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q $(ARGS)

bench: install
	$(BIN)/trackline bench $(ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache
