"""The depth-first walk over directory descriptors that the grant and the reclaim share,
and GNU ``find``, which lists a big tree alongside.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import stat
import subprocess
from typing import Callable, List, Optional, Sequence, Tuple

log = logging.getLogger(__name__)

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _entries(relpath: str, dirfd: int) -> Tuple[List[str], str]:
    """The names in one directory of the walk and the prefix that makes them paths
    relative to the work directory."""
    return os.listdir(dirfd), "" if relpath == "." else relpath + "/"


#: Levels from the top whose descriptors and lists of subdirectories the walk keeps while
#: below them; a deeper level keeps its device, inode and where to go on, and the walk
#: comes back to it through ``..`` (checked against that device and inode).
_KEPT_LEVELS = 8
#: Characters of subdirectory names the deeper levels keep, all together; past that, a level
#: lists its directory again when the walk comes back to it.
_KEPT_NAMES = 1 << 16
#: Longest path shown (logs, errors, ``PathChange.path``) before ``/…/`` and the last name.
_SHOWN_MAX = 1024


class _Level:
    """One directory on the way down: its identity, its descriptor (kept levels only) and
    the subdirectories still to walk (``None`` when dropped: listed again on the way back)."""

    __slots__ = ("device", "inode", "fd", "subdirs", "next", "last", "counted")

    def __init__(self, info: os.stat_result, fd: Optional[int], subdirs: List[str]) -> None:
        self.device, self.inode = info.st_dev, info.st_ino
        self.fd = fd
        self.subdirs: Optional[List[str]] = sorted(subdirs)
        self.next = 0  # index in subdirs of the next one to walk
        self.last = -1  # inode of the subdirectory entered last
        self.counted = 0  # characters of subdirs counted against _KEPT_NAMES


class _ShownPath:
    """The path of the walk's directory relative to the top, as shown: the components that
    fit in ``_SHOWN_MAX`` characters, then only a count of the levels below."""

    def __init__(self) -> None:
        self.joined = ""
        self.sizes: List[int] = []
        self.hidden = 0

    def child(self, name: str) -> str:
        if not self.hidden and len(self.joined) + 1 + len(name) <= _SHOWN_MAX:
            return f"{self.joined}/{name}" if self.joined else name
        return f"{self.joined}/…/{name}"

    def down(self, name: str) -> None:
        if not self.hidden and len(self.joined) + 1 + len(name) <= _SHOWN_MAX:
            self.sizes.append(len(self.joined))
            self.joined = self.child(name)
        else:
            self.hidden += 1

    def up(self) -> None:
        if self.hidden:
            self.hidden -= 1
        else:
            self.joined = self.joined[:self.sizes.pop()]


def _shown_path(components: Sequence[str]) -> str:
    """What the walk shows for the path of ``components`` (``_ShownPath``)."""
    shown = _ShownPath()
    for name in components[:-1]:
        shown.down(name)
    return shown.child(components[-1])


def _depth_first(top: int, scan: Callable[[str, int], List[str]],
                 enter: Callable[[str, str, int], Optional[int]],
                 lost: Callable[[str], None], stop: Callable[[], bool] = lambda: False) -> bool:
    """Walk the directories below ``top`` (an open directory, left open), depth first:
    ``scan(relpath, dirfd)`` handles one directory's entries and names its subdirectories,
    ``enter(relpath, name, parent_fd)`` opens one of them (None: not walked).  False when
    ``stop()`` ended the walk early.

    Bounded whatever the tree: at most ``_KEPT_LEVELS`` + 2 descriptors open, per level a
    few numbers, and names only up to ``_KEPT_NAMES`` characters.  Below the kept levels
    the walk goes back up through ``..``, and only to the directory it came down from
    (device and inode): where ``..`` leads elsewhere (a directory moved meanwhile),
    ``lost(relpath)`` is told and the walk goes on from the deepest kept level.  Every
    descriptor opened here is closed here.
    """
    walk = _Walk(top, scan, enter, lost)
    try:
        while walk.levels:
            if stop():
                return False
            walk.step()
        return True
    finally:
        walk.close()


class _Walk:
    """The state of one ``_depth_first`` walk: the levels down to the directory ``here``."""

    def __init__(self, top: int, scan: Callable[[str, int], List[str]],
                 enter: Callable[[str, str, int], Optional[int]],
                 lost: Callable[[str], None]) -> None:
        self.top, self.scan, self.enter, self.lost = top, scan, enter, lost
        self.shown = _ShownPath()
        self.levels = [_Level(os.fstat(top), top, scan(".", top))]
        self.here = top
        self.kept_names = 0

    def step(self) -> None:
        """Enter the next subdirectory of the deepest level, or leave that level."""
        level = self.levels[-1]
        name = self._next_subdir(level)
        if name is None:
            self._up()
            return
        relpath = self.shown.child(name)
        child = self.enter(relpath, name, self.here)
        if child is None:
            return
        try:
            info = os.fstat(child)
        except BaseException:
            os.close(child)
            raise
        level.last = info.st_ino
        if len(self.levels) > _KEPT_LEVELS:  # not kept: found again through ".."
            os.close(self.here)
            self._keep_or_drop(level)
        self.here = child
        self.shown.down(name)
        kept = child if len(self.levels) < _KEPT_LEVELS else None
        self.levels.append(_Level(info, kept, []))
        self.levels[-1].subdirs = sorted(self.scan(relpath, child))

    def _keep_or_drop(self, level: _Level) -> None:
        assert level.subdirs is not None
        size = sum(map(len, level.subdirs[level.next:]))
        if self.kept_names + size > _KEPT_NAMES:
            level.subdirs = None
        else:
            level.counted = size
            self.kept_names += size

    def _next_subdir(self, level: _Level) -> Optional[str]:
        if level.subdirs is None:  # listed again, on from the one entered last
            found = sorted(_subdirs(self.here))
            names = [name for name, _ in found]
            inodes = [inode for _, inode in found]
            if level.last in inodes:
                level.next = inodes.index(level.last) + 1
            level.subdirs = names
        if level.next >= len(level.subdirs):
            return None
        level.next += 1
        return level.subdirs[level.next - 1]

    def _up(self) -> None:
        """Leave the deepest level for its parent: the kept descriptor, or ``..`` if it
        still leads to the directory the walk came down from."""
        self.levels.pop()
        if not self.levels:
            return
        child, self.here = self.here, -1
        parent = self.levels[-1]
        self.shown.up()
        self.kept_names -= parent.counted
        parent.counted = 0
        if parent.fd is not None:
            os.close(child)
            self.here = parent.fd
            return
        try:
            fd = os.open("..", _DIR_FLAGS, dir_fd=child)
        finally:
            os.close(child)
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) == (parent.device, parent.inode):
            self.here = fd
            return
        os.close(fd)
        self.lost(self.shown.joined + ("/…" if self.shown.hidden else ""))
        while self.levels[-1].fd is None:
            self.kept_names -= self.levels.pop().counted
            self.shown.up()
        current = self.levels[-1]
        self.kept_names -= current.counted
        current.counted = 0
        assert current.fd is not None  # the top's, at least
        self.here = current.fd

    def close(self) -> None:
        kept = {level.fd for level in self.levels}
        for level in self.levels[1:]:
            if level.fd is not None:
                os.close(level.fd)
        if self.here not in kept and self.here not in (-1, self.top):
            os.close(self.here)


def _subdirs(dirfd: int) -> List[Tuple[str, int]]:
    """(name, inode) of the subdirectories of a directory below the top, listed again;
    what cannot be listed now is not walked."""
    found = []
    try:
        for name in os.listdir(dirfd):
            info = os.lstat(name, dir_fd=dirfd)
            if stat.S_ISDIR(info.st_mode):
                found.append((name, info.st_ino))
    except OSError:
        pass
    return found


@functools.lru_cache(maxsize=None)
def _gnu_find() -> Optional[str]:
    """The path of GNU ``find`` (in /usr/bin or /bin), or None; asked once per process."""
    path = shutil.which("find", path="/usr/bin:/bin")
    if path is None:
        return None
    try:
        version = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=10, env={"LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("cannot run %s --version (%s): walking trees in Python", path, error)
        return None
    if version.returncode != 0 or b"GNU findutils" not in version.stdout.split(b"\n")[0]:
        log.debug("%s is not GNU find: walking trees in Python", path)
        return None
    return path


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"
