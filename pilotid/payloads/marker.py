"""The wrapper's marker: the file that proves the switch happened, and how the pilot reads it.

The wrapper (``pilotid.payloads.wrapper``) creates the marker as soon as it runs as the
target and appends to it as the payload ends; the pilot reads it back with ``read_marker``
into a ``pilotid.values.WrapperMarker`` (``tampered_marker`` says when the payload
rewrote it), and so tells a switch failure from a payload
failure without guessing from the exit status.

The marker, one ``key=value`` per line::

    uid=<effective uid>        always, first, as soon as the wrapper runs
    proxy-copy=<dev>:<inode>   the proxy copy it stored from standard input, before the
                               payload starts (for the pilot to remove wherever the
                               payload renamed it in the work directory)
    token-copy=<dev>:<inode>   the same for the bearer token copy
    egg=<32 hex digits>        the egg cache it makes, pilotid-egg-<digits> under the
                               queue's egg_cache_base, written before the mkdir (for the
                               pilot to remove if the wrapper is killed outright; not
                               the wrapper's with error=egg-cache)
    status=<n>                 the payload's exit status; 128+s for a death by signal s
    signal=<s>                 with status, when 128 < status <= 128+SIGRTMAX
    error=<reason>             the wrapper itself failed (or was stopped) before the
                               payload ended; reason is one of WRAPPER_ERRORS (the wrapper then
                               exits with its WRAPPER_FAILURE_STATUS, 125)

bash reports a payload killed by signal ``s`` as ``128+s`` and cannot tell it from a
payload that called ``exit(128+s)``; the wrapper follows the shell's convention and writes
``signal=s`` for any status in that range.  A marker the pilot cannot trust (not a regular
file, too long, malformed) reads as no marker at all.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Dict, Optional

from pilotid.identity.accounts import Account
from pilotid.values import WrapperMarker

log = logging.getLogger(__name__)

_KEYS = ("uid", "proxy-copy", "token-copy", "status", "signal", "error", "egg")
#: The forms of its values: a number, an egg cache's 32 hex digits, ``device:inode``.
_NUMBER = re.compile(r"[0-9]{1,10}")
_EGG = re.compile(r"[0-9a-f]{32}")
_COPY = re.compile(r"[0-9]{1,20}:[0-9]{1,20}")

WRAPPER_ERRORS = ("marker", "proxy", "token", "workdir", "egg-cache", "setup",
                  "interrupted")
"""The reasons an ``error=`` marker line can give: which step of the wrapper failed, or
``interrupted`` when TERM/INT/HUP arrived before the payload started (``signal=`` says
which)."""


def read_marker(path: Path, dir_fd: Optional[int] = None,
                owner: Optional[int] = None) -> Optional[WrapperMarker]:
    """Return what the wrapper recorded at ``path``, or ``None`` if it never ran.

    ``None`` also for a marker that is not a regular file or does not parse (logged as a
    warning): the pilot cannot trust it.  ``payload_status`` is 128+s for a death by
    signal s (``signal`` is then s), ``None`` when the payload did not finish.  With
    ``dir_fd``, ``path`` is a name in that directory; with ``owner``, a file that uid does
    not own is ignored too (checked on the descriptor read from).
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("wrapper marker %s cannot be read (%s): ignoring it", path, error.strerror)
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            log.warning("wrapper marker %s is not a regular file: ignoring it", path)
            return None
        if owner is not None and info.st_uid != owner:
            log.warning("wrapper marker %s belongs to uid %d, not %d: ignoring it", path,
                        info.st_uid, owner)
            return None
        data = os.read(fd, 4097)
    finally:
        os.close(fd)
    marker = _parse_marker(data)
    if marker is None:
        log.warning("wrapper marker %s is malformed: ignoring it", path)
    return marker


def tampered_marker(marker: Path, found: Optional[WrapperMarker], owner: Optional[int],
                    account: Optional[Account]) -> Optional[str]:
    """Why the wrapper's marker cannot be what the wrapper wrote, or None.

    The wrapper creates the marker as the target; the payload, running as the target
    too, can rewrite it.  A marker file owned by the target (which no one but the
    target, or root, can create) shows the switch happened, whatever it says: if it does
    not parse, or names another uid, the payload changed it, and the failure is the
    payload's, never the site's.  ``found`` is what ``read_marker`` made of it; ``owner``
    is the session's ``marker_owner``: None where the file's owner proves nothing (no
    switch, the pilot owns it).
    """
    if owner is None or account is None:
        return None
    try:
        found_owner = os.lstat(marker).st_uid
    except OSError:
        return None
    if found_owner != owner or (found is not None and found.uid == owner):
        return None
    what = "does not parse" if found is None else f"names uid {found.uid}"
    return (f"the wrapper ran as {account.name} (its marker {marker.name} belongs to uid "
            f"{found_owner}) but the marker {what}: the payload changed it, so its outcome is "
            "unknown")


def _parse_marker(data: bytes) -> Optional[WrapperMarker]:
    if len(data) > 4096 or not data.endswith(b"\n"):
        return None
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None
    fields: Dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or key in fields or key not in _KEYS:
            return None
        fields[key] = value
    if not lines or not lines[0].startswith("uid="):
        return None
    numbers: Dict[str, Optional[int]] = {}
    for key in ("uid", "status", "signal"):
        text = fields.get(key)
        if text is not None and not _NUMBER.fullmatch(text):
            return None
        numbers[key] = None if text is None else int(text)
    error = fields.get("error")
    if error is not None and error not in WRAPPER_ERRORS:
        return None
    egg = fields.get("egg")
    if egg is not None and not _EGG.fullmatch(egg):
        return None
    copies = []
    for key in ("proxy-copy", "token-copy"):
        text = fields.get(key)
        if text is None:
            continue
        if not _COPY.fullmatch(text):
            return None
        device, inode = text.split(":")
        copies.append((int(device), int(inode)))
    uid = numbers["uid"]
    assert uid is not None
    return WrapperMarker(uid=uid, payload_status=numbers["status"], signal=numbers["signal"],
                         error=error, egg_cache=egg, copies=tuple(copies))
