# pilotid: `make demo` runs the main job on the embedded default; `make test` runs everything.
# As root, `make test` first prepares the node (Debian packages, test accounts, sudoers rule)
# and keeps its virtualenv where the unprivileged test accounts can reach it.

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

.PHONY: test demo node venv lint docs clean

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
	$(PY) -m pip install -q -e '.[test]' ./tests/plugin_dist

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
	$(PY) -m pip install -q '.[docs]'
	$(PY) -m sphinx -q -W -b html docs docs/_build/html

clean:
	rm -rf .venv build dist *.egg-info docs/_build demo-run
