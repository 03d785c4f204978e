"""The worked example of docs/strategies.rst: a third-party switcher built on the base.

``SetprivSwitcher`` is for a site whose pilot runs as root: ``setpriv`` (util-linux) sets the
uid, gid and groups of the user's mapped account and *execs* the wrapper, so the wrapper is
itself the pilot's child (see docs/switchers.rst, "What a switch program may do").  Every
piece of policy comes from ``pilotid.strategies.base``: the mapping refusals
(``refuse_unsafe_mapping``), the proxy on standard input (``stdin_handover``,
``proxy_input``, ``send_proxy``), the switch program's own stderr when no marker was left
(``log_position``, ``switch_program_said``); the session (``SwitcherBase.open``) does the
rest.  Its settings are its own (``own_settings``): ``setpriv_path``, and the sudo switcher's
``grid_mapfile`` declaration, shared rather than declared twice.  Nothing in pilotid knows
it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Set, Tuple

from zope.interface import implementer

from pilotid.errors import (
    ProxyFileError,
    SwitchError,
    SwitchExecError,
    SwitchNotPermittedError,
    SwitchUnavailableError,
)
from pilotid.identity.accounts import Account, map_account
from pilotid.interfaces import IIdentitySwitcher
from pilotid.settings import Setting, absolute_path
from pilotid.strategies.base import (
    SwitcherBase,
    log_position,
    proxy_input,
    refuse_unsafe_mapping,
    send_proxy,
    start_environment,
    stdin_handover,
    switch_program_said,
)
from pilotid.strategies.processes import payload_groups, signal_groups
from pilotid.strategies.sudo import GRID_MAPFILE
from pilotid.values import PayloadLogs, ProxyHandover

#: The switch program, a queue setting of this switcher's own.
SETPRIV_PATH = Setting("setpriv_path", absolute_path, "/usr/bin/setpriv",
                       "The setpriv program (util-linux) that switches to the mapped account.")


@implementer(IIdentitySwitcher)
class SetprivSwitcher(SwitcherBase):
    """Run the wrapper as the grid-mapfile's account with ``setpriv``; the pilot is root."""

    name = "setpriv"
    own_settings = (SETPRIV_PATH, GRID_MAPFILE)

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.setpriv = str(settings.option(SETPRIV_PATH))
        self._launched: Dict[int, Tuple[int, Optional[str], int]] = {}
        self._latest: Optional[Tuple[Optional[str], int]] = None

    def probe(self, credential: Any) -> Account:
        """The mapped account; refused for root, the pilot, or a pilot that is not root."""
        if os.geteuid() != 0:
            raise SwitchNotPermittedError(
                "setpriv can switch identity only for a pilot running as root")
        mapfile = self.settings.option(GRID_MAPFILE)
        account = map_account(credential.identity, Path(mapfile))
        return refuse_unsafe_mapping(account, credential.identity, f"grid-mapfile {mapfile}")

    def handover(self, credential: Any, account: Account, workdir: Path) -> ProxyHandover:
        """The proxy on the wrapper's standard input (``stdin_handover``)."""
        return stdin_handover(account, workdir)

    def launch(self, argv: Sequence[str], credential: Any, account: Account, workdir: Path,
               logs: PayloadLogs) -> Any:
        """``setpriv --reuid U --regid G --init-groups -- argv``, the proxy on stdin."""
        try:
            proxy = Path(credential.path).read_bytes()
        except OSError as error:
            raise ProxyFileError(f"cannot read {credential.path}: {error.strerror}") from None
        command = [self.setpriv, "--reuid", str(account.uid), "--regid", str(account.gid),
                   "--init-groups", "--", *map(os.fspath, argv)]
        position = log_position(logs.stderr)
        stdin = proxy_input(proxy)
        try:
            process = subprocess.Popen(command, cwd=os.fspath(workdir), stdin=stdin,
                                       stdout=logs.stdout, stderr=logs.stderr,
                                       env=start_environment(account), start_new_session=True)
        except OSError as error:
            raise SwitchUnavailableError(f"cannot start {self.setpriv}: "
                                         f"{error.strerror or error}") from None
        finally:
            if stdin != subprocess.PIPE:
                os.close(stdin)
        self._launched[process.pid] = (account.uid, *position)
        self._latest = position
        if process.stdin is not None:
            send_proxy(process, proxy)
        return process

    def terminate(self, process: Any, signum: int) -> None:
        """Signal the payload's process groups: the root pilot may do it itself."""
        uid = self._launched[process.pid][0]
        signal_groups(process, payload_groups(process.pid, uid), signum,
                      lambda groups: _killpg(groups, signum))

    def kill_as_target(self, pids: Sequence[int], credential: Any, account: Account,
                       workdir: Path) -> None:
        """Root may kill the target's processes itself."""
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def explain_without_marker(self, returncode: int) -> SwitchError:
        """No marker: quote what setpriv said, if anything."""
        said = None if self._latest is None else switch_program_said(*self._latest,
                                                                     prefix="setpriv:")
        if said is not None:
            return SwitchExecError(f"setpriv could not run the wrapper: {said}")
        return super().explain_without_marker(returncode)


def _killpg(groups: Set[int], signum: int) -> None:
    for group in groups:
        try:
            os.killpg(group, signum)
        except ProcessLookupError:
            pass
