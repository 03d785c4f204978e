"""Ending every process of the target account after a job: stop them all, then kill them.

A payload that double-forks into a session of its own and re-forks every few milliseconds
is out of reach of any list of PIDs: each process is gone, replaced by its child, before a
signal sent from the list arrives.  As the target, ``kill(2)`` with pid -1 reaches every
process of that account but the caller, whatever its session, group or parent, in one
system call; the kernel makes a fork under way start again, so the child is reached too.
``sweep_account`` sends SIGSTOP that way, through the switch, until a look at ``/proc``
finds no process of the account that is new or still running; a stopped process cannot
fork, so the SIGKILL that follows leaves nothing.

It ends *every* process of the account on the node.  That is right where the account is
leased to one job at a time, wrong where concurrent jobs share it (a pool account's lease
is sticky per DN: two jobs of one user on one node are one account): the queue chooses
with ``leftover_processes``, and only a session that switches identity ever sweeps (with
no switch the account is the pilot's own).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Callable, Dict

from pilotid.settings import Setting, choice

log = logging.getLogger(__name__)

#: ``leftover_processes``: the payload's processes only, or every process of the account.
JOB, ACCOUNT = "job", "account"
LEFTOVER_PROCESSES = Setting(
    "leftover_processes", choice(JOB, ACCOUNT), JOB,
    "What the pilot kills after the payload: ``job``, the processes it finds as the "
    "payload's (its process groups, the orphans the pilot adopted; a process that keeps "
    "re-forking may escape); ``account``, every process of the target account on the node, "
    "stopped then killed through the switch, which nothing escapes.  ``account`` is for "
    "accounts leased to one job at a time: it also ends the processes of any other job "
    "running as that account meanwhile.  See :doc:`switchers`.")

#: SIGSTOP passes before the sweep gives up waiting for the account to hold still.
STOP_PASSES = 50
#: Seconds the killed processes get to disappear from /proc.
KILL_SETTLE = 5.0
#: States of a process that cannot fork: stopped, traced, dead.
_STILL = frozenset("TtZX")


def account_processes(uid: int) -> Dict[int, str]:
    """Every live process whose real uid is ``uid``: pid -> state letter (``'T'``: stopped);
    zombies are left out, as are processes gone meanwhile or hidden from this one."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        state = uid_of = None
        try:
            with open(f"/proc/{entry}/status", "rb") as status:
                for line in status:
                    if line.startswith(b"State:"):
                        state = line.split()[1].decode()
                    elif line.startswith(b"Uid:"):
                        uid_of = int(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            continue
        if uid_of == uid and state is not None and state not in ("Z", "X"):
            found[int(entry)] = state
    return found


def sweep_account(uid: int, send: Callable[[int], None], owner: str) -> bool:
    """Stop every process of the account ``uid``, then kill them all; True when none is left.

    ``send(signum)`` delivers ``signum`` to every process of the account, as the account
    (``SwitcherBase.signal_account``); it raises ``PilotidError`` when the switch refuses.
    SIGSTOP is sent again while a pass finds a process it had not seen or one still
    running, at most ``STOP_PASSES`` times; then SIGKILL, and ``KILL_SETTLE`` seconds for
    the account's processes to be gone.  ``owner`` names the account in the log.
    """
    seen: set = set()
    passes = 0
    while passes < STOP_PASSES:
        passes += 1
        send(signal.SIGSTOP)
        found = account_processes(uid)
        running = [pid for pid, state in found.items() if state not in _STILL]
        new = found.keys() - seen
        seen.update(found)
        if not running and not new:
            break
    else:
        log.error("processes of %s were still forking after %d SIGSTOP passes: killing "
                  "them anyway", owner, STOP_PASSES)
    if seen:
        log.warning("stopped %d processes of %s in %d passes: killing them", len(seen), owner,
                    passes)
    send(signal.SIGKILL)
    deadline = time.monotonic() + KILL_SETTLE
    left = account_processes(uid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = account_processes(uid)
    if left:
        log.error("processes of %s are still there after SIGKILL to all of them: %s", owner,
                  " ".join(map(str, sorted(left))))
    return not left
