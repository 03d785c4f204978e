"""Fixtures for tests on the real node: accounts, shared directories, a pilot installation,
and the session's VOMS lab and myproxy-server (started once for every module that uses it)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.system import node
from tests.system.myproxy_lab import MyProxyLab, missing_tool
from tests.system.voms_lab import VomsLab


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


@pytest.fixture(scope="session")
def voms_lab(real_node, users):
    """Trust directory (the test CA), vomsdir and fake VOMS server, for the whole session."""
    for tool in ("voms-proxy-fake", "voms-proxy-info"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian package voms-clients)")
    base = node.make_shared_dir("pilotid-lab-")
    yield VomsLab(base, users.ca)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def myproxy(voms_lab, users):
    """The session's one real myproxy-server: run as the ``myproxy`` account on an
    ephemeral loopback port, trusting the test CA, with alice, bob, eve and the pilot's
    certificates in the lab; stopped (by its PID) when the session ends."""
    reason = missing_tool()
    if reason:
        pytest.skip(reason)
    lab = MyProxyLab(voms_lab, {"alice": users.alice, "bob": users.bob, "eve": users.eve,
                                "pilot": users.pilot})
    try:
        lab.start()
        yield lab
    finally:
        lab.stop()
