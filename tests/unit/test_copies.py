"""``remove_copies``: the credential copies a payload renamed, found by identity, and
nothing else, whatever identity a forged marker names."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pilotid.workdir import copies_in_place, remove_copies

OTHER_UID = 65534


def identity(path: Path) -> tuple:
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def never(paths) -> None:
    raise AssertionError(f"removed as the target: {paths}")


def test_a_renamed_copy_is_removed_wherever_it_is_and_reported(tmp_path, caplog):
    (tmp_path / "kept" / "deeper").mkdir(parents=True)
    copy = tmp_path / "kept" / "deeper" / "x509up\nfake line"
    copy.write_text("proxy")
    caplog.set_level(logging.WARNING)
    remove_copies(tmp_path, [identity(copy)], os.getuid(), never)
    assert not copy.exists()
    assert "removed kept/deeper/x509up\\nfake line, a credential copy" in caplog.text


def test_a_forged_identity_never_removes_a_file_of_another_owner(tmp_path):
    """A marker the payload rewrote may name the pilot's own files: they stay."""
    pilots = tmp_path / "accounting.jsonl"
    pilots.write_text("records")
    os.chown(pilots, OTHER_UID, -1)
    remove_copies(tmp_path, [identity(pilots)], os.getuid(), never)
    assert pilots.exists()


def test_a_forged_identity_never_removes_a_file_outside_the_work_directory(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    outside = tmp_path / "elsewhere"
    outside.write_text("data")
    (workdir / "link").symlink_to(outside)
    remove_copies(workdir, [identity(outside), identity(workdir / "link")], os.getuid(), never)
    assert outside.exists() and (workdir / "link").is_symlink()


def test_a_directory_is_never_removed(tmp_path):
    (tmp_path / "dir").mkdir()
    remove_copies(tmp_path, [identity(tmp_path / "dir")], os.getuid(), never)
    assert (tmp_path / "dir").is_dir()


def test_nothing_is_walked_without_copies(tmp_path):
    remove_copies(tmp_path / "absent", [], os.getuid(), never)


def test_a_copy_where_the_wrapper_stored_it_needs_no_search(tmp_path):
    stored = tmp_path / "x509up"
    stored.write_text("proxy")
    assert copies_in_place([identity(stored)], [(None, str(stored))]) == {identity(stored)}


def test_a_copy_with_another_name_is_searched_for(tmp_path):
    """A hard link elsewhere, or the copy gone from its place: not in place."""
    stored = tmp_path / "x509up"
    stored.write_text("proxy")
    os.link(stored, tmp_path / "kept.pem")
    places = [(None, str(stored)), (None, str(tmp_path / "gone"))]
    assert copies_in_place([identity(stored), (1, 2)], places) == set()
