"""Credential copies the payload renamed within the work directory, removed by identity.

The wrapper stores the user's proxy (and bearer token) copy as the target and writes its
device and inode in its marker before the payload starts (``WrapperMarker.copies``).
After the job, ``remove_copies`` walks the work directory (the descriptor walk of
``pilotid.workdir.walk``: bounded whatever the tree) and removes every file with one of
those identities, each reported with its escaped path; ``copies_in_place`` tells the copies
still where the wrapper stored them, which need no search (the common case: no walk).

The payload, as the target, can rewrite the marker and name any identity: only regular
files that the target owns, found inside the work directory, are ever removed, none that
the payload could not have removed itself.

``remove_links`` is the same search for the hard links the payload made to a copy the pilot
removes itself (sudo's handover directory), stopped once every link is found.  Both unlink
a name only in the directory the walk holds open, never through a path.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Callable, Collection, Iterable, List, Optional, Sequence, Set, Tuple

from pilotid.escaping import printable
from pilotid.workdir.walk import _DIR_FLAGS, _depth_first, _entries, _fd_path

log = logging.getLogger(__name__)

RemoveAsTarget = Callable[[Sequence[Path]], None]


def remove_copies(workdir: Path, copies: Collection[Tuple[int, int]], owner: int,
                  remove_as_target: RemoveAsTarget) -> None:
    """Remove every regular file in ``workdir`` that ``owner`` owns and whose (device,
    inode) is one of ``copies``: unlinked by the pilot where it may write the directory
    (the default ACL gives it that in ACL mode), else with ``remove_as_target`` (the
    session's, run as the target: a sticky directory, a directory the payload closed)."""
    if not copies:
        return
    search = _Search(set(copies), owner, str(workdir), "a credential copy the payload moved")
    if not _search(workdir, search):
        return
    if search.as_target:
        for shown, _ in search.as_target:
            log.warning("removing %s, a credential copy the payload moved, as its owner",
                        printable(shown))
        remove_as_target([path for _, path in search.as_target])
        for _, path in search.as_target:
            if os.path.lexists(path):
                log.warning("cannot remove %s, a credential copy the payload moved",
                            printable(path))


def remove_links(workdir: Path, copy: os.stat_result, kind: str) -> None:
    """Unlink every name in ``workdir`` of the file ``copy`` (the ``kind`` copy, as in
    "proxy copy", just unlinked from its own place): the hard links the payload made to
    it, each reported, so that none outlives the job.  The walk stops once all
    ``st_nlink - 1`` are found; those it does not find, or cannot remove, are reported."""
    what = f"a hard link the payload made to its {kind}"
    search = _Search({(copy.st_dev, copy.st_ino)}, copy.st_uid, str(workdir), what,
                     pending=copy.st_nlink - 1)
    if not _search(workdir, search):
        return
    for shown, _ in search.as_target:
        log.warning("cannot remove %s, %s: the pilot may not write its directory",
                    printable(shown), what)
    if search.pending:
        log.warning("%d hard links to the payload's %s were not found in the work directory "
                    "%s (made outside it, or where the pilot cannot look): not removed",
                    search.pending, kind, printable(workdir))


def _search(workdir: Path, search: _Search) -> bool:
    """Walk ``workdir`` with ``search``; False (reported) when it cannot be opened."""
    try:
        top = os.open(workdir, _DIR_FLAGS)
    except OSError as error:
        log.warning("the work directory %s cannot be searched for the payload's credential "
                    "copies: %s", printable(workdir), error.strerror)
        return False
    try:
        _depth_first(top, search.scan, search.enter, search.lost,
                     lambda: search.pending == 0)
    finally:
        os.close(top)
    return True


def copies_in_place(copies: Collection[Tuple[int, int]],
             places: Iterable[Tuple[Optional[int], str]]) -> Set[Tuple[int, int]]:
    """Those of ``copies`` found where the wrapper stored them, with no other name: once
    the payload's processes are gone, ``remove_copies`` need not look for them.
    ``places`` are (directory descriptor or None, name) pairs."""
    found = set()
    for dirfd, name in places:
        try:
            info = os.lstat(name, dir_fd=dirfd)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode) and info.st_nlink == 1 and \
                (info.st_dev, info.st_ino) in copies:
            found.add((info.st_dev, info.st_ino))
    return found


class _Search:
    """One walk of ``remove_copies`` or ``remove_links``: ``what`` says what a file found
    is, ``pending`` how many names are still to find (None: as many as there are)."""

    def __init__(self, copies: Collection[Tuple[int, int]], owner: int, workdir: str,
                 what: str, pending: Optional[int] = None) -> None:
        self.copies, self.owner, self.workdir = copies, owner, workdir
        self.what, self.pending = what, pending
        self.as_target: List[Tuple[str, Path]] = []  # (as shown, path): not the pilot's to unlink

    def scan(self, relpath: str, dirfd: int) -> List[str]:
        """Remove the copies among one directory's files; return its subdirectories."""
        subdirs = []
        names, prefix = _entries(relpath, dirfd)
        for name in names:
            try:
                info = os.lstat(name, dir_fd=dirfd)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                subdirs.append(name)
            elif (stat.S_ISREG(info.st_mode) and info.st_uid == self.owner
                  and (info.st_dev, info.st_ino) in self.copies):
                self._remove(prefix + name, name, dirfd)
                if self.pending is not None:
                    self.pending -= 1
        return subdirs

    def _remove(self, shown: str, name: str, dirfd: int) -> None:
        try:
            os.unlink(name, dir_fd=dirfd)
        except PermissionError as error:
            where = os.readlink(_fd_path(dirfd))
            if where == self.workdir or where.startswith(self.workdir + "/"):
                self.as_target.append((shown, Path(where, name)))
            else:
                log.warning("cannot remove %s, %s: %s", printable(shown), self.what,
                            error.strerror)
            return
        except OSError as error:
            log.warning("cannot remove %s, %s: %s", printable(shown), self.what,
                        error.strerror)
            return
        log.warning("removed %s, %s", printable(shown), self.what)

    @staticmethod
    def enter(relpath: str, name: str, dirfd: int) -> Optional[int]:
        """A subdirectory's descriptor to walk it; None where it cannot be opened."""
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=dirfd)
        except OSError:
            return None

    def lost(self, relpath: str) -> None:
        log.warning("%s moved while the work directory was searched for credential copies",
                    printable(relpath))
