# Two commands do all set-up on a fresh machine (Python 3.11 + build tools):
#   make demo   installs quantcli into .venv and runs the main job on the bundled model
#   make test   installs quantcli + the oracles (ggml, llama.cpp) into .venv and runs the tests
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test bench install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.runtime: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.test: pyproject.toml requirements/test.txt $(VENV)/.runtime
	$(PIP) install -q -r requirements/test.txt
	touch $@

install: $(VENV)/.runtime
install-test: $(VENV)/.test

demo: $(VENV)/.runtime
	$(BIN)/quant demo

test: $(VENV)/.test
	$(BIN)/python -m pytest -q

bench: $(VENV)/.test
	$(BIN)/python -m benchmarks.engine

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
