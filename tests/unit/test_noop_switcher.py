"""NoopSwitcher: the payload runs as the pilot, in a session of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid import values
from pilotid.errors import SwitchExecError, WorkdirError
from pilotid.identity.accounts import Account
from pilotid.interfaces import IIdentitySwitcher
from pilotid.queue import QueueSettings
from pilotid.strategies.noop import NoopSwitcher
from pilotid.values import WrapperMarker
from tests.unit.switcher_helpers import alive, close_logs, credential, open_logs, wait_for


@pytest.fixture
def switcher():
    return NoopSwitcher(QueueSettings("ANALY_DEMO"))


def test_noop_switcher_provides_the_switcher_interface(switcher):
    assert verifyClass(IIdentitySwitcher, NoopSwitcher)
    assert verifyObject(IIdentitySwitcher, switcher)
    assert switcher.name == "noop"


def test_probe_answers_the_pilots_own_account(switcher, tmp_path):
    assert switcher.probe(credential(tmp_path)) == Account.current()


def test_handover_gives_the_payload_the_pilots_copy(switcher, tmp_path):
    cred = credential(tmp_path)
    handover = switcher.open(cred, Account.current(), tmp_path).handover
    assert handover.payload_proxy == cred.path
    assert not handover.from_stdin


def test_launch_runs_the_wrapper_in_the_workdir_in_a_new_session(switcher, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent/preload.so")
    monkeypatch.setenv("X509_USER_PROXY", "/pilot/own/proxy")
    script = tmp_path / "wrapper.sh"
    script.write_text('pwd; echo "sid=$(ps -o sid= -p $$)"; env | sort; cat; echo err >&2\n')
    logs = open_logs(tmp_path)
    me = Account.current()
    session = switcher.open(credential(tmp_path), me, tmp_path)
    process = session.launch(["/bin/bash", str(script)], logs)
    assert process.wait(10) == 0
    close_logs(logs)
    out = (tmp_path / "payload.stdout").read_text()
    assert out.splitlines()[0] == str(tmp_path)
    assert f"sid={process.pid}" in out.replace(" ", "")
    assert "LD_PRELOAD" not in out and "X509_USER_PROXY" not in out
    assert f"USER={me.name}" in out
    assert (tmp_path / "payload.stderr").read_text() == "err\n"


def test_launch_of_a_missing_wrapper_is_an_exec_error(switcher, tmp_path):
    logs = open_logs(tmp_path)
    with pytest.raises(SwitchExecError, match="cannot execute the wrapper"):
        session = switcher.open(credential(tmp_path), Account.current(), tmp_path)
        session.launch([str(tmp_path / "missing.sh")], logs)
    close_logs(logs)


def test_terminate_reaches_every_process_of_the_payload(switcher, tmp_path):
    script = tmp_path / "wrapper.sh"
    script.write_text(
        "trap 'echo TERM >> wrapper-term; exit 143' TERM\n"
        "bash -c 'trap \"echo TERM > payload-term; exit 143\" TERM; sleep 60 & wait' &\n"
        "sleep 60 & echo $! > sleeper\n"
        "touch ready\nwait\n")
    logs = open_logs(tmp_path)
    session = switcher.open(credential(tmp_path), Account.current(), tmp_path)
    process = session.launch(["/bin/bash", str(script)], logs)
    wait_for(tmp_path / "ready")
    sleeper = int((tmp_path / "sleeper").read_text())
    session.terminate(process, signal.SIGTERM)
    assert process.wait(10) == 143
    close_logs(logs)
    wait_for(tmp_path / "payload-term")
    deadline = time.monotonic() + 5
    while alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(sleeper)
    assert session.explain(process.returncode, WrapperMarker(os.getuid(), 143)).signal == 15


def test_sigkill_reaches_a_payload_in_its_own_process_group(switcher, tmp_path):
    """The wrapper runs the payload under ``set -m``; SIGKILL cannot be forwarded by it."""
    script = tmp_path / "wrapper.sh"
    script.write_text(
        "set -m\n"
        "( trap '' TERM; exec sleep 60 ) & echo $! > payload\n"
        "set +m\ntouch ready\nwait\n")
    logs = open_logs(tmp_path)
    session = switcher.open(credential(tmp_path), Account.current(), tmp_path)
    process = session.launch(["/bin/bash", str(script)], logs)
    wait_for(tmp_path / "ready")
    payload = int((tmp_path / "payload").read_text())
    try:
        assert os.getpgid(payload) == payload != process.pid
        session.terminate(process, signal.SIGKILL)
        assert process.wait(10) == 0  # the payload went first: the wrapper ended on its own
        deadline = time.monotonic() + 5
        while alive(payload) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(payload), "the payload survived SIGKILL to the wrapper"
    finally:
        close_logs(logs)
        if alive(payload):
            os.kill(payload, signal.SIGKILL)


def test_sigkill_reaches_a_wrapper_that_does_not_end_after_its_payload(switcher, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setattr("pilotid.strategies.processes.WRAPPER_SETTLE", 0.2)
    script = tmp_path / "wrapper.sh"
    script.write_text("set -m\n( exec sleep 60 ) &\nset +m\ntouch ready\n"
                      "wait\nexec sleep 60\n")
    logs = open_logs(tmp_path)
    session = switcher.open(credential(tmp_path), Account.current(), tmp_path)
    process = session.launch(["/bin/bash", str(script)], logs)
    wait_for(tmp_path / "ready")
    try:
        session.terminate(process, signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL
    finally:
        close_logs(logs)
        if process.poll() is None:
            process.kill()


def test_terminate_after_the_end_is_harmless(switcher, tmp_path):
    logs = open_logs(tmp_path)
    session = switcher.open(credential(tmp_path), Account.current(), tmp_path)
    process = session.launch(["/bin/true"], logs)
    process.wait(10)
    close_logs(logs)
    session.terminate(process, signal.SIGTERM)


def test_no_marker_means_the_wrapper_could_not_run(switcher, tmp_path):
    outcome = switcher.open(credential(tmp_path), Account.current(), tmp_path).explain(127, None)
    assert outcome.kind == values.SWITCH_FAILED
    assert isinstance(outcome.error, SwitchExecError)


def test_payload_status_passes_through(switcher, tmp_path):
    session = switcher.open(credential(tmp_path), Account.current(), tmp_path)
    assert session.explain(0, WrapperMarker(os.getuid(), 0)).succeeded
    outcome = session.explain(3, WrapperMarker(os.getuid(), 3))
    assert (outcome.kind, outcome.exit_code) == (values.PAYLOAD_FAILED, 3)


def test_launched_process_has_no_stdin(switcher, tmp_path):
    logs = open_logs(tmp_path)
    session = switcher.open(credential(tmp_path), Account.current(), tmp_path)
    process = session.launch(["/bin/cat"], logs)
    assert process.wait(10) == 0
    assert isinstance(process, subprocess.Popen)
    close_logs(logs)


def test_launch_in_a_missing_workdir_is_a_workdir_error(switcher, tmp_path):
    logs = open_logs(tmp_path)
    with pytest.raises(WorkdirError, match="gone"):
        session = switcher.open(credential(tmp_path), Account.current(), tmp_path / "gone")
        session.launch(["/bin/true"], logs)
    close_logs(logs)


def test_a_marker_of_another_uid_is_a_switch_failure_whatever_the_status(switcher, tmp_path):
    """The session, not the launcher, says the switch put the payload elsewhere."""
    me = Account.current()
    session = switcher.open(credential(tmp_path), me, tmp_path)
    outcome = session.explain(0, WrapperMarker(me.uid + 1, payload_status=0))
    assert outcome.kind == values.SWITCH_FAILED
    assert f"uid {me.uid + 1}" in str(outcome.error)
    assert session.explain(0, WrapperMarker(me.uid, payload_status=0)).succeeded
