"""Reading the wrapper's marker back: what it proves, and what the pilot cannot trust."""

from __future__ import annotations

import os

import pytest

from pilotid.identity.accounts import Account
from pilotid.payloads.marker import read_marker, tampered_marker
from pilotid.values import WrapperMarker


@pytest.mark.parametrize("text, expected", [
    ("uid=1001\n", WrapperMarker(1001)),
    ("uid=1001\nstatus=0\n", WrapperMarker(1001, 0)),
    ("uid=1001\nstatus=143\nsignal=15\n", WrapperMarker(1001, 143, signal=15)),
    ("uid=0\nerror=egg-cache\n", WrapperMarker(0, error="egg-cache")),
    ("uid=7\nerror=interrupted\nsignal=1\n", WrapperMarker(7, signal=1, error="interrupted")),
    ("uid=7\negg=" + "0a" * 16 + "\nstatus=0\n", WrapperMarker(7, 0, egg_cache="0a" * 16)),
    ("uid=7\nproxy-copy=2049:131\ntoken-copy=2049:132\nstatus=0\n",
     WrapperMarker(7, 0, copies=((2049, 131), (2049, 132)))),
])
def test_marker_is_read(tmp_path, text, expected):
    (tmp_path / "m").write_text(text)
    assert read_marker(tmp_path / "m") == expected


def test_absent_marker_means_the_wrapper_never_ran(tmp_path, caplog):
    assert read_marker(tmp_path / "none") is None
    assert caplog.text == ""


@pytest.mark.parametrize("text", [
    "", "uid=\n", "uid=abc\n", "status=0\nuid=1\n", "uid=1\nstatus=0", "uid=1\nstatus=0\n"
    "status=1\n", "uid=1\nwhat=1\n", "uid=1\nerror=whatever\n", "uid=-1\n", "garbage\n",
    "uid=1\n" + "x" * 5000 + "\n", "uid=1\negg=../../home\n", "uid=1\negg=" + "A" * 32 + "\n",
    "uid=1\negg=" + "0" * 31 + "\n", "uid=1\nproxy-copy=2049\n", "uid=1\nproxy-copy=a:1\n",
    "uid=1\nproxy-copy=1:2\nproxy-copy=1:3\n", "uid=1\ntoken-copy=-1:2\n",
])
def test_malformed_marker_is_ignored_with_a_warning(tmp_path, caplog, text):
    (tmp_path / "m").write_text(text)
    assert read_marker(tmp_path / "m") is None
    assert "malformed" in caplog.text


def test_marker_behind_a_symlink_or_a_fifo_is_ignored(tmp_path, caplog):
    (tmp_path / "real").write_text("uid=1\nstatus=0\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    os.mkfifo(tmp_path / "fifo")
    assert read_marker(tmp_path / "link") is None
    assert read_marker(tmp_path / "fifo") is None
    assert "ignoring" in caplog.text


def _target() -> Account:
    return Account("target", os.geteuid(), os.getegid())


def test_marker_owned_by_the_target_naming_another_uid_was_tampered(tmp_path):
    (tmp_path / "m").write_text("uid=4242\n")
    found = read_marker(tmp_path / "m")
    why = tampered_marker(tmp_path / "m", found, os.geteuid(), _target())
    assert why is not None and "names uid 4242" in why


def test_marker_naming_its_owner_is_not_tampered(tmp_path):
    (tmp_path / "m").write_text(f"uid={os.geteuid()}\n")
    found = read_marker(tmp_path / "m")
    assert tampered_marker(tmp_path / "m", found, os.geteuid(), _target()) is None


def test_marker_owner_proves_nothing_without_a_switch(tmp_path):
    (tmp_path / "m").write_text("garbage")
    assert tampered_marker(tmp_path / "m", None, None, _target()) is None


def test_marker_of_another_owner_is_ignored_when_an_owner_is_required(tmp_path, caplog):
    (tmp_path / "m").write_text("uid=1\nstatus=0\n")
    assert read_marker(tmp_path / "m", owner=os.geteuid() + 1) is None
    assert "belongs to uid" in caplog.text
    assert read_marker(tmp_path / "m", owner=os.geteuid()) == WrapperMarker(1, 0)
