"""replace_token_copy: a newer token renamed over the payload's copy, only where no one
else may write."""

from __future__ import annotations

import os
import stat

import pytest

from pilotid.workdir.tokencopy import replace_token_copy


@pytest.fixture
def private(tmp_path):
    directory = tmp_path / "private"
    directory.mkdir(mode=0o700)
    (directory / "bt").write_text("old\n")
    (directory / "bt").chmod(0o600)
    return directory


def test_the_new_token_replaces_the_copy_by_rename(private):
    before = os.stat(private / "bt").st_ino
    assert replace_token_copy(private / "bt", b"new\n", None)
    assert (private / "bt").read_text() == "new\n"
    assert os.stat(private / "bt").st_ino != before
    assert stat.S_IMODE(os.stat(private / "bt").st_mode) == 0o600
    assert sorted(p.name for p in private.iterdir()) == ["bt"]


@pytest.mark.parametrize("mode", [0o1733, 0o777])
def test_a_directory_others_may_write_is_left_alone(private, mode):
    private.chmod(mode)
    assert not replace_token_copy(private / "bt", b"new\n", None)
    assert (private / "bt").read_text() == "old\n"

