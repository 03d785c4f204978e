"""The pilot's own signals during a job: SIGTERM, SIGINT and SIGHUP never kill it half-way.

A pilot told to stop while it runs a job must not die with the work directory opened to
the target or a payload started and forgotten.  ``PilotSignals`` catches the signals for
the whole job and decides, by what the launcher is doing, whether one interrupts it now
(``PilotSignal``, raised while the launcher waits) or is only remembered for later.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator, Optional

from pilotid.errors import PilotInterruptedError


class PilotSignal(Exception):
    """Raised by the launcher's signal handler: the pilot itself was told to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"pilot received signal {signum}")
        self.signum = signum


class PilotSignals:
    """SIGTERM, SIGINT and SIGHUP to the pilot during one job (main thread only).

    From the start of ``run`` to its end a signal never kills the pilot half-way (the work
    directory opened to the target, a payload started and forgotten).  While the launcher
    waits (``arm``: for the payload, for a grace period, between launches) the first one
    raises ``PilotSignal`` and the launcher stops the payload, or does not launch again; at
    any other time it is only remembered (``pending``) until the next ``arm``.  One
    remembered before the launch stops the job there (``check``).
    """

    CAUGHT = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.pending: Optional[int] = None
        self._raising = False

    def _handler(self, signum: int, frame: Any) -> None:
        if self._raising:
            self._raising = False
            raise PilotSignal(signum)
        if self.pending is None:
            self.pending = signum

    @contextlib.contextmanager
    def caught(self) -> Iterator[None]:
        """Install the handler for the duration of the ``with`` block."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handler) for s in self.CAUGHT}
        try:
            yield
        finally:
            for s, old in previous.items():
                signal.signal(s, old)

    def check(self) -> None:
        """``PilotInterruptedError`` if a signal came before the payload was started."""
        if self.pending is not None:
            raise PilotInterruptedError(f"pilot received signal {self.pending} before the "
                                        "payload started: the payload was not started")

    def arm(self) -> None:
        """From now on the first signal raises ``PilotSignal`` (at once if one is pending)."""
        if self.pending is not None:
            signum, self.pending = self.pending, None
            raise PilotSignal(signum)
        self._raising = True

    def disarm(self) -> None:
        """Back to remembering signals."""
        self._raising = False
