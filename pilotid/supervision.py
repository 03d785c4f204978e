"""Watching a running payload: wait, time limit, the pilot's signals, proxy refresh, stop.

``Supervisor`` is what the launcher does between a launch and its end, for one job: it
waits for the payload (``watch``), renews its proxy from the credential source when it runs
low and has the switch session push it, stops it at the time limit or when the pilot is
told to stop (SIGTERM through the session, SIGKILL after the grace period, the switch
program itself last), and sleeps between launches (``pause``).  It decides nothing about
identities: every signal to the payload goes through the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, List, Optional

from pilotid.errors import (
    PayloadTimeoutError,
    PilotidError,
    PilotInterruptedError,
)
from pilotid.identity.credential import Credential
from pilotid.identity.proxy import format_time_left
from pilotid.queue import QueueSettings
from pilotid.signals import PilotSignal, PilotSignals
from pilotid.watch import wait_for_exit
from pilotid.workdir.tokencopy import replace_token_copy

log = logging.getLogger(__name__)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Supervisor:
    """Watch one job's payload through its switch ``session`` (an ``ISwitchSession``).

    ``credential`` is the job's current credential (replaced when a renewed one was pushed;
    the replaced files are listed in ``retired`` for the launcher to remove); ``renew``
    fetches a fresh one from the credential source; ``signals`` are the pilot's own during
    the job.  ``job`` and ``switcher`` name them in the log.
    """

    def __init__(self, settings: QueueSettings, session: Any, credential: Credential,
                 renew: Callable[[], Credential], signals: PilotSignals, job: object,
                 switcher: str) -> None:
        self.settings = settings
        self.session = session
        self.credential = credential
        self.renew = renew
        self.signals = signals
        self.job = job
        self.switcher = switcher
        self.refreshable = True
        self.token_refreshable = (credential.token is not None
                                  and session.handover.payload_token is not None)
        self.retired: List[Path] = []

    def watch(self, process: Any) -> Optional[PilotidError]:
        """Wait for the payload, stopping it at the time limit or when the pilot is told to
        stop; return the error that then overrides its outcome, else None."""
        try:
            self.signals.arm()
            finished = self._wait(process)
        except PilotSignal as caught:
            log.warning("job %s: pilot got signal %d, stopping the payload", self.job,
                        caught.signum)
            self.stop(process, caught.signum)
            return PilotInterruptedError(
                f"pilot received signal {caught.signum} and stopped the payload")
        finally:
            self.signals.disarm()
        if not finished:
            log.warning("job %s: time limit of %ss reached, stopping the payload", self.job,
                        self.settings.timeout)
            self.stop(process)
            return PayloadTimeoutError(
                f"payload exceeded the time limit of {self.settings.timeout}s")
        return None

    def _wait(self, process: Any) -> bool:
        """Wait for the payload to end, checking its proxy every ``proxy_refresh_interval``;
        False when the time limit passes first."""
        timeout = self.settings.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            step = (float(self.settings.proxy_refresh_interval)
                    if self.refreshable or self.token_refreshable else None)
            if left is not None:
                step = left if step is None else min(step, left)
            if wait_for_exit(process, step) is not None:
                return True
            if self.refreshable:
                self.refresh()
            if self.token_refreshable:
                self.refresh_token()

    def refresh(self) -> None:
        """Renew the running payload's proxy from the credential source when it falls under
        ``proxy_refresh_threshold``, and have the session push it (as DIRAC did).

        Failures are logged: the payload keeps the proxy it has and the next check tries
        again.  A session that cannot push a proxy is not asked again.
        """
        current = self.credential
        if current.proxy is None:  # a token's copy is not renewed (yet): nothing to push
            return
        if current.time_left().total_seconds() >= self.settings.proxy_refresh_threshold:
            return
        log.info("job %s: the proxy has %s left, renewing it from the credential source",
                 self.job, format_time_left(current.time_left()))
        try:
            fresh = self.renew()
        except PilotidError as error:
            log.warning("job %s: cannot renew the proxy (%s); the payload keeps its own, "
                        "%s left", self.job, error, format_time_left(current.time_left()))
            return
        try:
            if self._push(current, fresh):
                self.retired.extend(current.files)  # a handover may point at them
                self.credential = fresh
        finally:
            if self.credential is not fresh:  # not adopted, or the pilot was told to stop
                for path in fresh.files:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)

    def refresh_token(self) -> None:
        """Replace the running payload's token copy with a newer token from the credential
        source once it has less than ``token_refresh_threshold`` left
        (``replace_token_copy``: a new file renamed over it, readable by the payload alone).

        Failures are logged: the payload keeps the token it has.  Where the copy cannot be
        replaced (a world-mode handover directory) it is not tried again.
        """
        # imported here: PyJWT brings TLS, which a proxy job never needs
        from pilotid.identity.tokens.settings import TOKEN_REFRESH_THRESHOLD

        current = self.credential.token
        assert current is not None
        if current.time_left().total_seconds() >= self.settings.option(
                TOKEN_REFRESH_THRESHOLD):
            return
        try:
            fresh = self.renew()
        except PilotidError as error:
            log.warning("job %s: cannot renew the bearer token (%s); the payload keeps its "
                        "own, %s left", self.job, error, format_time_left(current.time_left()))
            return
        try:
            if fresh.token is None or not fresh.token.newer_than(current):
                log.info("job %s: the credential source has no newer bearer token yet",
                         self.job)
                return
            reader = self.session.marker_owner if self.session.switches_identity else None
            copy = self.session.handover.payload_token
            if not replace_token_copy(copy, fresh.token.raw.encode("ascii") + b"\n", reader):
                log.warning("job %s: the payload's token copy %s is in a directory others may "
                            "write: it is not replaced", self.job, copy)
                self.token_refreshable = False
                return
            self.credential = dataclasses.replace(self.credential, token=fresh.token)
            log.info("job %s: renewed bearer token (%s left) renamed over %s", self.job,
                     format_time_left(fresh.token.time_left()), copy)
        except PilotidError as error:
            log.warning("job %s: replacing the payload's bearer token failed: %s", self.job,
                        error)
        finally:
            for path in fresh.files:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def _push(self, current: Credential, fresh: Credential) -> bool:
        now = _now()
        if fresh.time_left(now) <= current.time_left(now):
            log.info("job %s: the credential source has no longer-lived proxy yet", self.job)
            return False
        try:
            pushed = self.session.refresh(fresh)
        except PilotidError as error:
            log.warning("job %s: pushing the renewed proxy to the payload failed: %s",
                        self.job, error)
            return False
        if not pushed:
            log.warning("job %s: the %s switcher cannot give a running payload a renewed "
                        "proxy; it keeps its own (%s left)", self.job, self.switcher,
                        format_time_left(current.time_left()))
            self.refreshable = False
            return False
        log.info("job %s: renewed proxy (%s left) pushed to the payload", self.job,
                 format_time_left(fresh.time_left()))
        return True

    def pause(self, seconds: float) -> Optional[PilotidError]:
        """Sleep between launches; the error if the pilot is told to stop meanwhile."""
        try:
            self.signals.arm()
            time.sleep(seconds)
        except PilotSignal as caught:
            return PilotInterruptedError(
                f"pilot received signal {caught.signum} before the payload started")
        finally:
            self.signals.disarm()
        return None

    def stop(self, process: Any, signum: int = signal.SIGTERM) -> None:
        """Terminate the payload through the session; SIGKILL after the grace period.

        Being told to stop (again) during the grace period cuts it short; a signal while
        the session is signalling, or after SIGKILL, is only remembered.  A refused signal
        is logged and the escalation goes on.  If the switch program outlives SIGKILL to the
        payload by another grace period (at least 10 s), the pilot SIGKILLs the switch
        program itself; if even that does not end it, it is left and the outcome says so.
        """
        self._signal(process, signum)
        try:
            self.signals.arm()
            if wait_for_exit(process, float(self.settings.grace_period)) is not None:
                return
            log.warning("payload still running after %ss: killing it",
                        self.settings.grace_period)
        except PilotSignal:
            log.warning("pilot told to stop again while stopping the payload: killing it")
        finally:
            self.signals.disarm()
        self._signal(process, signal.SIGKILL)
        patience = float(max(self.settings.grace_period, 10))
        if wait_for_exit(process, patience) is not None:
            return
        # The switch program hangs (it never ran the wrapper, or does not pass signals on):
        # SIGKILL through the session reaches the payload's groups as the target, never
        # it.  It is the pilot's child, with the pilot's real uid even when set-uid, so the
        # pilot may kill it itself; what it leaves is then the pilot's (``stop_leftovers``).
        log.error("the switch program (pid %d) still runs after SIGKILL to the payload: "
                  "killing it", process.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(process.pid, signal.SIGKILL)
        if wait_for_exit(process, patience) is None:
            log.error("the switch program (pid %d) is still running after SIGKILL",
                      process.pid)

    def _signal(self, process: Any, signum: int) -> None:
        try:
            self.session.terminate(process, signum)
        except PilotidError as error:
            log.error("the %s switcher could not send signal %d to the payload: %s",
                      self.switcher, signum, error)
