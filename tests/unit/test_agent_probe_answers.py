"""The agent keeps the probe answers its children learnt, for its later children.

A real agent (``serve``, forked from the test) and real clients; each job's child runs
the sudo switcher's check against the fake sudo of ``test_sudo_switcher``, which counts
its calls.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from typing import Iterator, List

from pilotid.agent.client import FORWARDED, run_through_agent
from pilotid.agent.probes import ProbeReports
from pilotid.agent.server import serve
from pilotid.errors import SwitchError
from pilotid.identity.accounts import Account
from pilotid.queue import QueueSettings
from pilotid.strategies.probecache import PILOT_PROBE_CACHE, ProbeCache
from pilotid.strategies.sudo import SudoSwitcher
from tests.unit.switcher_helpers import ALICE_DN
from tests.unit.test_agent import wait_for
from tests.unit.test_sudo_switcher import fake_sudo, sudo_calls  # noqa: F401 (a fixture)


def check_switch(sudo: Path, mapfile: Path) -> "object":
    """The ``run`` of the agent's children: ``LIFETIME USER`` checks that sudo may switch
    to ``USER`` under ``probe_cache_lifetime`` ``LIFETIME`` (``none``: the agent's life)."""
    def run(argv: List[str]) -> int:
        lifetime, user = argv
        options = {"grid_mapfile": mapfile,
                   "probe_cache_lifetime": None if lifetime == "none" else int(lifetime)}
        switcher = SudoSwitcher(QueueSettings("ANALY_SUDO", switcher="sudo", options=options),
                                sudo=str(sudo))
        try:
            switcher.check_switch(Account.current(), Account(user, 54321, 54321))
        except SwitchError:
            return 1
        return 0
    return run


@contextlib.contextmanager
def running_agent(tmp_path: Path, sudo: Path) -> Iterator[Path]:
    """An agent forked from the test, with an empty probe cache: its socket."""
    path = tmp_path / "agent" / "socket"
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            PILOT_PROBE_CACHE.clear()
            status = serve(path, check_switch(sudo, tmp_path / "mapfile"))
        finally:
            os._exit(status)
    try:
        wait_for("the agent's socket", path.exists)
        yield path
    finally:
        os.kill(pid, signal.SIGTERM)
        os.waitpid(pid, 0)


def job(path: Path, lifetime: str, user: str = "someone") -> int:
    """One ``pilotid run`` client's exit status (the test's own signal handlers kept)."""
    kept = {signum: signal.getsignal(signum) for signum in FORWARDED}
    try:
        return run_through_agent(str(path), [lifetime, user])
    finally:
        for signum, handler in kept.items():
            signal.signal(signum, handler)


def test_a_second_jobs_child_does_not_probe_again(tmp_path, fake_sudo):  # noqa: F811
    with running_agent(tmp_path, fake_sudo) as path:
        assert [job(path, "none") for _ in range(3)] == [0, 0, 0]
    assert len(sudo_calls(fake_sudo)) == 1


def test_a_lifetime_of_zero_probes_in_every_child(tmp_path, fake_sudo):  # noqa: F811
    with running_agent(tmp_path, fake_sudo) as path:
        assert [job(path, "0") for _ in range(2)] == [0, 0]
    assert len(sudo_calls(fake_sudo)) == 2


def test_a_failed_probe_is_not_kept_for_the_next_child(tmp_path, fake_sudo):  # noqa: F811
    with running_agent(tmp_path, fake_sudo) as path:
        assert [job(path, "none", "refused") for _ in range(2)] == [1, 1]
    assert len(sudo_calls(fake_sudo)) == 2


def reports_between(agent_cache: ProbeCache, child_cache: ProbeCache) -> ProbeReports:
    """A pipe whose child side is ``child_cache`` and agent side ``agent_cache``, in one
    process (the child's end is not closed)."""
    reports = ProbeReports(agent_cache)
    child_cache.observer = reports.report
    return reports


def test_the_agent_keeps_the_time_the_child_learnt_its_answer():
    """``probe_cache_lifetime`` counts from the child's probe, not from the report."""
    now = [1000.0]
    agent_cache: ProbeCache = ProbeCache(clock=lambda: now[0])
    child_cache: ProbeCache = ProbeCache(clock=lambda: now[0] - 50.0)
    reports = reports_between(agent_cache, child_cache)
    try:
        child_cache.put(("sudo", "/usr/bin/sudo", 1000, 1002), True)
        reports.receive()
        assert agent_cache.get(("sudo", "/usr/bin/sudo", 1000, 1002), 60) is True
        assert agent_cache.get(("sudo", "/usr/bin/sudo", 1000, 1002), 50) is None
    finally:
        reports.close()


def test_a_forgotten_answer_is_forgotten_by_the_agent_too():
    agent_cache: ProbeCache = ProbeCache()
    child_cache: ProbeCache = ProbeCache()
    reports = reports_between(agent_cache, child_cache)
    try:
        child_cache.put(("sudo", "/usr/bin/sudo", 1000, 1002), True)
        child_cache.forget(("sudo", "/usr/bin/sudo", 1000, 1002))
        reports.receive()
        assert agent_cache.get(("sudo", "/usr/bin/sudo", 1000, 1002)) is None
    finally:
        reports.close()


def test_an_account_mapping_stays_in_its_job():
    """gLExec's answers (an account for one user's DN) are not handed to later jobs."""
    agent_cache: ProbeCache = ProbeCache()
    child_cache: ProbeCache = ProbeCache()
    reports = reports_between(agent_cache, child_cache)
    try:
        child_cache.put(("glexec", "uid", ALICE_DN), Account("alice", 1002, 1002))
        reports.receive()
        assert agent_cache.get(("glexec", "uid", ALICE_DN)) is None
    finally:
        reports.close()
