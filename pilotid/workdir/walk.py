"""The depth-first walk over directory descriptors that the grant and the reclaim share,
and GNU ``find``, which lists a big tree alongside.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
from typing import Callable, List, Optional, Tuple

log = logging.getLogger(__name__)

PRIVATE_DIR_NAME = ".pilotid"
"""The pilot's private directory inside the work directory: never opened to the target."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _entries(relpath: str, dirfd: int) -> Tuple[List[str], str]:
    """The names in one directory of the walk (never the pilot's private directory at the
    top) and the prefix that makes them paths relative to the work directory."""
    names = os.listdir(dirfd)
    if relpath != ".":
        return names, relpath + "/"
    if PRIVATE_DIR_NAME in names:
        names.remove(PRIVATE_DIR_NAME)
    return names, ""


def _depth_first(top: int, scan: Callable[[str, int], List[str]],
                 enter: Callable[[str, str, int], Optional[int]],
                 stop: Callable[[], bool] = lambda: False) -> bool:
    """Walk the directories below ``top`` (an open directory, left open), depth first:
    ``scan(relpath, dirfd)`` handles one directory's entries and names its subdirectories,
    ``enter(relpath, name, parent_fd)`` opens one of them (None: not walked).  False when
    ``stop()`` ended the walk early.  Every descriptor opened here is closed here."""
    stack = [(".", top, iter(scan(".", top)))]
    try:
        while stack:
            if stop():
                return False
            relpath, dirfd, subdirs = stack[-1]
            name = next(subdirs, None)
            if name is None:
                stack.pop()
                if dirfd != top:
                    os.close(dirfd)
                continue
            child_path = name if relpath == "." else f"{relpath}/{name}"
            child = enter(child_path, name, dirfd)
            if child is not None:
                stack.append((child_path, child, iter(scan(child_path, child))))
    finally:
        for _, fd, _ in stack[1:]:
            os.close(fd)
    return True


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
