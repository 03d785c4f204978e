"""What every identity switcher shares: the values around a launch, and ``SwitcherBase``.

``ProxyHandover`` tells the wrapper how the payload gets its proxy, ``PayloadLogs`` where the
output goes, ``WrapperMarker`` what the wrapper reported once it ran as the target, and
``Outcome`` what the launch came to.  ``SwitcherBase`` holds the behaviour every switcher
shares (how a return code and a marker become an ``Outcome``), and no policy.
"""

from __future__ import annotations

import os
import pwd
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, List, Optional, Set

from pilotid.errors import (
    ConfigurationError,
    PayloadFailedError,
    PayloadTerminatedError,
    PilotidError,
    SandboxError,
    SwitchError,
)
from pilotid.watch import wait_for_exit

if TYPE_CHECKING:
    from pilotid.identity.accounts import Account
    from pilotid.queue import QueueSettings

SUCCEEDED = "succeeded"
PAYLOAD_FAILED = "payload_failed"
TERMINATED = "terminated"
TIMED_OUT = "timed_out"
INTERRUPTED = "interrupted"
SWITCH_FAILED = "switch_failed"
CREDENTIAL_FAILED = "credential_failed"
RESCHEDULED = "rescheduled"
SETUP_FAILED = "setup_failed"


@dataclass(frozen=True)
class ProxyHandover:
    """How the user's proxy reaches the payload.

    ``payload_proxy`` is what ``X509_USER_PROXY`` points at inside the payload.  Where the
    switch cannot hand the target a file of its own (sudo: an unprivileged pilot cannot
    ``chown``), ``from_stdin`` is True: the switcher writes the proxy to the wrapper's
    standard input and the wrapper, already running as the target, stores it as a new
    0600 file at ``payload_proxy``.  No copy readable by anyone else ever exists.
    """

    payload_proxy: Path
    from_stdin: bool = False


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
    ``pilotid.payloads.wrapper.WRAPPER_ERRORS``), ``None`` if none did.
    """

    uid: int
    payload_status: Optional[int] = None
    signal: Optional[int] = None
    error: Optional[str] = None


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


#: The highest signal number a wrapper's ``128 + n`` status can stand for.
_MAX_SIGNAL = getattr(signal, "NSIG", 65) - 1


def signal_label(signum: int) -> str:
    """``'SIGTERM (15)'`` for 15; ``'signal 99'`` for a number with no name here."""
    try:
        return f"{signal.Signals(signum).name} ({signum})"
    except ValueError:
        return f"signal {signum}"


def terminated(signum: int) -> Outcome:
    """The outcome of a payload (or its wrapper) killed by ``signum``."""
    return Outcome(TERMINATED, exit_code=None, signal=signum,
                   error=PayloadTerminatedError(
                       f"the payload was killed by {signal_label(signum)}"))


def switch_failed(error: SwitchError) -> Outcome:
    """The outcome of a launch whose switch failed: the payload never ran."""
    return Outcome(SWITCH_FAILED, error=error)


def wrapper_failure(marker: WrapperMarker) -> PilotidError:
    """The error for a wrapper that ran as the target but failed before the payload ran.

    The site setup lines are the operator's; the rest (work directory, egg cache base,
    proxy file, marker) is the node's.
    """
    what = {"setup": "a site setup line failed",
            "workdir": "it cannot enter the work directory",
            "egg-cache": "it cannot create a fresh PYTHON_EGG_CACHE directory",
            "proxy": "it cannot store the user's proxy",
            "marker": "it cannot write its marker"}.get(marker.error or "", marker.error)
    message = (f"the wrapper ran as uid {marker.uid} but stopped before the payload: {what}; "
               "see the payload's stderr log")
    return ConfigurationError(message) if marker.error == "setup" else SandboxError(message)


class SwitcherBase:
    """Behaviour every identity switcher shares; subclasses supply the switch itself.

    Holds the queue's settings and maps a finished launch to an ``Outcome``
    (``explain``, a template method).  The mapping, in order:

    ====================================  ==================================================
    returncode < 0 (killed by signal n)   ``terminated``, signal n
    no marker (the wrapper never ran)     ``switch_failed``: ``explain_without_marker``
    marker, payload status 0              ``succeeded``
    marker, status 129 .. 128+NSIG-1      ``terminated``, signal status-128 (shell convention)
    marker, any other non-zero status     ``payload_failed``, exit code = that status
    marker, no payload status             ``payload_failed``, no exit code (wrapper stopped
                                          before the payload ended)
    marker with ``error=``                ``setup_failed`` (``wrapper_failure``), or
                                          ``terminated`` when it was interrupted
    ====================================  ==================================================

    The marker's status is what the wrapper recorded for the payload, and it wins over
    ``returncode`` (which may be a switch's own code, as with gLExec's 204).  Success is
    never reported without a marker.  No policy lives here: no retries, no fallback.
    """

    name = "base"

    def __init__(self, settings: "QueueSettings") -> None:
        self.settings = settings

    def explain(self, returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
        """Return the ``Outcome`` of a launch that ended with ``returncode`` (see the table)."""
        if returncode < 0:
            return terminated(-returncode)
        if marker is None:
            return switch_failed(self.explain_without_marker(returncode))
        return self.explain_marker(returncode, marker)

    def explain_without_marker(self, returncode: int) -> SwitchError:
        """The ``SwitchError`` for a launch that ended (not by a signal) with no marker.

        The wrapper never ran as the target; each switcher knows why from its own codes.
        """
        raise NotImplementedError

    def explain_marker(self, returncode: int, marker: WrapperMarker) -> Outcome:
        """The outcome once the wrapper ran as the target and left ``marker``."""
        if marker.error == "interrupted" and marker.signal:
            return terminated(marker.signal)
        if marker.error is not None:
            return Outcome(SETUP_FAILED, error=wrapper_failure(marker))
        status = marker.payload_status
        if marker.signal:
            return terminated(marker.signal)
        if status is None:
            return Outcome(PAYLOAD_FAILED, error=PayloadFailedError(
                f"the wrapper ran as uid {marker.uid} but ended (status {returncode}) "
                "without recording the payload's status: the payload never started or "
                "the wrapper failed; see the payload's stderr log"))
        if status == 0:
            return Outcome(SUCCEEDED, exit_code=0)
        if 128 < status <= 128 + _MAX_SIGNAL:
            return terminated(status - 128)
        return Outcome(PAYLOAD_FAILED, exit_code=status,
                       error=PayloadFailedError(f"the payload exited with status {status}"))


#: The only variables of the pilot's environment a switch program or wrapper starts with,
#: besides the fixed ones ``start_environment`` sets: locale and time zone, harmless and
#: needed to read the pilot's own messages.
_KEPT_VARIABLES = ("LANG", "LC_ALL", "TZ")
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


def start_environment(account: "Account") -> Dict[str, str]:
    """The small environment a switcher starts the wrapper (or its switch program) with.

    ``PATH`` fixed, ``HOME``/``USER``/``LOGNAME`` of ``account``, and the locale.  Nothing
    else of the pilot's environment: the wrapper rebuilds the payload's environment itself
    (minus its deny-list), so no pilot credential or loader variable (``LD_PRELOAD``) reaches
    the switch program, and every switcher starts the wrapper the same way sudo's
    ``env_reset`` would.
    """
    try:
        home = pwd.getpwuid(account.uid).pw_dir
    except KeyError:
        home = "/"
    env = {"PATH": _SAFE_PATH, "HOME": home, "USER": account.name, "LOGNAME": account.name}
    env.update({k: os.environ[k] for k in _KEPT_VARIABLES if k in os.environ})
    return env


def payload_groups(root_pid: int, uid: int) -> Set[int]:
    """The process groups to signal for the payload started under ``root_pid``.

    ``root_pid`` is the switch program (sudo), or the wrapper itself where no program stands
    between (no-op).
    Always ``root_pid`` (the group the switch program or the wrapper leads: launches start
    a new session), plus the group of every descendant of ``root_pid`` whose real uid is
    ``uid``: the payload's own group (the wrapper runs it with ``set -m``), a group a
    payload made, a wrapper sudo put in a pseudo-terminal of its own.  Never 0 or 1.
    """
    children: Dict[int, List[int]] = {}
    group_of: Dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            ppid, pgid = int(fields[1]), int(fields[2])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry))
        group_of[int(entry)] = pgid
    groups = {root_pid}
    pending = list(children.get(root_pid, ()))
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, ()))
        if group_of[pid] > 1 and _real_uid(pid) == uid:
            groups.add(group_of[pid])
    return groups


#: Seconds a wrapper gets, once its payload was killed with SIGKILL, to record that and
#: remove its egg cache before it is killed too.
WRAPPER_SETTLE = 2.0


def signal_groups(process: Any, groups: Set[int], signum: int,
                  send: Callable[[Set[int]], None]) -> None:
    """Signal ``groups`` (``payload_groups(process.pid, ...)``) with ``send``.

    SIGKILL, which the wrapper can neither catch nor forward, first goes to the groups
    other than ``process.pid``'s (the payload's own): the wrapper, still alive, then
    records the payload's end in its marker and removes the egg cache (a killed wrapper
    cannot).  Only if ``process`` has not ended ``WRAPPER_SETTLE`` seconds later does its own
    group get SIGKILL too.  Any other signal goes to every group at once.
    """
    inner = groups - {process.pid}
    if signum == signal.SIGKILL and inner:
        send(inner)
        if wait_for_exit(process, WRAPPER_SETTLE) is not None:
            return
    send(groups)


def _real_uid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
