"""What a payload leaves running after it ends, and how the pilot gets rid of it.

A payload may leave processes behind: a ``nohup`` child, or a daemon that double-forked
into a session of its own, which no signal to the payload's process group reaches.  While
the payload runs, the pilot is a *child subreaper* (``PR_SET_CHILD_SUBREAPER``, Linux
3.4+, unprivileged): every orphan among its descendants becomes its child instead of
init's, whatever session or group it made for itself, and whatever account it runs as.
After the payload, the wrapper (which runs as the target, and may therefore signal it)
kills every child of the pilot that runs as its own account
(``WrapperSpec.reaper_pid``); the launcher then checks what is left with
``adopted_processes``, kills what the wrapper could not, and reaps the dead.

Only Linux has child subreapers; elsewhere ``child_subreaper`` does nothing and
``subreaper_supported`` is False.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, List, Optional, Set

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
#: Rounds of looking for and killing what a payload left running (``end_leftovers``).
LEFTOVER_ATTEMPTS = 10
_lock = threading.Lock()
_users = 0
_prctl: Any = None


@dataclass(frozen=True)
class AdoptedProcess:
    """A child of the pilot it did not start: ``pid``, real ``uid``, ``state`` (``'Z'``
    for a zombie, ``'S'``, ``'R'``, ...)."""

    pid: int
    uid: int
    state: str

    @property
    def dead(self) -> bool:
        """True for a zombie, which only its parent (the pilot) can remove by reaping it."""
        return self.state in ("Z", "X")


def _set_subreaper(on: bool) -> bool:
    global _prctl
    if _prctl is None:
        try:
            # the process's own symbols, libc's among them: ctypes.util.find_library("c")
            # would start ldconfig, in every pilotid process
            libc = ctypes.CDLL(None, use_errno=True)
            _prctl = libc.prctl
        except (OSError, AttributeError):
            _prctl = False
    if not _prctl:
        return False
    if _prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) != 0:
        log.debug("prctl(PR_SET_CHILD_SUBREAPER) failed: %s",
                  os.strerror(ctypes.get_errno()))
        return False
    return True


def subreaper_supported() -> bool:
    """True where this process can become a child subreaper (Linux)."""
    with _lock:
        if _users:
            return True
        return _set_subreaper(False)


@contextlib.contextmanager
def child_subreaper() -> Iterator[bool]:
    """Make this process a child subreaper while the block runs (nested and threaded uses
    are counted: the flag is cleared when the last one ends).  Yields whether it is one."""
    global _users
    with _lock:
        active = True if _users else _set_subreaper(True)
        if active:
            _users += 1
    try:
        yield active
    finally:
        if active:
            with _lock:
                _users -= 1
                if not _users:
                    _set_subreaper(False)


def adopted_processes(exclude: "tuple[int, ...]" = ()) -> List[AdoptedProcess]:
    """The children of this process (every thread's) except ``exclude``, with their real
    uid and state; a process gone meanwhile is left out."""
    pids: Set[int] = set()
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return []
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/children") as children:
                pids.update(int(p) for p in children.read().split())
        except (OSError, ValueError):
            continue
    found = []
    for pid in sorted(pids - set(exclude)):
        status = _status(pid)
        if status is not None:
            found.append(AdoptedProcess(pid, *status))
    return found


def _status(pid: int) -> "Optional[tuple[int, str]]":
    state = uid = None
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("State:"):
                    state = line.split()[1]
                elif line.startswith("Uid:"):
                    uid = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        return None
    if state is None or uid is None:
        return None
    return uid, state


def environment_holds(pid: int, name: str, value: str) -> bool:
    """True where process ``pid`` was started with ``name=value`` in its environment
    (readable for processes of this process's own account only)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            entries = environ.read().split(b"\0")
    except OSError:
        return False
    return os.fsencode(f"{name}={value}") in entries


def reap(pids: "list[int]") -> List[int]:
    """Reap those of ``pids`` (children of this process) that have ended; return the
    ones still running."""
    running = []
    for pid in pids:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        except OSError as error:
            if error.errno != errno.EINTR:
                continue
            done = 0
        if done == 0:
            running.append(pid)
    return running


def end_leftovers(process: Any, belongs: Callable[[AdoptedProcess, Set[int]], bool],
                  kill: Callable[[List[int]], None], owner: str) -> None:
    """Kill and reap what the payload of ``process`` (the launch's handle) left running.

    The wrapper has killed its account's orphans already; this finds what it could not (a
    wrapper killed outright) and reaps the dead, which only their new parent, the pilot,
    can do.  ``belongs(process, killed)`` tells the payload's processes among the pilot's
    adopted children (``killed``: the pids killed here so far); ``kill`` sends SIGKILL to a
    list of pids however the switch may; ``owner`` names their account in the log.
    """
    killed: Set[int] = set()

    def payload_processes() -> List[AdoptedProcess]:
        # (a zombie of the pilot's own account could be any subprocess's: only those
        # ``belongs`` accepts are reaped)
        return [p for p in adopted_processes(exclude=(process.pid,)) if belongs(p, killed)]

    found = payload_processes()
    for attempt in range(LEFTOVER_ATTEMPTS):
        alive = [p.pid for p in found if not p.dead]
        reap([p.pid for p in found if p.dead])
        if not alive:
            return
        if attempt == 0:
            log.warning("%d processes of %s outlived the payload (pids %s): killing them",
                        len(alive), owner, " ".join(map(str, alive)))
        killed.update(alive)
        kill(alive)
        time.sleep(0.05 * (attempt + 1))
        found = payload_processes()
    log.error("processes of %s are still running after the payload: %s", owner,
              " ".join(str(p.pid) for p in found))
