# The two commands of the README: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
ARGS ?=

.PHONY: demo test bench quality chaos lint install lock browser clean
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Exact versions from the lock file (written by `make lock` from pyproject.toml's ranges), then
# trackline itself without resolving again. The embedded engines (chDB, Tansu) come with
# dev.lock; the production image installs prod.lock, which has neither.
LOCK := requirements/dev.lock

$(BIN)/.installed: pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

UV_COMPILE := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 --quiet
lock: install
	$(UV_COMPILE) --extra dev --extra bench --extra embedded -o requirements/dev.lock
	$(UV_COMPILE) -o requirements/prod.lock

demo: install
	$(BIN)/trackline demo $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# Headless Chromium for the ops-page test: Debian's package, which new machines lack.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (headless browser for the ops page test)"; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: lint browser
	$(BIN)/pytest -q $(ARGS)

bench: install
	$(BIN)/trackline bench $(ARGS)

# Detection precision and recall, estimate accuracy: a simulated world that knows the truth
# (config/quality-world.toml, frozen) through the real pipeline at accelerated event time.
quality: install
	$(BIN)/trackline quality $(ARGS)

# Every fault (kill -9, scale 1 -> 3 -> 1, ClickHouse and broker outages, failpoints in the
# exact windows) over a seeded workload, counted against the pure core's answer. `make test`
# runs the short version (ARGS=--short).
chaos: install
	$(BIN)/python -m trackline.chaos $(ARGS)

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache .mypy_cache
