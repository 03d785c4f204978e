"""Finding the bearer token a process was given (WLCG Bearer Token Discovery).

The order is the specification's: ``BEARER_TOKEN``; else the file ``BEARER_TOKEN_FILE``
names; else ``$XDG_RUNTIME_DIR/bt_u<euid>`` when ``XDG_RUNTIME_DIR`` is set; else
``/tmp/bt_u<euid>``.  Whitespace is stripped; an empty value, or a file that does not
exist, moves on to the next step; the first token found is the one (if it turns out
invalid, discovery does not go on: the caller's verification refuses it).

A ``bt_u`` file lies in a directory others may write (``/tmp``): pilotid reads it only when
it is a regular file owned by the user and writable by nobody else, judged by ``fstat`` on
the descriptor it opened without following a symlink, so that nothing can be swapped
between the check and the read (the specification's open proposal; scitokens does not check).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from pilotid.errors import TokenError
from pilotid.identity.tokens.verify import MAX_TOKEN_LENGTH

_OPEN_FLAGS = (os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
               | getattr(os, "O_CLOEXEC", 0))


@dataclass(frozen=True)
class FoundToken:
    """A token string found by discovery and where (``origin``: a variable or a path)."""

    origin: str
    value: str = field(repr=False)


def _read_limited(fd: int) -> str:
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(MAX_TOKEN_LENGTH + 1)
    return data.decode("utf-8", errors="replace").strip()


def read_token_file(path: Path) -> Optional[str]:
    """The stripped contents of the token file at ``path`` (``BEARER_TOKEN_FILE``, a path
    the queue names), or ``None`` when there is no such file.  ``TokenError`` when it
    cannot be read or is no regular file (a FIFO would block the pilot)."""
    try:
        fd = os.open(path, _OPEN_FLAGS & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise TokenError(f"token file {path} cannot be read: {error.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TokenError(f"token file {path} is not a regular file")
    return _read_limited(fd)


def read_owned_token_file(path: Path, euid: int) -> Optional[str]:
    """The stripped contents of the ``bt_u`` file at ``path``, or ``None`` when there is
    none; ``TokenError`` when it is a symlink, no regular file, another account's, or
    writable by group or others."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise TokenError(f"token file {path} is a symbolic link: refused (a bt_u file "
                             "must be the user's own regular file)") from None
        raise TokenError(f"token file {path} cannot be read: {error.strerror}") from None
    status = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(status.st_mode):
        problem = "is not a regular file"
    elif status.st_uid != euid:
        problem = f"is owned by uid {status.st_uid}, not by uid {euid}"
    elif status.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = f"is writable by others (mode {stat.S_IMODE(status.st_mode):04o})"
    if problem:
        os.close(fd)
        raise TokenError(f"token file {path} {problem}: refused")
    return _read_limited(fd)


def discover_token(environ: Mapping[str, str], euid: int) -> Optional[FoundToken]:
    """The first token of the discovery order in ``environ`` for user ``euid``; ``None``
    when every step is empty."""
    value = environ.get("BEARER_TOKEN", "").strip()
    if value:
        return FoundToken("BEARER_TOKEN", value)
    named = environ.get("BEARER_TOKEN_FILE", "")
    if named:
        value = read_token_file(Path(named)) or ""
        if value:
            return FoundToken(named, value)
    places = [Path("/tmp")]  # noqa: S108 - the specification's place; owner checked
    if environ.get("XDG_RUNTIME_DIR"):
        places.insert(0, Path(environ["XDG_RUNTIME_DIR"]))
    for place in places:
        path = place / f"bt_u{euid}"
        value = read_owned_token_file(path, euid) or ""
        if value:
            return FoundToken(str(path), value)
    return None
