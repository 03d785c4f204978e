"""``PayloadLauncher``: one job, from credential to accounting record.

The launcher is composed, not subclassed: customise the strategies it is given (credential
source, identity switcher, payload adapters), which ``pilotid.factory.build_launcher``
builds from a queue's settings.  ``run`` does the eight steps of DESIGN.md in order and
always returns a ``PayloadResult``: failures become an outcome with its pilot error code,
never an exception, so that the pilot can report every job.

This module orchestrates; what it relies on lives apart: the pilot's own signals during
the job (``pilotid.signals``), appending to its files in the work directory the payload can
write to (``pilotid.workfiles``), and the accounting record (``pilotid.accounting``).
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import signal
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional

from pilotid import leftovers
from pilotid.accounting import append_record
from pilotid.errors import (
    AccountMappingError,
    CredentialError,
    PayloadFailedError,
    PayloadTimeoutError,
    PilotidError,
    PilotInterruptedError,
    ProxyExpiredError,
    RescheduleRequest,
    SwitchError,
    SwitchNotPermittedError,
    WorkdirError,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.default_proxy import default_proxy_path
from pilotid.identity.owner import owner_dn
from pilotid.identity.proxy import format_time_left
from pilotid.nodelog import NodeLog
from pilotid.payloads.job import JobSpec
from pilotid.payloads.wrapper import WrapperSpec, read_marker, write_wrapper
from pilotid.queue import QueueSettings
from pilotid.signals import PilotSignal, PilotSignals
from pilotid.strategies import base
from pilotid.strategies.base import (
    Outcome,
    PayloadLogs,
    ProxyHandover,
    WrapperMarker,
    switch_failed,
)
from pilotid.watch import wait_for_exit
from pilotid.workdir import (
    PRIVATE_DIR_NAME,
    HandoverDirectory,
    SandboxGrant,
    acl_supported,
    grant_target_access,
    make_handover_directory,
    reclaim,
)
from pilotid.workfiles import open_payload_log

if TYPE_CHECKING:
    from pilotid.factory import Strategies

log = logging.getLogger(__name__)

#: Rounds of looking for and killing what a payload left running (see ``_end_leftovers``).
_LEFTOVER_ATTEMPTS = 10
_KILL_COMMAND = "/bin/kill" if os.access("/bin/kill", os.X_OK) else "/usr/bin/kill"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class PayloadResult:
    """What happened to one job: the fields of ``pilotid run --json`` and of the accounting
    record (which adds ``user_dn``)."""

    panda_id: int
    outcome: str
    exit_code: Optional[int]
    signal: Optional[int]
    error_code: int
    error: Optional[str]
    account: Optional[Account]
    switcher: str
    sandbox_mode: Optional[str]
    workdir: Path
    stdout: Optional[Path]
    stderr: Optional[Path]
    started: datetime.datetime
    ended: datetime.datetime
    user_dn: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        """The result as JSON-ready data (without ``user_dn``, which only accounting keeps)."""
        return {
            "panda_id": self.panda_id,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "error_code": self.error_code,
            "error": self.error,
            "account": self.account.as_dict() if self.account else None,
            "switcher": self.switcher,
            "sandbox_mode": self.sandbox_mode,
            "workdir": str(self.workdir),
            "stdout": str(self.stdout) if self.stdout else None,
            "stderr": str(self.stderr) if self.stderr else None,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
        }

    def accounting_record(self) -> Dict[str, Any]:
        """The accounting record: the result plus the user's DN."""
        return dict(self.as_dict(), user_dn=self.user_dn)


#: Where the pilot's own credentials are named: they never become readable by the target.
PILOT_CREDENTIAL_VARIABLES = ("X509_USER_PROXY", "X509_USER_CERT", "X509_USER_KEY")


def pilot_credentials(environ: Optional[Dict[str, str]] = None) -> List[Path]:
    """The pilot's own credential files: what ``PILOT_CREDENTIAL_VARIABLES`` name in
    ``environ`` (default ``os.environ``), and the default proxy ``/tmp/x509up_u<uid>``."""
    environ = dict(os.environ) if environ is None else environ
    found = [Path(environ[name]) for name in PILOT_CREDENTIAL_VARIABLES if environ.get(name)]
    found.append(default_proxy_path())
    return found


def outcome_for_error(error: PilotidError) -> Outcome:
    """The outcome of a job that failed before (or instead of) running its payload."""
    if isinstance(error, RescheduleRequest):
        kind = base.RESCHEDULED
    elif isinstance(error, PilotInterruptedError):
        kind = base.INTERRUPTED
    elif isinstance(error, CredentialError):
        kind = base.CREDENTIAL_FAILED
    elif isinstance(error, (SwitchError, AccountMappingError)):
        kind = base.SWITCH_FAILED
    else:
        kind = base.SETUP_FAILED
    return Outcome(kind, error=error)


class _Run:
    """The state of one job while it runs; everything ``finish`` must undo."""

    def __init__(self, job: JobSpec, workdir: Path) -> None:
        self.job = job
        self.workdir = workdir
        self.token = secrets.token_hex(8)
        self.started = _now()
        self.credential: Optional[Credential] = None
        self.account: Optional[Account] = None
        self.grant: Optional[SandboxGrant] = None
        self.sandbox_mode: Optional[str] = None
        self.handover: Optional[ProxyHandover] = None
        self.handover_dir: Optional[HandoverDirectory] = None
        self.stdout: Optional[Path] = None
        self.stderr: Optional[Path] = None
        self.private: Optional[Path] = None
        self.process: Any = None  # the last launch's switch process
        self.cleanup: list = []
        self.refreshable = True
        self.signals = PilotSignals()

    def scratch(self, stem: str, suffix: str = "") -> Path:
        """A path in the work directory unique to this run."""
        path = self.workdir / f".pilotid-{stem}-{self.job.panda_id}-{self.token}{suffix}"
        self.cleanup.append(path)
        return path

    @contextlib.contextmanager
    def logs(self) -> Iterator[PayloadLogs]:
        """The payload's two logs, open to append to, for one launch through the switch."""
        assert self.stdout is not None and self.stderr is not None
        with open_payload_log(self.stdout, self.token) as out, \
                open_payload_log(self.stderr, self.token) as err:
            yield PayloadLogs(out, err)


class PayloadLauncher:
    """Run jobs of one queue as their users. Not intended to be subclassed: customise the
    strategies instead.

    ``strategies`` holds the credential source, the identity switcher and the payload
    adapters (see ``pilotid.factory.Strategies``).
    """

    def __init__(self, settings: QueueSettings, strategies: "Strategies") -> None:
        self.settings = settings
        self.strategies = strategies
        self.source = strategies.source
        self.switcher = strategies.switcher
        self.node_log = NodeLog.from_settings(settings)

    def run(self, job: JobSpec, workdir: Path) -> PayloadResult:
        """Run ``job`` in ``workdir`` as its user; return what happened (never raises a
        ``PilotidError``: it becomes the result's outcome and error code)."""
        state = _Run(job, Path(os.path.abspath(workdir)))
        log.info("job %s: starting in %s (queue %s, switcher %s)", job.panda_id, state.workdir,
                 self.settings.name, self.switcher.name)
        with state.signals.caught():
            try:
                outcome = self._run(state)
            except PilotidError as error:
                log.error("job %s: %s", job.panda_id, error)
                outcome = outcome_for_error(error)
            finally:
                self._finish(state)
            result = self._result(state, outcome)
            append_record(result, state.token, self.settings.accounting_file,
                          in_workdir=state.private is not None)
            self.node_log.ended(result, state.credential)
        if state.signals.pending is not None:
            log.warning("job %s: pilot got signal %d while finishing the job: the job's "
                        "result stands", job.panda_id, state.signals.pending)
        log.info("job %s: %s (exit code %s, error code %s)", job.panda_id, result.outcome,
                 result.exit_code, result.error_code)
        return result

    def _run(self, state: _Run) -> Outcome:
        state.private = self._prepare_workdir(state.workdir)
        adapter = self.strategies.payload_for(state.job)
        command = adapter.command(state.job, state.workdir)
        state.credential = self._fetch(state)
        log.info("job %s: credential of %s from %s", state.job.panda_id,
                 state.credential.identity, state.credential.source)
        state.account = self._probe(state.credential)
        log.info("job %s: will run as %s (uid %d)", state.job.panda_id, state.account.name,
                 state.account.uid)
        handover = self.switcher.handover(state.credential, state.account, state.workdir)
        state.handover = handover
        marker = state.scratch("marker")
        wrapper = state.scratch("wrapper", ".sh")
        switching = state.account.uid != os.geteuid()
        mode = self._sandbox_mode(state.workdir) if switching else "none"
        write_wrapper(WrapperSpec(
            command=command, workdir=state.workdir, handover=handover, marker=marker,
            environment=tuple(sorted(os.environ.items())),
            umask=0 if mode == "world" else self.settings.umask,
            egg_cache_base=self.settings.egg_cache_base, extra_deny=self.settings.env_deny,
            reaper_pid=os.getpid() if switching and leftovers.subreaper_supported() else None,
        ), wrapper)
        if switching:
            state.grant = grant_target_access(state.workdir, state.account, mode,
                                              keep_private=pilot_credentials())
            mode = state.grant.mode
        state.sandbox_mode = mode
        if handover.from_stdin:  # after the grant, which must not walk it
            state.handover_dir = make_handover_directory(handover.payload_proxy, state.grant)
        with leftovers.child_subreaper():
            try:
                return self._launch(state, wrapper, marker)
            finally:
                self._end_payload(state)

    def _fetch(self, state: _Run) -> Credential:
        """The job's credential from the source, also kept in ``state.credential`` at once
        (so that ``_finish`` removes it whatever comes next).  The only step of the set-up
        that may wait long (a credential server that does not answer): a signal to the
        pilot stops it there (``PilotInterruptedError``) instead of when it ends."""
        try:
            state.signals.arm()
            credential = state.credential = self.source.fetch(self._request(state))
            return credential
        except PilotSignal as caught:
            raise PilotInterruptedError(
                f"pilot received signal {caught.signum} while fetching the credential: the "
                "payload was not started") from None
        finally:
            state.signals.disarm()

    def _probe(self, credential: Credential) -> Account:
        """The switcher's probe; a failure becomes a ``RescheduleRequest`` where the queue's
        ``on_probe_failure`` is ``reschedule`` (never a fallback to the pilot's identity)."""
        try:
            return self.switcher.probe(credential)
        except (SwitchError, AccountMappingError) as error:
            if self.settings.on_probe_failure != "reschedule" or isinstance(
                    error, RescheduleRequest):
                raise
            raise RescheduleRequest(f"the {self.switcher.name} probe failed, job handed back "
                                    f"for rescheduling: {error}") from error

    def _request(self, state: _Run) -> CredentialRequest:
        """The job's credential request: valid at least ``proxy_lifetime_needed`` more."""
        assert state.private is not None
        return CredentialRequest(
            directory=state.private, lifetime=self.settings.proxy_lifetime_needed(),
            owner_dn=owner_dn(state.job.prod_user_id, self.settings.jobs_without_dn),
            credname=state.job.credname,
            server=state.job.myproxy)

    def _prepare_workdir(self, workdir: Path) -> Path:
        """Check the work directory and make its private 0700 directory; return that."""
        if not workdir.is_dir():
            raise WorkdirError(f"work directory {workdir} does not exist or is not a directory")
        if not os.access(workdir, os.W_OK | os.X_OK):
            raise WorkdirError(f"work directory {workdir} is not writable by the pilot "
                               f"(uid {os.geteuid()})")
        private = workdir / PRIVATE_DIR_NAME
        with contextlib.suppress(FileExistsError):
            private.mkdir(mode=0o700)
        info = private.lstat()
        if private.is_symlink() or info.st_uid != os.geteuid():
            raise WorkdirError(f"{private} is not a directory of the pilot's own: remove it")
        os.chmod(private, 0o700)
        return private

    def _sandbox_mode(self, workdir: Path) -> str:
        """The queue's sandbox mode, or 'world' (logged) where ACLs are not supported."""
        if self.settings.sandbox == "acl" and not acl_supported(workdir):
            log.warning("%s does not support POSIX ACLs: falling back to world-writable "
                        "directories and umask 000", workdir)
            return "world"
        return self.settings.sandbox

    def _launch(self, state: _Run, wrapper: Path, marker: Path) -> Outcome:
        """Launch the wrapper, again while the switcher says a failure before it ran may go
        away (``retry_delay``); watch it; return the outcome of the last launch."""
        state.signals.check()  # a stop asked for during the set-up: do not start the payload
        state.stdout = state.workdir / f"pilotid-{state.job.panda_id}.stdout"
        state.stderr = state.workdir / f"pilotid-{state.job.panda_id}.stderr"
        assert state.credential is not None and state.account is not None
        attempt = 1
        with state.logs() as logs:
            while True:
                self._check_lifetime(state.credential)
                process = state.process = self.switcher.launch(
                    [str(wrapper)], state.credential, state.account, state.workdir, logs)
                log.info("job %s: launch %d started (pid %d)", state.job.panda_id, attempt,
                         process.pid)
                self.node_log.switched(state.job.panda_id, state.credential, state.account,
                                       self.switcher.name, state.workdir, wrapper, process.pid)
                override = self._watch(state, process)
                found = read_marker(marker)
                tampered = _tampered_marker(marker, found, state.account)
                if tampered is not None:  # the wrapper ran: never launch again
                    log.warning("job %s: %s", state.job.panda_id, tampered)
                    return Outcome(base.PAYLOAD_FAILED, error=PayloadFailedError(tampered))
                outcome = self._outcome(state, process, found, override)
                if found is not None or override is not None:
                    return outcome
                delay = self.switcher.retry_delay(outcome, attempt)
                if delay is None:
                    if attempt > 1:
                        log.error("job %s: giving up after %d launches", state.job.panda_id,
                                  attempt)
                    return self._refused_at_launch(outcome)
                log.warning("job %s: launch %d: %s; launching again in %gs",
                            state.job.panda_id, attempt, outcome.error, delay)
                interrupted = self._pause(state, delay)
                if interrupted is not None:
                    return Outcome(base.INTERRUPTED, error=interrupted)
                attempt += 1

    def _refused_at_launch(self, outcome: Outcome) -> Outcome:
        """A switch refused before the wrapper ran, as a refused probe: handed back where
        the queue's ``on_probe_failure`` is ``reschedule`` (a probe answer kept from an
        earlier job, ``probe_cache_lifetime``, may have gone stale since)."""
        if (self.settings.on_probe_failure == "reschedule"
                and isinstance(outcome.error, SwitchNotPermittedError)):
            return outcome_for_error(RescheduleRequest(
                f"the {self.switcher.name} switch was refused at launch, job handed back for "
                f"rescheduling: {outcome.error}"))
        return outcome

    def _check_lifetime(self, credential: Credential) -> None:
        """Raise ``ProxyExpiredError`` unless the proxy lasts what a launch needs."""
        needed = self.settings.proxy_lifetime_needed()
        left = credential.time_left()
        if left.total_seconds() < needed:
            raise ProxyExpiredError(
                f"the proxy of {credential.identity} has {format_time_left(left)} left, but "
                f"{format_time_left(datetime.timedelta(seconds=needed))} is needed to launch "
                f"the payload (queue {self.settings.name}: timeout, proxy_refresh_threshold); "
                "delegate a longer-lived proxy")

    def _watch(self, state: _Run, process: Any) -> Optional[PilotidError]:
        """Wait for the payload, stopping it at the time limit or when the pilot is told to
        stop; return the error that then overrides its outcome, else None."""
        try:
            state.signals.arm()
            finished = self._wait(state, process)
        except PilotSignal as caught:
            log.warning("job %s: pilot got signal %d, stopping the payload",
                        state.job.panda_id, caught.signum)
            self._stop(state, process, caught.signum)
            return PilotInterruptedError(
                f"pilot received signal {caught.signum} and stopped the payload")
        finally:
            state.signals.disarm()
        if not finished:
            log.warning("job %s: time limit of %ss reached, stopping the payload",
                        state.job.panda_id, self.settings.timeout)
            self._stop(state, process)
            return PayloadTimeoutError(
                f"payload exceeded the time limit of {self.settings.timeout}s")
        return None

    def _wait(self, state: _Run, process: Any) -> bool:
        """Wait for the payload to end, checking its proxy every ``proxy_refresh_interval``;
        False when the time limit passes first."""
        timeout = self.settings.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            step = float(self.settings.proxy_refresh_interval) if state.refreshable else None
            if left is not None:
                step = left if step is None else min(step, left)
            if wait_for_exit(process, step) is not None:
                return True
            if state.refreshable:
                self._refresh(state)

    def _refresh(self, state: _Run) -> None:
        """Renew the running payload's proxy from the credential source when it falls under
        ``proxy_refresh_threshold``, and have the switcher push it (as DIRAC did).

        Failures are logged: the payload keeps the proxy it has and the next check tries
        again.  A switcher that cannot push a proxy is not asked again.
        """
        current = state.credential
        assert current is not None
        if current.time_left().total_seconds() >= self.settings.proxy_refresh_threshold:
            return
        job = state.job.panda_id
        log.info("job %s: the proxy has %s left, renewing it from the credential source", job,
                 format_time_left(current.time_left()))
        try:
            fresh = self.source.fetch(self._request(state))
        except PilotidError as error:
            log.warning("job %s: cannot renew the proxy (%s); the payload keeps its own, "
                        "%s left", job, error, format_time_left(current.time_left()))
            return
        try:
            if self._push(state, current, fresh):
                state.cleanup.append(current.path)  # a handover may point at it until the end
                state.credential = fresh
        finally:
            if state.credential is not fresh:  # not adopted, or the pilot was told to stop
                _remove(fresh.path)

    def _push(self, state: _Run, current: Credential, fresh: Credential) -> bool:
        """Have the switcher give the payload ``fresh`` if it outlasts ``current``; True
        once it did."""
        job = state.job.panda_id
        now = _now()
        if fresh.time_left(now) <= current.time_left(now):
            log.info("job %s: the credential source has no longer-lived proxy yet", job)
            return False
        try:
            pushed = self.switcher.refresh_proxy(fresh, state.workdir)
        except PilotidError as error:
            log.warning("job %s: pushing the renewed proxy to the payload failed: %s", job, error)
            return False
        if not pushed:
            log.warning("job %s: the %s switcher cannot give a running payload a renewed "
                        "proxy; it keeps its own (%s left)", job, self.switcher.name,
                        format_time_left(current.time_left()))
            state.refreshable = False
            return False
        log.info("job %s: renewed proxy (%s left) pushed to the payload", job,
                 format_time_left(fresh.time_left()))
        return True

    def _pause(self, state: _Run, seconds: float) -> Optional[PilotidError]:
        """Sleep between launches; the error if the pilot is told to stop meanwhile."""
        try:
            state.signals.arm()
            time.sleep(seconds)
        except PilotSignal as caught:
            return PilotInterruptedError(
                f"pilot received signal {caught.signum} before the payload started")
        finally:
            state.signals.disarm()
        return None

    def _outcome(self, state: _Run, process: Any, found: Any,
                 override: Optional[PilotidError]) -> Outcome:
        """The outcome of one launch, from its status, the wrapper's marker and ``override``."""
        assert state.account is not None
        if found is not None and found.uid != state.account.uid:
            # the switch put the payload under another identity than the probe promised
            return switch_failed(SwitchError(
                f"the wrapper ran as uid {found.uid}, not as {state.account.name} "
                f"(uid {state.account.uid}) as the switcher's probe said"))
        if process.returncode is None:  # it survived SIGKILL: see _stop
            assert override is not None
            return Outcome(base.TIMED_OUT if isinstance(override, PayloadTimeoutError)
                           else base.INTERRUPTED, error=type(override)(
                               f"{override}; but the payload (pid {process.pid}) could not be "
                               "stopped and may still run"))
        outcome = self.switcher.explain(process.returncode, found)
        if override is not None:
            kind = base.TIMED_OUT if isinstance(override, PayloadTimeoutError) else base.INTERRUPTED
            outcome = replace(outcome, kind=kind, error=override)
        return outcome

    def _stop(self, state: _Run, process: Any, signum: int = signal.SIGTERM) -> None:
        """Terminate the payload through the switcher; SIGKILL after the grace period.

        Being told to stop (again) during the grace period cuts it short; a signal while
        the switcher is signalling, or after SIGKILL, is only remembered.  A refused signal
        is logged and the escalation goes on.  If the switch program outlives SIGKILL to the
        payload by another grace period (at least 10 s), the pilot SIGKILLs the switch
        program itself; if even that does not end it, it is left and the outcome says so.
        """
        self._signal(process, signum)
        try:
            state.signals.arm()
            if wait_for_exit(process, float(self.settings.grace_period)) is not None:
                return
            log.warning("payload still running after %ss: killing it",
                        self.settings.grace_period)
        except PilotSignal:
            log.warning("pilot told to stop again while stopping the payload: killing it")
        finally:
            state.signals.disarm()
        self._signal(process, signal.SIGKILL)
        patience = float(max(self.settings.grace_period, 10))
        if wait_for_exit(process, patience) is not None:
            return
        # The switch program hangs (it never ran the wrapper, or does not pass signals on):
        # SIGKILL through the switcher reaches the payload's groups as the target, never
        # it.  It is the pilot's child, with the pilot's real uid even when set-uid, so the
        # pilot may kill it itself; what it leaves is then the pilot's (``_end_leftovers``).
        log.error("the switch program (pid %d) still runs after SIGKILL to the payload: "
                  "killing it", process.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signal.SIGKILL)
        if wait_for_exit(process, patience) is None:
            log.error("the switch program (pid %d) is still running after SIGKILL",
                      process.pid)

    def _signal(self, process: Any, signum: int) -> None:
        try:
            self.switcher.terminate(process, signum)
        except PilotidError as error:
            log.error("the %s switcher could not send signal %d to the payload: %s",
                      self.switcher.name, signum, error)

    def _end_payload(self, state: _Run) -> None:
        """After the last launch, on every way out: stop a payload still running (an error
        between its launch and its end), then end what it left running."""
        process = state.process
        if process is None:
            return
        if process.poll() is None:
            log.error("job %s: the payload (pid %d) still runs after its launch ended: "
                      "stopping it", state.job.panda_id, process.pid)
            self._stop(state, process)
        self._end_leftovers(state, process)

    def _end_leftovers(self, state: _Run, process: Any) -> None:
        """Kill and reap what the payload left running (see ``pilotid.leftovers``).

        The wrapper has killed its account's orphans already; this finds what it could
        not (a wrapper killed outright) and reaps the dead, which only their new parent,
        the pilot, can do.  With no switch, the payload's processes run as the pilot and
        are told from the pilot's own by the ``X509_USER_PROXY`` they were started with.
        A signal to the pilot meanwhile is only remembered (``PilotSignals``).
        """
        account, handover = state.account, state.handover
        assert account is not None and handover is not None
        pilot = os.geteuid()
        switching = account.uid != pilot
        killed: set = set()

        def payload_processes() -> list:
            # (a zombie of the pilot's own account could be any subprocess's: only those
            # killed here are reaped)
            return [p for p in leftovers.adopted_processes(exclude=(process.pid,))
                    if (p.uid == account.uid if switching else
                        p.uid == pilot and (p.pid in killed or leftovers.environment_holds(
                            p.pid, "X509_USER_PROXY", str(handover.payload_proxy))))]

        found = payload_processes()
        for attempt in range(_LEFTOVER_ATTEMPTS):
            alive = [p.pid for p in found if not p.dead]
            leftovers.reap([p.pid for p in found if p.dead])
            if not alive:
                return
            if attempt == 0:
                log.warning("job %s: %d processes of %s outlived the payload (pids %s): "
                            "killing them", state.job.panda_id, len(alive), account.name,
                            " ".join(map(str, alive)))
            killed.update(alive)
            self._kill_as_target(state, alive, switching)
            time.sleep(0.05 * (attempt + 1))
            found = payload_processes()
        log.error("job %s: processes of %s are still running after the payload: %s",
                  state.job.panda_id, account.name, " ".join(str(p.pid) for p in found))

    def _kill_as_target(self, state: _Run, pids: list, switching: bool) -> None:
        if not switching:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        # Only the target may signal its processes: through the switch, as terminate does.
        assert state.credential is not None and state.account is not None
        argv = [_KILL_COMMAND, "-s", "KILL", "--", *map(str, pids)]
        try:
            with state.logs() as logs:
                killer = self.switcher.launch(argv, state.credential, state.account,
                                              state.workdir, logs)
                if wait_for_exit(killer, 60) is None:
                    log.error("job %s: the kill of the payload's leftovers as %s hangs: "
                              "killing it", state.job.panda_id, state.account.name)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(killer.pid, signal.SIGKILL)
                    wait_for_exit(killer, 10)
        except PilotidError as error:
            log.error("job %s: cannot kill the payload's leftovers as %s: %s",
                      state.job.panda_id, state.account.name, error)

    def _finish(self, state: _Run) -> None:
        """Undo what the run set up: credentials and scratch files, then the sandbox grant."""
        paths = list(state.cleanup)
        if state.credential is not None:
            paths.append(state.credential.path)
        # A stdin handover's copy goes with its directory, and only with the one made: its
        # path may lead through whatever someone else put there.
        if state.handover_dir is not None:
            state.handover_dir.remove()
        elif state.handover is not None and not state.handover.from_stdin:
            paths.append(state.handover.payload_proxy)
        for path in paths:
            _remove(path)
        if state.private is not None:
            with contextlib.suppress(OSError):  # left in place if anything else is in it
                state.private.rmdir()
        if state.grant is not None:
            try:
                reclaim(state.grant)
            except PilotidError as error:
                log.error("job %s: reclaiming the work directory failed: %s",
                          state.job.panda_id, error)

    def _result(self, state: _Run, outcome: Outcome) -> PayloadResult:
        return PayloadResult(
            panda_id=state.job.panda_id, outcome=outcome.kind, exit_code=outcome.exit_code,
            signal=outcome.signal, error_code=outcome.error_code,
            error=str(outcome.error) if outcome.error else None, account=state.account,
            switcher=self.switcher.name, sandbox_mode=state.sandbox_mode,
            workdir=state.workdir, stdout=state.stdout, stderr=state.stderr,
            started=state.started, ended=_now(),
            user_dn=state.credential.identity if state.credential else state.job.prod_user_id)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _tampered_marker(marker: Path, found: Optional[WrapperMarker],
                     account: Account) -> Optional[str]:
    """Why the wrapper's marker cannot be what the wrapper wrote, or None.

    The wrapper creates the marker as the target; the payload, running as the target
    too, can rewrite it.  A marker file owned by the target (which no one but the
    target, or root, can create) shows the switch happened, whatever it says: if it does
    not parse, or names another uid, the payload changed it, and the failure is the
    payload's, never the site's.  (With no switch, the pilot owns it: nothing to tell.)
    """
    if account.uid == os.geteuid():
        return None
    try:
        owner = os.lstat(marker).st_uid
    except OSError:
        return None
    if owner != account.uid or (found is not None and found.uid == owner):
        return None
    what = "does not parse" if found is None else f"names uid {found.uid}"
    return (f"the wrapper ran as {account.name} (its marker {marker.name} belongs to uid "
            f"{owner}) but the marker {what}: the payload changed it, so its outcome is "
            "unknown")
