"""The agent's socket: in a directory only the agent's account can enter.

Who may connect is decided by construction: the socket lives in a directory the agent
made 0700 (or found owned by its account and closed to everyone else), and is itself
0600.  The peer's uid is checked on every connection as well (``pilotid.agent.server``).
"""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

from pilotid.errors import AgentSocketError

#: How many connections wait for ``accept`` (a pilot starting many jobs at once).
BACKLOG = 128


def private_directory(path: Path) -> int:
    """A descriptor of directory ``path``: made 0700, or accepted as it is if it is a real
    directory of this account's that no one else may enter; else ``AgentSocketError``.

    The checks are made on the opened directory, and the socket is bound through that
    descriptor: a directory swapped in after the checks is never used.
    """
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise AgentSocketError(f"cannot make the agent's socket directory {path}: "
                               f"{error.strerror}") from None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        raise AgentSocketError(f"the agent's socket directory {path} is not a directory "
                               "(a symbolic link, say): choose a new path") from None
    found = os.fstat(fd)
    problem = None
    if found.st_uid != os.geteuid():
        problem = (f"belongs to uid {found.st_uid}, not to this account "
                   f"(uid {os.geteuid()})")
    elif found.st_mode & 0o077:
        problem = f"is open to others (mode {stat.S_IMODE(found.st_mode):04o}): it must be 0700"
    if problem:
        os.close(fd)
        raise AgentSocketError(f"the agent's socket directory {path} {problem}")
    return fd


def listen(path: Path) -> socket.socket:
    """A listening Unix stream socket at ``path`` (0600), in a ``private_directory``.

    A socket left there by an agent that died is replaced; one a live agent answers on is
    not (``AgentSocketError``).
    """
    directory = private_directory(path.parent)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    here = f"/proc/self/fd/{directory}/{path.name}"
    try:
        _replace_stale(directory, path)
        old_umask = os.umask(0o177)
        try:
            listener.bind(here)
        finally:
            os.umask(old_umask)
        os.chmod(path.name, 0o600, dir_fd=directory)
        listener.listen(BACKLOG)
    except OSError as error:
        listener.close()
        raise AgentSocketError(f"cannot listen on {path}: {error.strerror}") from None
    except BaseException:
        listener.close()
        raise
    finally:
        os.close(directory)
    return listener


def _replace_stale(directory: int, path: Path) -> None:
    try:
        found = os.lstat(path.name, dir_fd=directory)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise AgentSocketError(f"{path} exists and is not a socket: choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(f"/proc/self/fd/{directory}/{path.name}")
    except ConnectionRefusedError:
        # in our own 0700 directory: no one else can have put it there
        os.unlink(path.name, dir_fd=directory)
        return
    finally:
        probe.close()
    raise AgentSocketError(f"an agent already listens on {path}")
