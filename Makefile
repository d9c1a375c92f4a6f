# The two commands of the README: `make up` runs SuperScript, `make test` checks it.
# Both set up .venv from pyproject.toml first; nothing is downloaded at run time.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test lint setup clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

up: $(STAMP)
	$(BIN)/superscript up

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# Two test processes, each with its own dev server: the 10,000-item batch (minutes on
# two cores) overlaps the rest of the suite instead of running alone after it.
test: lint
	$(BIN)/pytest -n 2

clean:
	rm -rf $(VENV) .superscript .pytest_cache .mypy_cache .ruff_cache
