"""What the pilot removes itself after a job (its wrapper, written before the grant) is not
an object "moved out" by the payload: no warning, no search of the work root; an object the
payload did move away from a scratch name still is."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest

from pilotid.identity.accounts import Account
from pilotid.launcher import jobrun
from pilotid.payloads.job import JobSpec
from pilotid.workdir import GrantJournal, grant_target_access, reclaim, remove_for_good
from pilotid.workdir import moved as moved_module
from pilotid.workdir.journal import read_journal

TARGET = Account("pilotid-unit-target", 54321, 54321)


@pytest.fixture
def searches(monkeypatch):
    """Every work root ``reclaim_moved`` lists with ``find``."""
    roots = []

    def candidates(root, wanted):
        roots.append(root)
        return []

    monkeypatch.setattr(moved_module, "_candidates", candidates)
    return roots


def granted_job(area: Path, journal: bool = False):
    """A job's run as the launcher leaves it: its wrapper written, then the grant."""
    root = area / "jobs"
    root.mkdir(mode=0o711)
    work = root / "work"
    work.mkdir(mode=0o700)
    run = jobrun.JobRun(JobSpec(panda_id=6000001, transformation="runAthena"), work)
    wrapper = run.scratch("wrapper", ".sh")
    wrapper.write_text("#!/bin/bash\n")
    wrapper.chmod(0o700)
    if journal:
        run.journal = GrantJournal.create(area / "state", work, TARGET, "acl", os.geteuid(),
                                          root)
    run.grant = grant_target_access(work, TARGET, work_root=root, journal=run.journal)
    return run, wrapper, root


def warnings(caplog) -> list:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_the_pilots_own_wrapper_is_not_reported_as_moved_out(area, caplog, searches):
    run, wrapper, _ = granted_job(area)
    with caplog.at_level(logging.WARNING):
        assert run.finish() is None
    assert not wrapper.exists()
    assert warnings(caplog) == []
    assert searches == []  # no find over the work root on every job


def test_a_wrapper_the_payload_moved_away_is_still_found_and_given_back(area, caplog):
    """The payload renamed the wrapper out and put a file of its own at its name: the pilot
    removes that file, and the wrapper is looked for and given back."""
    run, wrapper, root = granted_job(area)
    kept = root / "kept.sh"
    os.rename(wrapper, kept)
    wrapper.write_text("the payload's\n")
    with caplog.at_level(logging.WARNING):
        assert run.finish() is None
    assert not wrapper.exists()
    acl = subprocess.run(["getfacl", "-cpn", str(kept)], capture_output=True, text=True,
                         check=True).stdout
    assert f"user:{TARGET.uid}" not in acl
    assert warnings(caplog) == []


def test_a_hard_link_to_the_wrapper_keeps_it_looked_for(area, caplog, searches):
    """Unlinking the wrapper's name left it another: it may still carry the grant's
    entries, so it is not dropped from what the reclaim looks for."""
    run, wrapper, root = granted_job(area)
    os.link(wrapper, root / "second-name.sh")
    with caplog.at_level(logging.WARNING):
        assert run.finish() is None
    assert searches == [root]


def test_a_journal_says_the_wrapper_was_removed(area, caplog, searches, monkeypatch):
    """A pilot killed after removing its wrapper, before the reclaim: ``pilotid cleanup``
    undoes the grant from the journal without reporting the wrapper as moved out."""
    run, wrapper, _ = granted_job(area, journal=True)
    assert run.journal is not None
    monkeypatch.setattr(jobrun, "reclaim", lambda grant: None)  # the pilot dies here
    run.finish()
    run.journal.close()
    grant, _ = read_journal(run.journal.path)
    assert grant.changes and all(change.path != wrapper.name for change in grant.changes)
    with caplog.at_level(logging.WARNING):
        reclaim(grant)
    assert warnings(caplog) == []
    assert searches == []


def test_a_grant_undone_already_takes_no_removal_record(area, caplog):
    """A grant that failed half-way was undone and its journal removed: removing the
    wrapper afterwards writes nothing and logs no error."""
    run, wrapper, _ = granted_job(area, journal=True)
    assert run.journal is not None and run.grant is not None
    reclaim(run.grant)  # as the failed grant's own undo does
    run.grant = None
    with caplog.at_level(logging.WARNING):
        assert run.finish() is None
    assert not wrapper.exists()
    assert warnings(caplog) == []


def test_a_symlink_at_a_scratch_name_is_removed_not_what_it_points_to(tmp_path):
    """The payload's symlink in the wrapper's place: the link goes, its target stays, and
    only the link's own identity is given (never the target's, which keeps its name)."""
    kept = tmp_path / "kept"
    kept.write_text("the pilot's")
    link = tmp_path / ".pilotid-wrapper-1-x.sh"
    link.symlink_to(kept)
    identity = os.lstat(link)
    assert remove_for_good(link) == (identity.st_dev, identity.st_ino)
    assert kept.read_text() == "the pilot's" and not os.path.lexists(link)


def test_a_scratch_name_already_gone_gives_nothing(tmp_path):
    assert remove_for_good(tmp_path / ".pilotid-marker-1-x") is None
