"""``GlexecSwitcher``: run the payload as the account gLExec maps the user's proxy to.

gLExec (Nikhef; setuid root) authorises the identity in ``GLEXEC_CLIENT_CERT``, maps it to
a local account (LCAS/LCMAPS), copies ``GLEXEC_SOURCE_PROXY`` to ``GLEXEC_TARGET_PROXY``
owned by that account, wipes the environment and runs an absolute command as the account.
Where the binary is and how it is called are ``binary``'s; what its exit statuses mean is
``exitcodes``'; asking it for the mapped account is ``mapping``'s; what ``pilotid probe``
shows is ``diagnosis``'.

What this module adds on top of calling it:

* ``probe`` asks gLExec, with the user's own proxy, which account it maps to, retrying
  202 and 203 a bounded number of times; answers are cached per DN for the queue's
  ``probe_cache_lifetime`` (default: the pilot's lifetime); a failed probe fails the job
  or asks for it to be rescheduled, never falls back to the pilot's own account;
* ``explain`` tells a switch that never happened (no wrapper marker) from a payload that
  failed, and turns 204 into the payload's own status recorded by the wrapper;
* ``terminate`` signals the payload through a second gLExec call as the target, since the
  lingering gLExec ignores the unprivileged pilot's signals.

Opening the work directory to the target (every parent traversable, an ACL on the
directory, never on the proxy passed as ``GLEXEC_CLIENT_CERT``) is the sandbox's job.
"""

from __future__ import annotations

import datetime
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from zope.interface import implementer

from pilotid.errors import (
    PayloadFailedError,
    ProxyExpiredError,
    ProxyFileError,
    SwitchClientError,
    SwitchError,
    SwitchSystemError,
    SwitchUnavailableError,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.identity.default_proxy import proxy_path_from_environment
from pilotid.interfaces import IIdentitySwitcher
from pilotid.probe import Check
from pilotid.queue import QueueSettings
from pilotid.settings import Setting, absolute_path, choice, integer, optional, seconds
from pilotid.strategies.account_sweep import LEFTOVER_PROCESSES
from pilotid.strategies.base import (
    SwitcherBase,
    check_launch_lifetime,
    proxy_input,
    reschedule_if_asked,
    send_proxy,
    signal_label,
    switch_copy_handover,
    token_input,
)
from pilotid.strategies.glexec.binary import call_glexec, glexec_environment, locate_glexec
from pilotid.strategies.glexec.diagnosis import GlexecDiagnosis, diagnose_node, diagnosis_checks
from pilotid.strategies.glexec.exitcodes import (
    EXIT_ERRORS,
    PAYLOAD_OVERLAP,
    RETRIED_ERRORS,
    _cert_hint,
    _switch_error,
    never_ran_error,
)
from pilotid.strategies.glexec.mapping import probe_mapping
from pilotid.strategies.probecache import PILOT_PROBE_CACHE, PROBE_CACHE_LIFETIME, ProbeCache
from pilotid.strategies.processes import (
    EVERY_PROCESS,
    KILL_COMMAND,
    REMOVE_COMMAND,
    kill_argv,
    payload_groups,
    signal_groups,
)
from pilotid.strategies.session import SwitchSession
from pilotid.values import (
    PAYLOAD_FAILED,
    SWITCH_FAILED,
    Outcome,
    PayloadLogs,
    ProxyHandover,
    WrapperMarker,
)

log = logging.getLogger(__name__)

NOOP_COMMAND = "/bin/true"
#: Where gLExec writes the target's copy of the user's proxy, inside the work directory.
TARGET_PROXY_NAME = ".glexec-target-proxy"
MODES = ("uid", "test")

#: The gLExec switcher's own queue settings (``GlexecSwitcher.own_settings``).
GLEXEC_PATH = Setting(
    "glexec_path", optional(absolute_path), None,
    "The gLExec executable; null: ``GLEXEC_LOCATION``, ``OSG_GLEXEC_LOCATION``, then "
    "``/usr/sbin/glexec``.")
GLEXEC_MODE = Setting(
    "glexec_mode", optional(choice(*MODES)), None,
    "``uid`` (null means it) switches to the end user; ``test`` uses gLExec with the "
    "pilot's own proxy.  Set by PanDA's ``glexec`` field (see below).")
SWITCH_RETRIES = Setting(
    "switch_retries", integer(1, 100), 3,
    "How many launches a job gets in all when gLExec fails in a way that may go away by "
    "itself (202, 203) before the wrapper ran; also the probe's attempts.")
SWITCH_RETRY_DELAY = Setting(
    "switch_retry_delay", seconds, 5,
    "Seconds before the first retry; each further retry waits twice as long (HTCondor's "
    "5 s, 10 s).")


# --- values ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class RetryPolicy:
    """How often 202 and 203 are retried before the payload has started, and how long apart.

    The defaults are HTCondor's: 3 tries, 5 s, doubling.
    """

    tries: int = 3
    delay: float = 5.0
    factor: float = 2.0

    def delay_after(self, attempt: int) -> Optional[float]:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), None to stop."""
        if attempt >= self.tries:
            return None
        return self.delay * self.factor ** (attempt - 1)


@dataclass
class _Launch:
    credential: Credential
    account: Account
    client_cert: Path
    workdir: Path


# --- the switcher ---------------------------------------------------------------------------

@implementer(IIdentitySwitcher)
class GlexecSwitcher(SwitcherBase):
    """Switch identity with gLExec, as the queue's ``glexec_mode`` says.

    ``uid`` (the default): the user's own proxy is ``GLEXEC_CLIENT_CERT``, so the payload
    runs as the account the user maps to.  ``test`` (PanDA's ``glexec: test``): the
    pilot's own proxy (``X509_USER_PROXY``, else ``/tmp/x509up_u<uid>``) is
    ``GLEXEC_CLIENT_CERT``; the user's proxy is still what the payload gets.

    Keyword arguments are for the pilot and for tests: ``environ`` (the pilot's
    environment, default ``os.environ``), ``probe_cache`` (default: shared by the pilot
    process), ``retry`` (for 202/203; default from the queue's ``switch_retries`` and
    ``switch_retry_delay``), ``sleep``, ``proxy_lifetime`` (seconds the user's proxy must
    still be valid when probing and launching; default the queue's
    ``proxy_lifetime_needed()``) and ``call_timeout`` (seconds a probe, kill or refresh
    call may take).

    Each job's session (``open``: a ``GlexecSession``) keeps its own launches, which its
    ``terminate`` signals and its ``refresh`` updates; the switcher keeps none, so two
    sessions of one switcher never reach each other's payloads.

    Retries: ``probe`` retries 202 and 203 itself.  A launch that ends in 202 or 203
    before the wrapper ran is retried by the launcher: it asks ``retry_delay(outcome,
    attempt)`` and launches again after that many seconds, or gives up on None.
    """

    name = "glexec"
    own_settings = (GLEXEC_PATH, GLEXEC_MODE, SWITCH_RETRIES, SWITCH_RETRY_DELAY,
                    PROBE_CACHE_LIFETIME, LEFTOVER_PROCESSES)
    required_fields = {
        "credential_source": "it hands gLExec the user's proxy, and no credential source is "
                             "configured; set credential_source ('myproxy' for the user's "
                             "delegated proxy, 'file' for a local one)"}

    def __init__(self, settings: QueueSettings, *, environ: Optional[Mapping[str, str]] = None,
                 probe_cache: "Optional[ProbeCache[object]]" = None,
                 retry: Optional[RetryPolicy] = None, sleep: Callable[[float], None] = time.sleep,
                 proxy_lifetime: Optional[int] = None, call_timeout: float = 300) -> None:
        mode = settings.option(GLEXEC_MODE) or "uid"
        self.settings = settings
        self.mode = mode
        self.environ: Dict[str, str] = dict(os.environ if environ is None else environ)
        self.probe_cache = PILOT_PROBE_CACHE if probe_cache is None else probe_cache
        if retry is None:
            retry = RetryPolicy(tries=settings.option(SWITCH_RETRIES),
                                delay=settings.option(SWITCH_RETRY_DELAY))
        self.retry = retry
        self.sleep = sleep
        if proxy_lifetime is None:
            proxy_lifetime = settings.proxy_lifetime_needed()
        self.proxy_lifetime = proxy_lifetime
        self.call_timeout = call_timeout
        self._binary: Optional[Path] = None

    # -- where, with what ------------------------------------------------------------------

    @property
    def binary(self) -> Path:
        """The gLExec binary (located on first use, see ``locate_glexec``)."""
        if self._binary is None:
            self._binary = locate_glexec(self.settings.option(GLEXEC_PATH), self.environ)
        return self._binary

    def client_cert(self, credential: Credential) -> Path:
        """The file passed as ``GLEXEC_CLIENT_CERT`` for ``credential``, absolute."""
        if self.mode == "test":
            return self.pilot_proxy()
        return Path(os.path.realpath(credential.proxy_file("gLExec")))

    def pilot_proxy(self) -> Path:
        """The pilot's own proxy: ``X509_USER_PROXY``, else Globus' ``/tmp/x509up_u<uid>``."""
        # Only read, never written; gLExec itself refuses it unless it is the pilot's own 0600
        # file, so the well-known /tmp name cannot be abused through this path.
        return Path(os.path.realpath(proxy_path_from_environment(self.environ)))

    def target_proxy_path(self, workdir: Path) -> Path:
        """Where gLExec writes the target's own copy of the user's proxy."""
        return Path(os.path.abspath(workdir)) / TARGET_PROXY_NAME

    def check_lifetime(self, credential: Credential) -> None:
        """Raise ``ProxyExpiredError`` unless the proxy is valid for ``proxy_lifetime`` more
        (``check_launch_lifetime``, the launcher's own check)."""
        check_launch_lifetime(credential, self.proxy_lifetime, self.settings.name)

    def proxy_needs_refresh(self, credential: Credential,
                            threshold: Optional[datetime.timedelta] = None) -> bool:
        """True when the proxy has less than ``threshold`` left (default: the queue's
        ``proxy_refresh_threshold``, 3 h as DIRAC's unless set)."""
        if threshold is None:
            threshold = datetime.timedelta(seconds=self.settings.proxy_refresh_threshold)
        return credential.time_left() < threshold

    # -- IIdentitySwitcher -----------------------------------------------------------------

    def probe(self, credential: Credential) -> Account:
        """Return the account gLExec maps ``credential`` to, asking gLExec itself.

        Runs ``id`` through gLExec with the client certificate of this mode; 202 and 203
        are retried (``retry``).  Failures raise the ``SwitchError`` of the exit status, or
        ``RescheduleRequest`` (caused by it) when the queue's ``on_probe_failure`` is
        ``reschedule``; an expired proxy raises ``ProxyExpiredError``.  In ``uid`` mode an
        answer naming the pilot's own account is refused: the payload never runs as the
        pilot.
        """
        self.check_lifetime(credential)
        try:
            cert = self.client_cert(credential)
            key = (str(self.binary), self.mode,
                   credential.identity if self.mode == "uid" else str(cert))
            cached = self.probe_cache.get(key, self.settings.option(PROBE_CACHE_LIFETIME))
            if isinstance(cached, Account):
                return cached
            account = self._probe_with_retries(cert)
            if self.mode == "uid" and account.uid == os.geteuid():
                raise SwitchSystemError(
                    f"gLExec maps {credential.identity} to the pilot's own account "
                    f"{account.name}: it runs in logging-only mode or maps users to the pilot; "
                    "refusing to run a user's payload as the pilot")
        except SwitchError as error:
            handed_back = reschedule_if_asked(self.settings, error, "gLExec probe failed")
            if handed_back is error:
                raise
            raise handed_back from error
        log.info("gLExec maps %s to %s (uid %d)", credential.identity, account.name, account.uid)
        self.probe_cache.put(key, account)
        return account

    def handover(self, credential: Credential, account: Account, workdir: Path) -> ProxyHandover:
        """gLExec itself copies the proxy for the target: tell the wrapper where it lands.
        A bearer token beside the proxy goes on the wrapper's standard input, as through
        sudo (``switch_copy_handover``); a token-only job never gets here (``client_cert``
        refuses it)."""
        return switch_copy_handover(self.target_proxy_path(workdir), account, workdir,
                                    credential)

    def launch(self, argv: Sequence[str], credential: Credential, account: Account,
               workdir: Path, logs: PayloadLogs) -> subprocess.Popen:
        """Start ``glexec <argv>`` in ``workdir``, in a new session, output to ``logs``.

        gLExec copies the user's proxy to ``target_proxy_path(workdir)``; the work directory
        must already be open to the target.  The job's bearer token, if any, is the
        wrapper's standard input (``handover``).  Raises ``ProxyExpiredError``,
        ``SwitchClientError`` (relative command), ``SwitchUnavailableError``,
        ``ProxyFileError`` (a token that cannot be read).
        """
        self.check_lifetime(credential)
        command = self._absolute(argv)
        cert = self.client_cert(credential)
        env = glexec_environment(self.environ, cert,
                                 Path(os.path.realpath(credential.proxy_file("gLExec"))),
                                 self.target_proxy_path(workdir))
        token = b""
        if credential.token_path is not None:
            try:
                token = token_input(credential)
            except OSError as error:
                raise ProxyFileError(f"cannot read the job's bearer token {error.filename}: "
                                     f"{error.strerror}") from None
        stdin = proxy_input(token) if token else subprocess.DEVNULL
        log.info("launching %s through gLExec as %s", command[0], account.name)
        try:
            process = subprocess.Popen(
                [str(self.binary), *command], env=env, cwd=str(workdir),
                stdin=stdin, stdout=logs.stdout, stderr=logs.stderr,
                start_new_session=True, close_fds=True)
        except OSError as error:
            raise SwitchUnavailableError(
                f"cannot start gLExec {self.binary}: {error.strerror}") from None
        finally:
            if stdin not in (subprocess.PIPE, subprocess.DEVNULL):
                os.close(stdin)
        if token:
            send_proxy(process, token)
        return process

    def open(self, credential: Credential, account: Account,
             workdir: Path) -> "GlexecSession":
        """Return the ``GlexecSession`` of one job run as ``account`` in ``workdir``."""
        return GlexecSession(self, credential, account, workdir)

    def launch_record(self, credential: Credential, account: Account,
                      workdir: Path) -> _Launch:
        """What a session keeps of a launch as ``account`` with ``credential`` in
        ``workdir``, for ``terminate_launch``."""
        return _Launch(credential, account, self.client_cert(credential),
                       Path(os.path.abspath(workdir)))

    def terminate(self, process: subprocess.Popen, signum: int) -> None:
        """``SwitchError``: outside a session no launch is known (a ``GlexecSession``
        signals its own launches with ``terminate_launch``)."""
        raise SwitchError(f"process {process.pid} was not started by a session of this "
                          "gLExec switcher")

    def terminate_launch(self, process: subprocess.Popen, launched: _Launch,
                         signum: int) -> None:
        """Send ``signum`` to the payload's process groups by running ``kill`` through gLExec.

        ``launched`` is the session's record of ``process`` (``launch_record``).  The
        lingering gLExec runs as root and ignores the pilot, and the payload runs as the
        target: only the target may signal it.  The groups are gLExec's own (the wrapper's)
        and every group a process of the target under gLExec leads (the wrapper runs the
        payload in a group of its own), so that SIGKILL reaches the payload and not only the
        wrapper; SIGKILL goes to the payload's groups first, so that the wrapper can still
        clean up (``signal_groups``).  Raises the ``SwitchError`` of gLExec's status if gLExec
        refuses the kill.
        """
        if launched.credential.time_left().total_seconds() <= 0:
            log.warning("the proxy of %s has expired: gLExec may refuse to signal the payload",
                        launched.credential.identity)
        signal_groups(process, payload_groups(process.pid, launched.account.uid), signum,
                      lambda groups: self._kill(process, launched, signum, groups))

    def _kill(self, process: subprocess.Popen, launched: _Launch, signum: int,
              groups: Set[int]) -> None:
        name = signal.Signals(signum).name[3:]
        ordered = sorted(groups, key=lambda g: (g != process.pid, g))  # gLExec's group first
        argv = [os.path.realpath(KILL_COMMAND), "-s", name, "--", *(f"-{g}" for g in ordered)]
        env = glexec_environment(self.environ, launched.client_cert)
        status, _, stderr = self._call(argv, env, f"signalling the payload ({name})")
        if status in EXIT_ERRORS or status == PAYLOAD_OVERLAP:
            raise _switch_error(status, f"to signal the payload of {launched.account.name}",
                                stderr)
        shown = " ".join(f"-{g}" for g in ordered)
        if status != 0:
            log.info("kill -s %s %s as %s found nothing to signal in some groups (%d)", name,
                     shown, launched.account.name, status)
        else:
            log.info("sent SIG%s to process groups %s as %s through gLExec", name, shown,
                     launched.account.name)

    def kill_as_target(self, pids: Sequence[int], credential: Credential, account: Account,
                       workdir: Path) -> None:
        """SIGKILL the payload's leftover ``pids`` as the target: ``kill`` through a second
        gLExec call with ``credential``, not a launch.  Raises the ``SwitchError`` of
        gLExec's status if gLExec refuses it."""
        self._kill_as(credential, account, signal.SIGKILL, pids,
                      "killing the payload's leftovers", "to kill the leftovers of")

    def signal_account(self, signum: int, credential: Credential, account: Account,
                       workdir: Path) -> None:
        """Send ``signum`` to every process of the target but the sender: ``kill -<SIGNAL>
        -- -1`` through a second gLExec call, as ``kill_as_target``."""
        self._kill_as(credential, account, signum, [EVERY_PROCESS],
                      f"signalling every process of the target ({signal_label(signum)})",
                      f"to send {signal_label(signum)} to every process of")

    def _kill_as(self, credential: Credential, account: Account, signum: int,
                 targets: Sequence[object], what: str, refused: str) -> None:
        self._as_target(kill_argv(signum, targets, os.path.realpath(KILL_COMMAND)),
                        credential, account, what, refused)

    def remove_as_target(self, paths: Sequence[Path], credential: Credential,
                         account: Account, workdir: Path) -> None:
        """Remove the wrapper's leftover ``paths`` as the target: ``rm -rf`` through a
        second gLExec call, as ``kill_as_target``."""
        self._as_target([os.path.realpath(REMOVE_COMMAND), "-rf", "--", *map(str, paths)],
                        credential, account, "removing the wrapper's files",
                        "to remove the files of")

    def _as_target(self, argv: List[str], credential: Credential, account: Account,
                   what: str, refused: str) -> None:
        """Run ``argv`` as the target through a second gLExec call, not a launch."""
        env = glexec_environment(self.environ, self.client_cert(credential))
        status, _, stderr = self._call(argv, env, what)
        if status in EXIT_ERRORS or status == PAYLOAD_OVERLAP:
            raise _switch_error(status, f"{refused} {account.name}", stderr)

    def explain(self, returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
        """Return the outcome of a gLExec launch; see the exit-status table in the docs.

        gLExec's own codes count only where the wrapper never ran (no marker); 204 means
        the payload itself exited 201-204, and the marker says which.
        """
        if (returncode == PAYLOAD_OVERLAP and marker is not None and marker.error is None
                and marker.payload_status is None):
            return Outcome(PAYLOAD_FAILED, error=PayloadFailedError(
                "the payload exited with one of 201-204 (gLExec answered 204) but the "
                "wrapper did not record which"))
        return super().explain(returncode, marker)

    def explain_without_marker(self, returncode: int) -> SwitchError:
        """The error for a launch whose wrapper never reported running as the target."""
        return never_ran_error(returncode)

    # -- beyond the interface --------------------------------------------------------------

    def retry_delay(self, outcome: Outcome, attempt: int) -> Optional[float]:
        """Seconds to wait before launching again after failed attempt ``attempt`` (1-based).

        Only a 202 or 203 before the wrapper ran is retried, at most ``retry.tries``
        attempts in all; anything else returns None (do not retry).
        """
        if outcome.kind != SWITCH_FAILED or not isinstance(outcome.error, RETRIED_ERRORS):
            return None
        return self.retry.delay_after(attempt)

    def refresh_proxy(self, credential: Credential, workdir: Path) -> bool:
        """Push a renewed ``credential`` to the target's proxy file (gLExec copies it again).

        For long payloads: the launcher renews the proxy from its credential source when
        it falls under the queue's ``proxy_refresh_threshold``, then calls this.  Returns
        True; the session (``GlexecSession.refresh``) then signals its payload with the
        renewed proxy.  Raises the ``SwitchError`` of gLExec's status, or ``ProxyExpiredError``
        for a proxy that has already expired (a shorter one than ``proxy_lifetime`` is
        pushed: it is still better than the one it replaces).
        """
        if credential.time_left().total_seconds() <= 0:
            raise ProxyExpiredError(f"the renewed proxy of {credential.identity} has already "
                                    "expired: the credential source must give a new one")
        cert = self.client_cert(credential)
        source = Path(os.path.realpath(credential.proxy_file("gLExec")))
        env = glexec_environment(self.environ, cert, source, self.target_proxy_path(workdir))
        status, _, stderr = self._call([os.path.realpath(NOOP_COMMAND)], env,
                                       "refreshing the target's proxy")
        if status != 0:
            raise _switch_error(status, "to refresh the target's proxy", stderr,
                                _cert_hint(cert))
        log.info("gLExec copied the renewed proxy of %s to %s", credential.identity,
                 self.target_proxy_path(workdir))
        return True

    def node_checks(self, credential: Optional[Credential]) -> List[Check]:
        """``diagnose`` as the lines of ``pilotid probe``: the binary (mode, owner, setuid
        root), the switch with the pilot's own proxy and, given ``credential``, with it."""
        return diagnosis_checks(self.diagnose(credential), self.mode, self.pilot_proxy(),
                                credential)

    def diagnose(self, credential: Optional[Credential] = None) -> GlexecDiagnosis:
        """Describe gLExec here: binary, mode, owner; the pilot's own mapping (a switch with
        the pilot's proxy) and, given ``credential``, the account the user maps to.

        Never raises for what it finds: problems are in the answer.  Caches nothing.
        """
        try:
            binary = self.binary
        except SwitchUnavailableError as error:
            return GlexecDiagnosis(binary=None, problem=str(error))
        user_cert = None if credential is None else self.client_cert(credential)
        return diagnose_node(binary, self._probe_once, self.pilot_proxy(), user_cert)

    # -- private ---------------------------------------------------------------------------

    def _absolute(self, argv: Sequence[str]) -> list:
        if not argv or not os.path.isabs(argv[0]):
            raise SwitchClientError(
                f"gLExec needs an absolute command, got {argv[0] if argv else 'nothing'!r}")
        return [os.path.realpath(argv[0]), *argv[1:]]

    def _call(self, argv: Sequence[str], env: Mapping[str, str],
              what: str) -> Tuple[int, str, str]:
        return call_glexec(self.binary, argv, env, what, self.call_timeout)

    def _probe_once(self, cert: Path) -> Account:
        return probe_mapping(self._call, self.environ, cert)

    def _probe_with_retries(self, cert: Path) -> Account:
        attempt = 1
        while True:
            try:
                return self._probe_once(cert)
            except RETRIED_ERRORS as error:
                delay = self.retry.delay_after(attempt)
                if delay is None:
                    raise
                log.warning("gLExec probe attempt %d failed (%s); retrying in %g s",
                            attempt, error, delay)
                self.sleep(delay)
                attempt += 1


class GlexecSession(SwitchSession):
    """One job's switch through a ``GlexecSwitcher``: it keeps its own launches (by pid,
    ``GlexecSwitcher.launch_record``), which only it signals and which its ``refresh``
    moves to the renewed proxy."""

    def __init__(self, switcher: GlexecSwitcher, credential: Credential, account: Account,
                 workdir: Path) -> None:
        super().__init__(switcher, credential, account, workdir)
        self.launched: Dict[int, _Launch] = {}

    def launch(self, argv: Sequence[str], logs: PayloadLogs) -> subprocess.Popen:
        """Start ``argv`` through gLExec (``GlexecSwitcher.launch``); keep its record."""
        process = super().launch(argv, logs)
        self.launched[process.pid] = self.switcher.launch_record(
            self.credential, self.account, self.workdir)
        return process

    def terminate(self, process: subprocess.Popen, signum: int) -> None:
        """Signal the payload of ``process``, one of this session's launches
        (``GlexecSwitcher.terminate_launch``); nothing once it has ended, ``SwitchError``
        for a process this session did not start."""
        if process.poll() is not None:
            self.launched.pop(process.pid, None)
            return
        launched = self.launched.get(process.pid)
        if launched is None:
            raise SwitchError(f"process {process.pid} was not started by this gLExec session")
        self.switcher.terminate_launch(process, launched, signum)

    def refresh(self, credential: Credential) -> bool:
        """Push ``credential`` through gLExec (``GlexecSwitcher.refresh_proxy``); this
        session's launches are signalled with it from then on."""
        pushed = super().refresh(credential)
        if pushed:
            cert = self.switcher.client_cert(credential)
            for launched in self.launched.values():
                launched.credential, launched.client_cert = credential, cert
        return pushed
