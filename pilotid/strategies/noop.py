"""``NoopSwitcher``: no switch at all; the payload runs as the pilot itself.

The explicit "no switch" of a queue (``switcher: noop``, or PanDA's ``glexec: False``), never a
fallback: a queue configured for a real switch whose probe fails does not end up here.
"""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Sequence, Set

from zope.interface import implementer

from pilotid.errors import CredentialError, SwitchError, SwitchExecError, WorkdirError
from pilotid.identity.accounts import Account
from pilotid.interfaces import IIdentitySwitcher
from pilotid.probe import OK, Check
from pilotid.strategies.base import SwitcherBase, signal_label, start_environment, with_token
from pilotid.strategies.processes import payload_groups, signal_groups
from pilotid.values import PayloadLogs, ProxyHandover

if TYPE_CHECKING:
    from pilotid.identity.credential import Credential

log = logging.getLogger(__name__)


@implementer(IIdentitySwitcher)
class NoopSwitcher(SwitcherBase):
    """Run the wrapper as the pilot's own account: no identity switch.

    The payload gets the pilot's 0600 copy of the user's proxy directly.  The wrapper starts
    as a session leader (its own process group, no controlling terminal) with the minimal
    environment of ``start_environment``; ``terminate`` signals its process group and the
    payload's own (the wrapper runs the payload in a group of its own).
    """

    name = "noop"
    switches_identity = False

    def probe(self, credential: "Credential") -> Account:
        """Return the pilot's own account: with no switch, that is who the payload runs as."""
        return Account.current()

    def handover(self, credential: "Credential", account: Account,
                 workdir: Path) -> ProxyHandover:
        """The payload uses the credential's files themselves: the pilot already owns them,
        0600 (a token-only job's handover place is its token's copy)."""
        place = credential.path if credential.path is not None else credential.token_path
        if place is None:
            raise CredentialError(f"the credential from {credential.source} holds no file "
                                  "to hand over")
        return with_token(ProxyHandover(Path(place)), credential)

    def launch(self, argv: Sequence[str], credential: "Credential", account: Account,
               workdir: Path, logs: PayloadLogs) -> subprocess.Popen:
        """Start ``argv`` in ``workdir`` as the pilot, in a new session; return the process.

        Raises ``WorkdirError`` when ``workdir`` cannot be entered and ``SwitchExecError``
        when ``argv`` cannot be executed at all.
        """
        argv = [os.fspath(a) for a in argv]
        try:
            process = subprocess.Popen(
                argv, cwd=os.fspath(workdir), stdin=subprocess.DEVNULL,
                stdout=logs.stdout, stderr=logs.stderr, env=start_environment(account),
                start_new_session=True)
        except OSError as error:
            if error.filename is not None and os.fspath(error.filename) == os.fspath(workdir):
                raise WorkdirError(f"cannot use work directory {workdir}: "
                                   f"{error.strerror}") from None
            raise SwitchExecError(
                f"cannot execute the wrapper {argv[0] if argv else '(empty command)'} in "
                f"{workdir}: {error.strerror or error}; check it exists and is executable"
            ) from None
        log.info("started %s as %s (pid %d, no switch)", argv[0], account.name, process.pid)
        return process

    def terminate(self, process: subprocess.Popen, signum: int) -> None:
        """Send ``signum`` to the wrapper's process group and to every group a process under
        it leads.

        The wrapper runs the payload in a process group of its own (``set -m``): signalling
        only the wrapper's group reaches the payload for a signal the wrapper forwards
        (TERM, INT, HUP) but never for SIGKILL, which would leave the payload running.  So
        every group of the wrapper's descendants is signalled too (``payload_groups``),
        SIGKILL the payload's first so that the wrapper can clean up (``signal_groups``).
        A group outlives its leader while any process is left in it, so this also reaches
        what the payload left behind; an empty group is not an error.
        """
        def send(groups: Set[int]) -> None:
            sent = []
            for group in sorted(groups, key=lambda g: (g != process.pid, g)):  # wrapper's first
                try:
                    os.killpg(group, signum)
                except ProcessLookupError:
                    log.debug("process group %d is already gone", group)
                    continue
                sent.append(group)
            if sent:
                log.info("sent %s to process groups %s", signal_label(signum),
                         " ".join(map(str, sent)))

        signal_groups(process, payload_groups(process.pid, os.getuid()), signum, send)

    def node_checks(self, credential: Optional["Credential"]) -> List[Check]:
        """Say that there is no switch: payloads of this queue run as the pilot."""
        pilot = Account.current()
        return [Check("switch", OK, f"none: payloads run as the pilot itself, {pilot.name} "
                      f"(uid {pilot.uid}), by the queue's choice")]

    def explain_without_marker(self, returncode: int) -> SwitchError:
        """No marker with no switch: the wrapper itself could not run (or died first)."""
        return SwitchExecError(
            f"the wrapper exited with status {returncode} before writing its marker: it "
            "could not run; see the stderr log in the work directory")
