"""``_Builder``: makes the changes of one grant, recording each before it is made.

The hot path of a grant (a work directory may hold 100,000 staged-in files): see
``_Builder.open_tree``.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import stat
import subprocess
from pathlib import Path
from typing import Dict, FrozenSet, List, Optional, Sequence, Set, Tuple, Union

from pilotid.errors import SandboxError
from pilotid.escaping import printable
from pilotid.identity.accounts import Account
from pilotid.workdir.acl import (
    _ACCESS,
    _DEFAULT,
    _GROUP_OBJ,
    _MASK,
    _NO_ID,
    _OTHER,
    _R,
    _RWX,
    _USER_OBJ,
    _X,
    _Acl,
    _may,
    _read_raw,
    _write,
)
from pilotid.workdir.changes import WORLD, ParentChange, PathChange, SandboxGrant
from pilotid.workdir.journal import GrantJournal
from pilotid.workdir.parents import open_parents
from pilotid.workdir.walk import (
    _DIR_FLAGS,
    _PATH_FLAGS,
    _depth_first,
    _entries,
    _fd_path,
    _gnu_find,
    _shown_path,
)

log = logging.getLogger(__name__)


#: Entries the grant looks at itself before GNU ``find`` walks the tree alongside
#: (``_Builder._walk_with_find``): starting it costs about as much as looking at 600 entries,
#: and it pays off from some 5,000 entries on.
_FIND_AFTER = 2048
#: Directories ``find``'s listing may hold open at once (its path from the work directory):
#: past that depth the listing is left and the grant walks the tree itself, whose
#: descriptors are bounded whatever the depth.
_FIND_DEPTH = 8


class _TooDeep(Exception):
    """``find`` listed a path deeper than ``_FIND_DEPTH``."""


class _Builder:
    """Makes the changes of one grant, recording each before it is made."""

    def __init__(self, workdir: Path, account: Account, mode: str, pilot_uid: int,
                 keep: Optional[Set[Tuple[int, int]]] = None, work_root: Optional[Path] = None,
                 journal: Optional[GrantJournal] = None) -> None:
        self.workdir = workdir
        self.work_root = work_root
        self.journal = journal
        self.account = account
        self.mode = mode
        self.pilot_uid = pilot_uid
        self.keep = keep or set()
        self.groups = frozenset(_groups_of(account))
        self.changes: List[PathChange] = []
        self.parents: List[ParentChange] = []
        # the ACLs most objects get, by st_mode, made once: objects without an ACL of their own
        self._dir_blobs: Dict[int, bytes] = {}
        self._file_blobs: Dict[int, bytes] = {}
        self._default_blob: Optional[bytes] = None
        self.scanned = 0  # entries listed so far
        self.done: Set[Tuple[int, int]] = set()  # objects changed before the walk restarted

    def grant(self) -> SandboxGrant:
        return SandboxGrant(self.workdir, self.account, self.mode, self.pilot_uid,
                            tuple(self.changes), tuple(self.parents), self.work_root,
                            self.journal)

    def open_parents(self) -> None:
        """Let the target reach the work directory from the work root (``parents``)."""
        root = self.workdir if self.work_root is None else self.work_root
        self.parents.extend(open_parents(self.workdir, self.account, self.groups,
                                         self.pilot_uid, self.mode, root, self.journal))

    def _record(self, change: PathChange) -> None:
        """Keep ``change`` (and write it down in the journal) before it is made."""
        if self.journal is not None:
            self.journal.record_object(change)
        self.changes.append(change)

    def open_tree(self) -> None:
        """Open every directory, and every file the target cannot read yet, top down.

        The hot path of a grant (a work directory may hold 100,000 staged-in files): a file
        costs one ``fstatat`` on its directory's descriptor and is judged by its mode bits;
        only a file those bits keep from the target is opened (``O_PATH | O_NOFOLLOW``)
        and judged again, on what is there now, with its ACL before it is changed.  A
        directory is opened once (``O_RDONLY | O_DIRECTORY | O_NOFOLLOW``), changed through
        that descriptor and then walked.  The mode bits can only err towards a change (an
        ACL that already grants the target), never towards more access; an ACL entry the
        pilot itself set to deny the target a file its mode bits let others read is
        respected, not overridden.

        A tree of more than ``_FIND_AFTER`` entries is walked again by GNU ``find`` in a
        process of its own (``_walk_with_find``); whatever goes wrong there, the walk is
        finished here.  An object changed once is never recorded twice (``done``).
        """
        top = os.open(self.workdir, _DIR_FLAGS)
        try:
            info = os.fstat(top)
            if info.st_uid == self.pilot_uid:
                self._open_dir(".", top, info)
            with_find = self.account.uid != self.pilot_uid  # else the owner's bits decide
            if self._walk(top, _FIND_AFTER if with_find else None):
                return
            self.done = {(change.device, change.inode) for change in self.changes}
            if self._walk_with_find(top):
                return
            self.done = {(change.device, change.inode) for change in self.changes}
            self._walk(top, None)
        finally:
            os.close(top)

    def _walk(self, top: int, budget: Optional[int]) -> bool:
        """Walk the tree below ``top`` (the work directory, changed already) here; False
        when it stopped after ``budget`` entries to let ``find`` walk the rest."""
        def stop() -> bool:
            return budget is not None and self.scanned > budget and _gnu_find() is not None
        return _depth_first(top, self._scan, self._enter, self._lost, stop)

    def _lost(self, relpath: str) -> None:
        raise SandboxError(f"{printable(os.path.join(self.workdir, relpath))} was moved while "
                           "the grant walked it")

    def _walk_with_find(self, top: int) -> bool:
        """Have GNU ``find`` walk the tree in a process of its own (a second core) and list
        the directories, and the pilot's files whose mode bits keep them from the target
        (the test of ``_scan``); open each through ``top`` as ``_walk`` would, while
        ``find`` goes on.  True when ``find`` walked all of it.

        ``find`` only says where to look: every object is opened and judged here, one
        path component after the other with ``O_NOFOLLOW``, so a wrong or tampered
        listing can cost the target access, never give it more.
        """
        argv = self._find_argv()
        try:
            finder = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env={"LC_ALL": "C"})
        except OSError as error:
            log.debug("cannot start %s (%s): walking %s here", argv[0], error.strerror,
                      self.workdir)
            return False
        stack: List[Tuple[bytes, int]] = [(b".", top)]
        complete = False
        try:
            assert finder.stdout is not None
            out = finder.stdout.fileno()
            pending = b""
            while True:
                chunk = os.read(out, 1 << 16)
                if not chunk:
                    break
                found = (pending + chunk).split(b"\0")
                pending = found.pop()
                for entry in found:
                    if entry == b"e":
                        complete = True
                    else:
                        self._found(entry, stack)
        except _TooDeep:
            finder.kill()
            log.debug("find lists paths deeper than %d directories in %s: walking it here",
                      _FIND_DEPTH, self.workdir)
        except BaseException:
            finder.kill()
            raise
        finally:
            for _, fd in stack[1:]:
                os.close(fd)
            finder.wait()
            if finder.stdout is not None:
                finder.stdout.close()
        if complete and finder.returncode == 0:
            return True
        log.debug("find did not walk all of %s (exit status %s): walking it here",
                  self.workdir, finder.returncode)
        return False

    def _find_argv(self) -> List[str]:
        """``find`` printing ``d<path>`` for each directory, ``f<path>`` for each file
        ``_scan`` would open, then ``e`` when the walk is over (a second start point)."""
        in_group: List[str] = ["("]
        for gid in sorted(self.groups):
            in_group += ["-gid", str(gid), "-o"]
        in_group[-1] = ")"
        readable = ["(", "(", *in_group, "-perm", "-040", "(", "!", "-perm", "/111", "-o",
                    "-perm", "-010", ")", ")", "-o", "(", "!", *in_group, "-perm", "-004",
                    "(", "!", "-perm", "/111", "-o", "-perm", "-001", ")", ")", ")"]
        find = _gnu_find()
        assert find is not None
        return [find, ".", "./.",
                "(", "-path", "./.", "-prune", "-printf", "e\\0", ")",
                "-o", "-path", ".",
                "-o", "(", "-type", "d", "-printf", "d%p\\0", ")",
                "-o", "(", "-type", "f", "-uid", str(self.pilot_uid), "!", *readable,
                "-printf", "f%p\\0", ")"]

    def _found(self, entry: bytes, stack: List[Tuple[bytes, int]]) -> None:
        """Open one object ``find`` listed (``d./a/b`` or ``f./a/b``) through the open
        directories of ``stack``: the path from the work directory to it, kept as ``find``
        goes down and up (it lists a directory before what is in it)."""
        path = entry[1:]
        parent, _, name = path.rpartition(b"/")
        if name in (b"", b".", b".."):
            return  # never listed by find: no way up or sideways
        while parent != stack[-1][0]:
            if len(stack) == 1 or parent.startswith(stack[-1][0] + b"/"):
                return  # in a directory that was not entered
            os.close(stack.pop()[1])
        relpath = _shown_path(os.fsdecode(path[2:]).split("/"))
        if entry[:1] == b"d":
            if len(stack) > _FIND_DEPTH:
                raise _TooDeep()
            child = self._enter(relpath, name, stack[-1][1])
            if child is not None:
                stack.append((path, child))
        elif entry[:1] == b"f":
            self._open_file(relpath, name, stack[-1][1])

    def _enter(self, relpath: str, name: Union[str, bytes], dirfd: int) -> Optional[int]:
        """Open (and change) the subdirectory ``name`` of ``dirfd``; its descriptor for
        the walk, or ``None`` when it is not to be walked (the caller closes it)."""
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
        except (FileNotFoundError, NotADirectoryError):
            return None  # gone, or no longer a directory
        except OSError as error:
            if error.errno == errno.ELOOP:
                return None  # a symlink now: never followed
            log.debug("%s not walked: %s", printable(relpath), error.strerror)
            try:  # the pilot cannot list it: still opened to the target, not walked
                fd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
            except OSError:
                return None
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode) and self._is_mine(relpath, info):
                    self._open_dir(relpath, _fd_path(fd), info)
            finally:
                os.close(fd)
            return None
        try:
            info = os.fstat(fd)
            if self._is_mine(relpath, info):
                self._open_dir(relpath, fd, info)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _is_mine(self, relpath: str, info: os.stat_result) -> bool:
        """May the grant change this object: the pilot's, and not one of its credentials?"""
        if info.st_uid != self.pilot_uid:
            log.debug("%s belongs to uid %d: left as it is", printable(relpath), info.st_uid)
            return False
        if (info.st_dev, info.st_ino) in self.keep:
            log.warning("%s in the work directory is one of the pilot's own credentials: "
                        "not opened to %s, but the payload may rename or replace it "
                        "there; keep it outside the work directory",
                        printable(relpath), self.account.name)
            return False
        return True

    def _scan(self, relpath: str, dirfd: int) -> List[str]:
        """Open the files of one directory that need it; return its subdirectories.

        Written for speed: this loop runs once per file of the work directory.  A regular
        file whose mode bits let the target read it (and execute it, where anyone may) is
        left alone after one ``fstatat``: the sets of such ``st_mode`` values are made
        once (``_READABLE_BY_OTHERS``, ``_READABLE_BY_GROUP``).
        """
        subdirs = []
        target, pilot, groups = self.account.uid, self.pilot_uid, self.groups
        by_others, by_group = _READABLE_BY_OTHERS, _READABLE_BY_GROUP
        lstat = os.lstat
        names, prefix = _entries(relpath, dirfd)
        self.scanned += len(names)
        for name in names:
            try:
                info = lstat(name, dir_fd=dirfd)
            except FileNotFoundError:
                continue
            except PermissionError:
                # the pilot may list it but not search it (r without x): like a directory
                # it cannot list, opened to the target (``_enter``) but not walked
                log.debug("%s not walked: the pilot may list it but not search it",
                          printable(relpath))
                return []
            mode = info.st_mode
            if mode in (by_group if info.st_gid in groups else by_others):
                if info.st_uid != target:
                    continue  # the target reads it by its mode bits already
            kind = mode & 0o170000
            if kind == stat.S_IFDIR:
                subdirs.append(name)
            elif kind == stat.S_IFREG:
                if info.st_uid == pilot:
                    self._open_file(prefix + name, name, dirfd)
                else:
                    log.debug("%s belongs to uid %d: left as it is", printable(prefix + name),
                              info.st_uid)
        return subdirs

    def _open_dir(self, relpath: str, handle: Union[int, str], info: os.stat_result) -> None:
        """Open one directory to the target; ``handle``: a descriptor that may be read (or
        the ``/proc/self/fd`` path of an ``O_PATH`` one)."""
        if self.done and (info.st_dev, info.st_ino) in self.done:
            return
        access = _read_raw(handle, _ACCESS)
        default = _read_raw(handle, _DEFAULT)
        mode = stat.S_IMODE(info.st_mode)
        change = PathChange(relpath, info.st_dev, info.st_ino, mode, access, default)
        self._record(change)
        if self.mode == WORLD:
            # sticky: another account may create here, never rename or remove what the
            # pilot or the target made (the wrapper, the payload's outputs)
            self._chmod(handle, mode | 0o077 | stat.S_ISVTX, relpath)
        else:
            if access is None:
                blob = self._dir_blobs.get(info.st_mode)
                if blob is None:
                    blob = self._dir_blobs[info.st_mode] = self._dir_access(None, info.st_mode)
            else:
                blob = self._dir_access(access, info.st_mode)
            self._write(handle, _ACCESS, blob, relpath)
            self._write(handle, _DEFAULT, self._default_acl(default), relpath)
        # for the reclaim: a directory still at this change time had no entry changed since
        self.changes[-1] = dataclasses.replace(change, ctime_ns=os.stat(handle).st_ctime_ns)

    def _dir_access(self, access: Optional[bytes], st_mode: int) -> bytes:
        acl = _Acl.from_xattr(access) if access else _Acl.from_mode(st_mode)
        acl.add_user(self.account.uid, _RWX)
        acl.recompute_mask()
        return acl.to_xattr()

    def _default_acl(self, default: Optional[bytes]) -> bytes:
        if default is None and self._default_blob is not None:
            return self._default_blob
        acl = (_Acl.from_xattr(default) if default
               else _Acl({(_USER_OBJ, _NO_ID): _RWX, (_GROUP_OBJ, _NO_ID): 0,
                          (_OTHER, _NO_ID): 0}))
        acl.add_user(self.account.uid, _RWX)
        if self.pilot_uid != self.account.uid:
            acl.add_user(self.pilot_uid, _RWX)
        acl.entries[(_MASK, _NO_ID)] = _RWX
        blob = acl.to_xattr()
        if default is None:
            self._default_blob = blob
        return blob

    def _open_file(self, relpath: str, name: Union[str, bytes], dirfd: int) -> None:
        """Give the target read (and execute, where anyone may) on the regular file
        ``name`` of ``dirfd`` if it cannot have them yet, judged on what is there now."""
        try:
            fd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            return
        try:
            info = os.fstat(fd)  # what is there now, whatever was there at the fstatat
            if not stat.S_ISREG(info.st_mode) or not self._is_mine(relpath, info):
                return
            if self.done and (info.st_dev, info.st_ino) in self.done:
                return
            path = _fd_path(fd)
            access = _read_raw(path, _ACCESS)
            acl = _Acl.from_xattr(access) if access else None
            want = _needed(info)
            if _may(info, acl, self.account.uid, self.groups, want):
                return
            mode = stat.S_IMODE(info.st_mode)
            self._record(PathChange(relpath, info.st_dev, info.st_ino, mode, access))
            if self.mode == WORLD:
                self._chmod(path, mode | 0o044 | (0o011 if want & _X else 0), relpath)
                return
            if acl is None:
                blob = self._file_blobs.get(info.st_mode)
                if blob is None:
                    acl = _Acl.from_mode(info.st_mode)
                    acl.add_user(self.account.uid, want)
                    acl.recompute_mask()
                    blob = self._file_blobs[info.st_mode] = acl.to_xattr()
            else:
                acl.add_user(self.account.uid, want)
                acl.recompute_mask()
                blob = acl.to_xattr()
            self._write(path, _ACCESS, blob, relpath)
        finally:
            os.close(fd)

    def _write(self, handle: Union[int, str], name: str, blob: bytes, relpath: str) -> None:
        _write(handle, name, blob, relpath, self.workdir)

    def _chmod(self, handle: Union[int, str], mode: int, relpath: str) -> None:
        try:
            os.chmod(handle, mode)
        except OSError as error:
            raise SandboxError(f"cannot chmod {printable(os.path.join(self.workdir, relpath))} to "
                               f"{mode:04o}: {error.strerror}") from None


def _readable_modes(shift: int) -> FrozenSet[int]:
    """``st_mode`` of every regular file whose permission bits at ``shift`` (3: group,
    0: others) give read, and execute too where anyone may execute the file."""
    found = set()
    for perm in range(0o10000):
        want = _R | _X if perm & 0o111 else _R
        if (perm >> shift) & want == want:
            found.add(stat.S_IFREG | perm)
    return frozenset(found)


_READABLE_BY_OTHERS = _readable_modes(0)
_READABLE_BY_GROUP = _readable_modes(3)


def _groups_of(account: Account) -> Sequence[int]:
    try:
        return os.getgrouplist(account.name, account.gid)
    except OSError:
        return [account.gid]


def _needed(info: os.stat_result) -> int:
    """What the target needs on a file: read, and execute where anyone may execute it."""
    return _R | (_X if info.st_mode & 0o111 else 0)
