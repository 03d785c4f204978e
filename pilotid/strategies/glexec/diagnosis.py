"""What ``pilotid probe`` shows about gLExec on this node: the binary (mode, owner, setuid
root) and the accounts a switch with the pilot's own proxy and with the user's maps to.

``GlexecSwitcher.diagnose`` and ``GlexecSwitcher.node_checks`` hand their switcher's
binary, probe and proxies to the functions here.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from pilotid.errors import SwitchError, SwitchUnavailableError
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.probe import FAIL, OK, WARN, Check


@dataclass(frozen=True)
class GlexecDiagnosis:
    """What ``pilotid probe`` shows about gLExec on this node (see ``diagnose``)."""

    binary: Optional[Path]
    mode: Optional[int] = None
    owner: Optional[str] = None
    setuid_root: bool = False
    problem: Optional[str] = None
    pilot_account: Optional[Account] = None
    pilot_error: Optional[str] = None
    user_account: Optional[Account] = None
    user_error: Optional[str] = None

    def as_dict(self) -> dict:
        """The diagnosis as JSON-ready values."""
        return {
            "binary": None if self.binary is None else str(self.binary),
            "mode": None if self.mode is None else "%04o" % self.mode,
            "owner": self.owner, "setuid_root": self.setuid_root, "problem": self.problem,
            "pilot_account": self.pilot_account and self.pilot_account.as_dict(),
            "pilot_error": self.pilot_error,
            "user_account": self.user_account and self.user_account.as_dict(),
            "user_error": self.user_error,
        }


def diagnose_node(binary: Path, probe: Callable[[Path], Account], pilot_proxy: Path,
                  user_cert: Optional[Path]) -> GlexecDiagnosis:
    """Describe gLExec ``binary``: mode, owner; the account ``probe`` (one switch, its
    argument the ``GLEXEC_CLIENT_CERT``) finds for ``pilot_proxy`` and, given
    ``user_cert``, for the user.

    Never raises for what it finds: problems are in the answer.
    """
    info = os.stat(binary)
    try:
        owner = pwd.getpwuid(info.st_uid).pw_name
    except KeyError:
        owner = str(info.st_uid)
    setuid_root = bool(info.st_mode & stat.S_ISUID) and info.st_uid == 0
    pilot_account = user_account = None
    pilot_error = user_error = None
    try:
        pilot_account = probe(pilot_proxy)
    except SwitchError as error:
        pilot_error = str(error)
    if user_cert is not None:
        try:
            user_account = probe(user_cert)
        except SwitchError as error:
            user_error = str(error)
    return GlexecDiagnosis(
        binary=binary, mode=stat.S_IMODE(info.st_mode), owner=owner, setuid_root=setuid_root,
        problem=None if setuid_root else "gLExec is not setuid root: it cannot switch "
        "(a logging-only installation?)",
        pilot_account=pilot_account, pilot_error=pilot_error,
        user_account=user_account, user_error=user_error)


def diagnosis_checks(found: GlexecDiagnosis, glexec_mode: str, pilot_proxy: Path,
                     credential: Optional[Credential]) -> List[Check]:
    """``found`` as the lines of ``pilotid probe``: the binary, the switch with the pilot's
    own proxy (a failure only in ``test`` mode) and, given ``credential``, with it."""
    if found.binary is None:
        return [Check("gLExec", FAIL, found.problem or "not found",
                      SwitchUnavailableError.code)]
    detail = (f"{found.binary}, mode {found.mode:04o}, owner {found.owner}, "
              f"glexec_mode {glexec_mode}")
    checks = [Check("gLExec", FAIL if found.problem else OK,
                    detail + (f": {found.problem}" if found.problem else ", setuid root"),
                    SwitchUnavailableError.code if found.problem else 0)]
    if found.pilot_account is not None:
        checks.append(Check("gLExec switch with the pilot's proxy", OK,
                            f"{pilot_proxy} maps to {found.pilot_account.name} "
                            f"(uid {found.pilot_account.uid})"))
    else:
        # only the test mode switches with it; in uid mode a pilot without one is fine
        checks.append(Check("gLExec switch with the pilot's proxy",
                            FAIL if glexec_mode == "test" else WARN,
                            f"{pilot_proxy}: {found.pilot_error}"))
    if credential is not None:
        if found.user_account is not None:
            checks.append(Check("gLExec switch with the user's proxy", OK,
                                f"{credential.identity} maps to {found.user_account.name} "
                                f"(uid {found.user_account.uid})"))
        else:
            checks.append(Check("gLExec switch with the user's proxy", FAIL,
                                f"{credential.identity}: {found.user_error}"))
    return checks
