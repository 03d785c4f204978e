"""The processes of a payload that a switcher must reach to stop it.

The wrapper runs the payload in a process group of its own (``set -m``), and a payload may
make more groups; signalling only the group the switch program leads misses them, and
SIGKILL cannot be relayed.  ``payload_groups`` finds every group to signal, from the
process tree under the switch program (``/proc``, readable by the unprivileged pilot).
A process that left the tree (``setsid`` and a double fork, re-parented to init) is not
found: only a cgroup would keep it.  ``signal_groups`` sends a signal to those groups in
the order that lets the wrapper clean up after a SIGKILL.  ``KILL_COMMAND`` is the program a
switch runs as the target to send a signal the pilot may not send itself, ``kill_argv`` its
command line (``EVERY_PROCESS`` as the target: every process of the account).
"""

from __future__ import annotations

import os
import signal
from typing import Any, Callable, Dict, Iterable, List, Optional, Set

from pilotid.watch import wait_for_exit

#: The ``kill`` program a switch runs as the target to signal the payload's processes:
#: the one place it is named (sudo's and gLExec's terminate, the leftovers, the fakes).
KILL_COMMAND = "/bin/kill" if os.access("/bin/kill", os.X_OK) else "/usr/bin/kill"

#: ``kill``'s target for every process the caller may signal (``kill(2)`` with pid -1): as
#: the target, every process of its account but the ``kill`` itself.
EVERY_PROCESS = "-1"

#: The ``rm`` program a switch runs as the target to remove what the wrapper left when it
#: was killed outright (its egg cache, its own directory in world mode).
REMOVE_COMMAND = "/bin/rm" if os.access("/bin/rm", os.X_OK) else "/usr/bin/rm"

#: Seconds a wrapper gets, once its payload was killed with SIGKILL, to record that and
#: remove its egg cache before it is killed too.
WRAPPER_SETTLE = 2.0


def payload_groups(root_pid: int, uid: int) -> Set[int]:
    """The process groups to signal for the payload under ``root_pid`` (the switch program
    the launcher started in a session of its own: sudo, gLExec, or the wrapper itself).

    Always ``root_pid`` (the group it leads, where the wrapper runs), plus the group of
    every process whose real uid is ``uid`` and that descends from ``root_pid`` (the
    payload's own group, groups the payload made, a wrapper sudo put in a pseudo-terminal of
    its own) or is still in ``root_pid``'s session (an orphan re-parented to init that made
    a group of its own but not a session).  Never 0 or 1.
    """
    children: Dict[int, List[int]] = {}
    group_of: Dict[int, int] = {}
    in_session: List[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            ppid, pgid, sid = int(fields[1]), int(fields[2]), int(fields[3])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(entry))
        group_of[int(entry)] = pgid
        if sid == root_pid and int(entry) != root_pid:
            in_session.append(int(entry))
    groups = {root_pid}
    for pid in in_session:
        if group_of[pid] > 1 and _real_uid(pid) == uid:
            groups.add(group_of[pid])
    pending = list(children.get(root_pid, ()))
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, ()))
        if group_of[pid] > 1 and _real_uid(pid) == uid:
            groups.add(group_of[pid])
    return groups


def signal_groups(process: Any, groups: Set[int], signum: int,
                  send: Callable[[Set[int]], None]) -> None:
    """Signal ``groups`` (``payload_groups(process.pid, ...)``) with ``send``.

    ``process`` is the launch's handle (the switch program, or the wrapper itself with no
    switch); ``send`` delivers ``signum`` to a set of process groups however the switcher
    may (``killpg``, ``kill`` through sudo or gLExec).  SIGKILL, which the wrapper can
    neither catch nor forward, first goes to the groups other than ``process.pid``'s (the
    payload's own, and those it made): the wrapper, still alive, then records the payload's
    end in its marker and removes the egg cache (a killed wrapper cannot).  Only if
    ``process`` has not ended ``WRAPPER_SETTLE`` seconds later does its own group get
    SIGKILL too.  Any other signal goes to every group at once.
    """
    inner = groups - {process.pid}
    if signum == signal.SIGKILL and inner:
        send(inner)
        if wait_for_exit(process, WRAPPER_SETTLE) is not None:
            return
    send(groups)


def kill_argv(signum: int, targets: Iterable[object],
              program: str = KILL_COMMAND) -> List[str]:
    """``[program, "-STOP", "--", *targets]`` for ``signum`` SIGSTOP: the command a switch
    runs as the target; ``targets`` are pids, ``-<pgid>`` or ``EVERY_PROCESS``.

    The signal is one ``-NAME`` word: procps-ng 4.0's kill answers ``-s STOP -- -1`` with
    its usage text and signals nothing.
    """
    return [program, f"-{signal.Signals(signum).name[3:]}", "--", *map(str, targets)]


def _real_uid(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            for line in status:
                if line.startswith(b"Uid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None
