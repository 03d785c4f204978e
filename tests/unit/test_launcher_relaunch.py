"""PayloadLauncher around the launch: relaunching a switch that failed before the wrapper
ran, the proxy's lifetime at launch, renewing it while a long payload runs, and stopping a
payload whose switcher refuses a signal.  Runs as any user: the switchers here do not
switch (``pilotid.testing.RecordingSwitcher``)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import List

import pytest
from zope.interface import implementer

from pilotid.errors import ProxyExpiredError, SwitchNotPermittedError, SwitchSystemError
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.credfile import write_private
from pilotid.identity.proxy import parse_proxy
from pilotid.interfaces import ICredentialSource
from pilotid.launcher import PayloadLauncher
from pilotid.payloads.job import JobSpec
from pilotid.queue import QueueSettings
from pilotid.queue_strategies import Strategies
from pilotid.testing import FakePayload, RecordingSwitcher, TestCA, make_proxy
from pilotid.values import SWITCH_FAILED, Outcome

DN = "/DC=org/DC=example/OU=People/CN=Launcher Test"


@pytest.fixture(scope="module")
def user():
    return TestCA(bits=1024).issue(DN)


@implementer(ICredentialSource)
class ProxySequenceSource:
    """Hands out a new proxy file per fetch, of the lifetimes given (the last one repeats)."""

    name = "sequence"

    def __init__(self, user, hours: List[float]) -> None:
        self.pems = [make_proxy(user, hours=h, bits=1024) for h in hours]
        self.requests: List[CredentialRequest] = []

    def fetch(self, request: CredentialRequest) -> Credential:
        pem = self.pems[min(len(self.requests), len(self.pems) - 1)]
        self.requests.append(request)
        path = write_private(Path(request.directory) / f"proxy-{len(self.requests)}.pem", pem)
        return Credential(path=path, proxy=parse_proxy(pem), source=self.name)


class FlakySwitcher(RecordingSwitcher):
    """Its first ``failures`` launches end in 202 before the wrapper runs; it retries 202
    up to ``tries`` launches, ``delay`` seconds apart."""

    def __init__(self, failures: int, tries: int = 3, delay: float = 0.0) -> None:
        super().__init__()
        self.failures, self.tries, self.delay = failures, tries, delay

    def launch(self, argv, credential, account, workdir, logs):
        if len(self.called("launch")) < self.failures:
            argv = ["/bin/sh", "-c", "exit 202"]
        return super().launch(argv, credential, account, workdir, logs)

    def explain(self, returncode, marker):
        if marker is None and returncode == 202:
            return Outcome(SWITCH_FAILED, error=SwitchSystemError("switch said 202"))
        return super().explain(returncode, marker)

    def retry_delay(self, outcome, attempt):
        super().retry_delay(outcome, attempt)
        if isinstance(outcome.error, SwitchSystemError) and attempt < self.tries:
            return self.delay
        return None


class PushingSwitcher(RecordingSwitcher):
    """Replaces the running payload's proxy (records it, says True)."""

    def refresh_proxy(self, credential, workdir):
        super().refresh_proxy(credential, workdir)
        return True


class SignalRefusingSwitcher(RecordingSwitcher):
    """Refuses to deliver SIGTERM, as gLExec does when it refuses the kill."""

    def terminate(self, process, signum):
        if signum == signal.SIGTERM:
            self.calls.append(("terminate", (process, signum)))
            raise SwitchNotPermittedError("gLExec refused the kill (203)")
        super().terminate(process, signum)


def launcher(switcher, source, argv, **fields) -> PayloadLauncher:
    fields.setdefault("grace_period", 5)
    settings = QueueSettings(name="ANALY_UNIT", **fields)
    return PayloadLauncher(settings, Strategies(source, switcher, (FakePayload(argv),)))


def run(launch: PayloadLauncher, tmp_path: Path):
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    job = JobSpec.from_description({"PandaID": 7, "transformation": "fake", "prodUserID": DN})
    return launch.run(job, workdir)


# --- relaunching ----------------------------------------------------------------------------

def test_switch_failure_before_the_wrapper_ran_is_launched_again(tmp_path, user):
    switcher = FlakySwitcher(failures=2)
    result = run(launcher(switcher, ProxySequenceSource(user, [12]), ["/bin/true"]), tmp_path)
    assert result.outcome == "succeeded"
    assert len(switcher.called("launch")) == 3
    assert [attempt for _, attempt in switcher.called("retry_delay")] == [1, 2]


def test_relaunching_stops_when_the_switcher_says_so(tmp_path, user):
    switcher = FlakySwitcher(failures=5, tries=2)
    result = run(launcher(switcher, ProxySequenceSource(user, [12]), ["/bin/true"]), tmp_path)
    assert (result.outcome, result.error_code) == ("switch_failed", SwitchSystemError.code)
    assert len(switcher.called("launch")) == 2


def test_a_payload_that_ran_is_never_launched_again(tmp_path, user):
    switcher = FlakySwitcher(failures=0)
    result = run(launcher(switcher, ProxySequenceSource(user, [12]), ["/bin/sh", "-c", "exit 3"]),
                 tmp_path)
    assert (result.outcome, result.exit_code) == ("payload_failed", 3)
    assert len(switcher.called("launch")) == 1
    assert switcher.called("retry_delay") == []


def test_pilot_told_to_stop_between_launches_ends_the_job_interrupted(tmp_path, user):
    switcher = FlakySwitcher(failures=5, delay=30)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    started = time.monotonic()
    try:
        result = run(launcher(switcher, ProxySequenceSource(user, [12]), ["/bin/true"]),
                     tmp_path)
    finally:
        timer.cancel()
    assert result.outcome == "interrupted" and result.error_code == 73
    assert time.monotonic() - started < 20
    assert len(switcher.called("launch")) == 1


# --- the proxy's lifetime ---------------------------------------------------------------------

def test_the_source_is_asked_for_what_a_launch_needs(tmp_path, user):
    source = ProxySequenceSource(user, [12])
    run(launcher(RecordingSwitcher(), source, ["/bin/true"], timeout=600), tmp_path)
    assert source.requests[0].lifetime == 600


def test_proxy_that_does_not_last_what_a_launch_needs_is_refused_before_launching(
        tmp_path, user):
    switcher = RecordingSwitcher()
    result = run(launcher(switcher, ProxySequenceSource(user, [1]), ["/bin/true"]), tmp_path)
    assert (result.outcome, result.error_code) == ("credential_failed", ProxyExpiredError.code)
    assert "needed to launch" in result.error
    assert switcher.called("launch") == []


def test_long_payload_gets_a_renewed_proxy_under_the_threshold(tmp_path, user, monkeypatch):
    private_base = tmp_path / "pilot-tmp"
    private_base.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(private_base))
    switcher = PushingSwitcher()
    source = ProxySequenceSource(user, [2, 12])
    result = run(launcher(switcher, source, ["/bin/sleep", "1.5"], timeout=60,
                          proxy_refresh_interval=1), tmp_path)
    assert result.outcome == "succeeded"
    pushed = switcher.called("refresh_proxy")
    assert len(pushed) == 1, "a proxy above the threshold is not renewed again"
    assert pushed[0][0].time_left().total_seconds() > 11 * 3600
    assert pushed[0][1] == tmp_path / "work"
    assert list(private_base.iterdir()) == [], "every proxy copy (and its directory) is removed"


def test_switcher_that_cannot_push_a_proxy_is_asked_once(tmp_path, user):
    switcher = RecordingSwitcher()
    result = run(launcher(switcher, ProxySequenceSource(user, [2, 12]), ["/bin/sleep", "2.5"],
                          timeout=60, proxy_refresh_interval=1), tmp_path)
    assert result.outcome == "succeeded"
    assert len(switcher.called("refresh_proxy")) == 1


def test_no_longer_lived_proxy_from_the_source_is_not_pushed(tmp_path, user):
    switcher = PushingSwitcher()
    source = ProxySequenceSource(user, [2])
    result = run(launcher(switcher, source, ["/bin/sleep", "1.5"], timeout=60,
                          proxy_refresh_interval=1), tmp_path)
    assert result.outcome == "succeeded"
    assert switcher.called("refresh_proxy") == []
    assert len(source.requests) >= 2


def test_proxy_above_the_threshold_is_left_alone(tmp_path, user):
    switcher = PushingSwitcher()
    source = ProxySequenceSource(user, [12])
    run(launcher(switcher, source, ["/bin/sleep", "1.5"], proxy_refresh_interval=1), tmp_path)
    assert len(source.requests) == 1 and switcher.called("refresh_proxy") == []


# --- stopping -------------------------------------------------------------------------------

def test_refused_sigterm_still_escalates_to_sigkill(tmp_path, user):
    switcher = SignalRefusingSwitcher()
    started = time.monotonic()
    result = run(launcher(switcher, ProxySequenceSource(user, [12]), ["/bin/sleep", "60"],
                          timeout=1, grace_period=1), tmp_path)
    assert result.outcome == "timed_out"
    assert [signum for _, signum in switcher.called("terminate")] == [signal.SIGTERM,
                                                                     signal.SIGKILL]
    assert time.monotonic() - started < 30
