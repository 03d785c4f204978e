"""``SwitchSession``: one job's switch, built from a switcher's own steps.

``SwitcherBase.open`` returns one.  The session holds what the job's switching needs from
the probe to the end (credential, account, work directory, the proxy handover) and asks
its switcher for each step: ``launch``, ``terminate``, ``explain``, ``retry_delay``,
``refresh_proxy``, ``kill_as_target``, ``signal_account``, ``remove_as_target``.  What the
launcher used to guess by comparing uids (is there a switch, does the marker's owner prove
anything, how are leftovers found and killed) is the session's ``switches_identity``,
``marker_owner`` and ``stop_leftovers``; where the queue leases accounts per job
(``leftover_processes: "account"``), the latter first sweeps every process of the account
(``account_sweep``).

``SessionDecorator`` forwards every call to another session: an isolation (a container
around any switch) subclasses it and changes ``launch`` alone.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Set

from zope.interface import implementer

from pilotid import leftovers
from pilotid.errors import PilotidError, SwitchError
from pilotid.interfaces import ISwitchSession
from pilotid.strategies.account_sweep import ACCOUNT, LEFTOVER_PROCESSES, sweep_account
from pilotid.values import SWITCH_FAILED, Outcome

if TYPE_CHECKING:
    from pilotid.identity.accounts import Account
    from pilotid.identity.credential import Credential
    from pilotid.values import PayloadLogs, WrapperMarker

log = logging.getLogger(__name__)


@implementer(ISwitchSession)
class SwitchSession:
    """One job's switch through ``switcher`` (a ``SwitcherBase``) as ``account``.

    Made by ``SwitcherBase.open``; the handover is asked of the switcher at once (it may
    write into ``workdir``).  ``switches_identity`` is the switcher's class attribute of the
    same name; where it is True the marker proves the switch when ``account`` owns it, the
    payload's leftovers are the pilot's adopted children of ``account``'s uid, killed
    through the switch (``SwitcherBase.kill_as_target``), and, where the queue's
    ``leftover_processes`` is ``"account"`` (``sweeps_account``), every process of
    ``account``, stopped then killed through the switch (``SwitcherBase.signal_account``).
    With no switch they are the pilot's own children started with the job's
    ``X509_USER_PROXY``, killed directly; an account-wide sweep would be the pilot's own.
    """

    def __init__(self, switcher: Any, credential: "Credential", account: "Account",
                 workdir: Path) -> None:
        self.switcher = switcher
        self.credential = credential
        self.account = account
        self.workdir = Path(workdir)
        self.switches_identity = bool(switcher.switches_identity)
        self.marker_owner: Optional[int] = account.uid if self.switches_identity else None
        settings = getattr(switcher, "settings", None)  # a test's switcher may have none
        self.sweeps_account = bool(self.switches_identity and settings is not None
                                   and settings.option(LEFTOVER_PROCESSES) == ACCOUNT)
        self.handover = switcher.handover(credential, account, self.workdir)

    def launch(self, argv: Sequence[str], logs: "PayloadLogs") -> Any:
        """Start ``argv`` through the switcher (``SwitcherBase.launch``)."""
        return self.switcher.launch(argv, self.credential, self.account, self.workdir, logs)

    def terminate(self, process: Any, signum: int) -> None:
        """Signal the payload through the switcher (``SwitcherBase.terminate``)."""
        self.switcher.terminate(process, signum)

    def stop_leftovers(self, process: Any) -> None:
        """Kill and reap what the payload left running (``leftovers.end_leftovers``), after
        stopping and killing every process of the account where ``sweeps_account``."""
        if self.sweeps_account:
            try:
                sweep_account(self.account.uid, self._signal_account, self.account.name)
            except PilotidError as error:
                log.error("cannot stop every process of %s: %s", self.account.name, error)
        if self.switches_identity:
            uid = self.account.uid
            leftovers.end_leftovers(process, lambda p, killed: p.uid == uid,
                                    self._kill_as_target, self.account.name)
            return
        pilot = os.geteuid()
        if self.handover.carries_proxy or self.handover.payload_token is None:
            name, copy = "X509_USER_PROXY", str(self.handover.payload_proxy)
        else:
            name, copy = "BEARER_TOKEN_FILE", str(self.handover.payload_token)

        def belongs(p: leftovers.AdoptedProcess, killed: Set[int]) -> bool:
            # with no switch, the payload's processes are told from the pilot's own by the
            # X509_USER_PROXY (a token-only job's BEARER_TOKEN_FILE) they were started with
            return p.uid == pilot and (p.pid in killed or leftovers.environment_holds(
                p.pid, name, copy))

        leftovers.end_leftovers(process, belongs, _kill_directly, self.account.name)

    def remove_as_target(self, paths: Sequence[Path]) -> None:
        """Remove the trees at ``paths`` that the wrapper made as the account (its egg
        cache, its own directory): through the switch (``SwitcherBase.remove_as_target``)
        where the account is not the pilot's, else directly.  Logs what it cannot remove."""
        if not self.switches_identity:
            for path in paths:
                shutil.rmtree(path, onerror=_log_removal_error)
            return
        try:
            self.switcher.remove_as_target(list(paths), self.credential, self.account,
                                           self.workdir)
        except PilotidError as error:
            log.error("cannot remove the wrapper's files %s as %s: %s",
                      " ".join(map(str, paths)), self.account.name, error)

    def _signal_account(self, signum: int) -> None:
        self.switcher.signal_account(signum, self.credential, self.account, self.workdir)

    def _kill_as_target(self, pids: List[int]) -> None:
        try:
            self.switcher.kill_as_target(pids, self.credential, self.account, self.workdir)
        except PilotidError as error:
            log.error("cannot kill the payload's leftovers as %s: %s", self.account.name, error)

    def refresh(self, credential: "Credential") -> bool:
        """Push ``credential`` through the switcher (``SwitcherBase.refresh_proxy``); the
        session uses it from then on once it was pushed."""
        pushed = bool(self.switcher.refresh_proxy(credential, self.workdir))
        if pushed:
            self.credential = credential
        return pushed

    def explain(self, returncode: int, marker: "Optional[WrapperMarker]") -> "Outcome":
        """The switcher's ``explain``, unless the marker names another identity than this
        session's account (``wrong_identity``)."""
        wrong = self.wrong_identity(marker)
        return wrong if wrong is not None else self.switcher.explain(returncode, marker)

    def wrong_identity(self, marker: "Optional[WrapperMarker]") -> Optional[Outcome]:
        """``switch_failed`` where the wrapper ran as another uid than the account the probe
        promised (the switch put the payload elsewhere), else None; whatever the status."""
        if marker is None or marker.uid == self.account.uid:
            return None
        return Outcome(SWITCH_FAILED, error=SwitchError(
            f"the wrapper ran as uid {marker.uid}, not as {self.account.name} "
            f"(uid {self.account.uid}) as the switcher's probe said"))

    def retry_delay(self, outcome: "Outcome", attempt: int) -> Optional[float]:
        """The switcher's ``retry_delay``."""
        return self.switcher.retry_delay(outcome, attempt)

    def close(self) -> None:
        """Nothing to release: the launcher removes the handover's files with the job's."""


def _log_removal_error(function: Any, path: str, info: Any) -> None:
    log.error("cannot remove the wrapper's file %s: %s", path, info[1])


def _kill_directly(pids: List[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@implementer(ISwitchSession)
class SessionDecorator:
    """A session that forwards every call to ``inner``; subclass it and override one step.

    An isolation wraps a switcher's session this way, whatever the switcher::

        class BubblewrapSession(SessionDecorator):
            def launch(self, argv, logs):
                return self.inner.launch(["/usr/bin/bwrap", *self.options, "--", *argv], logs)

    The switch then runs the isolation program as the target, and it runs the wrapper.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    @property
    def switches_identity(self) -> bool:
        """The inner session's."""
        return bool(self.inner.switches_identity)

    @property
    def marker_owner(self) -> Optional[int]:
        """The inner session's."""
        return self.inner.marker_owner

    @property
    def handover(self) -> Any:
        """The inner session's ``ProxyHandover``."""
        return self.inner.handover

    def launch(self, argv: Sequence[str], logs: "PayloadLogs") -> Any:
        """The inner session's launch of ``argv``."""
        return self.inner.launch(argv, logs)

    def terminate(self, process: Any, signum: int) -> None:
        """The inner session's."""
        self.inner.terminate(process, signum)

    def stop_leftovers(self, process: Any) -> None:
        """The inner session's."""
        self.inner.stop_leftovers(process)

    def remove_as_target(self, paths: Sequence[Path]) -> None:
        """The inner session's."""
        self.inner.remove_as_target(paths)

    def refresh(self, credential: "Credential") -> bool:
        """The inner session's."""
        return bool(self.inner.refresh(credential))

    def explain(self, returncode: int, marker: "Optional[WrapperMarker]") -> "Outcome":
        """The inner session's."""
        return self.inner.explain(returncode, marker)

    def retry_delay(self, outcome: "Outcome", attempt: int) -> Optional[float]:
        """The inner session's."""
        return self.inner.retry_delay(outcome, attempt)

    def close(self) -> None:
        """The inner session's."""
        self.inner.close()
