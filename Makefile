# pilotid: `make demo` runs the main job on the embedded default; `make test` runs everything.
# As root, `make test` first prepares the node (Debian packages, test accounts, sudoers rule)
# and keeps its virtualenv where the unprivileged test accounts can reach it.
# `make install` puts pilotid for the node's pilots in a virtualenv under $(PREFIX) and links
# its `pilotid` command into $(BINDIR): Debian 12's own Python refuses `pip install`
# (externally managed), and a pilot account must reach the command without root's files.

SHELL := /bin/bash
IS_ROOT := $(shell [ "$$(id -u)" = 0 ] && echo yes)
ifeq ($(IS_ROOT),yes)
VENV ?= /opt/pilotid-test/venv
BASE_PYTHON ?= /usr/bin/python3
else
VENV ?= .venv
BASE_PYTHON ?= python3
endif
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
PREFIX ?= /opt/pilotid
BINDIR ?= /usr/local/bin

.PHONY: test demo node venv lint docs clean install uninstall

test: node venv
	$(PY) -m pytest $(PYTEST_ARGS) tests

demo: venv
	$(PY) -m pilotid.demo

node:
ifeq ($(IS_ROOT),yes)
	bash tests/system/setup-node.sh
else
	@echo "make test: not root, so the node is not prepared; system tests will be skipped (reasons below)"
endif

venv: $(PY)
	$(PY) -m pip install -q -e '.[test,docs]' ./tests/plugin_dist  # docs: the suite builds them (sphinx -W)

$(PY):
	$(BASE_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# shellcheck reads the wrapper's template as it stands, placeholders and all.  Left out:
# SC2170, SC2242  a number placeholder (__MAXSIGNAL__, __FAILURE_STATUS__) before it is filled;
# SC2317          functions reached only through trap, which shellcheck does not follow;
# SC2034          variables set with `builtin export`, which shellcheck does not see as export;
# SC1007, SC1010  `state= uid=` (empty on purpose) and `_pilotid_phase=done` (a word, not
#                 the keyword).
SHELLCHECK_EXCLUDE := SC2170,SC2242,SC2317,SC2034,SC1007,SC1010

lint: venv
	$(PY) -m pip install -q ruff mypy import-linter
	$(PY) -m ruff check pilotid tests
	$(PY) -m mypy pilotid
	$(VENV)/bin/lint-imports --no-cache
	shellcheck --exclude=$(SHELLCHECK_EXCLUDE) pilotid/payloads/wrapper.sh

docs: venv
	$(PY) -m pip install -q -e '.[docs]'  # -e: keep the editable install the other targets use
	$(PY) -m sphinx -q -W -b html docs docs/_build/html

install:
	@$(BASE_PYTHON) -c 'import ensurepip' 2>/dev/null || { echo "make install:" \
	  "$(BASE_PYTHON) cannot make a virtualenv; on Debian: apt-get install python3-venv" >&2; \
	  exit 1; }
	umask 022 && $(BASE_PYTHON) -m venv $(PREFIX)
	umask 022 && $(PREFIX)/bin/python -m pip install -q --disable-pip-version-check .
	chmod -R go-w,a+rX $(PREFIX)
	mkdir -p $(BINDIR)
	ln -sfn $(PREFIX)/bin/pilotid $(BINDIR)/pilotid
	@echo "pilotid installed in $(PREFIX); command: $(BINDIR)/pilotid"

uninstall:
	[ "$$(readlink $(BINDIR)/pilotid)" != "$(PREFIX)/bin/pilotid" ] || rm -f $(BINDIR)/pilotid
	rm -rf $(PREFIX)

clean:
	rm -rf .venv build dist *.egg-info docs/_build demo-run
