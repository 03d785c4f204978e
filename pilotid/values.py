"""The values that flow between the steps of a job: frozen dataclasses, and no behaviour.

``ProxyHandover`` tells the wrapper how the payload gets its proxy, ``PayloadLogs`` where the
output goes, ``WrapperMarker`` what the wrapper reported once it ran as the target, and
``Outcome`` what the launch came to (its ``kind`` one of the outcome names below, as the
JSON result spells them).  They stand below the switchers, the wrapper and the launcher,
which all pass them on, so that none of those has to import another for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional, Tuple

from pilotid.errors import PilotidError

SUCCEEDED = "succeeded"
PAYLOAD_FAILED = "payload_failed"
TERMINATED = "terminated"
TIMED_OUT = "timed_out"
INTERRUPTED = "interrupted"
SWITCH_FAILED = "switch_failed"
CREDENTIAL_FAILED = "credential_failed"
RESCHEDULED = "rescheduled"
SETUP_FAILED = "setup_failed"
INTERNAL_ERROR = "internal_error"

@dataclass(frozen=True)
class ProxyHandover:
    """How the user's proxy reaches the payload.

    ``payload_proxy`` is what ``X509_USER_PROXY`` points at inside the payload.  Where the
    switch cannot hand the target a file of its own (sudo: an unprivileged pilot cannot
    ``chown``), ``from_stdin`` is True: the switcher writes the proxy to the wrapper's
    standard input and the wrapper, already running as the target, stores it as a new
    0600 file at ``payload_proxy``.  Its directory must be a new one directly in the work
    directory: the launcher makes it, after the grant, open to the target alone and with no
    default ACL (``pilotid.workdir.make_handover_directory``), so that no copy
    readable by anyone else, the pilot included, ever exists.

    A job with a bearer token gets it the same way: ``payload_token`` is what
    ``BEARER_TOKEN_FILE`` points at (never a ``BEARER_TOKEN`` value), stored from standard
    input after the proxy (and its NUL) into the same directory where ``from_stdin``.
    ``carries_proxy`` is False for a token-only job: no ``X509_USER_PROXY`` then, and
    ``payload_proxy`` only names the handover place.  ``proxy_by_switch`` is True where the
    switch program copies the proxy to ``payload_proxy`` itself (gLExec) and only the token
    comes on standard input, into the directory of ``payload_token``.
    """

    payload_proxy: Path
    from_stdin: bool = False
    payload_token: Optional[Path] = None
    carries_proxy: bool = True
    proxy_by_switch: bool = False

    @property
    def stdin_place(self) -> Path:
        """A copy stored from standard input: its directory is the handover directory."""
        if self.proxy_by_switch and self.payload_token is not None:
            return self.payload_token
        return self.payload_proxy


@dataclass(frozen=True)
class PayloadLogs:
    """The open files that receive the switch's and the payload's output."""

    stdout: IO[bytes]
    stderr: IO[bytes]


@dataclass(frozen=True)
class WrapperMarker:
    """What the wrapper recorded: that it ran, as whom, and the payload's own exit status.

    ``payload_status`` is ``None`` while the payload has not finished (or if the wrapper
    was killed before it could write it); for a death by signal s it is 128+s and
    ``signal`` is s.  ``error`` names the wrapper's own step that failed (one of
    ``pilotid.payloads.marker.WRAPPER_ERRORS``), ``None`` if none did.  ``egg_cache`` is
    the 32 hex digits naming the egg cache the wrapper made (``pilotid-egg-<digits>`` under
    the queue's base), ``None`` before it made one.  ``copies`` are the (device, inode) of
    the credential copies it stored from standard input: the payload may forge them, so
    they only ever name files of the target's own (``pilotid.workdir.remove_copies``).
    """

    uid: int
    payload_status: Optional[int] = None
    signal: Optional[int] = None
    error: Optional[str] = None
    egg_cache: Optional[str] = None
    copies: Tuple[Tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Outcome:
    """What a launch came to: ``kind`` is one of the outcome names of the JSON result.

    ``exit_code`` is the payload's own exit status (``None`` if it never ran or was
    killed), ``signal`` the signal that killed it, ``error`` the pilotid error that
    describes any failure (``None`` on success).
    """

    kind: str
    exit_code: Optional[int] = None
    signal: Optional[int] = None
    error: Optional[PilotidError] = None

    @property
    def error_code(self) -> int:
        """The pilot error code: 0 on success, else the error's code."""
        return 0 if self.error is None else self.error.code

    @property
    def succeeded(self) -> bool:
        """True where the payload ran as the target and exited 0."""
        return self.kind == SUCCEEDED
