"""The pilot's private directory of one job, out of the payload's reach.

pilotid keeps its own copies of the job's credential (the credential source's copy, the
refreshed ones) in a new 0700 directory of the pilot's, made for the job under a random
name (``private_name``) in the pilot's temporary directory (``private_base``: ``TMPDIR``;
``/tmp`` where that is unset or no directory, logged), never in the work directory; it is
recorded for the clean-up before it is made (``orphans.make_private_directory``).  The
payload's account can neither list, rename nor write it, whatever it does in the work
directory, and no grant ever walks it.
``PrivateDirectory.remove`` unlinks what is in it through the descriptor kept from its
creation, then the directory.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pilotid.errors import WorkdirError
from pilotid.workdir.walk import _DIR_FLAGS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PrivateDirectory:
    """A job's private directory at ``path``, open as ``fd`` until ``remove``; ``record``
    is its record for ``pilotid cleanup`` (``orphans``), if written."""

    path: Path
    fd: int
    record: Optional[Path] = None

    def remove(self) -> None:
        """Unlink every file in the directory through its descriptor, then the directory
        (only if ``path`` is still it) and its record; close the descriptor."""
        try:
            for name in os.listdir(self.fd):
                try:
                    os.unlink(name, dir_fd=self.fd)
                except IsADirectoryError:  # nothing of pilotid's: kept, said so
                    log.warning("private directory %s holds a directory %r: kept",
                                self.path, name)
            mine = os.fstat(self.fd)
            with contextlib.suppress(OSError):
                found = os.lstat(self.path)
                if (found.st_dev, found.st_ino) == (mine.st_dev, mine.st_ino):
                    os.rmdir(self.path)
            if self.record is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.record)
        finally:
            os.close(self.fd)


def _temporary_base() -> Path:
    """``TMPDIR`` where it is a directory (even a full one, whose error then says so:
    ``tempfile.gettempdir`` would go elsewhere without a word), else ``/tmp``, logged."""
    asked = os.environ.get("TMPDIR")
    if asked and os.path.isdir(asked):
        return Path(asked).resolve()
    if asked:
        log.warning("the pilot's TMPDIR %s is not a directory: the job's private directory "
                    "is made in /tmp", asked)
    return Path("/tmp")  # noqa: S108


def private_base(workdir: Path) -> Path:
    """Where the job's private directories are made: the pilot's temporary directory.

    ``WorkdirError`` where it is ``workdir`` or inside it, or another account may rename
    what is in it (writable by others, no sticky bit).
    """
    base = _temporary_base()
    workdir = Path(workdir).resolve()
    if base == workdir or workdir in base.parents:
        raise WorkdirError(f"the pilot's temporary directory {base} is in the work directory "
                           f"{workdir}, where the payload could reach pilotid's private "
                           "files: set the pilot's TMPDIR elsewhere")
    try:
        info = os.stat(base)
    except OSError as error:
        raise WorkdirError(f"the pilot's temporary directory {base} cannot be used: "
                           f"{error.strerror}") from None
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not info.st_mode & stat.S_ISVTX:
        raise WorkdirError(f"the pilot's temporary directory {base} is writable by other "
                           "accounts without the sticky bit: set the pilot's TMPDIR to a "
                           "directory only the pilot may write, or to /tmp")
    return base


def private_name(panda_id: int) -> str:
    """A new random name for job ``panda_id``'s private directory."""
    return f"pilotid-job-{panda_id}-{secrets.token_hex(8)}"


def create_private_directory(path: Path) -> PrivateDirectory:
    """Make ``path`` (a name never used, in ``private_base``) a new 0700 directory, open.
    ``WorkdirError`` where it cannot be made or opened (nothing is left then)."""
    try:
        os.mkdir(path, 0o700)
    except OSError as error:
        raise WorkdirError(f"cannot make the job's private directory {path}: "
                           f"{error.strerror}") from None
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.rmdir(path)
        raise WorkdirError(f"cannot open the private directory {path}: "
                           f"{error.strerror}") from None
    return PrivateDirectory(path, fd)
