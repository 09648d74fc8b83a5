# The two quickstart commands, on a fresh machine (each installs what it needs on first use):
#   make demo   the instructor pipeline on the bundled sample submissions (SQLite gradebook in demo/)
#   make test   the kit's test suite (what CI runs)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test release install system-deps

install: $(STAMP) system-deps

# The grading sandbox is drawn with bubblewrap (Debian/Ubuntu package `bubblewrap`; `setpriv` comes
# with util-linux). Root (CI) installs it here; a non-root user runs `sudo apt-get install bubblewrap`
# once, or lowers the course's requirement (see README, "Where the sandbox is drawn").
# The tests also start a throwaway PostgreSQL server (tests/postgres_server.py) for nbgrader's gradebook:
# Debian's `postgresql` package gives its binaries (in /usr/lib/postgresql/<major>/bin) and the `postgres`
# user they run as under root. Without it the tests skip, except on CI (CI=true), where they fail.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "note: bubblewrap is not installed (sudo apt-get install bubblewrap); grading will refuse to run" >&2; fi; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: PostgreSQL is not installed (sudo apt-get install postgresql); its tests will be skipped" >&2; fi; }

# requirements.txt pins the whole course environment (torch 2.13.0 CPU, nbgrader, jupyter, pytest,
# matplotlib); the kit itself is installed editable on top, so its pytest plugin and CLI are registered.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP) system-deps
	$(BIN)/backprop-kit demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

# After editing source/: regenerate release/ and solutions/ (then commit them; `make test` checks they match).
release: $(STAMP)
	$(BIN)/backprop-kit release
