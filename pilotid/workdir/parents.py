"""The directories between the work root and the work directory: ``u:<target>:x`` there,
under a lock, counted by the jobs that rely on it.

Nothing above the queue's ``work_root`` (the work directory itself where the queue
declares none) is ever changed: a target that cannot traverse a directory up there is a
``WorkRootUnreachableError`` telling the site to make the work root traversable.  Between
the work root (included) and the work directory, a directory of the pilot's the target
cannot traverse gets ``u:<target>:x``, never ``o+x``.

Concurrent jobs share these directories.  Every read-modify-write of one's ACL happens
under ``flock`` on that directory's own descriptor (which works whatever the uid of who
holds it), and each job that relies on the entry says so with a hold file in the state
directory (``<state_dir>/holds/<device>-<inode>-<uid>.<journal>``, see ``journal``),
made and removed under the same lock.  A job finding the entry held by another job joins
it (keeping what the directory had before the first); a job that ends takes the entry
away only when no other job holds it.  Without a journal (a grant made outside
``pilotid run``) nothing is counted.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
from pathlib import Path
from typing import Collection, Iterator, List, Optional

from pilotid.errors import SandboxError, WorkdirError, WorkRootUnreachableError
from pilotid.identity.accounts import Account
from pilotid.workdir.acl import (
    _ACCESS,
    _GROUP,
    _GROUP_OBJ,
    _USER,
    _X,
    _Acl,
    _may,
    _read_acl,
    acl_supported,
)
from pilotid.workdir.changes import WORLD, ParentChange
from pilotid.workdir.journal import GrantJournal, private_directory

log = logging.getLogger(__name__)

_LOCK_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def checked_work_root(workdir: Path, work_root: Optional[Path]) -> Path:
    """The work root of ``workdir`` (resolved): ``work_root``, or the work directory itself
    where it is None.  ``WorkdirError`` where the work directory is not inside it."""
    if work_root is None:
        return workdir
    try:
        root = Path(work_root).resolve(strict=True)
    except OSError as error:
        raise WorkdirError(f"the queue's work_root {work_root} cannot be used: "
                           f"{error.strerror}") from None
    if root != workdir and root not in workdir.parents:
        raise WorkdirError(f"work directory {workdir} is outside the queue's work_root "
                           f"{root}: make work directories under it")
    return root


def check_work_root_reachable(work_root: Path, account: Account) -> None:
    """Raise ``WorkRootUnreachableError`` where ``account`` cannot traverse a directory
    above ``work_root`` (resolved, from ``checked_work_root``): the rule of the grant,
    asked before any job (``pilotid probe``).  ``SandboxError`` for one it cannot check."""
    try:
        groups = os.getgrouplist(account.name, account.gid)
    except OSError:
        groups = [account.gid]
    for parent in reversed(work_root.parents):
        _check_reachable(parent, account, groups, work_root)


def open_parents(workdir: Path, account: Account, groups: Collection[int], pilot_uid: int,
                 mode: str, work_root: Path,
                 journal: Optional[GrantJournal]) -> List[ParentChange]:
    """Let ``account`` traverse every parent of ``workdir`` (resolved) from ``work_root``
    (from ``checked_work_root``) down; the parents the job now relies on, top first.

    ``WorkRootUnreachableError`` for a directory above the work root that the target
    cannot traverse; ``SandboxError`` for one below it that is not the pilot's, or on a
    file system without ACLs (or in world mode).  ``journal``, if any, has each parent the
    job holds written down before it is changed.
    """
    held: List[ParentChange] = []
    for parent in reversed(workdir.parents):
        if parent in work_root.parents:
            _check_reachable(parent, account, groups, work_root)
            continue
        try:
            info = os.stat(parent)
        except OSError as error:
            raise SandboxError(f"cannot check {parent} (a parent of the work directory): "
                               f"{error.strerror}") from None
        if info.st_uid != pilot_uid:  # never changed: the target passes, or the site fixes it
            if not _may(info, _read_acl(str(parent), _ACCESS), account.uid, groups, _X):
                raise SandboxError(
                    f"{parent} (a parent of the work directory) is not traversable by "
                    f"{account.name} and belongs to uid {info.st_uid}, not the pilot: make "
                    f"it traversable (setfacl -m u:{account.name}:x) or use a work "
                    "directory elsewhere")
            continue
        with _locked(parent) as fd:
            change = _hold(parent, fd, account, groups, mode, journal)
        if change is not None:
            held.append(change)
    return held


def close_parents(parents: Collection[ParentChange], uid: int,
                  journal: Optional[GrantJournal]) -> List[str]:
    """Release the parents a job held (deepest first): each loses the target's entry (or
    gets back what it had) unless another job still holds it.  What failed, as messages."""
    failures = []
    for change in reversed(list(parents)):
        try:
            with _locked(change.path) as fd:
                _release(change, fd, uid, journal)
        except OSError as error:
            failures.append(f"{change.path}: {error.strerror}")
    return failures


def _check_reachable(parent: Path, account: Account, groups: Collection[int],
                     work_root: Path) -> None:
    try:
        info = os.stat(parent)
        acl = _read_acl(str(parent), _ACCESS)
    except OSError as error:
        raise SandboxError(f"cannot check {parent} (above the work root {work_root}): "
                           f"{error.strerror}") from None
    if not _may(info, acl, account.uid, groups, _X):
        raise WorkRootUnreachableError(
            f"{account.name} cannot traverse {parent}, above the work root {work_root}, "
            "and pilotid changes nothing above it: make the work root reachable for the job "
            f"accounts (chmod o+x {parent}, or a group of theirs with x), or declare the "
            "queue's work_root higher, at a directory of the pilot's own")


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[int]:
    """``directory`` open (not following a symlink) and locked (``flock``) for this job."""
    fd = os.open(directory, _LOCK_FLAGS)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _hold(parent: Path, fd: int, account: Account, groups: Collection[int], mode: str,
          journal: Optional[GrantJournal]) -> Optional[ParentChange]:
    """Under the lock: join the jobs holding ``u:<target>:x`` on ``parent``, or add it."""
    info = os.fstat(fd)
    acl = _read_acl(fd, _ACCESS)
    holders = _holders(journal, info, account.uid)
    passes = _may(info, acl, account.uid, groups, _X)
    if passes and not holders:
        return None  # the site's doing, or the pilot's: not this job's to take back
    if not passes and (mode == WORLD or not acl_supported(parent)):
        raise SandboxError(
            f"{parent} (a parent of the work directory) is not traversable by "
            f"{account.name} and its file system has no ACLs; pilotid never makes it o+x: "
            "make it traversable or use a work directory elsewhere")
    if holders:
        change = ParentChange(parent, holders[0].previous, holders[0].had_acl, info.st_dev,
                              info.st_ino)
    else:
        previous = None if acl is None else acl.get(_USER, account.uid)
        change = ParentChange(parent, previous, acl is not None, info.st_dev, info.st_ino)
    if journal is not None:
        journal.record_parent(change)
        _write_hold(journal, change, account.uid)
    if not passes:
        updated = acl if acl is not None else _Acl.from_mode(info.st_mode)
        updated.add_user(account.uid, _X)
        updated.recompute_mask()
        try:
            os.setxattr(fd, _ACCESS, updated.to_xattr())
        except OSError as error:
            raise SandboxError(f"cannot set an ACL on {parent}: {error.strerror}") from None
    return change


def _release(change: ParentChange, fd: int, uid: int,
             journal: Optional[GrantJournal]) -> None:
    """Under the lock: give the target's entry back unless another job holds it."""
    info = os.fstat(fd)
    if (change.device, change.inode) not in ((0, 0), (info.st_dev, info.st_ino)):
        raise OSError(0, "no longer the directory the job relied on: left alone")
    if not _holders(journal, info, uid):
        _restore(fd, change, uid)
    if journal is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_hold_path(journal, info.st_dev, info.st_ino, uid))
        journal.record_released(change)


def _restore(fd: int, change: ParentChange, uid: int) -> None:
    acl = _read_acl(fd, _ACCESS)
    if acl is None:
        return
    if change.previous is None:
        acl.drop_user(uid)
    else:
        acl.entries[(_USER, uid)] = change.previous
    acl.recompute_mask()
    if not change.had_acl and not acl.named(_USER) and not acl.named(_GROUP):
        group = acl.get(_GROUP_OBJ) or 0
        os.removexattr(fd, _ACCESS)
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        os.chmod(fd, (mode & ~0o070) | (group << 3))
    else:
        os.setxattr(fd, _ACCESS, acl.to_xattr())


def _holds_dir(journal: GrantJournal) -> Path:
    return private_directory(journal.state_dir / "holds")


def _hold_path(journal: GrantJournal, device: int, inode: int, uid: int) -> Path:
    return _holds_dir(journal) / f"{device}-{inode}-{uid}.{journal.name}"


def _holders(journal: Optional[GrantJournal], info: os.stat_result,
             uid: int) -> List[ParentChange]:
    """The other jobs' holds of ``uid``'s entry on the directory ``info`` (what each says
    the directory had before)."""
    if journal is None:
        return []
    prefix = f"{info.st_dev}-{info.st_ino}-{uid}."
    mine = prefix + journal.name
    found = []
    holds = _holds_dir(journal)
    for name in sorted(os.listdir(holds)):
        if not name.startswith(prefix) or name == mine:
            continue
        try:
            with open(holds / name, "rb") as stream:
                saved = json.loads(stream.read())
        except (OSError, ValueError):
            saved = {"previous": None, "had_acl": True}  # held all the same: never remove
        found.append(ParentChange(Path(), saved["previous"], saved["had_acl"]))
    return found


def _write_hold(journal: GrantJournal, change: ParentChange, uid: int) -> None:
    path = _hold_path(journal, change.device, change.inode, uid)
    try:
        fd = os.open(path, _NEW, 0o600)
    except FileExistsError:
        return  # this job holds it already (a second grant of the same job)
    with os.fdopen(fd, "wb") as stream:
        stream.write(json.dumps({"previous": change.previous,
                                 "had_acl": change.had_acl}).encode())

