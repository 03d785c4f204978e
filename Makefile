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

lint: venv
	$(PY) -m pip install -q ruff mypy
	$(PY) -m ruff check pilotid tests
	$(PY) -m mypy pilotid

docs: venv
	$(PY) -m pip install -q '.[docs]'
	$(PY) -m sphinx -q -W -b html docs docs/_build/html

clean:
	rm -rf .venv build dist *.egg-info docs/_build demo-run
