"""A pilot killed mid-job leaves its job's private directory (with the credential copies)
and perhaps a journal it was creating: the record beside the journals names the directory,
and ``undo_dead_grants`` (so ``pilotid cleanup`` and the next ``pilotid run``) removes it
once the pilot's process is gone, only while it is still the directory pilotid made."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

import pytest

from pilotid.errors import WorkdirError
from pilotid.identity.accounts import Account
from pilotid.workdir import (
    GrantJournal,
    make_private_directory,
    undo_dead_grants,
)
from pilotid.workdir.journal import boot_id, process_start


def dead_pid() -> int:
    """The pid of a process of this host that has ended (a child, reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def state_subdir(tmp_path: Path, name: str) -> Path:
    """``<state>/<name>`` (``private``, ``journals``) of a fresh 0700 state directory."""
    directory = tmp_path / "state" / name
    directory.mkdir(parents=True, mode=0o700)
    directory.parent.chmod(0o700)
    return directory


def die_making_private_directory(state: Path, workdir: Path, made: bool = True) -> None:
    """A pilot killed (a child, ``_exit``) right after the ``mkdir`` of job 7's private
    directory (``made``) or right before it, before anything else."""
    pid = os.fork()
    if pid == 0:
        mkdir = os.mkdir

        def mkdir_then_die(path, mode=0o777, *, dir_fd=None):
            if not made and os.path.basename(path).startswith("pilotid-job-"):
                os._exit(0)
            mkdir(path, mode, dir_fd=dir_fd)
            if os.path.basename(path).startswith("pilotid-job-"):
                os._exit(0)

        os.mkdir = mkdir_then_die  # type: ignore[assignment]
        try:
            make_private_directory(workdir, 7, state)
        finally:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the pilot did not die at its mkdir"


def die_with_private_directory(state: Path, workdir: Path) -> Path:
    """A pilot that makes and records job 7's private directory, puts a credential copy
    in it and is killed (a child, ``_exit``); the directory's path."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            private = make_private_directory(workdir, 7, state)
            (private.path / "user-proxy.pem").write_text("copy")
            os.write(write, str(private.path).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as stream:
        return Path(stream.read().decode())


def test_a_dead_pilots_private_directory_is_removed(tmp_path, pilot_tmp):
    state = tmp_path / "state"
    private = die_with_private_directory(state, tmp_path / "work")
    assert private.is_dir()
    undo_dead_grants(state)
    assert list(pilot_tmp.iterdir()) == []
    assert list((state / "private").iterdir()) == []


def test_a_pilot_killed_right_after_making_its_private_directory_leaves_nothing(
        tmp_path, pilot_tmp):
    """The directory is made before anything else can happen to it: the clean-up of the
    pilot's death removes it, and its record."""
    state = tmp_path / "state"
    die_making_private_directory(state, tmp_path / "work")
    assert [path.name[:14] for path in pilot_tmp.iterdir()] == ["pilotid-job-7-"]
    undo_dead_grants(state)
    assert list(pilot_tmp.iterdir()) == []
    assert list((state / "private").iterdir()) == []


def test_a_pilot_killed_right_before_making_its_private_directory_leaves_nothing(
        tmp_path, pilot_tmp):
    state = tmp_path / "state"
    die_making_private_directory(state, tmp_path / "work", made=False)
    assert len(list((state / "private").iterdir())) == 1
    undo_dead_grants(state)
    assert list(pilot_tmp.iterdir()) == []
    assert list((state / "private").iterdir()) == []


@pytest.mark.parametrize("swap", ["file_in_it", "symlink", "mode"])
def test_a_directory_recorded_without_device_and_inode_is_removed_only_if_unused(
        tmp_path, pilot_tmp, swap):
    """A pilot killed around the ``mkdir`` left an empty 0700 directory at most: anything
    else at the name recorded is kept (its record goes)."""
    state = tmp_path / "state"
    die_making_private_directory(state, tmp_path / "work")
    (private,) = pilot_tmp.iterdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    if swap == "file_in_it":
        (private / "keep").write_text("keep")
    elif swap == "symlink":
        private.rmdir()
        private.symlink_to(elsewhere)
    else:
        private.chmod(0o755)
    undo_dead_grants(state)
    assert os.path.lexists(private) and elsewhere.is_dir()
    assert list((state / "private").iterdir()) == []


def test_a_running_pilots_record_without_device_and_inode_is_left_alone(
        tmp_path, pilot_tmp):
    """A pilot between writing its record and making the directory: neither is touched."""
    records = state_subdir(tmp_path, "private")
    state = records.parent
    host, pid = socket.gethostname(), os.getpid()
    private = pilot_tmp / "pilotid-job-7-0123456789abcdef"
    private.mkdir(mode=0o700)
    record = records / f"{host}-{pid}-0a1b2c.json"
    record.write_text(json.dumps({"host": host, "boot": boot_id(), "pid": pid,
                                  "start": process_start(pid), "path": str(private)}) + "\n")
    undo_dead_grants(state)
    assert private.is_dir() and record.exists()


def test_a_record_a_dead_pilot_was_writing_is_removed(tmp_path, pilot_tmp):
    """Killed in the middle of the record's first line: no directory was made yet."""
    records = state_subdir(tmp_path, "private")
    state = records.parent
    pid = dead_pid()
    (records / f"{socket.gethostname()}-{pid}-0a1b2c.json").write_text('{"host": "')
    undo_dead_grants(state)
    assert list(records.iterdir()) == []


def test_a_running_pilots_private_directory_is_left_alone(tmp_path, pilot_tmp):
    state = tmp_path / "state"
    private = make_private_directory(tmp_path / "work", 7, state)
    undo_dead_grants(state)
    assert private.path.is_dir()
    private.remove()
    assert list(pilot_tmp.iterdir()) == [] and list((state / "private").iterdir()) == []


@pytest.mark.parametrize("swap", ["symlink", "other_directory", "mode"])
def test_a_directory_that_is_no_longer_the_one_made_is_kept(tmp_path, pilot_tmp, swap):
    state = tmp_path / "state"
    private = die_with_private_directory(state, tmp_path / "work")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (elsewhere / "keep").write_text("keep")
    if swap == "mode":
        private.chmod(0o755)
        elsewhere = private
    else:
        os.rename(private, tmp_path / "moved")
        if swap == "symlink":
            private.symlink_to(elsewhere)
        else:
            os.rename(elsewhere, private)
            elsewhere = private
    undo_dead_grants(state)
    assert (elsewhere / "keep").exists() or (elsewhere / "user-proxy.pem").exists()
    assert list((state / "private").iterdir()) == []


def test_a_journal_a_dead_pilot_was_creating_is_removed(tmp_path):
    journals = state_subdir(tmp_path, "journals")
    state = journals.parent
    pid = dead_pid()
    host = socket.gethostname()
    header = {"host": host, "boot": "", "pid": pid, "start": 1}
    (journals / f"{host}-{pid}-0a1b2c.new").write_text(json.dumps(header) + "\n")
    (journals / f"{host}-{pid}-3d4e5f.new").write_text("")  # killed before the header
    (journals / f"{host}-{pid}-6a7b8c.new").write_text('{"host": "')  # killed writing it
    undo_dead_grants(state)
    assert list(journals.iterdir()) == []


def test_an_empty_journal_of_a_dead_pilot_is_removed(tmp_path):
    """A journal with nothing in it (its header lost: a node that crashed after the
    rename) has no grant to undo: it goes once the pid of its name is gone."""
    journals = state_subdir(tmp_path, "journals")
    state = journals.parent
    pid = dead_pid()
    (journals / f"{socket.gethostname()}-{pid}-0a1b2c.jsonl").write_text("")
    undo_dead_grants(state)
    assert list(journals.iterdir()) == []


def test_a_journal_being_created_by_a_running_pilot_is_left(tmp_path):
    state = tmp_path / "state"
    journal = GrantJournal.create(state, tmp_path, Account("x", 54321, 54321), "acl",
                                  os.geteuid(), None)
    fresh = journal.path.with_suffix(".new")
    os.rename(journal.path, fresh)
    undo_dead_grants(state)
    assert fresh.exists()
    journal.close()


def test_a_record_another_pilot_is_removing_is_left_to_it(tmp_path, pilot_tmp):
    state = tmp_path / "state"
    private = die_with_private_directory(state, tmp_path / "work")
    (record,) = (state / "private").iterdir()
    with open(record, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        undo_dead_grants(state)
        assert private.is_dir() and record.exists()
    undo_dead_grants(state)
    assert not private.exists()


def test_a_private_directory_that_cannot_be_made_leaves_no_record(tmp_path, pilot_tmp,
                                                                   monkeypatch):
    state = tmp_path / "state"

    mkdir = os.mkdir

    def refused(path, mode=0o777, *, dir_fd=None):
        if os.path.basename(path).startswith("pilotid-job-"):
            raise PermissionError(13, "Permission denied")
        mkdir(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", refused)
    with pytest.raises(WorkdirError, match="cannot make the job's private directory"):
        make_private_directory(tmp_path / "work", 7, state)
    monkeypatch.undo()
    assert list((state / "private").iterdir()) == [] and list(pilot_tmp.iterdir()) == []
