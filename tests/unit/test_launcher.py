"""PayloadLauncher with the pilotid.testing fakes and real files: steps, outcomes, cleanup,
accounting; and the ``pilotid run`` / ``pilotid probe`` commands in-process.

The payload is a real process (the generated wrapper runs it with the real bash); only the
credential source, the switcher and the payload adapter are fakes.  Runs as any user.
"""

from __future__ import annotations

import datetime
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

import mock
import pytest
from zope.interface.verify import verifyObject

from pilotid import cli, values
from pilotid.errors import (
    AccountMappingError,
    ProxyExpiredError,
    RescheduleRequest,
    SwitchNotPermittedError,
    SwitchUnavailableError,
    exit_status,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.identity.credfile import write_private
from pilotid.identity.default_proxy import default_proxy_path, pilot_credentials
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.interfaces import ISwitchSession
from pilotid.launcher import PayloadLauncher, PayloadResult
from pilotid.payloads.job import JobSpec
from pilotid.probe import FAIL, OK, WARN, Check, probe_node
from pilotid.queue import QueueSettings
from pilotid.queue_strategies import Strategies
from pilotid.strategies.session import SessionDecorator
from pilotid.testing import FakePayload, RecordingSwitcher, StaticCredentialSource
from pilotid.values import Outcome
from pilotid.workdir import SandboxGrant, acl_supported
from tests.conftest import ALICE_DN

JOB = JobSpec(panda_id=4242, transformation="fake-00-00-01", prod_user_id=ALICE_DN)
RESULT_FIELDS = {"panda_id", "outcome", "exit_code", "signal", "error_code", "error",
                 "account", "switcher", "sandbox_mode", "workdir", "stdout", "stderr",
                 "started", "ended"}
SOMEONE_ELSE = Account("pilotid-unit-target", 54321, 54321)


@pytest.fixture(scope="module")
def proxy_pem() -> bytes:
    ca = TestCA(bits=1024)
    return make_proxy(ca.issue(ALICE_DN, bits=1024), bits=1024)


@pytest.fixture
def credential(tmp_path: Path, proxy_pem: bytes) -> Credential:
    """A fresh 0600 copy of alice's proxy, as a credential source would hand it out."""
    directory = tmp_path / "credentials"
    directory.mkdir(mode=0o700)
    path = write_private(directory / "x509up_alice", proxy_pem)
    return Credential(path=path, proxy=parse_proxy(proxy_pem, path), source="static")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def make_launcher(credential: Optional[Credential], argv: List[str], *,
                  switcher: Any = None, source: Any = None, payload: Any = None,
                  **settings: Any) -> PayloadLauncher:
    """A launcher of queue ANALY_UNIT whose one payload adapter runs ``argv``."""
    queue = QueueSettings("ANALY_UNIT", **settings)
    return PayloadLauncher(queue, Strategies(
        source=source or StaticCredentialSource(credential),
        switcher=switcher or RecordingSwitcher(queue),
        payloads=(payload or FakePayload(argv),)))


def sh(script: str) -> List[str]:
    return ["/bin/sh", "-c", script]


def accounting(workdir: Path) -> List[dict]:
    return [json.loads(line) for line in
            (workdir / "accounting.jsonl").read_text().splitlines()]


def assert_cleaned_up(workdir: Path, credential: Optional[Credential]) -> None:
    """No copy of the credential, wrapper, marker or handed-over proxy of the run is left;
    the source's own proxy file (``credential``, which the source copied) is kept."""
    if credential is not None:
        assert credential.path.exists(), "the source's own proxy file was removed"
    copies = sorted(str(p) for p in workdir.rglob("user-proxy-*.pem"))
    assert copies == [], f"the job's credential was not removed: {copies}"
    leftovers = sorted(p.name for p in workdir.glob(".pilotid*"))
    assert leftovers == [], f"scratch files left in the work directory: {leftovers}"


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.01)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


# --- the steps ------------------------------------------------------------------------------


class _Steps:
    """Records, in one list, what each fake was asked and what the disk looked like then."""

    def __init__(self) -> None:
        self.events: List[str] = []
        self.seen: dict = {}


def recording_fakes(steps: _Steps, credential: Credential, argv: List[str],
                    switcher_class: type = RecordingSwitcher, queue: Any = None):
    class Source(StaticCredentialSource):
        def fetch(self, request):
            steps.events.append("fetch")
            steps.seen["request"] = request
            return super().fetch(request)

    class Payload(FakePayload):
        def command(self, job, workdir):
            steps.events.append("command")
            return super().command(job, workdir)

    class Switcher(switcher_class):  # type: ignore[misc, valid-type]
        def probe(self, cred):
            steps.events.append("probe")
            return super().probe(cred)

        def handover(self, cred, account, workdir):
            steps.events.append("handover")
            return super().handover(cred, account, workdir)

        def launch(self, argv, cred, account, workdir, logs):
            steps.events.append("launch")
            wrapper = Path(argv[0])
            steps.seen["wrapper_mode"] = stat.S_IMODE(wrapper.stat().st_mode)
            steps.seen["markers_before_launch"] = list(workdir.glob(".pilotid-marker-*"))
            steps.seen["credential_at_launch"] = cred.path.exists()
            return super().launch(argv, cred, account, workdir, logs)

        def explain(self, returncode, marker):
            steps.events.append("explain")
            steps.seen["marker"] = marker
            steps.seen["accounting_at_explain"] = (Path(steps.seen["workdir"])
                                                   / "accounting.jsonl").exists()
            return super().explain(returncode, marker)

    return Source(credential), Switcher(queue), Payload(argv)


def test_steps_run_in_the_documented_order_and_leave_a_result(credential, workdir,
                                                              monkeypatch):
    steps = _Steps()
    steps.seen["workdir"] = workdir
    source, switcher, payload = recording_fakes(steps, credential,
                                                sh("echo to-stdout; echo to-stderr >&2"))
    monkeypatch.setattr("pilotid.launcher.grant_target_access", _must_not_be_called)
    result = make_launcher(credential, [], source=source, switcher=switcher,
                           payload=payload).run(JOB, workdir)
    assert steps.events == ["command", "fetch", "probe", "handover", "launch", "explain"]
    request = steps.seen["request"]
    assert workdir not in request.directory.parents, "credential copies in the work directory"
    assert not request.directory.exists(), "the private directory outlived the job"
    assert request.owner_dn == ALICE_DN
    assert steps.seen["wrapper_mode"] == 0o700
    assert steps.seen["markers_before_launch"] == []
    assert steps.seen["credential_at_launch"] is True
    assert steps.seen["marker"].uid == os.geteuid() and steps.seen["marker"].payload_status == 0
    assert steps.seen["accounting_at_explain"] is False  # step 8 comes after the payload
    assert result.outcome == "succeeded", result.error
    assert_cleaned_up(workdir, credential)
    assert len(accounting(workdir)) == 1


def _must_not_be_called(*args: Any, **kwargs: Any) -> None:
    raise AssertionError("the sandbox was opened although the payload runs as the pilot")


def test_a_switch_to_another_account_opens_the_sandbox_before_launch_and_reclaims_after(
        credential, workdir, monkeypatch):
    """The session says it switches to another account: grant before launch, reclaim at the
    end, the pilot's own credentials kept private; the wrapper (run as us) then contradicts
    the probe."""
    steps = _Steps()
    steps.seen["workdir"] = workdir

    class OtherAccount(RecordingSwitcher):
        switches_identity = True

        def probe(self, cred):
            super().probe(cred)
            return SOMEONE_ELSE

    def grant(path, account, mode, keep_private=(), work_root=None, journal=None):
        steps.events.append("grant")
        steps.seen["grant"] = (path, account, mode, list(keep_private))
        return SandboxGrant(path, account, "acl", os.geteuid())

    monkeypatch.setattr("pilotid.launcher.grant_target_access", grant)
    monkeypatch.setattr("pilotid.launcher.jobrun.reclaim",
                        lambda g: steps.events.append("reclaim"))
    monkeypatch.setattr("pilotid.workdir.grant.acl_supported", lambda path: True)
    monkeypatch.setenv("X509_USER_PROXY", "/pilot/own/x509up")
    source, switcher, payload = recording_fakes(steps, credential, ["/bin/true"],
                                                switcher_class=OtherAccount)
    result = make_launcher(credential, [], source=source, switcher=switcher,
                           payload=payload).run(JOB, workdir)
    assert steps.events == ["command", "fetch", "probe", "handover", "grant", "launch",
                            "reclaim"]
    path, account, mode, keep = steps.seen["grant"]
    assert (path, account, mode) == (workdir, SOMEONE_ELSE, "acl")
    assert Path("/pilot/own/x509up") in keep
    assert result.sandbox_mode == "acl"
    assert result.outcome == "switch_failed"


class StdinHandover(RecordingSwitcher):
    """Hands the proxy over on the wrapper's standard input, as sudo does (no switch)."""

    def handover(self, cred, account, workdir):
        super().handover(cred, account, workdir)
        return values.ProxyHandover(workdir / ".pilotid-proxy-unit" / "x509up", from_stdin=True)

    def launch(self, argv, cred, account, workdir, logs):
        process = subprocess.Popen([str(a) for a in argv], cwd=str(workdir),
                                   stdin=subprocess.PIPE, stdout=logs.stdout,
                                   stderr=logs.stderr, start_new_session=True)
        process.stdin.write(cred.path.read_bytes())
        process.stdin.close()
        return process


def test_proxy_from_stdin_goes_in_a_handover_directory_that_is_removed_after(credential,
                                                                            workdir):
    script = ('stat -c "%a %n" "$X509_USER_PROXY" "${X509_USER_PROXY%/*}" > seen.txt; '
              'cp "$X509_USER_PROXY" copy.pem')
    pem = credential.path.read_bytes()
    result = make_launcher(credential, sh(script), switcher=StdinHandover()).run(JOB, workdir)
    assert result.outcome == "succeeded", result.error
    proxy = workdir / ".pilotid-proxy-unit" / "x509up"
    assert (workdir / "seen.txt").read_text().splitlines() == [f"600 {proxy}",
                                                               f"700 {proxy.parent}"]
    assert (workdir / "copy.pem").read_bytes() == pem
    assert_cleaned_up(workdir, credential)


def test_marker_from_another_uid_than_the_probe_said_is_a_switch_failure(credential, tmp_path):
    """With the real sandbox: the grant is taken back and nothing names the other uid."""
    area = Path(tempfile.mkdtemp(prefix="pilotid-launcher-", dir="/tmp"))  # noqa: S108
    try:
        area.chmod(0o755)
        workdir = area / "work"
        workdir.mkdir(mode=0o700)
        (workdir / "input.txt").write_text("input")
        (workdir / "input.txt").chmod(0o600)

        class OtherAccount(RecordingSwitcher):
            switches_identity = True

            def probe(self, cred):
                return SOMEONE_ELSE

        before = _modes_and_acls(workdir)
        launcher = make_launcher(credential, ["/bin/true"],
                                 switcher=OtherAccount(QueueSettings("ANALY_UNIT")))
        result = launcher.run(JOB, workdir)
        assert result.outcome == "switch_failed"
        assert result.error_code == 50
        assert f"uid {os.geteuid()}" in result.error and "uid 54321" in result.error
        assert result.exit_code is None
        assert result.sandbox_mode == ("acl" if acl_supported(workdir) else "world")
        after = _modes_and_acls(workdir)
        assert after["."] == before["."] and after["input.txt"] == before["input.txt"]
        assert not any("54321" in acl for _, acl in after.values())
        assert_cleaned_up(workdir, credential)
    finally:
        shutil.rmtree(area, ignore_errors=True)


def _modes_and_acls(top: Path) -> dict:
    found = {}
    for path in [top, *top.rglob("*")]:
        acl = subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True,
                             text=True).stdout
        found[str(path.relative_to(top))] = (stat.S_IMODE(path.lstat().st_mode), acl)
    return found


# --- the result, the logs and the accounting record ----------------------------------------


def test_success_fills_every_field_and_logs_go_to_the_work_directory(credential, workdir):
    result = make_launcher(credential, sh("echo to-stdout; echo to-stderr >&2")).run(
        JOB, workdir)
    assert isinstance(result, PayloadResult)
    assert result.outcome == "succeeded"
    assert (result.exit_code, result.signal, result.error_code, result.error) == (0, None, 0,
                                                                                 None)
    assert result.account == Account.current()
    assert (result.switcher, result.sandbox_mode) == ("recording", "none")
    assert result.workdir == workdir
    assert result.stdout == workdir / "pilotid-4242.stdout"
    assert result.stderr == workdir / "pilotid-4242.stderr"
    assert result.stdout.read_text() == "to-stdout\n"
    assert result.stderr.read_text() == "to-stderr\n"
    assert result.started.tzinfo is not None and result.started <= result.ended
    assert set(result.as_dict()) == RESULT_FIELDS
    assert result.user_dn == ALICE_DN
    assert_cleaned_up(workdir, credential)


def test_accounting_record_has_the_result_fields_and_the_users_dn(credential, workdir,
                                                                  tmp_path):
    queue_file = tmp_path / "queue-accounting.jsonl"
    result = make_launcher(credential, ["/bin/true"], accounting_file=queue_file).run(
        JOB, workdir)
    records = accounting(workdir)
    assert len(records) == 1
    record = records[0]
    assert set(record) == RESULT_FIELDS | {"user_dn", "token"}
    assert record == json.loads(json.dumps(result.as_dict())) | {"user_dn": ALICE_DN,
                                                                 "token": None}
    assert record["account"] == Account.current().as_dict()
    datetime.datetime.fromisoformat(record["started"])
    assert [json.loads(line) for line in queue_file.read_text().splitlines()] == [record]


def test_each_run_appends_one_accounting_line(proxy_pem, workdir, tmp_path):
    for number in range(2):
        path = write_private(tmp_path / f"proxy-{number}", proxy_pem)
        cred = Credential(path=path, proxy=parse_proxy(proxy_pem, path), source="static")
        make_launcher(cred, ["/bin/true"]).run(JOB, workdir)
    assert [r["outcome"] for r in accounting(workdir)] == ["succeeded", "succeeded"]


def test_payload_log_behind_a_symlink_is_moved_aside_and_its_target_untouched(credential,
                                                                             workdir, tmp_path):
    """A payload of an earlier job in the same work directory may have planted one: it is
    kept for inspection under another name, and the job logs to a new file."""
    victim = tmp_path / "pilot-file"
    victim.write_text("the pilot's\n")
    (workdir / "pilotid-4242.stdout").symlink_to(victim)
    result = make_launcher(credential, sh("echo landed")).run(JOB, workdir)
    assert result.outcome == "succeeded"
    assert victim.read_text() == "the pilot's\n"
    assert result.stdout.read_text() == "landed\n" and not result.stdout.is_symlink()
    [aside] = workdir.glob("pilotid-4242.stdout.planted-*")
    assert aside.is_symlink() and os.readlink(aside) == str(victim)
    assert_cleaned_up(workdir, credential)


def test_fifo_the_payload_left_as_accounting_file_does_not_block_the_pilot(credential,
                                                                         workdir, tmp_path):
    os.mkfifo(workdir / "accounting.jsonl")
    queue_file = tmp_path / "queue-accounting.jsonl"
    result = make_launcher(credential, ["/bin/true"], accounting_file=queue_file).run(
        JOB, workdir)  # would block for ever opening the FIFO
    assert result.outcome == "succeeded"
    assert json.loads(queue_file.read_text())["outcome"] == "succeeded"
    assert [r["outcome"] for r in accounting(workdir)] == ["succeeded"]
    [aside] = workdir.glob("accounting.jsonl.planted-*")
    assert stat.S_ISFIFO(aside.lstat().st_mode)


def test_fifo_as_payload_log_is_moved_aside(credential, workdir):
    os.mkfifo(workdir / "pilotid-4242.stderr")
    result = make_launcher(credential, sh("echo oops >&2")).run(JOB, workdir)
    assert result.outcome == "succeeded"
    assert result.stderr.read_text() == "oops\n"
    [aside] = workdir.glob("pilotid-4242.stderr.planted-*")
    assert stat.S_ISFIFO(aside.lstat().st_mode)


def test_queue_accounting_file_behind_a_symlink_is_refused(credential, workdir, tmp_path):
    """Only the work directory's own file is moved aside; the queue's is the site's."""
    victim = tmp_path / "pilot-file"
    victim.write_text("the pilot's\n")
    queue_file = tmp_path / "queue-accounting.jsonl"
    queue_file.symlink_to(victim)
    result = make_launcher(credential, ["/bin/true"], accounting_file=queue_file).run(
        JOB, workdir)
    assert result.outcome == "succeeded"
    assert victim.read_text() == "the pilot's\n" and queue_file.is_symlink()
    assert [r["outcome"] for r in accounting(workdir)] == ["succeeded"]


def test_queue_accounting_file_may_be_a_sites_shared_file(credential, workdir, tmp_path):
    """Outside the work directory a regular file is enough: another account's (as root
    here), one with a second name; the pilot appends to it as it is."""
    queue_file = tmp_path / "queue-accounting.jsonl"
    queue_file.write_text("")
    os.link(queue_file, tmp_path / "site-accounting.jsonl")
    if os.geteuid() == 0:
        os.chown(queue_file, 65534, 65534)
    result = make_launcher(credential, ["/bin/true"], accounting_file=queue_file).run(
        JOB, workdir)
    assert result.outcome == "succeeded"
    assert json.loads(queue_file.read_text())["outcome"] == "succeeded"
    assert not list(tmp_path.glob("*.planted-*"))


def test_payload_log_that_cannot_be_created_is_a_workdir_error(credential, workdir):
    """Nothing planted: a work directory the pilot can no longer write into."""
    launcher = make_launcher(credential, ["/bin/true"])
    with mock.patch("pilotid.workfiles.open_append",
                    side_effect=OSError(errno.ENOSPC, "No space left on device")):
        result = launcher.run(JOB, workdir)
    assert (result.outcome, result.error_code) == ("setup_failed", 22)
    assert "pilotid-4242.stdout" in result.error and "No space" in result.error
    assert not list(workdir.glob("*.planted-*"))


# --- each failure class and its outcome -----------------------------------------------------


def test_credential_failure_never_reaches_the_switch(workdir):
    switcher = RecordingSwitcher()
    source = StaticCredentialSource(error=ProxyExpiredError("the proxy of alice has expired"))
    result = make_launcher(None, ["/bin/true"], source=source, switcher=switcher).run(
        JOB, workdir)
    assert (result.outcome, result.error_code) == ("credential_failed", 32)
    assert result.error == "the proxy of alice has expired"
    assert switcher.calls == []
    assert (result.account, result.stdout, result.exit_code) == (None, None, None)
    assert accounting(workdir)[0]["user_dn"] == ALICE_DN  # from the job, as no proxy came
    assert_cleaned_up(workdir, None)


class RefusingSwitcher(RecordingSwitcher):
    """A switcher whose probe raises the error it was given."""

    def __init__(self, error: Exception, settings: Any = None) -> None:
        super().__init__(settings)
        self.error = error

    def probe(self, credential):
        super().probe(credential)
        raise self.error


@pytest.mark.parametrize("error, code", [
    (SwitchNotPermittedError("sudo refuses pilot -> carol"), 52),
    (AccountMappingError("the DN of eve is not in the grid-mapfile"), 40),
    (SwitchUnavailableError("sudo is not installed"), 51),
])
def test_probe_failure_is_a_switch_failure_and_nothing_runs(credential, workdir, error, code):
    switcher = RefusingSwitcher(error)
    result = make_launcher(credential, ["/bin/true"], switcher=switcher).run(JOB, workdir)
    assert (result.outcome, result.error_code, result.error) == ("switch_failed", code,
                                                                 str(error))
    assert switcher.called("launch") == []
    assert result.account is None
    assert_cleaned_up(workdir, credential)


def test_reschedule_request_from_the_probe_is_rescheduled(credential, workdir):
    switcher = RefusingSwitcher(RescheduleRequest("gLExec probe failed, job handed back"))
    result = make_launcher(credential, ["/bin/true"], switcher=switcher).run(JOB, workdir)
    assert (result.outcome, result.error_code) == ("rescheduled", 56)
    assert_cleaned_up(workdir, credential)


def test_queue_that_reschedules_hands_back_any_probe_failure(credential, workdir):
    """``on_probe_failure: reschedule`` is the queue's policy, whatever the switcher."""
    queue = QueueSettings("ANALY_UNIT", on_probe_failure="reschedule")
    switcher = RefusingSwitcher(SwitchNotPermittedError("sudo refuses pilot -> carol"), queue)
    result = make_launcher(credential, ["/bin/true"], switcher=switcher,
                           on_probe_failure="reschedule").run(JOB, workdir)
    assert (result.outcome, result.error_code) == ("rescheduled", 56)
    assert "sudo refuses pilot -> carol" in result.error
    assert switcher.called("launch") == []


class RefusedAtLaunch(RecordingSwitcher):
    """Probes fine (an answer kept from an earlier job), then the switch itself is refused:
    the wrapper never runs."""

    def launch(self, argv, credential, account, workdir, logs):
        return super().launch(["/bin/false"], credential, account, workdir, logs)

    def explain(self, returncode, marker):
        super().explain(returncode, marker)
        return Outcome(values.SWITCH_FAILED, error=SwitchNotPermittedError(
            "sudo: a password is required"))


@pytest.mark.parametrize("policy, outcome, code", [("fail", "switch_failed", 52),
                                                   ("reschedule", "rescheduled", 56)])
def test_switch_refused_at_launch_is_handled_as_a_refused_probe(credential, workdir, policy,
                                                                outcome, code):
    queue = QueueSettings("ANALY_UNIT", on_probe_failure=policy)
    switcher = RefusedAtLaunch(queue)
    result = make_launcher(credential, ["/bin/true"], switcher=switcher,
                           on_probe_failure=policy).run(JOB, workdir)
    assert (result.outcome, result.error_code) == (outcome, code)
    assert "a password is required" in result.error
    assert len(switcher.called("launch")) == 1
    assert_cleaned_up(workdir, credential)


def test_missing_work_directory_is_a_setup_failure_with_an_accounting_record(credential,
                                                                              tmp_path):
    queue_file = tmp_path / "queue-accounting.jsonl"
    missing = tmp_path / "no-such-dir"
    result = make_launcher(credential, ["/bin/true"], accounting_file=queue_file).run(
        JOB, missing)
    assert (result.outcome, result.error_code) == ("setup_failed", 22)
    assert str(missing) in result.error and "does not exist" in result.error
    assert not missing.exists()
    assert json.loads(queue_file.read_text())["outcome"] == "setup_failed"


def test_job_no_adapter_accepts_is_a_setup_failure(credential, workdir):
    payload = FakePayload(["/bin/true"], accepts=lambda job: False)
    source = StaticCredentialSource(credential)
    result = make_launcher(credential, [], payload=payload, source=source).run(JOB, workdir)
    assert (result.outcome, result.error_code) == ("setup_failed", 21)
    assert "fake-00-00-01" in result.error
    assert source.requests == []  # no credential fetched for a job that cannot run


def test_failing_site_setup_line_is_a_setup_failure(credential, workdir):
    payload = FakePayload(["/bin/true"], setup=["false"])
    result = make_launcher(credential, [], payload=payload).run(JOB, workdir)
    assert (result.outcome, result.error_code) == ("setup_failed", 10)
    assert "setup line failed" in result.error
    assert_cleaned_up(workdir, credential)


def test_payload_failure_keeps_its_exit_code(credential, workdir):
    result = make_launcher(credential, sh("echo partial; exit 3")).run(JOB, workdir)
    assert (result.outcome, result.exit_code, result.error_code) == ("payload_failed", 3, 70)
    assert result.stdout.read_text() == "partial\n"
    assert_cleaned_up(workdir, credential)


def test_payload_killed_by_a_signal_is_terminated(credential, workdir):
    result = make_launcher(credential, sh("kill -KILL $$")).run(JOB, workdir)
    assert (result.outcome, result.signal, result.exit_code, result.error_code) == \
        ("terminated", 9, None, 71)
    assert_cleaned_up(workdir, credential)


def test_payload_over_the_time_limit_is_stopped_and_timed_out(credential, workdir):
    switcher = RecordingSwitcher()
    started = time.monotonic()
    result = make_launcher(credential, sh("echo started; exec sleep 30"), switcher=switcher,
                           timeout=1, grace_period=10).run(JOB, workdir)
    assert time.monotonic() - started < 8
    assert (result.outcome, result.error_code, result.signal) == ("timed_out", 72, 15)
    assert "time limit of 1s" in result.error
    assert [args[1] for args in switcher.called("terminate")] == [signal.SIGTERM]
    assert result.stdout.read_text() == "started\n"
    assert_cleaned_up(workdir, credential)


def test_payload_that_ignores_sigterm_gets_sigkill_after_the_grace_period(credential,
                                                                          workdir):
    pidfile = workdir / "payload.pid"
    switcher = RecordingSwitcher()
    result = make_launcher(credential, sh(f"trap '' TERM; echo $$ > {pidfile}; "
                                          "echo \"$PYTHON_EGG_CACHE\"; sleep 30"),
                           switcher=switcher, timeout=1, grace_period=1).run(JOB, workdir)
    assert (result.outcome, result.error_code, result.signal) == ("timed_out", 72, 9)
    egg = result.stdout.read_text().strip()
    assert egg.startswith("/tmp/pilotid-egg-") and not os.path.exists(egg), \
        "the wrapper was killed before it could remove the egg cache"
    assert [args[1] for args in switcher.called("terminate")] == [signal.SIGTERM,
                                                                   signal.SIGKILL]
    payload = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(payload) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not alive(payload), "the payload outlived SIGKILL"
    assert_cleaned_up(workdir, credential)


def run_signalled(launcher: PayloadLauncher, workdir: Path,
                  send: Callable[[Callable[[], bool]], None]) -> PayloadResult:
    """Run ``JOB`` while ``send``, in a thread, signals this process (the pilot).

    Outside the launcher's own handling SIGTERM and SIGINT do nothing, so that a stray one
    never ends pytest; ``send`` is given a test saying whether the launcher's handler is in
    place.
    """
    def placeholder(signum: int, frame: Any) -> None:
        pass

    previous = {s: signal.signal(s, placeholder) for s in (signal.SIGTERM, signal.SIGINT)}
    sender = threading.Thread(
        target=send, args=(lambda: signal.getsignal(signal.SIGTERM) is not placeholder,))
    sender.start()
    try:
        return launcher.run(JOB, workdir)
    finally:
        sender.join()
        for s, old in previous.items():
            signal.signal(s, old)


def test_sigterm_to_the_pilot_stops_the_payload_and_is_interrupted(credential, workdir):
    """SIGTERM to this very process (the pilot), delivered in the main thread while the
    payload runs: the launcher stops the payload through the switcher and reports it."""
    assert threading.current_thread() is threading.main_thread()
    ready = workdir / "payload-ready"
    switcher = RecordingSwitcher()
    launcher = make_launcher(credential, sh(f"echo started; touch {ready}; exec sleep 30"),
                             switcher=switcher)

    def send(launcher_handles: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if ready.exists() and launcher_handles():
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.01)

    result = run_signalled(launcher, workdir, send)
    assert (result.outcome, result.error_code, result.signal) == ("interrupted", 73, 15)
    assert "signal 15" in result.error
    assert [args[1] for args in switcher.called("terminate")] == [signal.SIGTERM]
    assert result.stdout.read_text() == "started\n"  # logs kept
    assert accounting(workdir)[0]["outcome"] == "interrupted"
    assert_cleaned_up(workdir, credential)


def test_sigterm_before_the_payload_starts_stops_the_job_there(credential, workdir):
    """SIGTERM while the target is being probed: never the default (death of the pilot
    half-way); the payload is not started and everything is cleaned up."""
    class SignalledSwitcher(RecordingSwitcher):
        def probe(self, credential):
            os.kill(os.getpid(), signal.SIGTERM)  # delivered in the main thread, right here
            return super().probe(credential)

    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        switcher = SignalledSwitcher()
        result = make_launcher(credential, ["/bin/true"], switcher=switcher).run(JOB, workdir)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen == []  # the launcher's handler had it, not the one before
    assert (result.outcome, result.error_code, result.exit_code) == ("interrupted", 73, None)
    assert "payload was not started" in result.error
    assert switcher.called("launch") == []
    assert accounting(workdir)[0]["outcome"] == "interrupted"
    assert_cleaned_up(workdir, credential)


def test_sigterm_during_the_credential_fetch_stops_it_there(credential, workdir):
    """A credential server that does not answer: a signal ends the wait for it at once,
    rather than when the fetch gives up."""
    fetched = []

    class HangingSource(StaticCredentialSource):
        def fetch(self, request):
            os.kill(os.getpid(), signal.SIGTERM)  # delivered in the main thread, right here
            time.sleep(30)
            fetched.append(request)
            return super().fetch(request)

    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    started = time.monotonic()
    try:
        switcher = RecordingSwitcher()
        result = make_launcher(credential, ["/bin/true"], switcher=switcher,
                               source=HangingSource(credential)).run(JOB, workdir)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert time.monotonic() - started < 10
    assert (result.outcome, result.error_code) == ("interrupted", 73)
    assert "while fetching the credential" in result.error
    assert fetched == [] and switcher.called("probe") == []
    assert accounting(workdir)[0]["outcome"] == "interrupted"
    assert not list(Path(tempfile.gettempdir()).glob(f"pilotid-job-{JOB.panda_id}-*"))


def test_second_signal_while_the_payload_is_stopped_does_not_escape(credential, workdir):
    """TERM, then INT during the grace period: the launcher keeps stopping the payload."""
    ready = workdir / "payload-ready"
    switcher = RecordingSwitcher()
    launcher = make_launcher(credential, sh(f"trap '' TERM INT; touch {ready}; sleep 30"),
                             switcher=switcher, grace_period=2)

    def send(launcher_handles: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not (ready.exists() and launcher_handles()):
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGTERM)
        while not switcher.called("terminate") and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    result = run_signalled(launcher, workdir, send)
    assert (result.outcome, result.error_code) == ("interrupted", 73)
    assert [args[1] for args in switcher.called("terminate")] == [signal.SIGTERM,
                                                                   signal.SIGKILL]
    assert_cleaned_up(workdir, credential)


def test_pilot_credentials_are_named_by_its_environment():
    env = {"X509_USER_PROXY": "/p/proxy", "X509_USER_CERT": "/p/cert", "X509_USER_KEY": "",
           "OTHER": "/p/other"}
    found = pilot_credentials(env)
    assert found[:2] == [Path("/p/proxy"), Path("/p/cert")]
    assert found[2:] == [default_proxy_path()]


# --- pilotid run ------------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path, proxy_pem: bytes) -> dict:
    """A queue settings file (noop switcher, alice's proxy file) and a runAthena job."""
    proxy = write_private(tmp_path / "x509up_alice", proxy_pem)
    queues = tmp_path / "queues.json"
    queues.write_text(json.dumps({"queues": {"ANALY_UNIT": {
        "switcher": "noop", "credential_source": "file", "proxy_file": str(proxy),
        "standin_transformations": True}}}))
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "in.root").write_text("events\n")
    return {"queues": queues, "workdir": workdir, "tmp": tmp_path}


def write_job(site: dict, job_pars: str, panda_id: Any = 4243) -> Path:
    path = site["tmp"] / "job.json"
    path.write_text(json.dumps({"PandaID": panda_id, "transformation": "runAthena-00-00-11",
                                "prodUserID": ALICE_DN, "jobPars": job_pars}))
    return path


def pilotid(*argv: str) -> int:
    return cli.main(["-q", *argv])


def run_args(site: dict, job: Path, queue: str = "ANALY_UNIT") -> List[str]:
    return ["run", "--queues", str(site["queues"]), "--queue", queue, "--job", str(job),
            "--workdir", str(site["workdir"]), "--json"]


def test_run_json_prints_one_object_with_the_documented_fields(site, capsys):
    job = write_job(site, "-i \"['in.root']\" -o \"{'hist': 'out/user.hist.root'}\"",
                    panda_id="4243")
    status = pilotid(*run_args(site, job))
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    result = json.loads(out)
    assert set(result) == RESULT_FIELDS
    assert status == 0
    assert (result["outcome"], result["panda_id"], result["error_code"]) == ("succeeded",
                                                                            4243, 0)
    assert result["switcher"] == "noop" and result["sandbox_mode"] == "none"
    assert result["account"] == Account.current().as_dict()
    assert (site["workdir"] / "out" / "user.hist.root").is_file()
    assert Path(result["stdout"]).parent == site["workdir"]


def test_run_exits_with_the_error_code_of_a_failed_payload(site, capsys):
    status = pilotid(*run_args(site, write_job(site, "--fail 3")))
    result = json.loads(capsys.readouterr().out)
    assert (result["outcome"], result["exit_code"], result["error_code"]) == (
        "payload_failed", 3, 70)
    assert status == exit_status(70) == 70


def test_run_without_json_prints_two_lines(site, capsys):
    status = pilotid(*run_args(site, write_job(site, ""))[:-1])
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    assert lines[0] == "job 4243: succeeded, exit code 0, error code 0"
    assert lines[1].startswith(f"work directory {site['workdir']}; logs ")


@pytest.mark.parametrize("case, code", [("malformed job", 20), ("unknown queue", 11),
                                        ("missing work directory", 22)])
def test_run_bad_input_is_one_clear_line_and_its_code(site, capsys, case, code):
    job = write_job(site, "")
    args = run_args(site, job)
    if case == "malformed job":
        job.write_text('{"PandaID": 1, "transformation": ')
    elif case == "unknown queue":
        args = run_args(site, job, queue="ANALY_NOPE")
    else:
        args[args.index("--workdir") + 1] = str(site["tmp"] / "missing")
    status = pilotid(*args)
    captured = capsys.readouterr()
    assert status == code
    if case == "missing work directory":  # the launcher's result, on stdout
        result = json.loads(captured.out)
        assert (result["error_code"], result["outcome"]) == (code, "setup_failed")
        assert "\n" not in result["error"]
    else:
        errors = [line for line in captured.err.splitlines() if line.startswith("pilotid:")]
        assert len(errors) == 1 and errors[0].startswith(f"pilotid: error {code} ")
        assert captured.out == ""


# --- pilotid probe ----------------------------------------------------------------------------


def test_probe_reports_each_check_and_exits_zero(site, capsys, monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "/nonexistent/libpreload.so")
    monkeypatch.setenv("TMPDIR", str(site["tmp"] / "no-such-tmp"))
    status = pilotid("probe", "--queues", str(site["queues"]), "--queue", "ANALY_UNIT",
                     "--workdir", str(site["workdir"]))
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    by_name = {line.split(":", 1)[0].split(None, 1)[1]: line for line in lines}
    assert set(by_name) == {"credential", "test switch", "switch", "isolation", "ACL support",
                            "work root", "egg cache base", "at", "cron", "LD_PRELOAD", "TMPDIR",
                            "umask"}
    assert by_name["switch"].startswith("OK") and "pilot itself" in by_name["switch"]
    assert by_name["credential"].startswith("OK") and ALICE_DN in by_name["credential"]
    assert Account.current().name in by_name["test switch"]
    assert by_name["LD_PRELOAD"].startswith("WARN") and "/nonexistent" in by_name["LD_PRELOAD"]
    assert by_name["TMPDIR"].startswith("WARN")


def test_probe_json_and_a_failed_credential_set_the_exit_status(site, capsys):
    queues = json.loads(site["queues"].read_text())
    queues["queues"]["ANALY_UNIT"]["proxy_file"] = str(site["tmp"] / "missing-proxy")
    site["queues"].write_text(json.dumps(queues))
    status = pilotid("probe", "--queues", str(site["queues"]), "--queue", "ANALY_UNIT",
                     "--workdir", str(site["workdir"]), "--json")
    checks = json.loads(capsys.readouterr().out)
    credential_check = next(c for c in checks if c["name"] == "credential")
    assert credential_check["status"] == FAIL and credential_check["error_code"] == 31
    assert status == 31
    assert set(checks[0]) == {"name", "status", "detail", "error_code"}


class _SwitchCheckSwitcher(RecordingSwitcher):
    """Its ``node_checks`` answers ``checks``, or raises it if it is an exception."""

    def __init__(self, checks: Any) -> None:
        super().__init__(QueueSettings("ANALY_UNIT"))
        self._checks = checks

    def node_checks(self, credential):
        super().node_checks(credential)
        if isinstance(self._checks, Exception):
            raise self._checks
        return self._checks


def test_probe_shows_the_switchers_own_checks_as_json(credential, workdir):
    switcher = _SwitchCheckSwitcher([Check("switch program", OK, "/bin/sh")])
    launcher = make_launcher(credential, ["/bin/true"], switcher=switcher)
    checks = probe_node(launcher, workdir, environ={})
    check = next(c for c in checks if c.name == "switch program")
    assert (check.status, check.detail) == (OK, "/bin/sh")
    json.dumps([c.as_dict() for c in checks])


def test_probe_reports_switch_checks_that_raise_and_goes_on(credential, workdir):
    """``node_checks`` should never raise; a plugin's that does is one FAIL line."""
    missing = SwitchUnavailableError("sudo is not installed")
    launcher = make_launcher(credential, ["/bin/true"], switcher=_SwitchCheckSwitcher(missing))
    checks = probe_node(launcher, workdir, environ={})
    check = next(c for c in checks if c.name == "switch")
    assert (check.status, check.error_code) == (FAIL, 51)
    assert str(missing) in check.detail
    assert {c.name for c in checks} >= {"credential", "test switch", "umask"}


def _sudo_switcher(tmp_path: Path, sudo: str) -> Any:
    from pilotid.strategies.sudo import SudoSwitcher

    return SudoSwitcher(QueueSettings("ANALY_UNIT", switcher="sudo",
                                      options={"grid_mapfile": tmp_path / "grid-mapfile"}),
                        sudo=sudo)


def test_probe_of_a_sudo_queue_names_sudo(credential, workdir, tmp_path):
    fake_sudo = tmp_path / "sudo"
    fake_sudo.write_text("#!/bin/sh\nexit 0\n")
    fake_sudo.chmod(0o755)
    launcher = make_launcher(credential, ["/bin/true"],
                             switcher=_sudo_switcher(tmp_path, str(fake_sudo)))
    checks = probe_node(launcher, workdir, environ={})
    check = next(c for c in checks if c.name == "sudo")
    assert (check.status, check.detail) == (OK, str(fake_sudo))
    assert next(c for c in checks if c.name == "umask").status in (OK, WARN)
    json.dumps([c.as_dict() for c in checks])


def test_probe_of_a_sudo_queue_without_sudo_fails_that_check_and_goes_on(credential, workdir,
                                                                         tmp_path):
    missing = tmp_path / "no-such-sudo"
    launcher = make_launcher(credential, ["/bin/true"],
                             switcher=_sudo_switcher(tmp_path, str(missing)))
    checks = probe_node(launcher, workdir, environ={})
    check = next(c for c in checks if c.name == "sudo")
    assert (check.status, check.error_code) == (FAIL, 51)
    assert str(missing) in check.detail
    assert {c.name for c in checks} >= {"credential", "test switch", "umask"}


class ExplainBug(RecordingSwitcher):
    """A plugin's bug: ``explain`` raises something that is not a ``PilotidError``."""

    def explain(self, returncode, marker):
        raise RuntimeError("plugin bug")


def test_unexpected_exception_becomes_an_internal_error_with_its_record(credential, workdir,
                                                                         caplog):
    result = make_launcher(credential, sh("echo out > out.txt"),
                           switcher=ExplainBug()).run(JOB, workdir)
    assert (result.outcome, result.error_code) == ("internal_error", 80)
    assert "RuntimeError: plugin bug" in result.error
    assert accounting(workdir)[0]["outcome"] == "internal_error"
    assert "Traceback" in caplog.text
    assert (workdir / "out.txt").exists()
    assert_cleaned_up(workdir, credential)


def test_unexpected_exception_while_reclaiming_turns_a_success_into_an_internal_error(
        credential, workdir, monkeypatch):
    class OtherAccount(RecordingSwitcher):
        switches_identity = True

    def reclaim(grant):
        raise OSError(24, "Too many open files")

    monkeypatch.setattr("pilotid.launcher.grant_target_access",
                        lambda path, account, mode, keep_private=(), **_: SandboxGrant(
                            path, account, "acl", os.geteuid()))
    monkeypatch.setattr("pilotid.launcher.jobrun.reclaim", reclaim)
    monkeypatch.setattr("pilotid.workdir.grant.acl_supported", lambda path: True)
    result = make_launcher(credential, ["/bin/true"], switcher=OtherAccount()).run(JOB, workdir)
    assert (result.outcome, result.error_code) == ("internal_error", 80)
    assert "Too many open files" in result.error
    assert accounting(workdir)[0]["error_code"] == 80


def test_a_grant_that_falls_back_to_world_mode_by_itself_sets_the_payloads_umask(
        credential, workdir, monkeypatch):
    """ACLs looked supported, so the wrapper was written with the queue's umask; the grant
    then fell back to world mode: the payload runs with the grant's umask, 000."""
    class Switching(RecordingSwitcher):
        switches_identity = True

    def world_grant(path, account, mode, keep_private=(), work_root=None, journal=None):
        assert mode == "acl"
        return SandboxGrant(path, account, "world", os.geteuid())

    monkeypatch.setattr("pilotid.launcher.grant_target_access", world_grant)
    monkeypatch.setattr("pilotid.launcher.jobrun.reclaim", lambda grant: None)
    monkeypatch.setattr("pilotid.workdir.grant.acl_supported", lambda path: True)
    result = make_launcher(credential, sh("umask > umask.txt"), switcher=Switching(),
                           umask=0o022).run(JOB, workdir)
    assert result.outcome == "succeeded", result.error
    assert result.sandbox_mode == "world"
    assert (workdir / "umask.txt").read_text().strip() == "0000"


class ExecsTheWrapper(RecordingSwitcher):
    """A switch whose program execs the wrapper (as setpriv does): the wrapper is then
    itself a child of the pilot running as the target."""

    switches_identity = True

    def launch(self, argv, cred, account, workdir, logs):
        return super().launch(["/usr/bin/env", *argv], cred, account, workdir, logs)


def test_a_wrapper_exec_d_by_its_switch_program_does_not_reap_itself(credential, workdir,
                                                                      monkeypatch):
    monkeypatch.setattr("pilotid.launcher.grant_target_access",
                        lambda path, account, mode, keep_private=(), **_: SandboxGrant(
                            path, account, "acl", os.geteuid()))
    monkeypatch.setattr("pilotid.launcher.jobrun.reclaim", lambda grant: None)
    monkeypatch.setattr("pilotid.workdir.grant.acl_supported", lambda path: True)
    result = make_launcher(credential, sh("echo done > done.txt"),
                           switcher=ExecsTheWrapper()).run(JOB, workdir)
    assert (result.outcome, result.exit_code, result.signal) == ("succeeded", 0, None), \
        result.error


class EnvIsolation(SessionDecorator):
    """An isolation as a later issue adds them: it prefixes the launch of any session."""

    def launch(self, argv, logs):
        return self.inner.launch(["/usr/bin/env", "PILOTID_ISOLATED=1", *argv], logs)


class IsolatedNoop(RecordingSwitcher):
    def open(self, credential, account, workdir):
        return EnvIsolation(super().open(credential, account, workdir))


def test_a_session_decorator_wraps_the_launch_of_any_switch(credential, workdir):
    session = IsolatedNoop().open(credential, Account.current(), workdir)
    assert verifyObject(ISwitchSession, session)
    assert session.switches_identity is False and session.marker_owner is None
    switcher = IsolatedNoop()
    result = make_launcher(credential, sh("echo done > done.txt"),
                           switcher=switcher).run(JOB, workdir)
    assert result.outcome == "succeeded", result.error
    ((argv, *_),) = switcher.called("launch")
    assert argv[:2] == ["/usr/bin/env", "PILOTID_ISOLATED=1"]
    assert (workdir / "done.txt").read_text() == "done\n"


def test_the_egg_cache_of_a_wrapper_killed_outright_is_removed_after_the_job(credential,
                                                                             workdir, tmp_path):
    """Issue 16, item 8: SIGKILL runs no trap; the marker's egg= line names the egg cache,
    and the session removes it (no switch here: directly)."""
    eggs = tmp_path / "eggs"
    eggs.mkdir()
    result = make_launcher(credential, sh("echo \"$PYTHON_EGG_CACHE\"; kill -KILL $PPID; "
                                          "exit 0"), egg_cache_base=eggs).run(JOB, workdir)
    assert result.outcome == "terminated", result.error
    egg = result.stdout.read_text().strip()
    assert egg.startswith(f"{eggs}/pilotid-egg-")
    assert list(eggs.iterdir()) == []
