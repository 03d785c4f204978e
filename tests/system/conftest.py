"""Fixtures of the system tests: the session's VOMS lab and myproxy-server, started once for
every module that uses them (the node's accounts and directories are in tests/conftest.py)."""

from __future__ import annotations

import shutil

import pytest

from tests.system import node
from tests.system.myproxy_lab import MyProxyLab, missing_tool
from tests.system.voms_lab import VomsLab


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
