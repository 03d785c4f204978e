"""Objects the payload moved out of the work directory (issue 13 item 7): found again by
device and inode within the work root and given back, or reported with their path."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

from pilotid.identity.accounts import Account
from pilotid.workdir import grant_target_access, reclaim

TARGET = Account("pilotid-unit-target", 54321, 54321)


def getfacl(path: Path) -> str:
    return subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True, text=True,
                          check=True).stdout


def _layout(area: Path):
    root = area / "jobs"
    root.mkdir(mode=0o711)
    work = root / "work"
    work.mkdir(mode=0o700)
    sub = work / "granted"
    sub.mkdir(mode=0o700)
    (work / "secret.txt").write_text("pilot's")
    (work / "secret.txt").chmod(0o600)
    return root, work, sub


def test_a_directory_moved_out_within_the_work_root_is_given_back(area):
    root, work, sub = _layout(area)
    before = getfacl(sub)
    grant = grant_target_access(work, TARGET, work_root=root)
    moved = root / "moved-by-the-payload"
    os.rename(sub, moved)
    os.rename(work / "secret.txt", root / "secret-moved")
    reclaim(grant)
    assert getfacl(moved) == before
    assert f"user:{TARGET.uid}" not in getfacl(root / "secret-moved")


def test_an_object_moved_out_of_reach_is_reported_with_its_path(area, caplog):
    root, work, sub = _layout(area)
    grant = grant_target_access(work, TARGET)  # no work root: nowhere to look
    name = "away\npilotid: INFO job 1: succeeded"
    os.rename(sub, area / name)
    with caplog.at_level(logging.WARNING):
        reclaim(grant)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("granted" in text and "moved out" in text for text in warnings), warnings


def test_a_moved_object_found_in_the_work_root_but_changed_since_is_reported(area, caplog):
    """Found by inode, but no longer the pilot's: reported with the path it has now."""
    root, work, sub = _layout(area)
    grant = grant_target_access(work, TARGET, work_root=root)
    moved = root / "odd\nname"
    os.rename(sub, moved)
    os.chown(moved, TARGET.uid, TARGET.gid)
    with caplog.at_level(logging.WARNING):
        reclaim(grant)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("odd\\nname" in text for text in warnings), warnings
    assert not any("odd\nname" in text for text in warnings)
