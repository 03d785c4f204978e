"""The contract tests of ``IIdentitySwitcher`` and its ``ISwitchSession``, for plugin authors.

Re-exported by ``pilotid.testing``.  Two mixins for pytest test classes:

- ``IdentitySwitcherContract``: what can be checked without switching (the interfaces, the
  session's attributes, how a status and a marker become an outcome, retries, the probe
  checks); runs anywhere;
- ``IdentitySwitcherLaunchContract``: all of it, plus whole jobs through the switch on a
  node where it works: ``probe``, a real launch of the real wrapper, ``terminate`` at the
  time limit, ``stop_leftovers``, ``refresh``, ``close``.  The jobs run through
  ``PayloadLauncher``, so a switcher is checked with the grant, the handover and the
  wrapper's reaper exactly as a queue would run it.

Hooks: ``make_provider()`` (required) returns the switcher; ``make_credential(directory)``
a ``Credential`` (a 0600 proxy file in ``directory``) the switcher maps (default: a proxy
of a throwaway CA's user); ``make_workdir(tmp_path)`` a work directory of the pilot's the
target may be given (default ``tmp_path/'work'``); ``make_account()`` the account the
offline tests open a session for (default: the current user); ``make_marker(status)``;
``run_scenario(name, tmp_path)`` where a job scenario of the launch contract runs (default:
in the test process; tests/system/contract_driver.py runs them as an unprivileged pilot).
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, List, Optional, Tuple

from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import PayloadFailedError, PilotidError
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.credfile import write_private
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.interfaces import ICredentialSource, IIdentitySwitcher, IPayload, ISwitchSession
from pilotid.launcher import PayloadLauncher
from pilotid.payloads.job import JobSpec, PayloadCommand
from pilotid.queue_strategies import Strategies
from pilotid.values import (
    PAYLOAD_FAILED,
    SUCCEEDED,
    TERMINATED,
    Outcome,
    ProxyHandover,
    WrapperMarker,
)

#: The DN of the default credential's user.
CONTRACT_DN = "/DC=org/DC=example/OU=People/CN=Contract Tester"


class IdentitySwitcherContract:
    """What every ``IIdentitySwitcher`` and its session must do, checked without switching."""

    def make_provider(self) -> Any:
        """Return the switcher under test."""
        raise NotImplementedError("a switcher contract test must define make_provider()")

    def make_credential(self, directory: Path) -> Credential:
        """A credential of ``CONTRACT_DN`` in ``directory``; override for one the switcher
        maps (its grid-mapfile's user, say)."""
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = make_proxy(TestCA(bits=1024).issue(CONTRACT_DN, bits=1024), bits=1024)
        path = write_private(directory / f"x509up-{secrets.token_hex(4)}", pem)
        return Credential(path=path, proxy=parse_proxy(pem, path), source="contract")

    def make_workdir(self, tmp_path: Path) -> Path:
        """A new work directory of the pilot's."""
        path = tmp_path / "work"
        path.mkdir(mode=0o700)
        return path

    def make_account(self) -> Account:
        """The account the offline tests open a session for."""
        return Account.current()

    def make_marker(self, payload_status: Optional[int]) -> WrapperMarker:
        """The marker of a wrapper that ran as the target and saw ``payload_status``."""
        return WrapperMarker(os.getuid(), payload_status)

    def _session(self, tmp_path: Path) -> Any:
        credential = self.make_credential(tmp_path / "credentials")
        return self.make_provider().open(credential, self.make_account(),
                                         self.make_workdir(tmp_path))

    def test_provides_its_interface(self, tmp_path: Path) -> None:
        switcher = self.make_provider()
        assert verifyClass(IIdentitySwitcher, type(switcher))
        assert verifyObject(IIdentitySwitcher, switcher)

    def test_name_is_a_non_empty_string(self, tmp_path: Path) -> None:
        name = self.make_provider().name
        assert isinstance(name, str) and name, f"name must be a non-empty str, not {name!r}"

    def test_open_returns_a_session(self, tmp_path: Path) -> None:
        session = self._session(tmp_path)
        assert verifyObject(ISwitchSession, session)
        assert isinstance(session.switches_identity, bool)
        assert isinstance(session.handover, ProxyHandover)
        assert session.marker_owner is None or isinstance(session.marker_owner, int)
        assert (session.marker_owner is None) == (not session.switches_identity)

    def test_explain_status_zero_with_marker_is_success(self, tmp_path: Path) -> None:
        outcome = self._session(tmp_path).explain(0, self.make_marker(0))
        assert isinstance(outcome, Outcome)
        assert outcome.kind == SUCCEEDED and outcome.succeeded
        assert outcome.exit_code == 0 and outcome.error is None and outcome.error_code == 0

    def test_explain_reports_the_payloads_own_failure(self, tmp_path: Path) -> None:
        outcome = self._session(tmp_path).explain(3, self.make_marker(3))
        assert outcome.kind == PAYLOAD_FAILED
        assert outcome.exit_code == 3
        assert isinstance(outcome.error, PayloadFailedError)

    def test_explain_negative_status_is_termination_by_that_signal(self,
                                                                   tmp_path: Path) -> None:
        outcome = self._session(tmp_path).explain(-15, self.make_marker(None))
        assert outcome.kind == TERMINATED
        assert outcome.signal == 15
        assert not outcome.succeeded and outcome.error_code != 0

    def test_explain_without_marker_never_succeeds(self, tmp_path: Path) -> None:
        session = self._session(tmp_path)
        for returncode in (0, 1, 2, 126, 127, 201, 202, 203, 204, 255, -9):
            outcome = session.explain(returncode, None)
            assert isinstance(outcome, Outcome)
            assert not outcome.succeeded, f"explain({returncode}, None) said succeeded"
            assert outcome.error is not None and outcome.error_code != 0

    def test_retry_delay_never_retries_a_payload_that_ran(self, tmp_path: Path) -> None:
        session = self._session(tmp_path)
        for status in (0, 1, 203):
            outcome = session.explain(status, self.make_marker(status))
            assert session.retry_delay(outcome, 1) is None

    def test_retry_delay_is_none_or_seconds_and_bounded(self, tmp_path: Path) -> None:
        session = self._session(tmp_path)
        for returncode in (1, 126, 201, 202, 203):
            outcome = session.explain(returncode, None)
            delays = [session.retry_delay(outcome, attempt) for attempt in range(1, 101)]
            assert all(d is None or (isinstance(d, (int, float)) and d >= 0) for d in delays)
            assert delays[-1] is None, f"retry_delay never stops retrying {returncode}"

    def test_node_checks_is_a_list(self) -> None:
        assert isinstance(self.make_provider().node_checks(None), list)

    def test_close_may_be_called_on_a_session_that_never_launched(self,
                                                                  tmp_path: Path) -> None:
        self._session(tmp_path).close()


@implementer(ICredentialSource)
class _CopyingSource:
    """A fresh 0600 copy of one credential per fetch (the launcher removes each)."""

    name = "contract-copy"

    def __init__(self, credential: Credential) -> None:
        self.credential = credential

    def fetch(self, request: CredentialRequest) -> Credential:
        path = write_private(Path(request.directory) / f"x509up-{secrets.token_hex(6)}",
                             self.credential.proxy_file("the contract").read_bytes())
        return dataclasses.replace(self.credential, path=path)


@implementer(IPayload)
class _ShellPayload:
    """``/bin/sh -c script`` for every job."""

    name = "contract-shell"

    def __init__(self, script: str) -> None:
        self.script = script

    def accepts(self, job: JobSpec) -> bool:
        return True

    def command(self, job: JobSpec, workdir: Path) -> PayloadCommand:
        return PayloadCommand(("/bin/sh", "-c", self.script))

    def outputs(self, job: JobSpec) -> Tuple[str, ...]:
        return ()


def _processes_with(token: str) -> List[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if token.encode() in cmdline:
                found.append(int(entry))
    return found


def _gone(token: str, seconds: float = 5.0) -> List[int]:
    deadline = time.monotonic() + seconds
    while _processes_with(token) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _processes_with(token)


class IdentitySwitcherLaunchContract(IdentitySwitcherContract):
    """The whole contract, with jobs run through the switch: on a node where it works."""

    def run_scenario(self, name: str, tmp_path: Path) -> None:
        """Run the job scenario ``scenario_<name>`` (it raises ``AssertionError`` on failure).

        By default in this process; override to run it where the switch works, for a
        switcher whose pilot is an unprivileged account (run ``scenario_<name>`` of a
        contract built in a process of that account, and raise ``AssertionError`` with
        what failed there).
        """
        getattr(self, f"scenario_{name}")(tmp_path)

    def test_probe_answers_an_account(self, tmp_path: Path) -> None:
        self.run_scenario("probe_answers_an_account", tmp_path)

    def test_a_job_runs_through_the_switch_as_the_probed_account(self, tmp_path: Path) -> None:
        self.run_scenario("a_job_runs_through_the_switch_as_the_probed_account", tmp_path)

    def test_terminate_stops_a_payload_at_the_time_limit(self, tmp_path: Path) -> None:
        self.run_scenario("terminate_stops_a_payload_at_the_time_limit", tmp_path)

    def test_stop_leftovers_ends_what_the_payload_left_running(self, tmp_path: Path) -> None:
        self.run_scenario("stop_leftovers_ends_what_the_payload_left_running", tmp_path)

    def test_refresh_answers_whether_the_payload_got_the_proxy(self, tmp_path: Path) -> None:
        self.run_scenario("refresh_answers_whether_the_payload_got_the_proxy", tmp_path)

    def _run(self, tmp_path: Path, script: str, **settings: Any) -> Tuple[Any, Path, Any]:
        switcher = self.make_provider()
        queue = dataclasses.replace(switcher.settings, grace_period=1, **settings)
        workdir = self.make_workdir(tmp_path)
        credential = self.make_credential(tmp_path / "credentials")
        launcher = PayloadLauncher(queue, Strategies(
            source=_CopyingSource(credential), switcher=switcher,
            payloads=(_ShellPayload(script),)))
        job = JobSpec(panda_id=77, transformation="contract-00-00-01",
                      prod_user_id=credential.identity)
        return launcher.run(job, workdir), workdir, switcher.probe(credential)

    def scenario_probe_answers_an_account(self, tmp_path: Path) -> None:
        credential = self.make_credential(tmp_path / "credentials")
        assert isinstance(self.make_provider().probe(credential), Account)

    def scenario_a_job_runs_through_the_switch_as_the_probed_account(self, tmp_path: Path) -> None:
        result, workdir, account = self._run(
            tmp_path, 'id -u > uid.txt; head -c 27 "$X509_USER_PROXY" > proxy.txt')
        assert result.outcome == SUCCEEDED, result.error
        assert (workdir / "uid.txt").read_text().strip() == str(account.uid)
        assert (workdir / "proxy.txt").read_text() == "-----BEGIN CERTIFICATE-----"
        assert result.account == account

    def scenario_terminate_stops_a_payload_at_the_time_limit(self, tmp_path: Path) -> None:
        token = f"{secrets.randbelow(10**9) + 10**9}"
        try:
            result, _, _ = self._run(tmp_path, f"exec sleep 300.{token}", timeout=2)
            assert result.outcome == "timed_out", result.error
            assert _gone(token) == [], "the payload survived terminate"
        finally:
            _kill(token)

    def scenario_stop_leftovers_ends_what_the_payload_left_running(self, tmp_path: Path) -> None:
        token = f"{secrets.randbelow(10**9) + 10**9}"
        script = (f"nohup sleep 300.{token} >/dev/null 2>&1 & "
                  f"setsid sleep 301.{token} >/dev/null 2>&1 < /dev/null & echo done > done")
        try:
            result, workdir, _ = self._run(tmp_path, script)
            assert result.outcome == SUCCEEDED, result.error
            assert (workdir / "done").exists()
            assert _gone(token) == [], "the payload's leftovers outlived the job"
        finally:
            _kill(token)

    def scenario_refresh_answers_whether_the_payload_got_the_proxy(self, tmp_path: Path) -> None:
        switcher = self.make_provider()
        credential = self.make_credential(tmp_path / "credentials")
        workdir = self.make_workdir(tmp_path)
        session = switcher.open(credential, switcher.probe(credential), workdir)
        try:
            fresh = self.make_credential(tmp_path / "fresh")
            try:
                pushed = session.refresh(fresh)
            except PilotidError:
                return  # a push that fails says so with a pilotid error: allowed
            assert isinstance(pushed, bool)
        finally:
            session.close()
            shutil.rmtree(tmp_path / "fresh", ignore_errors=True)


def _kill(token: str) -> None:
    for pid in _processes_with(token):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
