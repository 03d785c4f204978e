"""Private directories of pilots that died: recorded beside the grant journals, removed
by ``undo_dead_grants``.

A pilot killed mid-job cannot remove its job's private directory (``private``), which
holds the user's credential copies.  Right after making it, the launcher writes
``<state_dir>/private/<host>-<pid>-<random>.json`` (0600, ``O_EXCL | O_NOFOLLOW``, in a
0700 directory of the pilot's, one ``write``): this host, its boot, the pilot's process
(pid, start time), the directory's path, device and inode.  The credential is fetched
only afterwards, so a pilot killed before the record is written leaves an empty directory
at most.  ``PrivateDirectory.remove`` removes the record with the directory.

Once the recording process is gone, ``remove_dead_private_directories`` opens the
directory one component at a time without following a symlink, and removes it through
that descriptor only if it is still a 0700 directory of the pilot's with the recorded
device and inode; another account cannot rename it meanwhile (it is in the pilot's own
temporary directory or a sticky one).  Two pilots cleaning up at once take turns (a lock
on the record).
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
from typing import List

from pilotid.errors import SandboxError
from pilotid.escaping import printable
from pilotid.workdir.journal import (
    boot_id,
    left_by_dead_process,
    named_with_suffix,
    private_directory,
    process_start,
)
from pilotid.workdir.private import PrivateDirectory
from pilotid.workdir.walk import _DIR_FLAGS

log = logging.getLogger(__name__)

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


def record_private_directory(state_dir: Path, private: PrivateDirectory) -> PrivateDirectory:
    """Write down ``private`` in ``state_dir`` (see the module); ``private`` with its
    record.  ``ConfigurationError`` as ``private_directory``, ``SandboxError`` where the
    record cannot be written."""
    records = private_directory(private_directory(state_dir) / "private")
    pid, host = os.getpid(), socket.gethostname()
    path = records / f"{host}-{pid}-{secrets.token_hex(6)}.json"
    info = os.fstat(private.fd)
    line = json.dumps({"host": host, "boot": boot_id(), "pid": pid,
                       "start": process_start(pid), "path": str(private.path),
                       "device": info.st_dev, "inode": info.st_ino}).encode() + b"\n"
    try:
        fd = os.open(path, _NEW, 0o600)
        try:
            if os.write(fd, line) != len(line):
                raise OSError(0, "short write")
        finally:
            os.close(fd)
    except OSError as error:
        raise SandboxError(f"cannot record the private directory in {path}: "
                           f"{error.strerror}") from None
    return replace(private, record=path)


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
    try:
        with os.fdopen(os.dup(fd), "rb") as stream:
            entry = json.loads(stream.read())
        if _remove_directory(Path(entry["path"]), entry["device"], entry["inode"]):
            removed.append(Path(entry["path"]))
    except (ValueError, KeyError, TypeError):
        log.warning("%s names no private directory (its pilot died writing it): removed",
                    record)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(record)
    return removed


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
