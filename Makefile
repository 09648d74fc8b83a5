# The two quickstart commands, on a fresh machine (each installs what it needs on first use):
#   make demo   the instructor pipeline on the bundled sample submissions (SQLite gradebook in demo/)
#   make test   the kit's test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test release install

install: $(STAMP)

# requirements.txt pins the whole course environment (torch 2.13.0 CPU, nbgrader, jupyter, pytest,
# matplotlib); the kit itself is installed editable on top, so its pytest plugin and CLI are registered.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/backprop-kit demo

test: $(STAMP)
	$(BIN)/python -m pytest

# After editing source/: regenerate release/ and solutions/ (then commit them; `make test` checks they match).
release: $(STAMP)
	$(BIN)/backprop-kit release
