"""Parent directories shared by concurrent jobs (issue 13 item 4): two pilots, many jobs.

Each pilot is a process of its own that grants and reclaims work directories under one
shared 0700 parent, over and over, for made-up target uids; getfacl (the real tool) says
what the parent's ACL holds.  Neither pilot may lose its target's entry while its job
runs, and none may stay once every job is over.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
from pathlib import Path
from typing import List

from pilotid.identity.accounts import Account
from pilotid.workdir import grant_target_access, reclaim
from pilotid.workdir.journal import GrantJournal

ROUNDS = 60


def getfacl(path: Path) -> str:
    return subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True, text=True,
                          check=True).stdout


def _pilot(shared: Path, state: Path, name: str, targets: List[Account], losses) -> None:
    """One pilot: ``ROUNDS`` jobs in ``shared/<name>-<n>``, the targets in turn, each with
    its journal in ``state``; counts the jobs during which the parent lacked the job's
    target entry."""
    for number in range(ROUNDS):
        target = targets[number % len(targets)]
        work = shared / f"{name}-{number}"
        work.mkdir(mode=0o700)
        journal = GrantJournal.create(state, work, target, "acl", os.geteuid(), shared)
        grant = grant_target_access(work, target, work_root=shared, journal=journal)
        entry = f"user:{target.uid}:--x"
        if entry not in getfacl(shared):
            losses.value += 1
        if entry not in getfacl(shared):  # the other pilot's reclaim in between
            losses.value += 1
        reclaim(grant)


def _two_pilots(area: Path, first: List[Account], second: List[Account]) -> int:
    shared = area / "pilot-home"
    shared.mkdir(mode=0o700)
    state = area / "state"
    before = getfacl(shared)
    context = multiprocessing.get_context("fork")
    losses = [context.Value("i", 0), context.Value("i", 0)]
    pilots = [context.Process(target=_pilot, args=(shared, state, "a", first, losses[0])),
              context.Process(target=_pilot, args=(shared, state, "b", second, losses[1]))]
    for pilot in pilots:
        pilot.start()
    for pilot in pilots:
        pilot.join(timeout=300)
        assert pilot.exitcode == 0
    assert getfacl(shared) == before, "a stale entry stayed on the shared parent"
    assert not list(state.rglob("*.*")), "a journal or a hold outlived its job"
    return losses[0].value + losses[1].value


ALICE = Account("pilotid-unit-alice", 54401, 54401)
BOB = Account("pilotid-unit-bob", 54402, 54402)


def test_two_pilots_with_other_targets_neither_lose_nor_leave_parent_entries(area):
    assert _two_pilots(area, [ALICE], [BOB]) == 0


def test_two_pilots_with_the_same_target_neither_lose_nor_leave_parent_entries(area):
    """Both jobs need ``u:alice:x`` on the parent: the first to end must not take it."""
    assert _two_pilots(area, [ALICE, BOB], [ALICE, BOB]) == 0
