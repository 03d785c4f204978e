"""The grant journal: written before each change, so that what a pilot that died had
granted is undone by the next pilot (``undo_dead_grants``) or by ``pilotid cleanup``."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from pilotid import cli
from pilotid.errors import ConfigurationError
from pilotid.identity.accounts import Account
from pilotid.workdir import GrantJournal, grant_target_access, reclaim, undo_dead_grants
from pilotid.workdir.changes import PathChange
from pilotid.workdir.journal import read_journal

TARGET = Account("pilotid-unit-target", 54321, 54321)
OTHER_JOB = Account("pilotid-unit-other", 54322, 54322)


def getfacl(path: Path) -> str:
    return subprocess.run(["getfacl", "-Rcpn", str(path)], capture_output=True, text=True,
                          check=True).stdout


def acl_of(path: Path) -> str:
    return subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def layout(area):
    root = area / "pilot-jobs"
    root.mkdir(mode=0o700)
    work = root / "work"
    work.mkdir(mode=0o700)
    (work / "in.txt").write_text("input")
    (work / "in.txt").chmod(0o600)
    (work / "sub").mkdir(mode=0o700)
    return area / "state", root, work


def journal_for(state: Path, root: Path, work: Path, account: Account = TARGET):
    return GrantJournal.create(state, work, account, "acl", os.geteuid(), root)


def die_after_grant(state: Path, root: Path, work: Path) -> None:
    """A pilot that grants and is killed before its reclaim (a child, ``_exit``)."""
    pid = os.fork()
    if pid == 0:
        try:
            grant_target_access(work, TARGET, work_root=root,
                                journal=journal_for(state, root, work))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_the_journal_is_a_private_file_in_a_private_directory(layout):
    state, root, work = layout
    journal = journal_for(state, root, work)
    info = os.lstat(journal.path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    journal.remove()
    assert not journal.path.exists()


def test_a_state_directory_others_may_enter_is_refused(layout):
    state, root, work = layout
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    with pytest.raises(ConfigurationError, match="0700"):
        journal_for(state, root, work)


def test_a_complete_reclaim_removes_the_journal_and_the_holds(layout):
    state, root, work = layout
    grant = grant_target_access(work, TARGET, work_root=root,
                                journal=journal_for(state, root, work))
    assert list((state / "holds").iterdir())
    reclaim(grant)
    assert not list(state.rglob("*.*"))


def test_what_a_dead_pilot_granted_is_undone_by_the_next(layout):
    state, root, work = layout
    before = (getfacl(root), getfacl(work))
    die_after_grant(state, root, work)
    assert f"user:{TARGET.uid}:" in getfacl(root)
    assert undo_dead_grants(state) == [work]
    assert (getfacl(root), getfacl(work)) == before
    assert not list(state.rglob("*.*"))
    assert undo_dead_grants(state) == []


def test_a_running_pilots_journal_is_left_alone(layout):
    state, root, work = layout
    grant = grant_target_access(work, TARGET, work_root=root,
                                journal=journal_for(state, root, work))
    assert undo_dead_grants(state) == []
    assert f"user:{TARGET.uid}:" in getfacl(work)
    reclaim(grant)


def test_undoing_a_dead_job_keeps_the_parent_entry_a_running_job_of_the_same_target_holds(
        layout):
    state, root, work = layout
    die_after_grant(state, root, work)
    second = root / "second"
    second.mkdir(mode=0o700)
    live = grant_target_access(second, TARGET, work_root=root,
                               journal=journal_for(state, root, second))
    undo_dead_grants(state)
    assert f"user:{TARGET.uid}:--x" in acl_of(root)
    reclaim(live)
    assert f"user:{TARGET.uid}" not in acl_of(root)


def test_names_with_any_bytes_and_raw_acls_come_back_from_the_journal(layout):
    state, root, work = layout
    journal = journal_for(state, root, work)
    name = os.fsdecode(b'a\nb\xff"c\\')
    journal.record_object(PathChange(name, 1, 2, 0o600, b"\x02\x00\x00\x00", None))
    grant, header = read_journal(journal.path)
    assert (grant.changes[0].path, grant.changes[0].access_acl) == (name, b"\x02\x00\x00\x00")
    assert header["pid"] == os.getpid() and grant.account == TARGET


# -- pilotid cleanup ---------------------------------------------------------------------


def test_cleanup_gives_back_what_a_dead_pilot_granted_and_says_where(layout, capsys):
    state, root, work = layout
    die_after_grant(state, root, work)
    assert cli.main(["cleanup", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out == f"given back: {work}\n"
    assert f"user:{TARGET.uid}" not in acl_of(root) + acl_of(work)
    assert cli.main(["cleanup", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out == ""


def test_cleanup_with_queues_needs_the_queue(tmp_path, capsys):
    (tmp_path / "q.json").write_text('{"queues": {"Q": {}}}')
    assert cli.main(["cleanup", "--queues", str(tmp_path / "q.json")]) == 10
    assert "--queue" in capsys.readouterr().err


@pytest.mark.parametrize("mode", [0o755, 0o770])
def test_cleanup_refuses_a_state_directory_others_may_enter(tmp_path, mode):
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    assert cli.main(["cleanup", "--state-dir", str(state)]) == 10
