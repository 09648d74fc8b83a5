# The two quickstart commands, on a fresh machine (each installs what it needs on first use):
#   make demo   the instructor pipeline on the bundled sample submissions (SQLite gradebook in demo/)
#   make test   the kit's test suite (what CI runs)
# and, for a lab machine's students: make student (their environment: no nbgrader, no formgrader).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
STUDENT_VENV := .venv-student

.PHONY: demo test release install system-deps browser-deps student wheel

install: $(STAMP) system-deps

# System packages, installed when run as root on Debian/Ubuntu (CI); a non-root user installs them once
# with sudo (see README, "Quickstart"):
# * bubblewrap: the grading sandbox is drawn with it (`setpriv` comes with util-linux);
# * postgresql: the tests start a throwaway server (tests/postgres_server.py) for nbgrader's gradebook;
#   without it those tests skip, except on CI (CI=true), where they fail;
# * chromium, chromium-driver: the browser tests drive Debian's Chromium (tests/test_browser.py);
#   without it they skip, except on CI, where they fail.
system-deps:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "note: bubblewrap is not installed (sudo apt-get install bubblewrap); grading will refuse to run" >&2; fi; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "note: PostgreSQL is not installed (sudo apt-get install postgresql); its tests will be skipped" >&2; fi; }

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "note: Chromium is not installed (sudo apt-get install chromium chromium-driver); the browser tests will be skipped" >&2; fi; }

# requirements/test.txt pins the whole course environment (requirements/instructor.txt: torch 2.13.0 CPU,
# nbgrader, JupyterLab, pytest, matplotlib) and the browser driver the tests use; the kit itself is
# installed editable on top, so its pytest plugin and CLI are registered. Nothing here names another
# package index: pip finds torch 2.13.0 where this machine's pip configuration says.
$(STAMP): requirements/instructor.txt requirements/test.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements/test.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP) system-deps
	$(BIN)/backprop-kit demo

test: $(STAMP) system-deps browser-deps
	$(BIN)/python -m pytest

# After editing source/: regenerate release/ and solutions/ (then commit them; `make test` checks they match).
release: $(STAMP)
	$(BIN)/backprop-kit release

# A student's environment on a lab machine: requirements/student.txt (no nbgrader), and the kit.
student: $(STUDENT_VENV)/.installed
$(STUDENT_VENV)/.installed: requirements/student.txt pyproject.toml
	$(PYTHON) -m venv $(STUDENT_VENV)
	$(STUDENT_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements/student.txt
	$(STUDENT_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps .
	touch $@

# The student package as a wheel (dist/), to hand out or host: `pip install backprop_kit-*.whl`.
wheel: $(STAMP)
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation -w dist .
