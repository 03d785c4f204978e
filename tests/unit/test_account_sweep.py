"""The account-wide sweep of leftovers (``leftover_processes: "account"``): its passes, and
which sessions use it.  The processes of the account are faked (``account_processes``);
``tests/security/test_processes_outliving.py`` sweeps a real account."""

from __future__ import annotations

import logging
import signal
import subprocess
from types import SimpleNamespace

import pytest

from pilotid.errors import SwitchNotPermittedError
from pilotid.identity.accounts import Account
from pilotid.queue import QueueSettings
from pilotid.strategies import account_sweep, session
from pilotid.strategies.account_sweep import LEFTOVER_PROCESSES, account_processes, sweep_account
from pilotid.strategies.base import SwitcherBase, stdin_handover
from pilotid.strategies.noop import NoopSwitcher
from pilotid.strategies.processes import EVERY_PROCESS, kill_argv
from tests.unit.switcher_helpers import alive, credential

STOP, KILL = signal.SIGSTOP, signal.SIGKILL


def looks(monkeypatch, *answers):
    """Make ``account_processes`` answer ``answers`` in turn (the last one from then on)."""
    pending = list(answers)
    monkeypatch.setattr(account_sweep, "account_processes",
                        lambda uid: pending.pop(0) if len(pending) > 1 else pending[0])


def test_the_kill_command_names_the_signal_in_one_word():
    """procps-ng 4.0's kill prints its usage for ``-s STOP -- -1`` and signals nothing."""
    assert kill_argv(STOP, [EVERY_PROCESS], "/bin/kill") == ["/bin/kill", "-STOP", "--", "-1"]
    assert kill_argv(KILL, [12, 13], "/bin/kill") == ["/bin/kill", "-KILL", "--", "12", "13"]


def test_stop_is_sent_again_until_a_pass_finds_nothing_new_nor_running(monkeypatch):
    looks(monkeypatch, {10: "R"}, {10: "T", 11: "R"}, {10: "T", 11: "T"}, {})
    sent = []
    assert sweep_account(1234, sent.append, "alice")
    assert sent == [STOP, STOP, STOP, KILL]


def test_an_account_with_no_process_gets_one_stop_and_the_kill(monkeypatch):
    looks(monkeypatch, {})
    sent = []
    assert sweep_account(1234, sent.append, "alice")
    assert sent == [STOP, KILL]


def test_an_account_that_never_holds_still_is_killed_after_the_last_pass(monkeypatch, caplog):
    monkeypatch.setattr(account_sweep, "STOP_PASSES", 4)
    looks(monkeypatch, {10: "R"}, {10: "R"}, {10: "R"}, {10: "R"}, {})
    sent = []
    with caplog.at_level(logging.ERROR):
        assert sweep_account(1234, sent.append, "alice")
    assert sent == [STOP] * 4 + [KILL]
    assert "still forking after 4 SIGSTOP passes" in caplog.text


def test_a_process_still_there_after_the_kill_is_reported(monkeypatch, caplog):
    monkeypatch.setattr(account_sweep, "KILL_SETTLE", 0)
    looks(monkeypatch, {10: "D"})
    with caplog.at_level(logging.ERROR):
        assert not sweep_account(1234, lambda signum: None, "alice")
    assert "still there after SIGKILL" in caplog.text and "10" in caplog.text


def test_a_refused_signal_ends_the_sweep_with_the_switchs_error(monkeypatch):
    looks(monkeypatch, {10: "R"})

    def refuse(signum):
        raise SwitchNotPermittedError("sudo refused")

    with pytest.raises(SwitchNotPermittedError):
        sweep_account(1234, refuse, "alice")


def test_account_processes_lists_a_stopped_child_of_this_account():
    child = subprocess.Popen(["/bin/sleep", "30"])
    try:
        child.send_signal(STOP)
        for _ in range(1000):  # bounded: the stop takes effect at once on an idle sleep
            if account_processes(Account.current().uid).get(child.pid) == "T":
                break
        assert account_processes(Account.current().uid).get(child.pid) == "T"
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid) and child.pid not in account_processes(Account.current().uid)


class SignallingSwitcher(SwitcherBase):
    """A switcher that switches, records ``signal_account`` and starts nothing."""

    name = "signalling"

    def __init__(self, settings):
        super().__init__(settings)
        self.signalled = []

    def handover(self, credential, account, workdir):
        return stdin_handover(account, workdir)

    def signal_account(self, signum, credential, account, workdir):
        self.signalled.append((signum, account.name))


def queue(scope):
    return QueueSettings(name="Q", switcher="sudo", options={LEFTOVER_PROCESSES.name: scope})


def stop_leftovers(switcher, tmp_path, monkeypatch):
    """Open a session of ``switcher`` and stop its leftovers; the uids swept, in order."""
    swept = []

    def sweep(uid, send, owner):
        swept.append(uid)
        send(STOP)
        return True

    monkeypatch.setattr(session, "sweep_account", sweep)
    opened = switcher.open(credential(tmp_path), Account.current(), tmp_path)
    opened.stop_leftovers(SimpleNamespace(pid=-4242))
    return swept


def test_a_queue_leasing_accounts_per_job_sweeps_the_account_through_the_switch(
        tmp_path, monkeypatch):
    switcher = SignallingSwitcher(queue("account"))
    assert stop_leftovers(switcher, tmp_path, monkeypatch) == [Account.current().uid]
    assert switcher.signalled == [(STOP, Account.current().name)]


def test_the_default_sweeps_nothing(tmp_path, monkeypatch):
    switcher = SignallingSwitcher(QueueSettings(name="Q", switcher="sudo"))
    assert stop_leftovers(switcher, tmp_path, monkeypatch) == []


def test_a_session_without_a_switch_never_sweeps_the_pilots_own_account(tmp_path, monkeypatch):
    """The queue refuses the setting with ``noop``; a session with no switch ignores it
    all the same."""
    assert stop_leftovers(NoopSwitcher(queue("account")), tmp_path, monkeypatch) == []


def test_a_failed_sweep_is_logged_and_the_adopted_leftovers_are_still_ended(
        tmp_path, monkeypatch, caplog):
    ended = []

    def refused(uid, send, owner):
        raise SwitchNotPermittedError("sudo refused to send SIGSTOP")

    monkeypatch.setattr(session, "sweep_account", refused)
    monkeypatch.setattr(session.leftovers, "end_leftovers",
                        lambda process, belongs, kill, owner: ended.append(owner))
    opened = SignallingSwitcher(queue("account")).open(credential(tmp_path),
                                                        Account.current(), tmp_path)
    with caplog.at_level(logging.ERROR):
        opened.stop_leftovers(SimpleNamespace(pid=-4242))
    assert "cannot stop every process of" in caplog.text and "sudo refused" in caplog.text
    assert ended == [Account.current().name]
