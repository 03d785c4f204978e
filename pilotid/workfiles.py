"""Appending to the pilot's own files in a work directory the payload can write to.

The pilot writes in the work directory before a payload (its logs) and after it (the
accounting record), and the payload may have planted something there meanwhile: a symlink
to a file of the pilot's, a FIFO whose opening would block the pilot for ever, a file of
its own, a hard link.  None is followed, waited on or written to; what was planted is moved
aside (``<name>.planted-<token>``, kept for whoever investigates) and a new file made.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path
from typing import IO

from pilotid.errors import WorkdirError

log = logging.getLogger(__name__)


def open_append(path: Path, pilot_only: bool = False) -> int:
    """Open ``path`` to append to it; only ever a regular file, and with ``pilot_only``
    only one of the pilot's own with no other name.

    A new file is made 0600 (``O_EXCL``); an existing one of the pilot's that group or
    others may use is made 0600, with a warning (pilotid's own files are the pilot's
    alone).  Return the file descriptor; ``OSError`` for anything else there (never
    followed, waited on or written to).  A file outside the work directory (the queue's
    accounting file) may be a site's shared file of another account's: of it only a
    regular file is asked, and its mode is the site's.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if pilot_only and (info.st_uid != os.geteuid() or info.st_nlink != 1):
            raise OSError(errno.EPERM, "not a file of the pilot's own with one name")
        if info.st_uid == os.geteuid() and info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
            log.warning("%s was mode %04o, open to other accounts: made it 0600 (pilotid's "
                        "files are the pilot's alone)", path, stat.S_IMODE(info.st_mode))
        os.set_blocking(fd, True)
    except OSError:
        os.close(fd)
        raise
    return fd


def append_in_workdir(path: Path, token: str) -> int:
    """``open_append`` for a file in the work directory: whatever the payload put there
    instead (a symlink, a FIFO, a file of its own) is moved aside to
    ``<name>.planted-<token>`` (logged, kept for inspection) and a new file made, so that a
    payload can neither redirect nor stop the pilot's next write there."""
    try:
        return open_append(path, pilot_only=True)
    except OSError as error:
        try:
            os.lstat(path)
        except FileNotFoundError:
            raise error from None  # nothing planted: the directory itself is the problem
        aside = path.with_name(f"{path.name}.planted-{token}")
        log.warning("%s is not a file the pilot may append to (%s): moved to %s; check what "
                    "the payload did", path, error.strerror, aside.name)
        os.rename(path, aside)
        return open_append(path, pilot_only=True)


def open_payload_log(path: Path, token: str) -> IO[bytes]:
    """Open a payload log in the work directory to append to (see
    ``append_in_workdir``); ``WorkdirError`` if it cannot be, naming the path."""
    try:
        return os.fdopen(append_in_workdir(path, token), "ab")
    except OSError as error:
        raise WorkdirError(f"cannot open the payload log {path}: {error.strerror}; remove "
                           "whatever is there") from None
