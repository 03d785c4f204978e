"""Shared fixtures, and the rule that makes a skipped system test a failure in CI.

Set ``PILOTID_REQUIRE_SYSTEM=1`` (``.ci/run`` does) and any skipped test under
``tests/system``, ``tests/security`` or ``tests/faults`` fails instead: in CI every real
component must be there.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilotid.identity.testca import TestCA

STRICT = os.environ.get("PILOTID_REQUIRE_SYSTEM") == "1"
SYSTEM_DIR = Path(__file__).parent / "system"
#: Directories whose tests need the real node (a skip there fails under STRICT).
STRICT_DIRS = (SYSTEM_DIR, Path(__file__).parent / "security", Path(__file__).parent / "faults")

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
BOB_DN = "/DC=org/DC=example/OU=People/CN=Bob O'Builder (Test)"
CAROL_DN = "/DC=org/DC=example/OU=People/CN=Carol Unsudoable"
EVE_DN = "/DC=org/DC=example/OU=People/CN=Eve Unmapped 666"
PILOT_DN = "/DC=org/DC=example/OU=Robots/CN=Pilot Robot 99"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    parents = Path(str(item.fspath)).parents
    if STRICT and report.skipped and any(d in parents for d in STRICT_DIRS):
        if not hasattr(report, "wasxfail"):
            report.outcome = "failed"
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
            report.longrepr = f"system test skipped under PILOTID_REQUIRE_SYSTEM=1: {reason}"


class Users:
    """The test CA and the identities it issued, by short name."""

    def __init__(self) -> None:
        self.ca = TestCA()
        self.alice = self.ca.issue(ALICE_DN)
        self.bob = self.ca.issue(BOB_DN)
        self.carol = self.ca.issue(CAROL_DN)
        self.eve = self.ca.issue(EVE_DN)
        self.pilot = self.ca.issue(PILOT_DN)


@pytest.fixture(scope="session")
def users() -> Users:
    """A throwaway CA with alice, bob, carol, eve (unmapped) and the pilot."""
    return Users()
