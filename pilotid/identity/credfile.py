"""Writing credential files: new, 0600 from the first instant, never through a symlink."""

from __future__ import annotations

import os
from pathlib import Path

from pilotid.errors import CredentialError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def write_private(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new file at ``path``, mode 0600 from creation; return ``path``.

    Refuses (``CredentialError``) an existing path or a symlink there, so nobody can make
    pilotid write a credential where they prepared a file or a link.  A partly written file
    is removed.
    """
    path = Path(path)
    try:
        fd = os.open(path, _FLAGS, 0o600)
    except FileExistsError:
        raise CredentialError(
            f"refusing to write a credential to {path}: something already exists there "
            "(remove it, or check who created it)") from None
    except OSError as error:
        raise CredentialError(f"cannot create credential file {path}: {error.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # the umask can only narrow O_CREAT's mode; make it exact
        with os.fdopen(fd, "wb") as out:
            out.write(data)
    except OSError as error:
        path.unlink()
        raise CredentialError(f"cannot write credential file {path}: {error.strerror}") from None
    return path
