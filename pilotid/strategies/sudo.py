"""``SudoSwitcher`` ("sudo-mock"): gLExec's contract done with sudo.

The proxy's identity is mapped to a local account through the queue's grid-mapfile; the
wrapper runs as ``sudo -n -u <account> -- <wrapper>`` (no ``-E``: the wrapper carries the
environment); the proxy travels on the wrapper's standard input (an anonymous memory file,
a pipe where the kernel has none), so no copy the target may read ever exists.

What was found by trying it (sudo 1.9, Debian): sudo keeps the pilot as its real uid, so
the unprivileged pilot may signal its own sudo process, and sudo relays a catchable signal
to the command, but only to the command's own PID and never SIGKILL.  Started without a
terminal (as here: new session, pipes and files), sudo runs the command in its own process
group, whose ID is sudo's PID.  ``terminate`` therefore signals the payload's process
group(s) as the target, with a second ``sudo -u <target> /bin/kill``, as HTCondor did
for gLExec: that reaches every payload process in the group, SIGKILL included.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import subprocess
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple

from zope.interface import implementer

from pilotid.errors import (
    AccountMappingError,
    ProxyFileError,
    SwitchError,
    SwitchExecError,
    SwitchNotPermittedError,
    SwitchUnavailableError,
    WorkdirError,
)
from pilotid.identity import accounts
from pilotid.identity.accounts import Account
from pilotid.interfaces import IIdentitySwitcher
from pilotid.probe import FAIL, OK, Check
from pilotid.settings import REQUIRED, Setting, absolute_path, optional
from pilotid.strategies.account_sweep import LEFTOVER_PROCESSES
from pilotid.strategies.base import (
    SwitcherBase,
    handover_input,
    log_position,
    proxy_input,
    refuse_unsafe_mapping,
    send_proxy,
    signal_label,
    start_environment,
    stdin_handover,
    switch_failed,
    switch_program_said,
    with_token,
)
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
from pilotid.values import Outcome, PayloadLogs, ProxyHandover, WrapperMarker

if TYPE_CHECKING:
    from pilotid.identity.credential import Credential
    from pilotid.queue import QueueSettings

log = logging.getLogger(__name__)

#: Where sudo is looked for when the queue has no ``sudo_path`` (never the pilot's ``PATH``,
#: which a job could have changed).
SUDO_SEARCH_PATH = "/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin"
#: Seconds a probe or a kill through sudo may take (PAM and LDAP can be slow, not this slow).
SUDO_TIMEOUT = 60

#: The sudo switcher's own queue settings (``SudoSwitcher.own_settings``).
SUDO_PATH = Setting(
    "sudo_path", optional(absolute_path), None,
    "The sudo program the sudo switcher runs; null: the first ``sudo`` in "
    "``/usr/bin:/bin:/usr/sbin:/sbin:/usr/local/bin`` (never the pilot's ``PATH``).  A path "
    "that names no executable fails the job with ``switch_failed`` (51).")
GRID_MAPFILE = Setting(
    "grid_mapfile", absolute_path, REQUIRED,
    "The grid-mapfile that maps a user's DN to a local account (absolute path).")
TOKEN_MAPFILE = Setting(
    "token_mapfile", optional(absolute_path), None,
    "The token map that maps a token-only job's issuer and subject, or issuer and group, to "
    "a local account (docs/tokens.rst); null: token-only jobs are refused.")

# What sudo prints (on stderr, "sudo: ..." lines) when it refuses the switch itself, and
# when it cannot start the command.  Both end in exit status 1.
_REFUSALS = ("a password is required", "not allowed to execute", "not in the sudoers file",
             "may not run sudo", "not allowed to run sudo", "unknown user",
             "a terminal is required", "must have a tty", "account validation failure",
             "PAM account management error", "password has expired", "is not allowed")
_EXEC_FAILURES = ("command not found", "unable to execute", "unable to change directory",
                  "Permission denied", "No such file")


def _first_existing(*candidates: str) -> str:
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return candidates[0]


#: The commands the site's sudoers rule must allow besides the wrapper (docs/switchers.rst).
TRUE_COMMAND = _first_existing("/bin/true", "/usr/bin/true")


def _usable_sudo(path: str, origin: str, fix: str) -> str:
    """``path`` if it is an absolute path to a file the pilot may execute; otherwise
    ``SwitchUnavailableError`` saying which of these it is not, where ``path`` came from
    (``origin``) and how to fix it (``fix``)."""
    def unavailable(problem: str) -> SwitchUnavailableError:
        return SwitchUnavailableError(f"sudo program {path} ({origin}) {problem}; {fix}")

    if not os.path.isabs(path):
        raise unavailable("is not an absolute path")
    if not os.path.exists(path):
        raise unavailable("does not exist")
    if not os.path.isfile(path):
        raise unavailable("is not a file")
    if not os.access(path, os.X_OK):
        raise unavailable(f"is not executable by {Account.current().name} (mode "
                          f"{stat.S_IMODE(os.stat(path).st_mode):04o}; sudo is installed setuid "
                          "root, normally mode 4755)")
    return path


def sudo_messages(text: str) -> List[str]:
    """The lines sudo itself wrote (``sudo: ...``) in ``text``, without the prefix."""
    return [line[len("sudo:"):].strip() for line in text.splitlines()
            if line.startswith("sudo:")]


def _is_refusal(message: str) -> bool:
    return any(phrase in message for phrase in _REFUSALS)


def _is_exec_failure(message: str) -> bool:
    return any(phrase in message for phrase in _EXEC_FAILURES)


@dataclass(frozen=True)
class _Launch:
    """What ``launch`` remembers for ``terminate`` and ``explain``."""

    sudo: str
    pilot: Account
    target: Account
    stderr_path: Optional[str]
    stderr_offset: int


@implementer(IIdentitySwitcher)
class SudoSwitcher(SwitcherBase):
    """Switch to the user's mapped account with ``sudo -n -u <account>``.

    ``sudo`` overrides where the sudo program is (default: the queue's ``sudo_path``, else
    looked up in ``SUDO_SEARCH_PATH``).  ``probe_cache`` keeps the switches sudo allowed
    (default: shared by the pilot process) for the queue's ``probe_cache_lifetime``.  One
    switcher serves any number of sessions (``open``: a ``SudoSession``); each session's
    ``explain`` reads sudo's own message from the stderr log of that session's latest
    launch, only to tell "sudo refused" from "the wrapper could not be executed" and to
    quote it.  The switcher's own ``explain`` knows no launch ("no stderr log known").
    """

    name = "sudo"
    own_settings = (SUDO_PATH, GRID_MAPFILE, TOKEN_MAPFILE, PROBE_CACHE_LIFETIME,
                    LEFTOVER_PROCESSES)

    def __init__(self, settings: "QueueSettings", sudo: Optional[str] = None,
                 probe_cache: "Optional[ProbeCache[object]]" = None) -> None:
        super().__init__(settings)
        self.sudo = sudo
        self.probe_cache = PILOT_PROBE_CACHE if probe_cache is None else probe_cache
        # One record per launched process (never shared: a process is one session's).
        self._launches: "weakref.WeakKeyDictionary[subprocess.Popen, _Launch]" = \
            weakref.WeakKeyDictionary()

    def open(self, credential: "Credential", account: Account,
             workdir: Path) -> "SudoSession":
        """Return the ``SudoSession`` of one job run as ``account`` in ``workdir``."""
        return SudoSession(self, credential, account, workdir)

    # -- locating sudo -------------------------------------------------------------------

    def sudo_path(self) -> str:
        """The sudo program to run; ``SwitchUnavailableError`` when there is none.

        The ``sudo`` given to the constructor, else the queue's ``sudo_path``, else the
        first ``sudo`` in ``SUDO_SEARCH_PATH``.  A program given or configured is used as
        it is, never replaced by another one found elsewhere.
        """
        if self.sudo is not None:
            return _usable_sudo(self.sudo, "given to the sudo switcher",
                                "pass the absolute path of an executable sudo")
        configured = self.settings.option(SUDO_PATH)
        if configured is not None:
            return _usable_sudo(os.fspath(configured),
                                f"queue {self.settings.name}'s sudo_path",
                                f"set sudo_path in queue {self.settings.name} to where sudo "
                                f"is installed, or remove it to look in {SUDO_SEARCH_PATH}")
        found = shutil.which("sudo", path=SUDO_SEARCH_PATH)
        if found is None:
            raise SwitchUnavailableError(
                f"sudo is not installed (looked in {SUDO_SEARCH_PATH}); install the sudo "
                f"package, or configure queue {self.settings.name} with another switcher")
        return found

    def node_checks(self, credential: Optional["Credential"]) -> List[Check]:
        """The sudo program ``pilotid probe`` will use (the test switch is ``probe``'s)."""
        try:
            return [Check("sudo", OK, self.sudo_path())]
        except SwitchUnavailableError as error:
            return [Check("sudo", FAIL, str(error), error.code)]

    # -- probe ---------------------------------------------------------------------------

    def probe(self, credential: "Credential") -> Account:
        """Map ``credential``'s identity through the grid-mapfile; check sudo may switch now.

        Raises ``AccountMappingError`` (no mapping, or a mapping to root or to the pilot's
        own account), ``SwitchUnavailableError`` (no sudo) or ``SwitchNotPermittedError``
        (sudo refuses, with the sudoers rule the site is missing).
        """
        account = self.map_identity(credential)
        self.check_switch(Account.current(), account)
        return account

    def map_identity(self, credential: "Credential") -> Account:
        """The account ``credential`` maps to: a proxy's DN through the grid-mapfile, a
        token-only job's token through the token map (``token_mapfile``); never root nor
        the pilot (``refuse_unsafe_mapping``)."""
        if credential.proxy is None and credential.token is not None:
            # imported here: the token modules bring PyJWT (and TLS), a proxy job none
            from pilotid.identity.tokens.tokenmap import map_token_account

            token_map = self.settings.option(TOKEN_MAPFILE)
            if token_map is None:
                raise AccountMappingError(
                    f"the job's credential is a bearer token only ({credential.identity}) and "
                    f"queue {self.settings.name} names no token_mapfile to map it by")
            return refuse_unsafe_mapping(map_token_account(credential.token, token_map),
                                         credential.identity, f"token map {token_map}")
        mapfile = self.settings.option(GRID_MAPFILE)
        return refuse_unsafe_mapping(
            accounts.map_account(credential.identity, Path(mapfile)), credential.identity,
            f"grid-mapfile {mapfile}")

    def check_switch(self, pilot: Account, account: Account) -> None:
        """Check that sudo lets ``pilot`` run a command as ``account``, with no password.

        Runs ``sudo -n -u <account> -- /bin/true``: the only check that covers the rule,
        the account itself and PAM as they are now (``sudo -l -U`` needs root; ``sudo -l``
        as the pilot asks for a password under some rules).  A switch that succeeded is not
        tried again for the queue's ``probe_cache_lifetime`` (``probe_cache``): a launch
        refused in between is still told exactly (``explain``) and makes the next job
        check again.
        """
        sudo = self.sudo_path()
        key = self._cache_key(sudo, pilot, account)
        if self.probe_cache.get(key, self.settings.option(PROBE_CACHE_LIFETIME)):
            log.debug("sudo may switch %s -> %s (checked before)", pilot.name, account.name)
            return
        command = [sudo, "-n", "-u", account.name, "--", TRUE_COMMAND]
        try:
            done = subprocess.run(command, cwd="/", stdin=subprocess.DEVNULL,
                                  capture_output=True, env=start_environment(pilot),
                                  timeout=SUDO_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise SwitchUnavailableError(
                f"sudo did not answer within {SUDO_TIMEOUT} s when switching to "
                f"{account.name}; check PAM and the name service on this node") from None
        except OSError as error:
            raise SwitchUnavailableError(
                f"cannot run {command[0]}: {error.strerror or error}") from None
        if done.returncode == 0:
            log.info("sudo may switch %s -> %s", pilot.name, account.name)
            self.probe_cache.put(key, True)
            return
        messages = sudo_messages(done.stderr.decode("utf-8", "replace"))
        said = messages[-1] if messages else f"exit status {done.returncode}"
        if messages and _is_exec_failure(said) and not _is_refusal(said):
            raise SwitchExecError(
                f"sudo switched to {account.name} but could not run {TRUE_COMMAND}: {said}")
        raise SwitchNotPermittedError(self._refusal(pilot, account, said))

    @staticmethod
    def _cache_key(sudo: str, pilot: Account, account: Account) -> Tuple[str, str, int, int]:
        return ("sudo", sudo, pilot.uid, account.uid)

    @staticmethod
    def _refusal(pilot: Account, account: Account, said: str) -> str:
        return (f"sudo does not let {pilot.name} run commands as {account.name} without a "
                f"password ({said}); the site needs a sudoers rule such as "
                f"'{pilot.name} ALL=({account.name}) NOPASSWD: ALL' (see docs/switchers.rst)")

    # -- handover and launch ---------------------------------------------------------------

    def handover(self, credential: "Credential", account: Account,
                 workdir: Path) -> ProxyHandover:
        """The proxy and the bearer token go through the wrapper's stdin into new 0600 files
        of the target's (``stdin_handover``, ``with_token``); nothing is made here."""
        return with_token(stdin_handover(account, workdir), credential)

    def launch(self, argv: Sequence[str], credential: "Credential", account: Account,
               workdir: Path, logs: PayloadLogs) -> subprocess.Popen:
        """Run ``sudo -n -u <account> -- <argv>`` in ``workdir``, the proxy on its stdin.

        Raises ``ProxyFileError`` when the credential cannot be read, ``WorkdirError`` when
        the pilot cannot enter ``workdir``, and ``SwitchUnavailableError`` when sudo cannot
        be started.  sudo's own refusal is not
        raised here: it shows as the process's status and is told by ``explain``.
        """
        try:
            proxy = handover_input(credential)
        except OSError as error:
            raise ProxyFileError(
                f"cannot read the user's credential {error.filename}: {error.strerror}") \
                from None
        pilot = Account.current()
        command = [self.sudo_path(), "-n", "-u", account.name, "--",
                   *(os.fspath(a) for a in argv)]
        record = _Launch(command[0], pilot, account, *log_position(logs.stderr))
        stdin = proxy_input(proxy)
        try:
            process = subprocess.Popen(
                command, cwd=os.fspath(workdir), stdin=stdin, stdout=logs.stdout,
                stderr=logs.stderr, env=start_environment(pilot), start_new_session=True)
        except OSError as error:
            if error.filename is not None and os.fspath(error.filename) == os.fspath(workdir):
                raise WorkdirError(f"cannot use work directory {workdir}: "
                                   f"{error.strerror}") from None
            raise SwitchUnavailableError(
                f"cannot start {command[0]} in {workdir}: {error.strerror or error}") from None
        finally:
            if stdin != subprocess.PIPE:
                os.close(stdin)
        self._launches[process] = record
        log.info("started %s as %s through sudo (pid %d)", " ".join(command[5:6]),
                 account.name, process.pid)
        if process.stdin is not None:
            send_proxy(process, proxy)
        return process

    # -- terminate -------------------------------------------------------------------------

    def terminate(self, process: subprocess.Popen, signum: int) -> None:
        """Deliver ``signum`` to the payload's process group(s), as the target, via sudo.

        Runs ``sudo -n -u <target> -- /bin/kill -s <signum> -- -<pgid>...`` for the group
        sudo leads and any other group a process of the target under sudo leads.  Where
        that second sudo is refused, a catchable signal is sent to the sudo process instead
        (it relays it to the wrapper); SIGKILL cannot be relayed: ``SwitchNotPermittedError``.
        SIGKILL goes to the payload's own groups first, so that the wrapper can clean up
        (``signal_groups``).
        """
        launch = self._launches.get(process)
        if launch is None:
            raise SwitchError(f"process {process.pid} was not started by this sudo switcher")
        signal_groups(process, payload_groups(process.pid, launch.target.uid), signum,
                      lambda groups: self._kill(process, launch, signum, sorted(groups)))

    def _kill(self, process: subprocess.Popen, launch: _Launch, signum: int,
              groups: List[int]) -> None:
        command = [self.sudo_path(), "-n", "-u", launch.target.name, "--", KILL_COMMAND,
                   "-s", str(int(signum)), "--", *(f"-{g}" for g in groups)]
        try:
            done = subprocess.run(command, cwd="/", stdin=subprocess.DEVNULL,
                                  capture_output=True, env=start_environment(launch.pilot),
                                  timeout=SUDO_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as error:
            self._relay(process, signum, f"cannot run {command[0]}: {error}")
            return
        if done.returncode == 0:
            log.info("sent %s to process group(s) %s as %s", signal_label(signum),
                     " ".join(map(str, groups)), launch.target.name)
            return
        stderr = done.stderr.decode("utf-8", "replace")
        refused = sudo_messages(stderr)
        if refused:
            self._relay(process, signum, refused[-1])
        else:
            # kill's own complaint: the groups are already empty (or partly so).
            log.debug("kill as %s: %s", launch.target.name, stderr.strip())

    def kill_as_target(self, pids: Sequence[int], credential: "Credential", account: Account,
                       workdir: Path) -> None:
        """SIGKILL the payload's leftover ``pids`` as ``account``, with a second sudo.

        ``sudo -n -u <account> -- kill -KILL -- <pids>``, not a launch: the latest
        launch's record (what ``explain`` reads) stays.  Raises ``SwitchNotPermittedError``
        when sudo refuses it; kill's own complaint (a process gone already) is only logged.
        """
        self._sudo_as_target(kill_argv(signal.SIGKILL, pids), account,
                             "to kill the payload's leftovers")

    def signal_account(self, signum: int, credential: "Credential", account: Account,
                       workdir: Path) -> None:
        """Send ``signum`` to every process of ``account`` but the sender:
        ``sudo -n -u <account> -- kill -<SIGNAL> -- -1``, as ``kill_as_target``."""
        self._sudo_as_target(kill_argv(signum, [EVERY_PROCESS]), account,
                             f"to send {signal_label(signum)} to every process")

    def remove_as_target(self, paths: Sequence[Path], credential: "Credential",
                         account: Account, workdir: Path) -> None:
        """Remove the wrapper's leftover ``paths`` as ``account``, with a second sudo:
        ``sudo -n -u <account> -- rm -rf -- <paths>``, not a launch (as ``kill_as_target``).
        The sudoers rule must allow ``REMOVE_COMMAND`` as the target."""
        self._sudo_as_target([REMOVE_COMMAND, "-rf", "--", *map(str, paths)], account,
                             "to remove the wrapper's files")

    def _sudo_as_target(self, argv: List[str], account: Account, what: str) -> None:
        """Run ``argv`` as ``account`` through sudo; ``SwitchNotPermittedError`` when sudo
        refuses, the program's own complaint only logged."""
        command = [self.sudo_path(), "-n", "-u", account.name, "--", *argv]
        try:
            done = subprocess.run(command, cwd="/", stdin=subprocess.DEVNULL,
                                  capture_output=True, env=start_environment(Account.current()),
                                  timeout=SUDO_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SwitchUnavailableError(f"cannot run {command[0]}: {error}") from None
        said = done.stderr.decode("utf-8", "replace")
        refused = sudo_messages(said)
        if done.returncode != 0 and refused:
            raise SwitchNotPermittedError(f"sudo refused {what} as {account.name}: {refused[-1]}")
        if done.returncode != 0:
            log.debug("%s as %s: %s", argv[0], account.name, said.strip())

    def _relay(self, process: subprocess.Popen, signum: int, why: str) -> None:
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            raise SwitchNotPermittedError(
                f"cannot send {signal_label(signum)} to the payload as its account ({why}) "
                "and sudo does not relay it; allow the pilot to run /bin/kill as the target")
        log.warning("cannot signal the payload as its account (%s); sending %s to sudo "
                    "(pid %d) for it to relay", why, signal_label(signum), process.pid)
        try:
            os.kill(process.pid, signum)
        except ProcessLookupError:
            pass

    # -- explain ---------------------------------------------------------------------------

    def explain_without_marker(self, returncode: int) -> SwitchError:
        """No marker: sudo refused (1, "sudo: ..." refusal), or the wrapper could not run.

        ====================================  ============================
        1, a sudo refusal in the stderr log   SwitchNotPermittedError
        1, sudo "command not found" & co.     SwitchExecError
        1, nothing from sudo in the log       SwitchExecError (the wrapper itself exited 1)
        1, no stderr log known                SwitchNotPermittedError (sudo's refusal status)
        126, 127 or any other status          SwitchExecError
        ====================================  ============================
        """
        return self._without_marker(returncode, None)

    def explain_launch(self, process: Optional[subprocess.Popen], returncode: int,
                       marker: Optional[WrapperMarker]) -> Outcome:
        """``explain`` for ``process``, a launch of this switcher (a session's latest; None:
        no launch known): where there is no marker, sudo's message in that launch's stderr
        log tells a refusal from a wrapper that could not run."""
        if returncode < 0 or marker is not None:
            return self.explain(returncode, marker)
        launch = self._launches.get(process) if process is not None else None
        return switch_failed(self._without_marker(returncode, launch))

    def _without_marker(self, returncode: int, launch: Optional[_Launch]) -> SwitchError:
        said = self._sudo_said(launch)
        if returncode == 1:
            if said and _is_refusal(said):
                if launch is None:
                    return SwitchNotPermittedError(said)
                self.probe_cache.forget(self._cache_key(launch.sudo, launch.pilot,
                                                        launch.target))
                return SwitchNotPermittedError(self._refusal(launch.pilot, launch.target, said))
            if said or (launch and launch.stderr_path):
                return SwitchExecError(
                    f"the wrapper never ran as the target: "
                    f"{said or 'it exited with status 1 before writing its marker'}")
            return SwitchNotPermittedError(
                "sudo exited with status 1 and the wrapper left no marker: sudo refused the "
                "switch; check the pilot's sudoers rule (see docs/switchers.rst)")
        detail = f": {said}" if said else ""
        return SwitchExecError(
            f"the wrapper could not be executed as the target (status {returncode}, no "
            f"marker){detail}; check that the target can read and traverse the work directory")

    @staticmethod
    def _sudo_said(launch: Optional[_Launch]) -> Optional[str]:
        """sudo's last message in the stderr log since ``launch``, if that log is a file."""
        if launch is None:
            return None
        return switch_program_said(launch.stderr_path, launch.stderr_offset, "sudo:")


class SudoSession(SwitchSession):
    """One job's switch through a ``SudoSwitcher``: it remembers its own latest launch, whose
    stderr log its ``explain`` reads, so that two sessions of one switcher never explain each
    other's launches."""

    def __init__(self, switcher: SudoSwitcher, credential: "Credential", account: Account,
                 workdir: Path) -> None:
        super().__init__(switcher, credential, account, workdir)
        self.latest: Optional[subprocess.Popen] = None

    def launch(self, argv: Sequence[str], logs: PayloadLogs) -> subprocess.Popen:
        """Start ``argv`` through sudo (``SudoSwitcher.launch``); remember it as the latest."""
        process = super().launch(argv, logs)
        self.latest = process
        return process

    def explain(self, returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
        """The outcome of this session's latest launch (``SudoSwitcher.explain_launch``),
        unless the marker names another identity (``wrong_identity``)."""
        wrong = self.wrong_identity(marker)
        if wrong is not None:
            return wrong
        return self.switcher.explain_launch(self.latest, returncode, marker)
