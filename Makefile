# The two entry points of the README: `make demo` and `make test`. Both set up .venv first, with
# everything a workstation runs (`.[all,dev]`); the car side is `pip install vitdeploy` alone.
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is enough for everything but GPU benchmarks; pip takes it from a local
# wheel where the machine has one (CI does), else from the index.
TORCH ?= torch==2.13.0

.PHONY: setup demo test lint

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[all,dev]"
	touch $@

demo: setup
	$(BIN)/vitdeploy demo --out runs/demo

lint: setup
	$(BIN)/ruff check vitdeploy tests tools

test: lint
	$(BIN)/pytest
