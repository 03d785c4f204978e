"""The job's private directory (``pilotid.workdir.private``): made outside the work
directory, the pilot's alone, removed through its descriptor."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pilotid.errors import WorkdirError
from pilotid.workdir import make_private_directory


def test_it_is_made_0700_outside_the_work_directory(tmp_path, pilot_tmp):
    workdir = tmp_path / "work"
    workdir.mkdir()
    private = make_private_directory(workdir, 7, tmp_path / "state")
    try:
        assert private.path.parent == pilot_tmp
        assert private.path.name.startswith("pilotid-job-7-")
        assert stat.S_IMODE(os.stat(private.path).st_mode) == 0o700
        assert list(workdir.iterdir()) == []
    finally:
        private.remove()


def test_remove_takes_its_files_and_itself(tmp_path, pilot_tmp):
    private = make_private_directory(tmp_path / "work", 7, tmp_path / "state")
    (private.path / "user-proxy.pem").write_text("copy")
    private.remove()
    assert not private.path.exists()


def test_remove_unlinks_through_the_descriptor_even_when_moved(tmp_path, pilot_tmp):
    """Whatever its name has become, the copies in it go; the directory itself is left
    where it is not at its own name any more."""
    private = make_private_directory(tmp_path / "work", 7, tmp_path / "state")
    (private.path / "user-proxy.pem").write_text("copy")
    moved = pilot_tmp / "moved"
    os.rename(private.path, moved)
    private.path.mkdir()
    private.remove()
    assert list(moved.iterdir()) == [] and private.path.is_dir()


@pytest.mark.parametrize("inside", ["", "sub"])
def test_a_temporary_directory_in_the_work_directory_is_refused(tmp_path, monkeypatch,
                                                                inside):
    workdir = tmp_path / "work"
    (workdir / inside).mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(workdir / inside))
    with pytest.raises(WorkdirError, match="set the pilot's TMPDIR elsewhere"):
        make_private_directory(workdir, 7, tmp_path / "state")


def test_a_temporary_directory_others_may_write_without_sticky_bit_is_refused(
        tmp_path, monkeypatch):
    base = tmp_path / "open"
    base.mkdir()
    base.chmod(0o777)
    monkeypatch.setenv("TMPDIR", str(base))
    with pytest.raises(WorkdirError, match="without the sticky bit"):
        make_private_directory(tmp_path / "work", 7, tmp_path / "state")


def test_a_tmpdir_that_is_no_directory_gives_tmp_with_a_warning(tmp_path, monkeypatch,
                                                                caplog):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "absent"))
    private = make_private_directory(tmp_path / "work", 7, tmp_path / "state")
    try:
        assert private.path.parent == Path("/tmp")
        assert "is not a directory" in caplog.text
    finally:
        private.remove()
