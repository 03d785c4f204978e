"""SudoSwitcher without root: a fake ``sudo`` script that behaves like sudo -n -u U -- CMD.

The real thing, with real accounts and the real sudo, is in tests/system/test_sudo_switcher.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess

import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid import values
from pilotid.errors import (
    AccountMappingError,
    ConfigurationError,
    SwitchError,
    SwitchExecError,
    SwitchNotPermittedError,
    SwitchUnavailableError,
    WorkdirError,
)
from pilotid.identity import accounts
from pilotid.identity.accounts import Account
from pilotid.interfaces import IIdentitySwitcher
from pilotid.queue import QueueSettings
from pilotid.strategies import sudo
from pilotid.strategies.probecache import ProbeCache
from pilotid.strategies.sudo import SudoSwitcher, payload_groups, sudo_messages
from pilotid.values import WrapperMarker
from tests.unit.switcher_helpers import (
    PROXY_BYTES,
    alive,
    close_logs,
    credential,
    open_logs,
    wait_for,
)

FAKE_SUDO = r"""#!/bin/bash
# Stands in for sudo in unit tests: sudo -n -u USER -- COMMAND...
here=$(dirname "$0")
printf '%s\n' "$*" >> "$here/sudo-calls"
[ "$1" = -n ] && [ "$2" = -u ] && [ "$4" = -- ] ||
  { echo "sudo: unexpected usage: $*" >&2; exit 1; }
user=$3; shift 4
case $user in
  refused) echo "sudo: a password is required" >&2; exit 1 ;;
esac
if [ "$1" = /bin/kill ] || [ "$1" = /usr/bin/kill ]; then
  [ -e "$here/refuse-kill" ] && { echo "sudo: a password is required" >&2; exit 1; }
fi
[ -e "$1" ] || { echo "sudo: $1: command not found" >&2; exit 1; }
exec "$@"
"""

SOMEONE = Account("someone", 54321, 54321)


@pytest.fixture
def fake_sudo(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    path = bindir / "sudo"
    path.write_text(FAKE_SUDO)
    path.chmod(0o755)
    return path


@pytest.fixture
def workdir(tmp_path):
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def switcher(fake_sudo, tmp_path):
    settings = QueueSettings("ANALY_SUDO", switcher="sudo",
                             options={"grid_mapfile": tmp_path / "mapfile"})
    return SudoSwitcher(settings, sudo=str(fake_sudo), probe_cache=ProbeCache())


@pytest.fixture
def mapped_to(monkeypatch):
    """Make the grid-mapfile lookup answer a given account (or raise)."""
    seen = []

    def use(answer):
        def fake_map_account(dn, mapfile):
            seen.append((dn, mapfile))
            if isinstance(answer, Exception):
                raise answer
            return answer
        monkeypatch.setattr(accounts, "map_account", fake_map_account, raising=False)
        return seen
    return use


def test_sudo_switcher_provides_the_switcher_interface(switcher):
    assert verifyClass(IIdentitySwitcher, SudoSwitcher)
    assert verifyObject(IIdentitySwitcher, switcher)
    assert switcher.name == "sudo"


def test_handover_asks_the_wrapper_to_store_the_proxy_from_stdin(switcher, workdir, tmp_path):
    cred = credential(tmp_path)
    first = switcher.handover(cred, SOMEONE, workdir)
    second = switcher.handover(cred, SOMEONE, workdir)
    assert first.from_stdin
    assert first.payload_proxy.parent.parent == workdir  # a handover directory of its own
    assert re.fullmatch(r"\.pilotid-proxy-54321-[0-9a-f]{16}", first.payload_proxy.parent.name)
    assert first.payload_proxy.name == "x509up"
    assert first.payload_proxy.parent != second.payload_proxy.parent
    assert not first.payload_proxy.parent.exists()


def test_missing_sudo_program_is_unavailable(tmp_path):
    switcher = SudoSwitcher(QueueSettings("Q"), sudo=str(tmp_path / "no-sudo"))
    with pytest.raises(SwitchUnavailableError, match="no-sudo"):
        switcher.sudo_path()


def test_sudo_not_installed_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setattr(sudo, "SUDO_SEARCH_PATH", str(tmp_path))
    with pytest.raises(SwitchUnavailableError, match="install"):
        SudoSwitcher(QueueSettings("Q")).sudo_path()


def sudo_queue(tmp_path, sudo_path):
    """The queue settings of a sudo queue whose ``sudo_path`` is ``sudo_path``."""
    return QueueSettings.from_mapping("ANALY_SUDO", {
        "switcher": "sudo", "grid_mapfile": str(tmp_path / "mapfile"),
        "sudo_path": str(sudo_path)})


def test_queue_sudo_path_is_the_sudo_program_the_built_switcher_runs(
        fake_sudo, tmp_path, mapped_to):
    from pilotid.registry import SWITCHER, Registry
    switcher = Registry.with_builtins().build(SWITCHER, "sudo",
                                              sudo_queue(tmp_path, fake_sudo))
    assert switcher.sudo_path() == str(fake_sudo)
    mapped_to(SOMEONE)
    assert switcher.probe(credential(tmp_path)) == SOMEONE
    assert (fake_sudo.parent / "sudo-calls").read_text().startswith("-n -u someone -- ")


def test_sudo_given_to_the_switcher_wins_over_the_queue_sudo_path(fake_sudo, tmp_path):
    switcher = SudoSwitcher(sudo_queue(tmp_path, tmp_path / "no-sudo"), sudo=str(fake_sudo))
    assert switcher.sudo_path() == str(fake_sudo)


def test_queue_without_sudo_path_looks_in_the_search_path(fake_sudo, tmp_path, monkeypatch):
    monkeypatch.setattr(sudo, "SUDO_SEARCH_PATH", str(fake_sudo.parent))
    settings = QueueSettings.from_mapping("ANALY_SUDO", {"switcher": "sudo",
                                                         "grid_mapfile": "/etc/gm"})
    assert settings.option("sudo_path") is None
    assert SudoSwitcher(settings).sudo_path() == str(fake_sudo)


def _unusable(kind, tmp_path):
    path = tmp_path / "sudo"
    if kind == "missing":
        return path
    if kind == "directory":
        path.mkdir()
        return path
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o644)
    return path


@pytest.mark.parametrize("kind, says", [
    ("missing", "does not exist"),
    ("directory", "is not a file"),
    ("not-executable", "is not executable by"),
])
def test_unusable_queue_sudo_path_is_unavailable_naming_the_field_and_the_fix(
        kind, says, tmp_path, monkeypatch):
    # a working sudo in the search path must not be used in its place
    monkeypatch.setattr(sudo, "SUDO_SEARCH_PATH", "/usr/bin:/bin")
    path = _unusable(kind, tmp_path)
    switcher = SudoSwitcher(sudo_queue(tmp_path, path))
    with pytest.raises(SwitchUnavailableError) as caught:
        switcher.sudo_path()
    message = str(caught.value)
    assert caught.value.code == 51
    assert str(path) in message and says in message
    assert "queue ANALY_SUDO's sudo_path" in message and "set sudo_path" in message
    assert "\n" not in message
    if kind == "not-executable":
        assert "mode 0644" in message


def test_unusable_queue_sudo_path_fails_the_probe(tmp_path, mapped_to):
    mapped_to(SOMEONE)
    switcher = SudoSwitcher(sudo_queue(tmp_path, tmp_path / "no-sudo"))
    with pytest.raises(SwitchUnavailableError, match="sudo_path"):
        switcher.probe(credential(tmp_path))


def test_node_checks_report_an_unusable_queue_sudo_path(tmp_path):
    switcher = SudoSwitcher(sudo_queue(tmp_path, _unusable("not-executable", tmp_path)))
    (check,) = switcher.node_checks(None)
    assert (check.name, check.status, check.error_code) == ("sudo", "fail", 51)
    assert "sudo_path" in check.detail and "not executable" in check.detail


def test_probe_without_grid_mapfile_is_a_configuration_error(fake_sudo, tmp_path):
    switcher = SudoSwitcher(QueueSettings("ANALY_X", switcher="sudo"), sudo=str(fake_sudo))
    with pytest.raises(ConfigurationError, match="ANALY_X.*grid_mapfile"):
        switcher.probe(credential(tmp_path))


def test_probe_maps_the_identity_and_checks_sudo(switcher, mapped_to, tmp_path, fake_sudo):
    seen = mapped_to(SOMEONE)
    cred = credential(tmp_path)
    assert switcher.probe(cred) == SOMEONE
    assert seen == [(cred.identity, tmp_path / "mapfile")]
    calls = (fake_sudo.parent / "sudo-calls").read_text()
    assert calls == f"-n -u someone -- {sudo.TRUE_COMMAND}\n"


def sudo_calls(fake_sudo) -> list:
    calls = fake_sudo.parent / "sudo-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def test_a_switch_sudo_allowed_is_not_checked_again_while_kept(switcher, mapped_to, tmp_path,
                                                               fake_sudo):
    mapped_to(SOMEONE)
    cred = credential(tmp_path)
    for _ in range(3):
        assert switcher.probe(cred) == SOMEONE
    assert len(sudo_calls(fake_sudo)) == 1


def test_probe_cache_lifetime_zero_checks_sudo_before_every_job(mapped_to, tmp_path, fake_sudo):
    settings = QueueSettings("ANALY_SUDO", switcher="sudo", options={
        "grid_mapfile": tmp_path / "mapfile", "probe_cache_lifetime": 0})
    switcher = SudoSwitcher(settings, sudo=str(fake_sudo), probe_cache=ProbeCache())
    mapped_to(SOMEONE)
    cred = credential(tmp_path)
    switcher.probe(cred)
    switcher.probe(cred)
    assert len(sudo_calls(fake_sudo)) == 2


def test_a_refusal_is_never_kept(switcher, mapped_to, tmp_path, fake_sudo):
    mapped_to(Account("refused", 54322, 54322))
    cred = credential(tmp_path)
    for _ in range(2):
        with pytest.raises(SwitchNotPermittedError):
            switcher.probe(cred)
    assert len(sudo_calls(fake_sudo)) == 2


def test_a_refusal_at_launch_after_a_kept_check_is_told_and_forgets_it(
        switcher, mapped_to, workdir, tmp_path, fake_sudo):
    """The sudoers rule went away after the check was kept: the launch is refused, the job
    fails with sudo's refusal, and the next job checks again (and is refused there)."""
    revoked = Account("refused", 54322, 54322)
    switcher.probe_cache.put(("sudo", str(fake_sudo), Account.current().uid, revoked.uid), True)
    mapped_to(revoked)
    cred = credential(tmp_path)
    assert switcher.probe(cred) == revoked  # kept: sudo not asked
    assert sudo_calls(fake_sudo) == []
    logs = open_logs(workdir)
    session = switcher.open(cred, revoked, workdir)
    returncode = session.launch(["/bin/true"], logs).wait(10)
    close_logs(logs)
    assert isinstance(session.explain(returncode, None).error, SwitchNotPermittedError)
    with pytest.raises(SwitchNotPermittedError):
        switcher.probe(cred)


def test_probe_refuses_a_mapping_to_the_pilot_itself(switcher, mapped_to, tmp_path):
    mapped_to(Account.current())
    with pytest.raises(AccountMappingError, match="the pilot itself" if os.getuid() else "root"):
        switcher.probe(credential(tmp_path))


def test_probe_refuses_a_mapping_to_root(switcher, mapped_to, tmp_path):
    mapped_to(Account("root", 0, 0))
    with pytest.raises(AccountMappingError, match="root"):
        switcher.probe(credential(tmp_path))


def test_probe_passes_on_a_mapping_failure(switcher, mapped_to, tmp_path):
    mapped_to(AccountMappingError("DN not in grid-mapfile"))
    with pytest.raises(AccountMappingError, match="not in grid-mapfile"):
        switcher.probe(credential(tmp_path))


def test_probe_names_the_sudoers_rule_that_is_missing(switcher, mapped_to, tmp_path):
    mapped_to(Account("refused", 54322, 54322))
    with pytest.raises(SwitchNotPermittedError) as caught:
        switcher.probe(credential(tmp_path))
    message = str(caught.value)
    pilot = Account.current().name
    assert f"{pilot} ALL=(refused) NOPASSWD: ALL" in message
    assert "a password is required" in message


def test_launch_runs_sudo_without_E_and_feeds_the_proxy_on_stdin(switcher, workdir, tmp_path,
                                                                 fake_sudo):
    logs = open_logs(workdir)
    process = switcher.launch(["/bin/bash", "-c", "cat > got-proxy; echo sid=$(ps -o sid= -p $$)"],
                              credential(tmp_path), SOMEONE, workdir, logs)
    assert process.wait(10) == 0
    close_logs(logs)
    assert (workdir / "got-proxy").read_bytes() == PROXY_BYTES
    call = (fake_sudo.parent / "sudo-calls").read_text().splitlines()[0]
    assert call.startswith("-n -u someone -- /bin/bash -c ")
    assert "-E" not in call.split()
    assert f"sid={process.pid}" in (workdir / "payload.stdout").read_text().replace(" ", "")


def test_proxy_reaches_the_wrapper_as_a_nameless_memory_file(switcher, workdir, tmp_path):
    """Seekable, so bash reads it in blocks, not a byte per system call as from a pipe."""
    logs = open_logs(workdir)
    process = switcher.launch(["/bin/bash", "-c", "readlink /proc/self/fd/0 > stdin-is; "
                               "cat > got-proxy"], credential(tmp_path), SOMEONE, workdir, logs)
    assert process.wait(10) == 0
    close_logs(logs)
    assert process.stdin is None
    assert (workdir / "stdin-is").read_text().startswith("/memfd:pilotid-proxy")
    assert (workdir / "got-proxy").read_bytes() == PROXY_BYTES


def test_proxy_goes_through_a_pipe_where_no_memory_file_can_be_made(switcher, workdir,
                                                                     tmp_path, monkeypatch):
    def no_memfd(*args):
        raise OSError(38, "Function not implemented")
    monkeypatch.setattr(os, "memfd_create", no_memfd)
    logs = open_logs(workdir)
    process = switcher.launch(["/bin/bash", "-c", "readlink /proc/self/fd/0 > stdin-is; "
                               "cat > got-proxy"], credential(tmp_path), SOMEONE, workdir, logs)
    assert process.wait(10) == 0
    close_logs(logs)
    assert (workdir / "stdin-is").read_text().startswith("pipe:")
    assert (workdir / "got-proxy").read_bytes() == PROXY_BYTES


def test_launch_survives_a_wrapper_that_never_reads_its_proxy(switcher, workdir, tmp_path):
    cred = credential(tmp_path)
    with open(cred.path, "ab") as big:
        big.write(b"x" * (1 << 20))  # more than a pipe holds
    logs = open_logs(workdir)
    process = switcher.launch(["/bin/true"], cred, SOMEONE, workdir, logs)
    assert process.wait(10) == 0
    close_logs(logs)


def test_sudo_refusal_at_launch_is_not_permitted(switcher, workdir, tmp_path):
    logs = open_logs(workdir)
    session = switcher.open(credential(tmp_path), Account("refused", 54322, 54322), workdir)
    returncode = session.launch(["/bin/true"], logs).wait(10)
    close_logs(logs)
    outcome = session.explain(returncode, None)
    assert outcome.kind == values.SWITCH_FAILED
    assert isinstance(outcome.error, SwitchNotPermittedError)
    assert "a password is required" in str(outcome.error)
    assert "NOPASSWD" in str(outcome.error)


def test_command_sudo_cannot_find_is_an_exec_error(switcher, workdir, tmp_path):
    logs = open_logs(workdir)
    session = switcher.open(credential(tmp_path), SOMEONE, workdir)
    returncode = session.launch([str(workdir / "no-wrapper.sh")], logs).wait(10)
    close_logs(logs)
    outcome = session.explain(returncode, None)
    assert isinstance(outcome.error, SwitchExecError)
    assert "command not found" in str(outcome.error)


def test_wrapper_exiting_1_before_its_marker_is_not_a_sudo_refusal(switcher, workdir, tmp_path):
    logs = open_logs(workdir)
    session = switcher.open(credential(tmp_path), SOMEONE, workdir)
    returncode = session.launch(["/bin/false"], logs).wait(10)
    close_logs(logs)
    assert isinstance(session.explain(returncode, None).error, SwitchExecError)


@pytest.mark.parametrize("returncode, error", [
    (1, SwitchNotPermittedError), (126, SwitchExecError), (127, SwitchExecError),
    (2, SwitchExecError), (255, SwitchExecError),
])
def test_explain_without_any_launch_log(switcher, returncode, error):
    outcome = switcher.explain(returncode, None)
    assert outcome.kind == values.SWITCH_FAILED and type(outcome.error) is error


def test_explain_with_a_marker_is_the_payloads_status(switcher):
    assert switcher.explain(0, WrapperMarker(54321, 0)).succeeded
    failed = switcher.explain(1, WrapperMarker(54321, 1))
    assert (failed.kind, failed.exit_code) == (values.PAYLOAD_FAILED, 1)
    killed = switcher.explain(-9, None)
    assert (killed.kind, killed.signal) == (values.TERMINATED, 9)


def _start_trapping_payload(switcher, workdir, tmp_path):
    script = workdir / "wrapper.sh"
    script.write_text(
        "trap 'echo TERM > wrapper-term; kill $(jobs -p) 2>/dev/null; wait; exit 143' TERM\n"
        "bash -c 'trap \"echo TERM > payload-term; exit 143\" TERM; sleep 60 & wait' &\n"
        "sleep 60 & echo $! > sleeper\n"
        "touch ready\nwait\n")
    logs = open_logs(workdir)
    process = switcher.launch(["/bin/bash", str(script)], credential(tmp_path),
                              Account.current(), workdir, logs)
    wait_for(workdir / "ready")
    return process, logs


def test_terminate_signals_the_payload_group_as_the_target(switcher, workdir, tmp_path,
                                                          fake_sudo):
    process, logs = _start_trapping_payload(switcher, workdir, tmp_path)
    switcher.terminate(process, signal.SIGTERM)
    assert process.wait(10) == 143
    close_logs(logs)
    wait_for(workdir / "payload-term")
    assert not alive(int((workdir / "sleeper").read_text()))
    kill_call = (fake_sudo.parent / "sudo-calls").read_text().splitlines()[-1]
    assert kill_call == (f"-n -u {Account.current().name} -- {sudo.KILL_COMMAND} -s 15 -- "
                         f"-{process.pid}")


def test_terminate_relays_through_sudo_when_kill_is_refused(switcher, workdir, tmp_path,
                                                           fake_sudo):
    (fake_sudo.parent / "refuse-kill").touch()
    process, logs = _start_trapping_payload(switcher, workdir, tmp_path)
    try:
        switcher.terminate(process, signal.SIGTERM)  # the fake sudo exec'd: its pid is the wrapper
        assert process.wait(10) == 143
        wait_for(workdir / "wrapper-term")
    finally:
        with contextlib.suppress(ProcessLookupError):  # the payload's own sleep child
            os.killpg(process.pid, signal.SIGKILL)
        close_logs(logs)


def test_sigkill_cannot_be_relayed_when_kill_is_refused(switcher, workdir, tmp_path,
                                                       fake_sudo):
    (fake_sudo.parent / "refuse-kill").touch()
    process, logs = _start_trapping_payload(switcher, workdir, tmp_path)
    try:
        with pytest.raises(SwitchNotPermittedError, match="SIGKILL"):
            switcher.terminate(process, signal.SIGKILL)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)
        close_logs(logs)


def test_terminate_refuses_a_process_it_did_not_start(switcher):
    process = subprocess.Popen(["/bin/true"])
    process.wait()
    with pytest.raises(SwitchError, match="not started by this sudo switcher"):
        switcher.terminate(process, signal.SIGTERM)


def test_terminate_after_the_end_is_harmless(switcher, workdir, tmp_path):
    logs = open_logs(workdir)
    process = switcher.launch(["/bin/true"], credential(tmp_path), SOMEONE, workdir, logs)
    process.wait(10)
    close_logs(logs)
    switcher.terminate(process, signal.SIGTERM)


def test_payload_groups_finds_groups_the_payload_made(tmp_path):
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        ["/bin/bash", "-c", f"setsid sleep 60 & echo $! > {tmp_path}/inner; touch {ready}; wait"],
        start_new_session=True)
    try:
        wait_for(ready)
        inner = int((tmp_path / "inner").read_text())
        wait_for_group = os.getpgid(inner)
        assert payload_groups(process.pid, os.getuid()) >= {process.pid, wait_for_group}
        assert payload_groups(process.pid, 54321) == {process.pid}
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        os.kill(inner, signal.SIGKILL)
        process.wait()


def test_sudo_messages_are_sudos_own_lines():
    text = "payload line\nsudo: a password is required\nsudo: another\n"
    assert sudo_messages(text) == ["a password is required", "another"]


def test_launch_in_a_missing_workdir_is_a_workdir_error(switcher, tmp_path):
    logs = open_logs(tmp_path)
    with pytest.raises(WorkdirError, match="gone"):
        switcher.launch(["/bin/true"], credential(tmp_path), SOMEONE, tmp_path / "gone", logs)
    close_logs(logs)


def test_probe_without_sudo_is_unavailable(mapped_to, tmp_path):
    mapped_to(SOMEONE)
    switcher = SudoSwitcher(QueueSettings("Q", options={"grid_mapfile": tmp_path / "mapfile"}),
                            sudo=str(tmp_path / "no-sudo"))
    with pytest.raises(SwitchUnavailableError):
        switcher.probe(credential(tmp_path))


def test_two_sessions_of_one_switcher_keep_their_own_launch(switcher, workdir, tmp_path,
                                                            fake_sudo):
    """Each session explains its own latest launch (issue 11): a refusal in the first is
    told as sudo's refusal even after the second session launched a wrapper that exited 1."""
    refused = Account("refused", 54322, 54322)
    cred = credential(tmp_path)
    first_dir, second_dir = workdir / "first", workdir / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = switcher.open(cred, refused, first_dir)
    second = switcher.open(cred, SOMEONE, second_dir)
    first_logs, second_logs = open_logs(first_dir), open_logs(second_dir)
    first_status = first.launch(["/bin/true"], first_logs).wait(10)
    second_status = second.launch(["/bin/false"], second_logs).wait(10)
    close_logs(first_logs)
    close_logs(second_logs)
    assert isinstance(first.explain(first_status, None).error, SwitchNotPermittedError)
    assert isinstance(second.explain(second_status, None).error, SwitchExecError)


def _recorded_runs(monkeypatch, stderr=b"", returncode=0) -> list:
    """Record the commands ``subprocess.run`` gets in the sudo module, running none (a
    ``kill -1`` run as the current user would stop the test's own processes)."""
    commands = []

    def run(command, **kwargs):
        commands.append(command)
        return subprocess.CompletedProcess(command, returncode, b"", stderr)

    monkeypatch.setattr(sudo.subprocess, "run", run)
    return commands


def test_signal_account_runs_kill_minus_one_as_the_target_with_a_second_sudo(
        switcher, tmp_path, monkeypatch, fake_sudo):
    commands = _recorded_runs(monkeypatch)
    switcher.signal_account(signal.SIGSTOP, credential(tmp_path), Account.current(), tmp_path)
    assert commands == [[str(fake_sudo), "-n", "-u", Account.current().name, "--",
                         sudo.KILL_COMMAND, "-STOP", "--", "-1"]]


def test_signal_account_refused_by_sudo_is_not_permitted(switcher, tmp_path, monkeypatch):
    _recorded_runs(monkeypatch, b"sudo: a password is required\n", 1)
    with pytest.raises(SwitchNotPermittedError, match="SIGSTOP .* every process"):
        switcher.signal_account(signal.SIGSTOP, credential(tmp_path), Account.current(),
                                tmp_path)
