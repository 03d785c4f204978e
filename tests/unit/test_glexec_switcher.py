"""GlexecSwitcher without root: exit-status table, locating, environment, probe, launch, kill.

gLExec itself is a fake script here (tests/unit/glexec_fakes.py); the real contract is
exercised through the stand-in in tests/system/test_glexec_switcher.py.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import stat
import time
from pathlib import Path

import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import (
    PayloadFailedError,
    PayloadTerminatedError,
    ProxyExpiredError,
    RescheduleRequest,
    SwitchClientError,
    SwitchError,
    SwitchExecError,
    SwitchNotPermittedError,
    SwitchSystemError,
    SwitchUnavailableError,
)
from pilotid.identity.accounts import Account
from pilotid.interfaces import IIdentitySwitcher
from pilotid.queue import QueueSettings
from pilotid.strategies.glexec import (
    TARGET_PROXY_NAME,
    GlexecSwitcher,
    ProbeCache,
    RetryPolicy,
    glexec_environment,
    locate_glexec,
    parse_id_output,
)
from pilotid.strategies.glexec import binary as glexec_binary
from pilotid.strategies.probecache import PILOT_PROBE_CACHE
from pilotid.values import (
    PAYLOAD_FAILED,
    SUCCEEDED,
    SWITCH_FAILED,
    TERMINATED,
    PayloadLogs,
    ProxyHandover,
    WrapperMarker,
)
from tests.unit.glexec_fakes import FakeGlexec, credential

ALICE = Account("pilotid-alice", 1002, 1002)


def settings(**fields) -> QueueSettings:
    """Unchecked settings of a glexec queue; the switcher's own go into ``options``."""
    generic = {f.name for f in dataclasses.fields(QueueSettings)}
    options = {key: fields.pop(key) for key in list(fields) if key not in generic}
    fields.setdefault("name", "ANALY_TEST")
    fields.setdefault("switcher", "glexec")
    return QueueSettings(**fields, options=options)


@pytest.fixture
def fake(tmp_path) -> FakeGlexec:
    return FakeGlexec(tmp_path / "glexec")


def switcher(fake: FakeGlexec, statuses: str = "0", sleeps: list = None, stdout=None,
             queue: QueueSettings = None, **extra) -> GlexecSwitcher:
    recorded = [] if sleeps is None else sleeps
    return GlexecSwitcher(queue or settings(), environ=fake.environ(statuses, stdout, **extra),
                          probe_cache=ProbeCache(), sleep=recorded.append)


# --- the contract ---------------------------------------------------------------------------

def test_glexec_switcher_provides_the_switcher_interface():
    verifyClass(IIdentitySwitcher, GlexecSwitcher)
    verifyObject(IIdentitySwitcher, GlexecSwitcher(settings()))


def test_registry_name_is_glexec():
    assert GlexecSwitcher.name == "glexec"


# --- explain: the exit-status table ---------------------------------------------------------

@pytest.mark.parametrize("status, error", [
    (201, SwitchClientError),
    (202, SwitchSystemError),
    (203, SwitchNotPermittedError),
    (126, SwitchExecError),
])
def test_glexec_failure_without_marker_is_its_own_switch_error(status, error):
    outcome = GlexecSwitcher(settings()).explain(status, None)
    assert outcome.kind == SWITCH_FAILED
    assert type(outcome.error) is error
    assert outcome.exit_code is None
    assert str(status) in str(outcome.error)


def test_each_glexec_failure_has_its_own_pilot_error_code():
    switch = GlexecSwitcher(settings())
    codes = {switch.explain(status, None).error_code for status in (201, 202, 203, 126)}
    assert len(codes) == 4


def test_204_is_the_payloads_own_failure_with_the_status_the_wrapper_recorded():
    outcome = GlexecSwitcher(settings()).explain(204, WrapperMarker(uid=1002, payload_status=203))
    assert outcome.kind == PAYLOAD_FAILED
    assert outcome.exit_code == 203
    assert isinstance(outcome.error, PayloadFailedError)
    assert not isinstance(outcome.error, SwitchError)


def test_204_without_a_recorded_status_is_still_a_payload_failure():
    outcome = GlexecSwitcher(settings()).explain(204, WrapperMarker(uid=1002))
    assert outcome.kind == PAYLOAD_FAILED
    assert outcome.exit_code is None


def test_204_without_marker_means_the_wrapper_failed_before_switching():
    outcome = GlexecSwitcher(settings()).explain(204, None)
    assert outcome.kind == SWITCH_FAILED


@pytest.mark.parametrize("status", [201, 202, 203, 126])
def test_glexec_like_status_with_marker_is_the_payloads_status(status):
    outcome = GlexecSwitcher(settings()).explain(status, WrapperMarker(1002, status))
    assert outcome.kind == PAYLOAD_FAILED
    assert outcome.exit_code == status
    assert isinstance(outcome.error, PayloadFailedError)


def test_payload_exit_zero_is_success():
    outcome = GlexecSwitcher(settings()).explain(0, WrapperMarker(1002, 0))
    assert outcome.kind == SUCCEEDED
    assert outcome.exit_code == 0 and outcome.error is None


def test_payload_failure_reports_the_payloads_status():
    outcome = GlexecSwitcher(settings()).explain(3, WrapperMarker(1002, 3))
    assert (outcome.kind, outcome.exit_code) == (PAYLOAD_FAILED, 3)


def test_marker_without_status_is_a_payload_failure_with_no_exit_code():
    """The wrapper ran but recorded no status: no number is passed off as the payload's."""
    outcome = GlexecSwitcher(settings()).explain(7, WrapperMarker(1002))
    assert (outcome.kind, outcome.exit_code) == (PAYLOAD_FAILED, None)


def test_death_by_signal_is_reported_as_the_signal():
    outcome = GlexecSwitcher(settings()).explain(-signal.SIGTERM, WrapperMarker(1002))
    assert outcome.kind == TERMINATED
    assert outcome.signal == signal.SIGTERM
    assert isinstance(outcome.error, PayloadTerminatedError)
    assert "SIGTERM" in str(outcome.error)


def test_zero_without_marker_is_not_a_success():
    outcome = GlexecSwitcher(settings()).explain(0, None)
    assert outcome.kind == SWITCH_FAILED


# --- retries --------------------------------------------------------------------------------

def test_only_202_and_203_before_the_wrapper_ran_are_retried_with_backoff():
    switch = GlexecSwitcher(settings())
    for status in (202, 203):
        outcome = switch.explain(status, None)
        assert [switch.retry_delay(outcome, n) for n in (1, 2, 3)] == [5.0, 10.0, None]
    for status in (201, 126, 204):
        assert switch.retry_delay(switch.explain(status, None), 1) is None
    assert switch.retry_delay(switch.explain(203, WrapperMarker(1002, 203)), 1) is None


def test_retry_policy_is_bounded():
    policy = RetryPolicy(tries=2, delay=1, factor=3)
    assert [policy.delay_after(n) for n in (1, 2, 3)] == [1, None, None]


# --- locating the binary --------------------------------------------------------------------

def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_glexec_location_comes_first(tmp_path):
    first = executable(tmp_path / "a" / "sbin" / "glexec")
    executable(tmp_path / "b" / "sbin" / "glexec")
    found = locate_glexec(tmp_path / "b" / "sbin" / "glexec",
                          {"GLEXEC_LOCATION": str(tmp_path / "a"),
                           "OSG_GLEXEC_LOCATION": str(tmp_path / "b")})
    assert found == first


def test_osg_location_may_be_a_directory_or_the_binary(tmp_path):
    binary = executable(tmp_path / "osg" / "sbin" / "glexec")
    assert locate_glexec(None, {"OSG_GLEXEC_LOCATION": str(tmp_path / "osg")}) == binary
    assert locate_glexec(None, {"OSG_GLEXEC_LOCATION": str(binary)}) == binary


def test_queue_setting_comes_after_the_environment_and_before_the_default(tmp_path, monkeypatch):
    configured = executable(tmp_path / "queue" / "glexec")
    monkeypatch.setattr(glexec_binary, "DEFAULT_GLEXEC", executable(tmp_path / "usr" / "glexec"))
    assert locate_glexec(configured, {"GLEXEC_LOCATION": str(tmp_path / "missing")}) == configured


def test_default_is_usr_sbin_glexec():
    assert glexec_binary.DEFAULT_GLEXEC == Path("/usr/sbin/glexec")


def test_default_is_used_when_nothing_else_is_set(tmp_path, monkeypatch):
    default = executable(tmp_path / "usr" / "sbin" / "glexec")
    monkeypatch.setattr(glexec_binary, "DEFAULT_GLEXEC", default)
    assert locate_glexec(None, {}) == default


def test_symlinks_to_the_binary_are_resolved(tmp_path):
    real = executable(tmp_path / "real" / "glexec")
    link = tmp_path / "link"
    link.symlink_to(real)
    assert locate_glexec(link, {}) == real


def test_missing_everywhere_is_unavailable_and_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(glexec_binary, "DEFAULT_GLEXEC", tmp_path / "none")
    with pytest.raises(SwitchUnavailableError) as raised:
        locate_glexec(tmp_path / "queue", {"GLEXEC_LOCATION": str(tmp_path / "env")})
    message = str(raised.value)
    assert "GLEXEC_LOCATION" in message and "glexec_path" in message and "default" in message


def test_a_binary_without_execute_bits_is_unavailable(tmp_path):
    binary = executable(tmp_path / "glexec")
    binary.chmod(0o600)
    with pytest.raises(SwitchUnavailableError, match="not executable"):
        locate_glexec(binary, {})


# --- the environment gLExec is called with --------------------------------------------------

def test_environment_has_no_ld_preload_and_no_stale_glexec_variables():
    env = glexec_environment({"LD_PRELOAD": "/missing.so", "GLEXEC_TARGET_PROXY": "/old",
                              "GLEXEC_ENV": "x", "PATH": "/bin", "TMPDIR": "/scratch"},
                             Path("/w/proxy"))
    assert "LD_PRELOAD" not in env and "GLEXEC_ENV" not in env
    assert "GLEXEC_TARGET_PROXY" not in env and "GLEXEC_SOURCE_PROXY" not in env
    assert env["GLEXEC_CLIENT_CERT"] == "/w/proxy"
    assert env["PATH"] == "/bin" and env["TMPDIR"] == "/scratch"


def test_environment_names_source_and_target_proxy_when_a_copy_is_wanted():
    env = glexec_environment({}, Path("/w/cert"), Path("/w/source"), Path("/w/target"))
    assert (env["GLEXEC_SOURCE_PROXY"], env["GLEXEC_TARGET_PROXY"]) == ("/w/source", "/w/target")


# --- parsing id -----------------------------------------------------------------------------

def test_id_output_parses_to_an_account():
    assert parse_id_output("uid=1002(pilotid-alice) gid=1003(atlas) groups=1003(atlas)\n") \
        == Account("pilotid-alice", 1002, 1003)


def test_id_output_without_names_looks_the_uid_up():
    account = parse_id_output("uid=0 gid=0 groups=0")
    assert (account.name, account.uid, account.gid) == ("root", 0, 0)


def test_output_that_is_not_ids_is_a_switch_error():
    with pytest.raises(SwitchError, match="cannot read"):
        parse_id_output("ld.so: object '/x.so' cannot be preloaded\n")


# --- probe ----------------------------------------------------------------------------------

def test_probe_runs_id_through_glexec_with_the_users_proxy(fake, tmp_path):
    cred = credential(tmp_path)
    account = switcher(fake).probe(cred)
    assert account == ALICE
    (call,) = fake.calls()
    assert call["argv"][1:] == ["/usr/bin/env", "LC_ALL=C", "/usr/bin/id"]
    assert call["env"]["GLEXEC_CLIENT_CERT"] == os.path.realpath(cred.path)
    assert "GLEXEC_SOURCE_PROXY" not in call["env"]  # nothing to copy before the sandbox
    assert call["cwd"] == "/"


def test_probe_environment_has_no_ld_preload(fake, tmp_path):
    switcher(fake, LD_PRELOAD="/nonexistent/libfoo.so").probe(credential(tmp_path))
    assert "LD_PRELOAD" not in fake.calls()[0]["env"]


def test_probe_is_cached_per_dn(fake, tmp_path):
    switch = switcher(fake)
    assert switch.probe(credential(tmp_path)) == switch.probe(credential(tmp_path))
    assert len(fake.calls()) == 1
    switch.probe(credential(tmp_path, identity="/DC=org/CN=Bob", name="bob"))
    assert len(fake.calls()) == 2


def test_default_cache_lives_as_long_as_the_pilot(fake, tmp_path):
    PILOT_PROBE_CACHE.clear()
    try:
        env = fake.environ()
        GlexecSwitcher(settings(), environ=env).probe(credential(tmp_path))
        GlexecSwitcher(settings(), environ=env).probe(credential(tmp_path))
        assert len(fake.calls()) == 1
    finally:
        PILOT_PROBE_CACHE.clear()


@pytest.mark.parametrize("status, error", [(202, SwitchSystemError),
                                           (203, SwitchNotPermittedError)])
def test_probe_retries_202_and_203_with_backoff_then_fails(fake, tmp_path, status, error):
    sleeps = []
    with pytest.raises(error):
        switcher(fake, str(status), sleeps).probe(credential(tmp_path))
    assert len(fake.calls()) == 3
    assert sleeps == [5.0, 10.0]


def test_probe_succeeds_when_a_retry_does(fake, tmp_path):
    assert switcher(fake, "203,202,0").probe(credential(tmp_path)) == ALICE
    assert len(fake.calls()) == 3


def test_probe_failure_is_not_cached(fake, tmp_path):
    switch = switcher(fake, "201,0")
    with pytest.raises(SwitchClientError):
        switch.probe(credential(tmp_path))
    assert switch.probe(credential(tmp_path)) == ALICE


@pytest.mark.parametrize("status, error", [(201, SwitchClientError), (126, SwitchExecError)])
def test_probe_does_not_retry_client_or_exec_errors(fake, tmp_path, status, error):
    with pytest.raises(error, match="fake glexec"):
        switcher(fake, str(status)).probe(credential(tmp_path))
    assert len(fake.calls()) == 1


def test_probe_201_names_what_is_wrong_with_the_client_cert(fake, tmp_path):
    cred = credential(tmp_path)
    cred.path.chmod(0o640)
    with pytest.raises(SwitchClientError, match="mode 0640"):
        switcher(fake, "201").probe(cred)


def test_failed_probe_asks_for_reschedule_when_the_queue_says_so(fake, tmp_path):
    queue = settings(on_probe_failure="reschedule")
    with pytest.raises(RescheduleRequest) as raised:
        switcher(fake, "203", queue=queue).probe(credential(tmp_path))
    assert isinstance(raised.value.__cause__, SwitchNotPermittedError)


def test_missing_glexec_with_reschedule_is_a_reschedule(tmp_path, monkeypatch):
    monkeypatch.setattr(glexec_binary, "DEFAULT_GLEXEC", tmp_path / "none")
    switch = GlexecSwitcher(settings(on_probe_failure="reschedule"), environ={},
                            probe_cache=ProbeCache())
    with pytest.raises(RescheduleRequest) as raised:
        switch.probe(credential(tmp_path))
    assert isinstance(raised.value.__cause__, SwitchUnavailableError)


def test_probe_never_answers_with_the_pilots_own_account(fake, tmp_path):
    me = Account.current()
    answer = f"uid={me.uid}({me.name}) gid={me.gid}\n"
    with pytest.raises(SwitchSystemError, match="pilot's own account"):
        switcher(fake, stdout=answer).probe(credential(tmp_path))


def test_test_mode_switches_with_the_pilots_own_proxy(fake, tmp_path):
    me = Account.current()
    pilot_proxy = credential(tmp_path, name="x509up_pilot").path
    switch = switcher(fake, stdout=f"uid={me.uid}({me.name}) gid={me.gid}\n",
                      queue=settings(glexec_mode="test"), X509_USER_PROXY=str(pilot_proxy))
    assert switch.probe(credential(tmp_path)) == me  # the pilot's own mapping is fine here
    assert fake.calls()[0]["env"]["GLEXEC_CLIENT_CERT"] == os.path.realpath(pilot_proxy)


def test_expired_proxy_is_refused_before_calling_glexec(fake, tmp_path):
    with pytest.raises(ProxyExpiredError, match="expired"):
        switcher(fake).probe(credential(tmp_path, hours=-1))
    assert fake.calls() == []


def test_proxy_shorter_than_the_queue_timeout_is_refused(fake, tmp_path):
    switch = switcher(fake, queue=settings(timeout=2 * 3600))
    with pytest.raises(ProxyExpiredError, match="left"):
        switch.probe(credential(tmp_path, hours=1))


def test_long_job_needs_its_proxy_only_until_the_refresh_threshold(fake, tmp_path):
    """A 48 h job with a 12 h proxy: the launcher refreshes it under the 3 h threshold."""
    switch = switcher(fake, queue=settings(timeout=48 * 3600))
    assert switch.probe(credential(tmp_path, hours=12)) == ALICE
    with pytest.raises(ProxyExpiredError, match="left"):
        switch.probe(credential(tmp_path, hours=2, name="short"))


def test_retries_come_from_the_queue_settings():
    switch = GlexecSwitcher(settings(switch_retries=2, switch_retry_delay=0.5))
    assert (switch.retry.tries, switch.retry.delay) == (2, 0.5)
    outcome = switch.explain(202, None)
    assert [switch.retry_delay(outcome, n) for n in (1, 2)] == [0.5, None]


def test_proxy_refresh_is_due_under_three_hours(tmp_path):
    switch = GlexecSwitcher(settings())
    assert switch.proxy_needs_refresh(credential(tmp_path, hours=2))
    assert not switch.proxy_needs_refresh(credential(tmp_path, hours=4, name="other"))


# --- handover, launch, terminate, refresh ---------------------------------------------------

def test_handover_points_the_payload_at_the_target_proxy_glexec_writes(tmp_path):
    handover = GlexecSwitcher(settings()).handover(credential(tmp_path), ALICE, tmp_path)
    assert handover == ProxyHandover(payload_proxy=tmp_path / TARGET_PROXY_NAME,
                                     from_stdin=False)


def logs_in(directory: Path) -> PayloadLogs:
    return PayloadLogs(stdout=open(directory / "out.log", "wb"),
                       stderr=open(directory / "err.log", "wb"))


def test_launch_runs_glexec_with_the_wrapper_in_a_new_session(fake, tmp_path):
    cred = credential(tmp_path)
    workdir = tmp_path / "work"
    workdir.mkdir()
    wrapper = executable(workdir / "wrapper.sh")
    logs = logs_in(tmp_path)
    switch = switcher(fake, LD_PRELOAD="/missing.so")
    process = switch.launch([str(wrapper), "arg"], cred, ALICE, workdir, logs)
    assert process.wait(timeout=30) == 0
    logs.stdout.close()
    logs.stderr.close()
    (call,) = fake.calls()
    assert call["argv"] == [str(fake.binary), str(wrapper), "arg"]
    assert call["pid"] == call["pgid"] == call["sid"] == process.pid
    env = call["env"]
    assert "LD_PRELOAD" not in env
    assert env["GLEXEC_CLIENT_CERT"] == env["GLEXEC_SOURCE_PROXY"] == os.path.realpath(cred.path)
    assert env["GLEXEC_TARGET_PROXY"] == str(workdir / TARGET_PROXY_NAME)
    assert call["cwd"] == str(workdir)
    assert "uid=" in (tmp_path / "out.log").read_text()
    assert "fake glexec" in (tmp_path / "err.log").read_text()
    assert "fake glexec" not in (tmp_path / "out.log").read_text()


def test_launch_refuses_a_relative_command(fake, tmp_path):
    with pytest.raises(SwitchClientError, match="absolute"):
        switcher(fake).launch(["wrapper.sh"], credential(tmp_path), ALICE, tmp_path,
                              logs_in(tmp_path))


def test_launch_checks_the_proxy_lifetime(fake, tmp_path):
    with pytest.raises(ProxyExpiredError):
        switcher(fake).launch(["/bin/true"], credential(tmp_path, hours=-1), ALICE, tmp_path,
                              logs_in(tmp_path))


def test_terminate_runs_kill_through_glexec_on_the_payloads_group(fake, tmp_path):
    switch = switcher(fake, FAKE_GLEXEC_EXEC="0,1")
    session = switch.open(credential(tmp_path), ALICE, tmp_path)
    process = session.launch(["/bin/sleep", "30"], logs_in(tmp_path))
    fake.wait_for_calls(1)
    session.terminate(process, signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM
    kill = fake.calls()[-1]
    assert kill["argv"][1:] == [os.path.realpath("/bin/kill"), "-s", "TERM", "--",
                                f"-{process.pid}"]
    assert kill["env"]["GLEXEC_CLIENT_CERT"] == os.path.realpath(credential(tmp_path).path)
    assert "GLEXEC_SOURCE_PROXY" not in kill["env"]
    assert switch.explain(process.returncode, WrapperMarker(1002)).kind == TERMINATED


def test_terminate_reports_a_refused_kill(fake, tmp_path):
    switch = switcher(fake, "203", FAKE_GLEXEC_EXEC="0")
    session = switch.open(credential(tmp_path), ALICE, tmp_path)
    process = session.launch(["/bin/sleep", "30"], logs_in(tmp_path))
    fake.wait_for_calls(1)
    try:
        with pytest.raises(SwitchNotPermittedError, match="signal"):
            session.terminate(process, signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


def _group_making_wrapper(workdir: Path, after: str) -> Path:
    """A wrapper that runs its payload in a group of its own, as the real one does, then
    runs ``after`` once the payload has ended."""
    script = workdir / "wrapper.sh"
    script.write_text("#!/bin/bash\nset -m\n( exec sleep 60 ) & echo $! > payload.pid\n"
                      f"set +m\ntouch ready\nwait\n{after}\n")
    script.chmod(0o755)
    return script


def _launch_until_ready(switch: GlexecSwitcher, script: Path, tmp_path: Path):
    """The session, the wrapper's process and its payload's pid, once the payload runs."""
    session = switch.open(credential(tmp_path), Account.current(), script.parent)
    process = session.launch([str(script)], logs_in(tmp_path))
    deadline = time.monotonic() + 30
    while not (script.parent / "ready").exists():
        assert time.monotonic() < deadline and process.poll() is None, "wrapper not ready"
        time.sleep(0.01)
    return session, process, int((script.parent / "payload.pid").read_text())


def test_sigkill_goes_to_the_payloads_group_first_so_the_wrapper_can_finish(
        fake, tmp_path, monkeypatch):
    """The wrapper cannot catch SIGKILL: killing the payload's group alone lets it record
    the end and clean up; gLExec's own group is then left alone."""
    monkeypatch.setattr("pilotid.strategies.processes.WRAPPER_SETTLE", 5.0)
    workdir = tmp_path / "work"
    workdir.mkdir()
    switch = switcher(fake, FAKE_GLEXEC_EXEC="0,1,2")
    session, process, payload = _launch_until_ready(
        switch, _group_making_wrapper(workdir, "exit 7"), tmp_path)
    session.terminate(process, signal.SIGKILL)
    assert process.wait(timeout=30) == 7, "the wrapper was killed instead of ending itself"
    kills = [call["argv"][1:] for call in fake.calls()[1:]]
    assert kills == [[os.path.realpath("/bin/kill"), "-s", "KILL", "--", f"-{payload}"]]


def test_sigkill_reaches_glexecs_group_when_the_wrapper_does_not_end(fake, tmp_path,
                                                                    monkeypatch):
    monkeypatch.setattr("pilotid.strategies.processes.WRAPPER_SETTLE", 0.2)
    workdir = tmp_path / "work"
    workdir.mkdir()
    switch = switcher(fake, FAKE_GLEXEC_EXEC="0,1,2")
    session, process, payload = _launch_until_ready(
        switch, _group_making_wrapper(workdir, "exec sleep 60"), tmp_path)
    try:
        session.terminate(process, signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    kills = [call["argv"][-2:] for call in fake.calls()[1:]]
    assert kills == [["--", f"-{payload}"], [f"-{process.pid}", f"-{payload}"]]


def test_terminate_after_the_end_does_nothing(fake, tmp_path):
    session = switcher(fake).open(credential(tmp_path), ALICE, tmp_path)
    process = session.launch(["/bin/true"], logs_in(tmp_path))
    process.wait(timeout=30)
    session.terminate(process, signal.SIGTERM)
    assert len(fake.calls()) == 1


def test_refresh_pushes_the_new_proxy_to_the_target_file(fake, tmp_path):
    cred = credential(tmp_path, name="renewed")
    switcher(fake).refresh_proxy(cred, tmp_path / "work")
    env = fake.calls()[0]["env"]
    assert env["GLEXEC_SOURCE_PROXY"] == os.path.realpath(cred.path)
    assert env["GLEXEC_TARGET_PROXY"] == str(tmp_path / "work" / TARGET_PROXY_NAME)


def test_diagnose_reports_the_binary_and_both_mappings(fake, tmp_path):
    pilot_proxy = credential(tmp_path, name="x509up_pilot").path
    report = switcher(fake, X509_USER_PROXY=str(pilot_proxy)).diagnose(credential(tmp_path))
    assert report.binary == fake.binary
    assert report.mode == stat.S_IMODE(os.stat(fake.binary).st_mode)
    assert not report.setuid_root and "setuid" in report.problem
    assert report.user_account == ALICE and report.pilot_account == ALICE
    assert report.as_dict()["mode"] == "0755"


def test_node_checks_show_the_diagnosis_for_pilotid_probe(fake, tmp_path):
    pilot_proxy = credential(tmp_path, name="x509up_pilot").path
    checks = switcher(fake, X509_USER_PROXY=str(pilot_proxy)).node_checks(credential(tmp_path))
    by_name = {c.name: c for c in checks}
    binary = by_name["gLExec"]
    assert binary.status == "fail" and "setuid" in binary.detail and "mode 0755" in binary.detail
    assert by_name["gLExec switch with the pilot's proxy"].status == "ok"
    user = by_name["gLExec switch with the user's proxy"]
    assert user.status == "ok" and f"maps to {ALICE.name}" in user.detail


def test_node_checks_warn_about_a_missing_pilot_proxy_only_outside_test_mode(fake, tmp_path):
    missing = str(tmp_path / "no-such-proxy")
    uid_mode = switcher(fake, "201", X509_USER_PROXY=missing).node_checks(None)
    test_mode = switcher(fake, "201", queue=settings(glexec_mode="test"),
                         X509_USER_PROXY=missing).node_checks(None)
    name = "gLExec switch with the pilot's proxy"
    assert {c.name: c.status for c in uid_mode}[name] == "warn"
    assert {c.name: c.status for c in test_mode}[name] == "fail"


def test_refresh_returns_true_and_later_kills_use_the_renewed_proxy(fake, tmp_path):
    switch = switcher(fake, FAKE_GLEXEC_EXEC="0")
    workdir = tmp_path / "work"
    workdir.mkdir()
    session = switch.open(credential(tmp_path), ALICE, workdir)
    process = session.launch(["/bin/sleep", "30"], logs_in(tmp_path))
    try:
        fake.wait_for_calls(1)
        renewed = credential(tmp_path, name="x509up_renewed", hours=24)
        assert session.refresh(renewed) is True
        session.terminate(process, signal.SIGTERM)
        assert fake.calls()[-1]["env"]["GLEXEC_CLIENT_CERT"] == os.path.realpath(renewed.path)
    finally:
        process.kill()
        process.wait()


def test_refresh_pushes_a_proxy_shorter_than_a_launch_needs_but_not_an_expired_one(
        fake, tmp_path):
    switch = switcher(fake, queue=settings(timeout=4 * 3600))
    assert switch.refresh_proxy(credential(tmp_path, hours=1), tmp_path)
    with pytest.raises(ProxyExpiredError):
        switch.refresh_proxy(credential(tmp_path, hours=-1, name="expired"), tmp_path)


def test_two_sessions_of_one_switcher_keep_their_own_launches(fake, tmp_path):
    """A session signals only what it launched (issue 11): its launches are its own, not
    the switcher's, which any session of it used to reach."""
    switch = switcher(fake, FAKE_GLEXEC_EXEC="0,1")
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = switch.open(credential(tmp_path), ALICE, first_dir)
    second = switch.open(credential(tmp_path), ALICE, second_dir)
    process = first.launch(["/bin/sleep", "30"], logs_in(first_dir))
    try:
        fake.wait_for_calls(1)
        with pytest.raises(SwitchError, match="not started"):
            second.terminate(process, signal.SIGTERM)
        assert len(fake.calls()) == 1
        first.terminate(process, signal.SIGTERM)
        assert process.wait(timeout=30) == -signal.SIGTERM
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_signal_account_runs_kill_minus_one_through_a_second_glexec_call(fake, tmp_path):
    """The fake records the call and runs nothing (a ``kill -1`` as the current user would
    stop the test's own processes)."""
    switch = switcher(fake)
    switch.signal_account(signal.SIGSTOP, credential(tmp_path), ALICE, tmp_path)
    assert fake.calls()[-1]["argv"][1:] == [os.path.realpath("/bin/kill"), "-STOP", "--", "-1"]


def test_signal_account_refused_by_glexec_is_its_switch_error(fake, tmp_path):
    with pytest.raises(SwitchError, match="SIGKILL .* every process of pilotid-alice"):
        switcher(fake, "203").signal_account(signal.SIGKILL, credential(tmp_path), ALICE,
                                             tmp_path)
