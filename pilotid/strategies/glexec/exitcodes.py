"""gLExec's exit statuses: its own failures as pilotid errors, with hints for the site.

Its exit status is the command's, except for its own failures (201 client, 202 system,
203 authorisation, 126 cannot execute) and 204 (the command itself exited 201-204).
The ``_`` helpers here are the package's own, shared by its modules, not by other code.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Dict, Tuple, Type

from pilotid.errors import (
    SwitchClientError,
    SwitchError,
    SwitchExecError,
    SwitchNotPermittedError,
    SwitchSystemError,
)

CLIENT_ERROR = 201
SYSTEM_ERROR = 202
AUTHZ_ERROR = 203
PAYLOAD_OVERLAP = 204
CANNOT_EXECUTE = 126

#: gLExec's own failures, each its own pilotid error (only when the wrapper never ran).
EXIT_ERRORS: Dict[int, Type[SwitchError]] = {
    CLIENT_ERROR: SwitchClientError,
    SYSTEM_ERROR: SwitchSystemError,
    AUTHZ_ERROR: SwitchNotPermittedError,
    CANNOT_EXECUTE: SwitchExecError,
}
_EXIT_MEANING = {
    CLIENT_ERROR: "client error: proxy, permissions or command refused",
    SYSTEM_ERROR: "system error: gLExec or LCAS/LCMAPS misconfigured on this node",
    AUTHZ_ERROR: "authorisation error: the identity was denied or not mapped",
    CANNOT_EXECUTE: "the command could not be executed as the target",
}
#: Only these failures may go away by themselves (LCMAPS, Argus), so only they are retried.
RETRIED_ERRORS: Tuple[Type[SwitchError], ...] = (SwitchSystemError, SwitchNotPermittedError)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _cert_hint(path: Path) -> str:
    """Why gLExec may refuse ``path`` as GLEXEC_CLIENT_CERT, from what the pilot sees."""
    try:
        info = os.lstat(path)
    except OSError as error:
        return f"GLEXEC_CLIENT_CERT {path}: {error.strerror}"
    problems = []
    if stat.S_ISLNK(info.st_mode):
        problems.append("is a symlink")
    if info.st_uid != os.geteuid():
        problems.append(f"is owned by uid {info.st_uid}, not by the pilot (uid {os.geteuid()})")
    if info.st_mode & 0o7077:
        mode = "%04o" % stat.S_IMODE(info.st_mode)
        acl = _has_acl(path)
        problems.append(f"has mode {mode}" + (" (an ACL shows in the group bits)" if acl else ""))
    if not problems:
        return ""
    return (f"GLEXEC_CLIENT_CERT {path} " + ", ".join(problems)
            + ": it must be the pilot's own file, mode 0600, without ACL")


def _has_acl(path: Path) -> bool:
    try:
        return "system.posix_acl_access" in os.listxattr(path, follow_symlinks=False)
    except OSError:
        return False


def _switch_error(status: int, what: str, stderr: str = "", hint: str = "") -> SwitchError:
    """The pilotid error for gLExec's own failure ``status`` during ``what``."""
    cls = EXIT_ERRORS.get(status, SwitchError)
    meaning = _EXIT_MEANING.get(status, "unexpected exit status")
    message = f"gLExec failed {what} ({status}, {meaning})"
    detail = "; ".join(part for part in (_last_line(stderr), hint) if part)
    return cls(message + (f": {detail}" if detail else ""))


def never_ran_error(returncode: int) -> SwitchError:
    """The error for a launch whose wrapper never reported running as the target."""
    if returncode in EXIT_ERRORS:
        hint = {
            CLIENT_ERROR: "check GLEXEC_CLIENT_CERT (the pilot's own file, 0600, no ACL), "
                          "that the wrapper path is absolute and not a symlink, and that "
                          "the target may enter the work directory",
            SYSTEM_ERROR: "ask the site to check glexec.conf and LCAS/LCMAPS",
            AUTHZ_ERROR: "the site does not authorise or map this user for this pilot",
            CANNOT_EXECUTE: "the wrapper must be executable and reachable by the target "
                            "(every parent of the work directory traversable) on a file "
                            "system not mounted noexec",
        }[returncode]
        return _switch_error(returncode, "before the wrapper ran", hint=hint)
    if returncode == PAYLOAD_OVERLAP:
        return SwitchError("gLExec answered 204 (command exited 201-204) but the wrapper "
                           "left no marker: it failed before running as the target")
    return SwitchError(f"gLExec exited {returncode} but the wrapper never reported running "
                       "as the target")
