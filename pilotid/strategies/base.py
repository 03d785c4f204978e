"""What every identity switcher shares: ``SwitcherBase``, and the outcomes it explains.

``SwitcherBase`` holds the behaviour every switcher shares (how a return code and a marker
become an ``Outcome``), and no policy.  The values around a launch (``ProxyHandover``,
``PayloadLogs``, ``WrapperMarker``, ``Outcome`` and the outcome names) are
``pilotid.values``'s: the wrapper and the launcher use them too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import pwd
import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from pilotid.errors import (
    AccountMappingError,
    ConfigurationError,
    PayloadFailedError,
    PayloadTerminatedError,
    PilotidError,
    ProxyExpiredError,
    RescheduleRequest,
    SandboxError,
    SwitchError,
    SwitchExecError,
)
from pilotid.identity.proxy import format_time_left
from pilotid.strategies.processes import EVERY_PROCESS, REMOVE_COMMAND, kill_argv
from pilotid.strategies.session import SwitchSession
from pilotid.strategies.switch_program import log_position as log_position
from pilotid.strategies.switch_program import proxy_input as proxy_input
from pilotid.strategies.switch_program import send_proxy as send_proxy
from pilotid.strategies.switch_program import switch_program_said as switch_program_said
from pilotid.values import (
    PAYLOAD_FAILED,
    SETUP_FAILED,
    SUCCEEDED,
    SWITCH_FAILED,
    TERMINATED,
    Outcome,
    PayloadLogs,
    ProxyHandover,
    WrapperMarker,
)
from pilotid.watch import wait_for_exit

if TYPE_CHECKING:
    from pilotid.identity.accounts import Account
    from pilotid.identity.credential import Credential
    from pilotid.probe import Check
    from pilotid.queue import QueueSettings

log = logging.getLogger(__name__)


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

    ``open`` returns a ``SwitchSession`` that asks the subclass for each step of one job:
    ``handover(credential, account, workdir)`` (a ``ProxyHandover``),
    ``launch(argv, credential, account, workdir, logs)`` (a process),
    ``terminate(process, signum)``, ``explain``, ``retry_delay``,
    ``refresh_proxy(credential, workdir)``, ``kill_as_target(pids, credential, account,
    workdir)``, ``signal_account(signum, credential, account, workdir)`` and
    ``remove_as_target(paths, credential, account, workdir)``.  The class
    attribute ``switches_identity`` (True here) says whether the payload runs under another
    account than the pilot's.

    The defaults of ``retry_delay`` (never retry), ``refresh_proxy`` (cannot push a
    renewed proxy), ``node_checks`` (nothing particular to report), ``kill_as_target`` and
    ``signal_account`` (``kill`` started through ``launch``), ``remove_as_target`` (``rm``
    started through ``launch``) and ``explain_without_marker`` (the status and what the
    switch program wrote) fit a switch that has no transient failures, hands the payload a
    proxy it cannot replace, and runs no program of its own; a switcher that can do better
    overrides them.
    """

    name = "base"
    #: Whether the payload runs under another identity than the pilot's (``NoopSwitcher``:
    #: False).  Read by the session, never guessed from uids.
    switches_identity = True

    def __init__(self, settings: "QueueSettings") -> None:
        self.settings = settings

    def open(self, credential: "Credential", account: "Account",
             workdir: Path) -> SwitchSession:
        """Return the ``SwitchSession`` of one job run as ``account`` in ``workdir``."""
        return SwitchSession(self, credential, account, workdir)

    def kill_as_target(self, pids: Sequence[int], credential: "Credential",
                       account: "Account", workdir: Path) -> None:
        """SIGKILL ``pids`` as ``account``, which only the target may signal.

        This default runs ``KILL_COMMAND`` through ``launch`` (its output discarded) and
        waits for it up to a minute; a switcher with a cheaper way (a second switch that
        is not a launch) overrides it.  Raises ``PilotidError`` when the switch fails.
        """
        self._launch_as_target(kill_argv(signal.SIGKILL, pids), credential, account, workdir,
                               "the kill of the payload's leftovers")

    def signal_account(self, signum: int, credential: "Credential", account: "Account",
                       workdir: Path) -> None:
        """Send ``signum`` to every process of ``account`` but the sender: ``kill`` with
        pid -1 run as ``account`` (the leftover sweep, ``leftover_processes: "account"``).

        This default starts it through ``launch``, as ``kill_as_target`` does; a switcher
        with a cheaper way overrides it.  Raises ``PilotidError`` when the switch fails.
        """
        self._launch_as_target(kill_argv(signum, [EVERY_PROCESS]), credential, account,
                               workdir, "the signal to every process of the account")

    def remove_as_target(self, paths: Sequence[Path], credential: "Credential",
                         account: "Account", workdir: Path) -> None:
        """Remove ``paths``, trees the wrapper made as ``account`` (its egg cache, its own
        directory in world mode), as ``account``: only it may remove them.

        This default runs ``REMOVE_COMMAND -rf --`` through ``launch``, as ``kill_as_target``
        runs kill; a switcher with a cheaper way overrides it.  Raises ``PilotidError``
        when the switch fails.
        """
        self._launch_as_target([REMOVE_COMMAND, "-rf", "--", *map(str, paths)],
                               credential, account, workdir, "the removal of the wrapper's files")

    def _launch_as_target(self, argv: List[str], credential: "Credential", account: "Account",
                          workdir: Path, what: str) -> None:
        """Run ``argv`` through ``launch``, its output discarded, waiting up to a minute."""
        with open(os.devnull, "wb") as out, open(os.devnull, "wb") as err:
            started = self.launch(argv, credential, account, workdir,  # type: ignore[attr-defined]
                                  PayloadLogs(out, err))
            if wait_for_exit(started, 60) is None:
                log.error("%s as %s hangs: killing it", what, account.name)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(started.pid, signal.SIGKILL)
                wait_for_exit(started, 10)

    def explain(self, returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
        """Return the ``Outcome`` of a launch that ended with ``returncode`` (see the table)."""
        if returncode < 0:
            return terminated(-returncode)
        if marker is None:
            return switch_failed(self.explain_without_marker(returncode))
        return self.explain_marker(returncode, marker)

    def retry_delay(self, outcome: Outcome, attempt: int) -> Optional[float]:
        """Never launch again: this switch has no failure that goes away by itself."""
        return None

    def refresh_proxy(self, credential: "Credential", workdir: Path) -> bool:
        """Return False: this switcher cannot replace a running payload's proxy."""
        return False

    def node_checks(self, credential: Optional["Credential"]) -> List["Check"]:
        """Return no checks: nothing particular to this switch to show in ``pilotid probe``."""
        return []

    def explain_without_marker(self, returncode: int) -> SwitchError:
        """The ``SwitchError`` for a launch that ended (not by a signal) with no marker.

        The wrapper never ran as the target.  This default says so with the status; a
        switcher that knows its program's codes, or reads its stderr
        (``switch_program_said``), overrides it.
        """
        return SwitchExecError(
            f"the {self.name} switch program exited with status {returncode} and the wrapper "
            "never ran as the target (no marker); see the stderr log in the work directory")

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


def refuse_unsafe_mapping(account: "Account", identity: str, where: str) -> "Account":
    """Return ``account``, or raise ``AccountMappingError`` where it is root or the pilot.

    A switcher calls it on the account its mapping gave for ``identity`` (``where`` names
    the mapping, e.g. ``grid-mapfile /etc/grid-security/grid-mapfile``): a user's payload
    never runs as root nor as the pilot's own account.
    """
    pilot_uid = os.geteuid()
    if account.uid == 0 or account.uid == pilot_uid:
        raise AccountMappingError(
            f"{where} maps {identity} to {account.name} (uid {account.uid}), "
            f"{'root' if account.uid == 0 else 'the pilot itself'}: a user's payload never "
            "runs as that account; map the DN to a user account")
    return account


def reschedule_if_asked(settings: "QueueSettings", error: PilotidError,
                        what: str) -> PilotidError:
    """The reschedule rule, in one place: the error a refused switch ends the job with.

    Where the queue's ``on_probe_failure`` is ``reschedule`` and ``error`` is a switch or
    mapping failure (not already a ``RescheduleRequest``), a ``RescheduleRequest`` caused by
    it, saying ``what`` failed; otherwise ``error`` itself.  Never a fallback to the pilot's
    identity.
    """
    if (settings.on_probe_failure != "reschedule" or isinstance(error, RescheduleRequest)
            or not isinstance(error, (SwitchError, AccountMappingError))):
        return error
    request = RescheduleRequest(f"{what}, job handed back for rescheduling: {error}")
    request.__cause__ = error
    return request


def check_launch_lifetime(credential: "Credential", needed: float, queue: str) -> None:
    """The proxy lifetime check, in one place: raise ``ProxyExpiredError`` unless
    ``credential`` lasts ``needed`` more seconds (the queue's ``proxy_lifetime_needed()``,
    what a launch of queue ``queue`` may take).  A token-only credential passes: its source
    held the token to the queue's ``token_lifetime_needed``."""
    if credential.proxy is None:  # a token-only job: its source held it to its own needs
        return
    left = credential.time_left()
    if left.total_seconds() < needed:
        state = ("has expired" if left.total_seconds() <= 0
                 else f"has {format_time_left(left)} left")
        raise ProxyExpiredError(
            f"the proxy of {credential.identity} {state}, but "
            f"{format_time_left(datetime.timedelta(seconds=needed))} is needed to launch "
            f"the payload (queue {queue}: timeout, proxy_refresh_threshold); "
            "delegate a longer-lived proxy")


def stdin_handover(account: "Account", workdir: Path) -> ProxyHandover:
    """The proxy on the wrapper's standard input, stored by the wrapper (as the target) as
    ``x509up`` in a handover directory of the work directory.

    The directory's name carries the target's uid and a random token, so that it is never
    one a previous job (or anybody else) left there; the launcher makes it after the grant
    (``make_handover_directory``).  The switcher then gives the wrapper ``proxy_input``
    (the credential's bytes) as standard input, and ``send_proxy`` where that is a pipe.
    """
    name = f".pilotid-proxy-{account.uid}-{secrets.token_hex(8)}"
    return ProxyHandover(Path(workdir) / name / "x509up", from_stdin=True)


def with_token(handover: ProxyHandover, credential: "Credential") -> ProxyHandover:
    """``handover`` for ``credential``: also its bearer token where it has one (beside the
    proxy, ``bt``, for a handover from standard input; the pilot's own copy otherwise), and
    no proxy for a token-only job."""
    if credential.token_path is None:
        return handover
    token = (handover.payload_proxy.parent / "bt" if handover.from_stdin
             else credential.token_path)
    return dataclasses.replace(handover, payload_token=token,
                               carries_proxy=credential.proxy is not None)


def switch_copy_handover(proxy: Path, account: "Account", workdir: Path,
                         credential: "Credential") -> ProxyHandover:
    """The proxy copied to ``proxy`` by the switch program itself (gLExec); the bearer
    token, where ``credential`` has one, stored by the wrapper from its standard input as
    ``bt`` in a handover directory (``stdin_handover``), sent alone (``token_input``)."""
    if credential.token_path is None:
        return ProxyHandover(payload_proxy=proxy, from_stdin=False)
    place = stdin_handover(account, workdir).payload_proxy.parent
    return ProxyHandover(payload_proxy=proxy, from_stdin=True, payload_token=place / "bt",
                         proxy_by_switch=True)


def token_input(credential: "Credential") -> bytes:
    """The bearer token of ``credential`` as the wrapper reads it from standard input."""
    assert credential.token_path is not None
    return Path(credential.token_path).read_bytes().strip()


def handover_input(credential: "Credential") -> bytes:
    """What a handover from standard input sends the wrapper: the proxy, then (after a NUL,
    which PEM never holds) the bearer token; either alone for a job with one."""
    parts = []
    if credential.path is not None:
        parts.append(Path(credential.path).read_bytes())
    if credential.token_path is not None:
        parts.append(token_input(credential))
    return b"\0".join(parts)
