# Two commands do all set-up on a fresh machine (Python 3.11 + build tools):
#   make demo   installs quantcli into .venv and runs the main job on the bundled model
#   make test   installs quantcli + the oracles (ggml, llama.cpp) into .venv and runs the tests
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
REF    := .venv-ref

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

# llama.cpp's own converter runs in a separate venv (torch + transformers pins clash with ours)
$(REF)/.ref: requirements/reference.txt
	$(PYTHON) -m venv $(REF)
	$(REF)/bin/python -m pip install -q --upgrade pip
	$(REF)/bin/python -m pip install -q -r requirements/reference.txt
	touch $@

install: $(VENV)/.runtime
install-test: $(VENV)/.test $(REF)/.ref

# the main job on the bundled model (fixtures/demo, a small llama with a real tokenizer):
# three files from one read -- a K-quant mix, Q8_0 and F16 -- then what they hold
demo: $(VENV)/.runtime
	$(BIN)/quant convert fixtures/demo Q4_K_M Q8_0 F16 -o out --force
	$(BIN)/quant plan fixtures/demo Q4_K_M -o out

test: $(VENV)/.test $(REF)/.ref
	$(BIN)/python -m pytest -q --durations=25

bench: $(VENV)/.test $(REF)/.ref
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) $(REF) .cache .pytest_cache .hypothesis build *.egg-info
