"""Objects the payload moved out of the work directory: found again by device and inode
within the work root, and given back, or reported with their path.

The work root is listed by GNU ``find`` (``-xdev``: a move keeps an object on its file
system; symlinks not followed); the listing only says where to look.  Each candidate is
opened ``O_PATH | O_NOFOLLOW`` and given back only if that descriptor is the recorded
object (device and inode), still the pilot's and (ACL mode) still carries the target's
entry: a path swapped meanwhile, or a new object that got a freed inode, is left alone.
Nothing is looked for when the work directory itself is gone.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from pilotid.escaping import printable
from pilotid.workdir.acl import _ACCESS, _USER, _read_acl
from pilotid.workdir.changes import ACL, PathChange, SandboxGrant
from pilotid.workdir.walk import _PATH_FLAGS, _fd_path, _gnu_find

log = logging.getLogger(__name__)

Restore = Callable[[str, os.stat_result, PathChange, str], None]


def reclaim_moved(grant: SandboxGrant, pending: Dict[Tuple[int, int], PathChange],
                  restore: Restore) -> List[str]:
    """Give back the objects of ``pending`` (changed by the grant, not found in the work
    directory) found in the grant's work root, with ``restore(handle, info, change,
    mode)``; report the others at WARNING.  What failed, as messages."""
    if not pending:
        return []
    if not grant.workdir.is_dir():
        # the whole directory is gone (a dead job's, removed since): its inodes may be
        # another job's objects by now, so nothing is looked for
        log.warning("%s is gone: %d objects its grant changed were not looked for",
                    grant.workdir, len(pending))
        return []
    failures: List[str] = []
    left = dict(pending)
    if grant.work_root is not None and grant.work_root != grant.workdir:
        for path in _candidates(grant.work_root, left):
            failure = _give_back(path, left, grant, restore)
            if failure:
                failures.append(failure)
    if left:
        log.warning("%d objects the grant changed were moved out of %s by the payload and "
                    "not found again in %s: they may keep the grant's entries for %s; "
                    "first: %s", len(left), grant.workdir,
                    grant.work_root or "the work directory (no work_root)", grant.account.name,
                    ", ".join(printable(change.path) for change in list(left.values())[:5]))
    return failures


def _candidates(root: Path, wanted: Dict[Tuple[int, int], PathChange]) -> List[bytes]:
    """Paths under ``root`` whose inode is one of ``wanted``'s, as ``find`` lists them."""
    find = _gnu_find()
    if find is None:
        log.warning("no GNU find: objects moved out of the work directory are not looked "
                    "for in %s", root)
        return []
    inodes = {inode for _, inode in wanted}
    try:
        listing = subprocess.run([find, str(root), "-xdev", "-printf", "%i %p\\0"],
                                 stdin=subprocess.DEVNULL, capture_output=True,
                                 env={"LC_ALL": "C"}, check=False).stdout
    except OSError as error:
        log.warning("cannot run %s (%s): objects moved out of the work directory are not "
                    "looked for", find, error.strerror)
        return []
    found = []
    for entry in listing.split(b"\0"):
        inode, _, path = entry.partition(b" ")
        if path and inode.isdigit() and int(inode) in inodes:
            found.append(path)
    return found


def _give_back(path: bytes, left: Dict[Tuple[int, int], PathChange], grant: SandboxGrant,
               restore: Restore) -> str:
    try:
        fd = os.open(path, _PATH_FLAGS)
    except OSError:
        return ""  # gone or swapped since find listed it
    try:
        info = os.fstat(fd)
        change = left.get((info.st_dev, info.st_ino))
        if change is None:
            return ""
        if grant.mode == ACL and not _names(_fd_path(fd), grant.account.uid):
            return ""  # the inode of a new object: the grant's mark is not on it
        if info.st_uid != grant.pilot_uid or stat.S_ISLNK(info.st_mode):
            log.warning("%s (once %s in %s) was moved there by the payload and is no longer "
                        "the pilot's: not given back", printable(path), printable(change.path),
                        grant.workdir)
            del left[(info.st_dev, info.st_ino)]
            return ""
        try:
            restore(_fd_path(fd), info, change, grant.mode)
        except OSError as error:
            return f"{printable(path)}: {error.strerror}"
        del left[(info.st_dev, info.st_ino)]
        log.info("%s, moved out of %s by the payload, given back", printable(path),
                 grant.workdir)
        return ""
    finally:
        os.close(fd)


def _names(handle: str, uid: int) -> bool:
    """Does the access ACL of ``handle`` name ``uid``, as the grant left it?"""
    try:
        acl = _read_acl(handle, _ACCESS)
    except (OSError, ValueError):
        return False
    return acl is not None and acl.get(_USER, uid) is not None
