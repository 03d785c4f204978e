"""``PayloadLauncher``: one job, from credential to accounting record.

The launcher is composed, not subclassed: customise the strategies it is given (credential
source, identity switcher, payload adapters), which ``pilotid.factory.build_launcher``
builds from a queue's settings.  ``run`` does the eight steps of DESIGN.md in order and
always returns a ``PayloadResult``: failures become an outcome with its pilot error code,
never an exception, so that the pilot can report every job.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import logging
import os
import secrets
import signal
import stat
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Dict, Iterator, Optional

from pilotid import leftovers
from pilotid.errors import (
    AccountMappingError,
    CredentialError,
    PayloadFailedError,
    PayloadTimeoutError,
    PilotidError,
    PilotInterruptedError,
    RescheduleRequest,
    SwitchError,
    WorkdirError,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.payloads.job import JobSpec
from pilotid.payloads.sandbox import (
    PRIVATE_DIR_NAME,
    SandboxGrant,
    acl_supported,
    grant_target_access,
    reclaim,
)
from pilotid.payloads.wrapper import WrapperSpec, read_marker, write_wrapper
from pilotid.queue import QueueSettings
from pilotid.strategies import base
from pilotid.strategies.base import Outcome, PayloadLogs, WrapperMarker, switch_failed
from pilotid.watch import PilotSignal, wait_for_exit

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


def outcome_for_error(error: PilotidError) -> Outcome:
    """The outcome of a job that failed before (or instead of) running its payload."""
    if isinstance(error, RescheduleRequest):
        kind = base.RESCHEDULED
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
        self.payload_proxy: Optional[Path] = None
        self.stdout: Optional[Path] = None
        self.stderr: Optional[Path] = None
        self.private: Optional[Path] = None
        self.process: Any = None
        self.cleanup: list = []

    def scratch(self, stem: str, suffix: str = "") -> Path:
        """A path in the work directory unique to this run."""
        path = self.workdir / f".pilotid-{stem}-{self.job.panda_id}-{self.token}{suffix}"
        self.cleanup.append(path)
        return path


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

    def run(self, job: JobSpec, workdir: Path) -> PayloadResult:
        """Run ``job`` in ``workdir`` as its user; return what happened (never raises a
        ``PilotidError``: it becomes the result's outcome and error code)."""
        state = _Run(job, Path(os.path.abspath(workdir)))
        log.info("job %s: starting in %s (queue %s, switcher %s)", job.panda_id, state.workdir,
                 self.settings.name, self.switcher.name)
        outcome: Optional[Outcome] = None
        try:
            with _pilot_signals():  # from here on, not only while the payload runs
                outcome = self._run(state)
        except PilotidError as error:
            log.error("job %s: %s", job.panda_id, error)
            outcome = outcome_for_error(error)
        except PilotSignal as caught:
            log.warning("job %s: pilot got signal %d before the payload ran: stopping",
                        job.panda_id, caught.signum)
            outcome = Outcome(base.INTERRUPTED, error=PilotInterruptedError(
                f"pilot received signal {caught.signum} and stopped the job"))
        finally:
            # a further TERM/INT/HUP waits until the job is cleaned up and accounted for
            with _signals_held():
                self._finish(state)
                if outcome is not None:
                    result = self._result(state, outcome)
                    self._account(result)
        log.info("job %s: %s (exit code %s, error code %s)", job.panda_id, result.outcome,
                 result.exit_code, result.error_code)
        return result

    def _run(self, state: _Run) -> Outcome:
        private = state.private = self._prepare_workdir(state.workdir)
        adapter = self.strategies.payload_for(state.job)
        command = adapter.command(state.job, state.workdir)
        state.credential = self.source.fetch(CredentialRequest(
            directory=private, owner_dn=state.job.prod_user_id, credname=state.job.credname,
            server=state.job.myproxy))
        log.info("job %s: credential of %s from %s", state.job.panda_id,
                 state.credential.identity, state.credential.source)
        state.account = self.switcher.probe(state.credential)
        log.info("job %s: will run as %s (uid %d)", state.job.panda_id, state.account.name,
                 state.account.uid)
        handover = self.switcher.handover(state.credential, state.account, state.workdir)
        state.payload_proxy = handover.payload_proxy
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
            state.grant = grant_target_access(state.workdir, state.account, mode)
            mode = state.grant.mode
        state.sandbox_mode = mode
        with leftovers.child_subreaper():
            try:
                return self._launch(state, wrapper, marker)
            finally:
                if state.process is not None:
                    with _signals_held():
                        if state.process.poll() is None:  # a signal before the wait
                            self._stop(state.process)
                        self._end_leftovers(state, state.process)

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
        state.stdout = state.workdir / f"pilotid-{state.job.panda_id}.stdout"
        state.stderr = state.workdir / f"pilotid-{state.job.panda_id}.stderr"
        assert state.credential is not None and state.account is not None
        out, err = _open_logs(state)
        with out, err:
            process = state.process = self.switcher.launch(
                [str(wrapper)], state.credential, state.account, state.workdir,
                PayloadLogs(out, err))
            log.info("job %s: payload started (pid %d)", state.job.panda_id, process.pid)
            override: Optional[PilotidError] = None
            with _pilot_signals():
                try:
                    if wait_for_exit(process, self.settings.timeout) is None:
                        log.warning("job %s: time limit of %ss reached, stopping the payload",
                                    state.job.panda_id, self.settings.timeout)
                        override = PayloadTimeoutError(
                            f"payload exceeded the time limit of {self.settings.timeout}s")
                        self._stop(process)
                except PilotSignal as caught:
                    log.warning("job %s: pilot got signal %d, stopping the payload",
                                state.job.panda_id, caught.signum)
                    override = PilotInterruptedError(
                        f"pilot received signal {caught.signum} and stopped the payload")
                    self._stop(process, caught.signum)
        found = read_marker(marker)
        assert state.account is not None
        tampered = _tampered_marker(marker, found, state.account)
        if tampered is not None:
            log.warning("job %s: %s", state.job.panda_id, tampered)
            return Outcome(base.PAYLOAD_FAILED, error=PayloadFailedError(tampered))
        if found is not None and found.uid != state.account.uid:
            # the switch put the payload under another identity than the probe promised
            return switch_failed(SwitchError(
                f"the wrapper ran as uid {found.uid}, not as {state.account.name} "
                f"(uid {state.account.uid}) as the switcher's probe said"))
        outcome = self.switcher.explain(process.returncode, found)
        if override is not None:
            kind = base.TIMED_OUT if isinstance(override, PayloadTimeoutError) else base.INTERRUPTED
            outcome = replace(outcome, kind=kind, error=override)
        return outcome

    def _end_leftovers(self, state: _Run, process: Any) -> None:
        """Kill and reap what the payload left running (see ``pilotid.leftovers``).

        The wrapper has killed its account's orphans already; this finds what it could
        not (a wrapper killed outright) and reaps the dead, which only their new parent,
        the pilot, can do.  With no switch, the payload's processes run as the pilot and
        are told from the pilot's own by the ``X509_USER_PROXY`` they were started with.
        """
        assert state.account is not None and state.credential is not None
        pilot = os.geteuid()
        target = state.account.uid
        switching = target != pilot

        killed: set = set()

        def payload_processes() -> list:
            # (a zombie of the pilot's own account could be any subprocess's: only those
            # killed here are reaped)
            return [p for p in leftovers.adopted_processes(exclude=(process.pid,))
                    if (p.uid == target if switching else
                        p.uid == pilot and (p.pid in killed or leftovers.environment_holds(
                            p.pid, "X509_USER_PROXY", str(state.payload_proxy))))]

        found = payload_processes()
        for attempt in range(_LEFTOVER_ATTEMPTS):
            alive = [p.pid for p in found if not p.dead]
            leftovers.reap([p.pid for p in found if p.dead])
            if not alive:
                return
            if attempt == 0:
                log.warning("job %s: %d processes of %s outlived the payload (pids %s): "
                            "killing them", state.job.panda_id, len(alive),
                            state.account.name, " ".join(map(str, alive)))
            killed.update(alive)
            self._kill_as_target(state, alive, switching)
            time.sleep(0.05 * (attempt + 1))
            found = payload_processes()
        log.error("job %s: processes of %s are still running after the payload: %s",
                  state.job.panda_id, state.account.name,
                  " ".join(str(p.pid) for p in found))

    def _kill_as_target(self, state: _Run, pids: list, switching: bool) -> None:
        if not switching:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        # Only the target may signal its processes: through the switch, as terminate does.
        assert state.stdout is not None and state.stderr is not None
        assert state.credential is not None and state.account is not None
        argv = [_KILL_COMMAND, "-s", "KILL", "--", *map(str, pids)]
        try:
            out, err = _open_logs(state)
            with out, err:
                killer = self.switcher.launch(argv, state.credential, state.account,
                                              state.workdir, PayloadLogs(out, err))
                wait_for_exit(killer, 60)
        except PilotidError as error:
            log.error("job %s: cannot kill the payload's leftovers as %s: %s",
                      state.job.panda_id, state.account.name, error)

    def _stop(self, process: Any, signum: int = signal.SIGTERM) -> None:
        """Terminate the payload through the switcher; SIGKILL after the grace period;
        then, if the switch program itself still runs, SIGKILL it."""
        try:
            self.switcher.terminate(process, signum)
        except PilotidError as error:
            log.error("cannot signal the payload through the switch: %s", error)
        if wait_for_exit(process, self.settings.grace_period) is None:
            log.warning("payload still running after %ss: killing it", self.settings.grace_period)
            try:
                self.switcher.terminate(process, signal.SIGKILL)
            except PilotidError as error:
                log.error("cannot kill the payload through the switch: %s", error)
            if wait_for_exit(process, self.settings.grace_period) is None:
                # The switch program hangs (it never ran the wrapper, or does not pass
                # signals on): it is the pilot's child, with the pilot's real uid even
                # when set-uid, so the pilot may kill it itself.
                log.error("the switch program (pid %d) still runs after SIGKILL to the "
                          "payload: killing it", process.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                wait_for_exit(process, None)

    def _finish(self, state: _Run) -> None:
        """Undo what the run set up: credentials and scratch files, then the sandbox grant."""
        paths = list(state.cleanup)
        if state.credential is not None:
            paths.append(state.credential.path)
        if state.payload_proxy is not None:
            paths.append(state.payload_proxy)
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
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

    def _account(self, result: PayloadResult) -> None:
        """Append the accounting record to the work directory's and the queue's file."""
        line = (json.dumps(result.accounting_record(), sort_keys=True) + "\n").encode()
        targets = [(result.workdir / "accounting.jsonl", True)]
        if self.settings.accounting_file:
            targets.append((self.settings.accounting_file, False))
        for target, in_workdir in targets:
            try:
                with _open_log(target, secrets.token_hex(4), in_workdir) as out:
                    out.write(line)
            except OSError as error:
                log.error("job %s: cannot write accounting record to %s: %s",
                          result.panda_id, target, error.strerror)


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


def _open_logs(state: _Run) -> "tuple[IO[bytes], IO[bytes]]":
    """The payload's stdout and stderr logs, open to append; ``WorkdirError`` if they
    cannot be."""
    assert state.stdout is not None and state.stderr is not None
    opened: list = []
    try:
        for path in (state.stdout, state.stderr):
            opened.append(_open_log(path, state.token))
    except OSError as error:
        for log_file in opened:
            log_file.close()
        raise WorkdirError(f"cannot open the payload's log {error.filename or ''} in "
                           f"{state.workdir}: {error.strerror}") from None
    return opened[0], opened[1]


def _open_log(path: Path, token: str, in_workdir: bool = True) -> IO[bytes]:
    """Open ``path`` to append to it: a regular file of the pilot's, created if need be.

    The payload can write in the work directory, and this is opened after (or for the
    next job, before) a payload ran: never through a symlink (``O_NOFOLLOW``), never
    blocking on a FIFO (``O_NONBLOCK``: no reader is ``ENXIO``), and in the work
    directory never into a file of someone else's.  There, whatever is in the way is moved
    aside (``<name>.planted-<token>``, logged) and a new file made; elsewhere (the queue's
    accounting file, which may be a site's shared file) a non-regular file is an
    ``OSError``.
    """
    flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
             | os.O_CLOEXEC)
    try:
        fd = os.open(path, flags, 0o644)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (in_workdir and info.st_uid != os.geteuid()):
            os.close(fd)
            raise OSError(errno.EPERM, "not a regular file of the pilot's own")
    except OSError as error:
        if not in_workdir:
            raise
        aside = path.with_name(f"{path.name}.planted-{token}")
        log.warning("%s is not a file the pilot may append to (%s): moved to %s; check what "
                    "the payload did", path, error.strerror, aside.name)
        os.rename(path, aside)
        fd = os.open(path, flags | os.O_EXCL, 0o644)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "ab")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """While the pilot cleans up after a job, TERM/INT/HUP wait until it is done: a second
    signal must not leave a credential, a grant or a payload behind.  (Main thread only;
    a signal held here is delivered, and handled as before, when the block ends.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, caught)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def _pilot_signals() -> Iterator[None]:
    """While the payload runs, SIGTERM/SIGINT/SIGHUP to the pilot raise ``PilotSignal``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise PilotSignal(signum)

    caught = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {s: signal.signal(s, handler) for s in caught}
    try:
        yield
    finally:
        for s, old in previous.items():
            signal.signal(s, old)
