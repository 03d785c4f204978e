"""Writing new files the pilot must own alone at first: credentials (0600) and wrappers.

A file is created new (``O_EXCL``), never through a symlink (``O_NOFOLLOW``), with its final
mode from the first instant, so nobody can make pilotid write where they prepared a file or
a link, nor read it while it is being written.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Type

from pilotid.errors import CredentialError, PilotidError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def write_new(path: Path, data: bytes, mode: int, error: Type[PilotidError], what: str) -> Path:
    """Write ``data`` to a new file at ``path`` with ``mode``; return ``path``.

    Raises ``error`` naming ``what`` and ``path`` when something already exists there or the
    file cannot be created or written; a partly written file is removed.
    """
    path = Path(path)
    try:
        fd = os.open(path, _FLAGS, mode)
    except FileExistsError:
        raise error(f"cannot create {what} {path}: something already exists there "
                    "(remove it, or check who created it)") from None
    except OSError as failure:
        raise error(f"cannot create {what} {path}: {failure.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(fd, mode)  # the umask can only narrow O_CREAT's mode; make it exact
            out.write(data)
    except BaseException as failure:
        # never a partial file left, also when interrupted (the launcher's PilotSignal)
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(failure, OSError):
            raise error(f"cannot write {what} {path}: {failure.strerror}") from None
        raise
    return path


def write_private(path: Path, data: bytes) -> Path:
    """Write a credential to a new file at ``path``, mode 0600 from creation; return ``path``.

    Raises ``CredentialError`` for an existing path or a symlink there.
    """
    return write_new(path, data, 0o600, CredentialError, "credential file")
