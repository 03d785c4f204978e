"""The outcome table every switcher shares (SwitcherBase.explain) and the start environment."""

from __future__ import annotations

import os
import signal

import pytest

from pilotid import values
from pilotid.errors import (
    AccountMappingError,
    ConfigurationError,
    PayloadFailedError,
    PayloadTerminatedError,
    RescheduleRequest,
    SwitchError,
    SwitchExecError,
    SwitchSystemError,
)
from pilotid.identity.accounts import Account
from pilotid.queue import QueueSettings
from pilotid.strategies import base
from pilotid.strategies.base import SwitcherBase, signal_label, start_environment
from pilotid.values import WrapperMarker


class TableSwitcher(SwitcherBase):
    """The base table with a recognisable switch failure for "no marker"."""

    def explain_without_marker(self, returncode: int) -> SwitchError:
        return SwitchSystemError(f"no marker, status {returncode}")


@pytest.fixture
def switcher():
    return TableSwitcher(QueueSettings("TEST"))


@pytest.mark.parametrize("returncode, marker, kind, exit_code, signum, error", [
    (0, WrapperMarker(1002, 0), values.SUCCEEDED, 0, None, None),
    (7, WrapperMarker(1002, 7), values.PAYLOAD_FAILED, 7, None, PayloadFailedError),
    (204, WrapperMarker(1002, 202), values.PAYLOAD_FAILED, 202, None, PayloadFailedError),
    (143, WrapperMarker(1002, 143), values.TERMINATED, None, 15, PayloadTerminatedError),
    (137, WrapperMarker(1002, 137), values.TERMINATED, None, 9, PayloadTerminatedError),
    (255, WrapperMarker(1002, 255), values.PAYLOAD_FAILED, 255, None, PayloadFailedError),
    (-15, WrapperMarker(1002, None), values.TERMINATED, None, 15, PayloadTerminatedError),
    (-9, WrapperMarker(1002, 0), values.TERMINATED, None, 9, PayloadTerminatedError),
    (-15, None, values.TERMINATED, None, 15, PayloadTerminatedError),
    (3, WrapperMarker(1002, None), values.PAYLOAD_FAILED, None, None, PayloadFailedError),
    (0, WrapperMarker(1002, None), values.PAYLOAD_FAILED, None, None, PayloadFailedError),
    (0, None, values.SWITCH_FAILED, None, None, SwitchSystemError),
    (1, None, values.SWITCH_FAILED, None, None, SwitchSystemError),
])
def test_explain_follows_the_shared_table(switcher, returncode, marker, kind, exit_code,
                                          signum, error):
    outcome = switcher.explain(returncode, marker)
    assert (outcome.kind, outcome.exit_code, outcome.signal) == (kind, exit_code, signum)
    if error is None:
        assert outcome.error is None and outcome.error_code == 0
    else:
        assert type(outcome.error) is error
        assert outcome.error_code == error.code


def test_success_is_never_reported_without_a_marker(switcher):
    for returncode in (0, 1, 126, 127, 143, 255):
        assert not switcher.explain(returncode, None).succeeded


def test_marker_status_wins_over_the_switch_status(switcher):
    """gLExec answers 204 when the payload exited 201-204: the marker says which."""
    outcome = switcher.explain(204, WrapperMarker(1002, 203))
    assert outcome.exit_code == 203


def test_termination_names_the_signal(switcher):
    outcome = switcher.explain(-signal.SIGTERM, WrapperMarker(1002))
    assert "SIGTERM" in str(outcome.error)


def test_signal_label_for_unknown_numbers():
    assert signal_label(9) == "SIGKILL (9)"
    assert signal_label(999) == "signal 999"


def test_base_says_the_wrapper_never_ran_when_no_marker_was_left():
    outcome = SwitcherBase(QueueSettings("TEST")).explain(3, None)
    assert outcome.kind == "switch_failed"
    assert isinstance(outcome.error, SwitchExecError)
    assert "status 3" in str(outcome.error) and "never ran" in str(outcome.error)


def test_start_environment_carries_nothing_of_the_pilots(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent/evil.so")
    monkeypatch.setenv("X509_USER_PROXY", "/tmp/pilot-proxy")
    monkeypatch.setenv("BEARER_TOKEN", "secret")
    monkeypatch.setenv("LANG", "C.UTF-8")
    me = Account.current()
    env = start_environment(me)
    assert set(env) <= {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ"}
    assert env["USER"] == env["LOGNAME"] == me.name
    assert env["LANG"] == "C.UTF-8"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"


def test_a_mapping_to_root_or_to_the_pilot_is_refused():
    for uid in (0, os.geteuid()):
        with pytest.raises(AccountMappingError, match="never runs as that account"):
            base.refuse_unsafe_mapping(Account("x", uid, uid), "/CN=x", "grid-mapfile m")
    user = Account("user", 54321, 54321)
    assert base.refuse_unsafe_mapping(user, "/CN=x", "grid-mapfile m") is user


def test_reschedule_rule_hands_back_only_a_refused_switch_of_a_queue_that_asks():
    refused = SwitchError("refused")
    asking = QueueSettings("TEST", on_probe_failure="reschedule")
    handed_back = base.reschedule_if_asked(asking, refused, "the sudo probe failed")
    assert isinstance(handed_back, RescheduleRequest) and handed_back.__cause__ is refused
    assert base.reschedule_if_asked(QueueSettings("TEST"), refused, "x") is refused
    setup = ConfigurationError("bad queue")
    assert base.reschedule_if_asked(asking, setup, "x") is setup


def test_switch_program_said_reads_only_what_came_after_the_launch(tmp_path):
    log = tmp_path / "stderr"
    log.write_bytes(b"sudo: an old refusal\n")
    offset = log.stat().st_size
    with open(log, "ab") as err:
        err.write(b"payload noise\nsudo: a password is required\n")
    assert base.switch_program_said(str(log), offset, "sudo:") == "a password is required"
    assert base.switch_program_said(str(log), offset) == "sudo: a password is required"
    assert base.switch_program_said(None, 0) is None
