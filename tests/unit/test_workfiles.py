"""pilotid's own files in the work directory and the queue's accounting file are 0600
(issue 13: the payload read every user's DN in a 0644 accounting file)."""

from __future__ import annotations

import logging
import os
import stat

import pytest

from pilotid.workfiles import append_in_workdir, open_append


@pytest.fixture(autouse=True)
def lax_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.mark.parametrize("opening", [open_append, lambda path: append_in_workdir(path, "t")])
def test_a_new_file_is_made_0600(tmp_path, opening):
    path = tmp_path / "accounting.jsonl"
    os.close(opening(path))
    assert mode(path) == 0o600


def test_an_existing_file_of_the_pilots_open_to_others_is_made_0600_with_a_warning(
        tmp_path, caplog):
    path = tmp_path / "accounting.jsonl"
    path.write_text("earlier record\n")
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING):
        os.close(open_append(path))
    assert mode(path) == 0o600
    assert "made it 0600" in caplog.text and str(path) in caplog.text
    assert path.read_text() == "earlier record\n"


def test_a_private_file_is_left_as_it_is_without_a_word(tmp_path, caplog):
    path = tmp_path / "accounting.jsonl"
    path.write_text("")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING):
        os.close(open_append(path))
    assert caplog.text == ""
