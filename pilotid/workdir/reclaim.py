"""Taking the work directory back after the payload: ``reclaim`` undoes a grant exactly."""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import Callable, List, Optional, Set, Tuple, Union

from pilotid.errors import SandboxError
from pilotid.escaping import printable
from pilotid.workdir.acl import (
    _ACCESS,
    _DEFAULT,
    _MASK,
    _NO_ID,
    _NOT_SUPPORTED,
    _USER,
    _Acl,
    _read_acl,
    _read_raw,
)
from pilotid.workdir.changes import ACL, PathChange, SandboxGrant
from pilotid.workdir.moved import reclaim_moved
from pilotid.workdir.parents import close_parents
from pilotid.workdir.walk import (
    _DIR_FLAGS,
    _PATH_FLAGS,
    _depth_first,
    _entries,
    _fd_path,
)

log = logging.getLogger(__name__)

#: Modes of a file the payload must not leave: a door into its account, or open to all.
_LOOSE_FILE = stat.S_ISUID | stat.S_ISGID | stat.S_IWOTH


def reclaim(grant: SandboxGrant) -> None:
    """Undo ``grant``: every object it changed gets its mode and ACLs back exactly, the
    target's entries go from objects the pilot created since, and from the parents.

    Objects the payload created belong to the target and cannot be changed by the pilot;
    in ACL mode their inherited entry for the pilot lets it read and delete them.  Any
    that the pilot still cannot read (the payload chmod'ed them, which cuts the ACL mask)
    are logged as a warning, and so are objects of the payload's still setuid, setgid or
    writable by every account (the wrapper takes those bits from the files as the target;
    a directory writable by all is left, in world mode the pilot's way to clean up).
    Objects moved out of the work directory are looked for in the work root (``moved``);
    parents are released (``parents``); a complete reclaim removes the grant's journal.
    Raises ``SandboxError`` naming what could not be restored, after restoring everything
    else (the journal then stays, for ``pilotid cleanup``).
    """
    reclaimer = _Reclaimer(grant)
    failures, pending, unreadable = reclaimer.failures, reclaimer.pending, reclaimer.unreadable
    try:
        try:
            if grant.workdir.is_dir():
                reclaimer.walk()
        except OSError as error:
            failures.append(f"{grant.workdir}: the walk stopped: {error.strerror}")
        failures.extend(reclaim_moved(grant, pending, _restore))
    finally:  # whatever happened to the walk: the parents are the pilot's, not the job's
        failures.extend(close_parents(grant.parents, grant.account.uid, grant.journal))
    if unreadable:
        log.warning("%d paths in %s are not readable by the pilot after the payload "
                    "(it changed their modes); first: %s", len(unreadable), grant.workdir,
                    ", ".join(printable(path) for path in unreadable[:5]))
    if reclaimer.loose:
        log.warning("%d objects the payload left in %s are setuid, setgid or writable by "
                    "every account, and are its user's, which pilotid cannot change; first: "
                    "%s", len(reclaimer.loose), grant.workdir,
                    ", ".join(printable(path) for path in reclaimer.loose[:5]))
    if failures:
        raise SandboxError(f"could not give back {len(failures)} paths of {grant.workdir} "
                           f"after the payload; first: {printable(failures[0])}")
    if grant.journal is not None:
        grant.journal.remove()
    log.info("reclaimed %s from %s", grant.workdir, grant.account.name)


class _Reclaimer:
    """Walks the work directory after the payload the way the grant did (directory
    descriptors, one ``fstatat`` per entry, ``O_PATH | O_NOFOLLOW`` for what it changes):
    puts back what the grant changed and takes the target's entries from what the pilot
    made since.  A file the grant did not change is only opened when its ACL, read through
    its directory's descriptor (``/proc/self/fd/<dir>/<name>``, not following a symlink),
    names the target."""

    def __init__(self, grant: SandboxGrant) -> None:
        self.grant = grant
        self.pending = {(c.device, c.inode): c for c in grant.changes}
        self.failures: List[str] = []
        self.unreadable: List[str] = []
        self.loose: List[str] = []  # the payload's, setuid, setgid or writable by all
        self.settled: Set[Tuple[int, int]] = set()  # directories with no entry changed

    def walk(self) -> None:
        top = self._enter(".", str(self.grant.workdir), None)
        if top is None:
            return
        try:
            _depth_first(top, self._scan, self._enter, self._lost)
        finally:
            os.close(top)

    def _lost(self, relpath: str) -> None:
        self.failures.append(f"{relpath}: moved while the reclaim walked it (what is below "
                             "it was not walked)")

    def _enter(self, relpath: str, name: str, dirfd: Optional[int]) -> Optional[int]:
        """Give back one directory (``dirfd`` None: the work directory, ``name`` its path);
        its descriptor to walk it, or None."""
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno in (errno.ENOTDIR, errno.ELOOP):
                if dirfd is None:  # the work directory itself swapped for something else
                    self.failures.append(f"{name}: {error.strerror}")
                return None  # a symlink or a file now: never followed
            self._give_back_at(relpath, name, dirfd, stat.S_ISDIR)  # not listable: not walked
            return None
        try:
            info = os.fstat(fd)
            change = self.pending.get((info.st_dev, info.st_ino))
            if (change is not None and info.st_uid == self.grant.pilot_uid
                    and change.settled_since_grant(info)):
                self.settled.add((info.st_dev, info.st_ino))
            self._give_back(relpath, fd, info)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _scan(self, relpath: str, dirfd: int) -> List[str]:
        """Give back the files of one directory; return its subdirectories."""
        info = os.fstat(dirfd)
        if (info.st_dev, info.st_ino) in self.settled:
            return self._scan_settled(relpath, dirfd, info.st_dev)
        subdirs = []
        pilot, pending, lstat = self.grant.pilot_uid, self.pending, os.lstat
        strip = self.grant.mode == ACL
        names, prefix = _entries(relpath, dirfd)
        here = f"/proc/self/fd/{dirfd}/"
        for name in names:
            try:
                info = lstat(name, dir_fd=dirfd)
            except FileNotFoundError:
                continue
            except PermissionError:
                # not searchable by the pilot: nothing in it was changed (the grant did not
                # walk it); one of the payload's is reported, the pilot's own is its own
                if os.fstat(dirfd).st_uid != pilot:
                    self.unreadable.append(relpath)
                break
            except OSError as error:
                self.failures.append(f"{prefix}{name}: {error.strerror}")
                break
            kind = info.st_mode & 0o170000
            if kind == stat.S_IFDIR:
                subdirs.append(name)
            elif kind != stat.S_IFREG:
                continue
            elif info.st_uid != pilot:
                if info.st_mode & _LOOSE_FILE:
                    self.loose.append(prefix + name)
                if not os.access(name, os.R_OK, dir_fd=dirfd):
                    self.unreadable.append(prefix + name)
            elif (info.st_dev, info.st_ino) in pending or (strip and self._names_target(
                    here + name)):
                self._give_back_at(prefix + name, name, dirfd, stat.S_ISREG)
        return subdirs

    def _scan_settled(self, relpath: str, dirfd: int, device: int) -> List[str]:
        """``_scan`` for a directory of the pilot's with no entry created, removed or renamed
        since the grant: its files are the ones the grant saw, none new (no inherited
        entry to take off), none the payload's.  Only those the grant changed are given
        back, found by the inode the directory lists; no file is looked at otherwise."""
        subdirs = []
        pending = self.pending
        prefix = "" if relpath == "." else relpath + "/"
        with os.scandir(dirfd) as entries:
            for entry in entries:
                name = entry.name
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(name)
                elif (device, entry.inode()) in pending:
                    self._give_back_at(prefix + name, name, dirfd, stat.S_ISREG)
        return subdirs

    def _names_target(self, path: str) -> bool:
        """Does the access ACL of ``path`` (read without following a symlink) have an
        entry for the target?  True too when it cannot be read: look closer then."""
        try:
            blob = os.getxattr(path, _ACCESS, follow_symlinks=False)
        except OSError as error:
            return not (error.errno in (errno.ENODATA, errno.ENOENT)
                        or error.errno in _NOT_SUPPORTED)
        try:
            return _Acl.from_xattr(blob).get(_USER, self.grant.account.uid) is not None
        except ValueError:
            return True

    def _give_back_at(self, relpath: str, name: str, dirfd: Optional[int],
                      is_kind: Callable[[int], bool]) -> None:
        """Open ``name`` in ``dirfd`` (``O_PATH | O_NOFOLLOW``) and give it back if it is
        still of the kind ``is_kind`` tells (a directory, a regular file)."""
        try:
            fd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            return
        except OSError as error:
            self.failures.append(f"{relpath}: {error.strerror}")
            return
        try:
            info = os.fstat(fd)
            if is_kind(info.st_mode):
                self._give_back(relpath, _fd_path(fd), info)
        finally:
            os.close(fd)

    def _give_back(self, relpath: str, handle: Union[int, str], info: os.stat_result) -> None:
        """Restore one object the grant changed, or strip the target's entries from one
        the pilot made since; note one of the payload's that the pilot cannot use."""
        try:
            if info.st_uid != self.grant.pilot_uid:
                if self.grant.mode == ACL and info.st_mode & stat.S_IWOTH:
                    self.loose.append(relpath)  # in world mode, the pilot's way to clean up
                if not _pilot_can_use(handle, info):
                    self.unreadable.append(relpath)
                return
            change = self.pending.pop((info.st_dev, info.st_ino), None)
            if change is not None:
                _restore(handle, info, change, self.grant.mode)
            elif self.grant.mode == ACL:
                _strip_user(handle, info, self.grant.account.uid)
        except OSError as error:
            self.failures.append(f"{relpath}: {error.strerror}")


def _restore(handle: Union[int, str], info: os.stat_result, change: PathChange,
             mode: str) -> None:
    """Put back the mode and ACLs of one object; ``handle`` as for ``_Builder._open_dir``."""
    if mode == ACL:
        saved = [(_ACCESS, change.access_acl)]
        if stat.S_ISDIR(info.st_mode):
            saved.append((_DEFAULT, change.default_acl))
        for name, blob in saved:
            if blob is not None:
                os.setxattr(handle, name, blob)
            elif _read_raw(handle, name) is not None:
                os.removexattr(handle, name)
    os.chmod(handle, change.mode)


def _strip_user(handle: Union[int, str], info: os.stat_result, uid: int) -> None:
    """Drop ``uid``'s named entries, which objects the pilot made after the grant inherit."""
    names = (_ACCESS, _DEFAULT) if stat.S_ISDIR(info.st_mode) else (_ACCESS,)
    for name in names:
        acl = _read_acl(handle, name)
        if acl is not None and acl.drop_user(uid):
            if name == _ACCESS:  # a narrower mask, never a wider one
                old = acl.get(_MASK)
                acl.recompute_mask()
                if old is not None and acl.get(_MASK) is not None:
                    acl.entries[(_MASK, _NO_ID)] &= old
            os.setxattr(handle, name, acl.to_xattr())


def _pilot_can_use(handle: Union[int, str], info: os.stat_result) -> bool:
    """May the pilot read this file (enter, list and empty this directory)?"""
    want = os.R_OK | os.W_OK | os.X_OK if stat.S_ISDIR(info.st_mode) else os.R_OK
    return os.access(_fd_path(handle) if isinstance(handle, int) else handle, want)
