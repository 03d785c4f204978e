"""Private directories of pilots that died: recorded beside the grant journals, removed
by ``undo_dead_grants``.

A pilot killed mid-job cannot remove its job's private directory (``private``), which
holds the user's credential copies.  So ``make_private_directory`` writes the record
first: ``<state_dir>/private/<host>-<pid>-<random>.json`` (0600, ``O_EXCL | O_NOFOLLOW``,
in a 0700 directory of the pilot's), a line (one ``write``) with this host, its boot, the
pilot's process (pid, start time) and the directory's path, a new random name; then it
makes the directory (``mkdir`` 0700 of that name, which nothing has used) and appends a
second line with its device and inode.  The credential is fetched only afterwards.
``PrivateDirectory.remove`` removes the record with the directory.

Once the recording process is gone, ``remove_dead_private_directories`` opens the
directory one component at a time without following a symlink, and removes it through
that descriptor only if it is still a 0700 directory of the pilot's with the recorded
device and inode.  A record without them is of a pilot killed around the ``mkdir``: its
directory, if made, is removed only while it is an empty 0700 directory of the pilot's
(``rmdir``, which removes no other).  Another account cannot rename it meanwhile (it is in
the pilot's own temporary directory or a sticky one).  Two pilots cleaning up at once take
turns (a lock on the record).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import secrets
import socket
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List

from pilotid.errors import SandboxError
from pilotid.escaping import printable
from pilotid.workdir.journal import (
    boot_id,
    left_by_dead_process,
    named_with_suffix,
    private_directory,
    process_start,
)
from pilotid.workdir.private import (
    PrivateDirectory,
    create_private_directory,
    private_base,
    private_name,
)
from pilotid.workdir.walk import _DIR_FLAGS

log = logging.getLogger(__name__)

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_APPEND
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def make_private_directory(workdir: Path, panda_id: int,
                           state_dir: Path) -> PrivateDirectory:
    """Job ``panda_id``'s private directory (``private``), recorded in ``state_dir`` before
    it is made (see the module).  ``WorkdirError`` as ``private_base`` or where it cannot
    be made, ``ConfigurationError`` as ``private_directory``, ``SandboxError`` where the
    record cannot be written; nothing is left then."""
    base = private_base(workdir)
    records = private_directory(private_directory(state_dir) / "private")
    pid, host = os.getpid(), socket.gethostname()
    path = base / private_name(panda_id)
    record = records / f"{host}-{pid}-{secrets.token_hex(6)}.json"
    try:
        fd = os.open(record, _NEW, 0o600)
    except OSError as error:
        raise SandboxError(f"cannot record the private directory in {record}: "
                           f"{error.strerror}") from None
    try:
        _write(record, fd, {"host": host, "boot": boot_id(), "pid": pid,
                            "start": process_start(pid), "path": str(path)})
        private = replace(create_private_directory(path), record=record)
        try:
            info = os.fstat(private.fd)
            _write(record, fd, {"device": info.st_dev, "inode": info.st_ino})
        except BaseException:
            private.remove()
            raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(record)
        raise
    finally:
        os.close(fd)
    return private


def _write(record: Path, fd: int, entry: Dict[str, Any]) -> None:
    """Append ``entry`` to ``record`` (open as ``fd``) as one line, in one ``write``."""
    line = json.dumps(entry).encode() + b"\n"
    try:
        if os.write(fd, line) != len(line):
            raise OSError(0, "short write")
    except OSError as error:
        raise SandboxError(f"cannot record the private directory in {record}: "
                           f"{error.strerror}") from None


def remove_dead_private_directories(state_dir: Path) -> List[Path]:
    """Remove the private directories recorded in ``state_dir`` by processes of this host
    that are gone, and their records; return the directories removed.  One that is no
    longer the directory recorded is kept, with a warning."""
    records = private_directory(private_directory(state_dir) / "private")
    removed = []
    for record in named_with_suffix(records, ".json"):
        if not left_by_dead_process(record):
            continue
        try:
            fd = os.open(record, _READ)
        except FileNotFoundError:
            continue  # removed by another pilot meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(fd).st_nlink == 0:
                continue  # removed by the pilot that held the lock
            removed.extend(_remove_recorded(record, fd))
        except BlockingIOError:
            continue  # another pilot removes it now
        except OSError as error:
            log.warning("private directory of %s not removed: %s", record, error.strerror)
        finally:
            os.close(fd)
    return removed


def _remove_recorded(record: Path, fd: int) -> List[Path]:
    """Remove the directory ``record`` (open as ``fd``, locked) names, then ``record``."""
    removed = []
    with os.fdopen(os.dup(fd), "rb") as stream:
        lines = stream.read().splitlines()
    try:
        entry = json.loads(lines[0])
        path = Path(entry["path"])
    except (IndexError, ValueError, KeyError, TypeError):
        log.warning("%s names no private directory (its pilot died writing it, before "
                    "making one): removed", record)
    else:
        for line in lines[1:]:
            with contextlib.suppress(ValueError):  # the pilot died writing it
                entry.update(json.loads(line))
        if "inode" in entry:
            made = _remove_directory(path, entry["device"], entry["inode"])
        else:
            made = _remove_if_unused(path)
        if made:
            removed.append(path)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record)
    return removed


def _remove_if_unused(path: Path) -> bool:
    """Remove ``path``, which a pilot that died may have made (recorded, device and inode
    not yet), if it is an empty 0700 directory of the pilot's, reached without a symlink
    (``rmdir`` removes an empty one only); whether it was."""
    try:
        parent = _open_without_symlinks(path.parent)
    except OSError as error:
        log.warning("private directory %s of a pilot that died not removed: %s",
                    printable(str(path)), error.strerror)
        return False
    try:
        fd = os.open(path.name, _DIR_FLAGS, dir_fd=parent)
    except FileNotFoundError:
        os.close(parent)
        return False  # the pilot died before making it
    except OSError as error:
        os.close(parent)
        log.warning("private directory %s of a pilot that died not removed: %s",
                    printable(str(path)), error.strerror)
        return False
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) != 0o700:
            log.warning("private directory %s of a pilot that died not removed: it is not "
                        "the pilot's 0700 directory", printable(str(path)))
            return False
        os.rmdir(path.name, dir_fd=parent)
    except OSError as error:
        log.warning("private directory %s of a pilot that died not removed: %s",
                    printable(str(path)), error.strerror)
        return False
    finally:
        os.close(fd)
        os.close(parent)
    log.warning("removed the private directory %s of a pilot that died making it",
                printable(str(path)))
    return True


def _remove_directory(path: Path, device: int, inode: int) -> bool:
    """Remove ``path`` through a descriptor if it is still the pilot's 0700 directory
    ``device``/``inode``, reached without a symlink; whether it was."""
    try:
        fd = _open_without_symlinks(path)
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("private directory %s of a pilot that died not removed: %s",
                    printable(str(path)), error.strerror)
        return False
    info = os.fstat(fd)
    if ((info.st_dev, info.st_ino) != (device, inode) or info.st_uid != os.geteuid()
            or stat.S_IMODE(info.st_mode) != 0o700):
        os.close(fd)
        log.warning("private directory %s of a pilot that died not removed: it is no "
                    "longer the pilot's 0700 directory it made", printable(str(path)))
        return False
    PrivateDirectory(path, fd).remove()
    log.warning("removed the private directory %s of a pilot that died",
                printable(str(path)))
    return True


def _open_without_symlinks(path: Path) -> int:
    """A descriptor of directory ``path`` (absolute), each component opened with
    ``O_NOFOLLOW`` from the one before: ``OSError`` (``ELOOP``, ``ENOTDIR``) where one is
    a symlink."""
    fd = os.open("/", _DIR_FLAGS)
    try:
        for part in path.parts[1:]:
            parent, fd = fd, -1
            try:
                fd = os.open(part, _DIR_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    return fd
