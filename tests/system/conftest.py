"""Fixtures for tests on the real node: accounts, shared directories, a pilot installation."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.system import node


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture(scope="session")
def real_node():
    """Skip (fail, in CI) unless the node was prepared by setup-node.sh and we are root."""
    reason = node.missing_prerequisite()
    if reason:
        pytest.skip(reason)
    return node


@pytest.fixture
def shared_tmp(real_node):
    """A fresh 0755 directory under /tmp that the test accounts can reach."""
    path = node.make_shared_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pilot_install(real_node):
    """(python, PYTHONPATH) with which a test account runs this checkout's pilotid."""
    base = node.make_shared_dir("pilotid-install-")
    site = node.install_pilot_copy(base)
    yield sys.executable, str(site)
    shutil.rmtree(base, ignore_errors=True)
