"""Shared fixtures (the test CA, the real node, the scene of the attacker and fault suites),
and the rule that makes a skipped system test a failure in CI.

Set ``PILOTID_REQUIRE_SYSTEM=1`` (``.ci/run`` does) and any skipped test under
``tests/system``, ``tests/security`` or ``tests/faults`` fails instead: in CI every real
component must be there.

An ordinary user's run skips hundreds of system tests for the same few reasons (not root,
node not prepared): ``fold_skips_by_reason`` makes the short summary (``-ra``, set in
pyproject.toml) one ``SKIPPED [count]`` line per reason instead of one per test file.

A run fails too, naming the test, if a test leaves a ``/tmp/pilotid-egg-*`` directory of a
test account behind (``tests.egg_guard``).
"""

from __future__ import annotations

import copy
import os
import pwd
import shutil
import sys
from pathlib import Path

import pytest

from pilotid.identity.testca import TestCA
from tests.egg_guard import EggGuard
from tests.system import node

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


def fold_skips_by_reason(skipped: list) -> list:
    """Copies of the ``skipped`` reports where every reason given at more than one place
    names the directory those places share, without a line number, so that pytest's
    summary counts them on one line."""
    places: dict = {}
    for report in skipped:
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            path, lineno, reason = report.longrepr
            places.setdefault(reason, set()).add((str(path), lineno))
    folded = []
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else None
        if reason is not None and len(places[reason]) > 1:
            report = copy.copy(report)
            shared = os.path.commonpath([path for path, _ in places[reason]])
            report.longrepr = (shared, None, reason)
        folded.append(report)
    return folded


def pytest_terminal_summary(terminalreporter):
    # Runs inside the terminal reporter's own hook, before its short summary is written.
    if terminalreporter.stats.get("skipped"):
        terminalreporter.stats["skipped"] = fold_skips_by_reason(
            terminalreporter.stats["skipped"])


def _egg_guard() -> EggGuard:
    uids = {os.geteuid()}  # root's too: noop jobs run as whoever runs the tests
    for name in (node.PILOT, node.ALICE, node.BOB, node.CAROL):
        try:
            uids.add(pwd.getpwnam(name).pw_uid)
        except KeyError:
            pass
    return EggGuard(Path("/tmp"), uids)  # noqa: S108 - the queues' default egg_cache_base


EGGS = _egg_guard()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    before = EGGS.names()
    yield
    EGGS.note(before, item.nodeid)


def pytest_sessionfinish(session):
    left = EGGS.left()
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write("\n")
            reporter.write_sep("=", "egg caches left behind (issue 16, item 8)", red=True)
            for path, test in sorted(left.items()):
                reporter.write_line(f"{path}: made during {test}")


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


# The real node, for tests/system, tests/security and tests/faults.

def pytest_collection_modifyitems(items):
    for item in items:
        if any(d in Path(str(item.fspath)).parents for d in STRICT_DIRS):
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


@pytest.fixture
def scene(shared_tmp, users, pilot_install):
    """The pilot's home, transformations and queue settings on the real node (the attacker's
    and the fault-injection suites)."""
    from tests.security.scene import Scene

    made = Scene(shared_tmp, users, pilot_install)
    yield made
    made.cleanup()
