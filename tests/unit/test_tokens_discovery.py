"""WLCG Bearer Token Discovery: the order, empty steps, and the bt_u owner check."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilotid.errors import TokenError
from pilotid.identity.tokens import discover_token, read_owned_token_file

EUID = os.geteuid()


@pytest.fixture
def runtime(tmp_path):
    """An XDG_RUNTIME_DIR; the /tmp step is kept out by an euid nobody has a file for."""
    directory = tmp_path / "run"
    directory.mkdir(mode=0o700)
    return directory


def _bt_u(directory: Path, text: str, mode: int = 0o600) -> Path:
    path = directory / f"bt_u{EUID}"
    path.write_text(text)
    path.chmod(mode)
    return path


def test_bearer_token_comes_first(runtime, tmp_path):
    (tmp_path / "file").write_text("from-file")
    _bt_u(runtime, "from-runtime")
    found = discover_token({"BEARER_TOKEN": " from-env\n", "BEARER_TOKEN_FILE":
                            str(tmp_path / "file"), "XDG_RUNTIME_DIR": str(runtime)}, EUID)
    assert (found.origin, found.value) == ("BEARER_TOKEN", "from-env")


def test_bearer_token_file_comes_second(runtime, tmp_path):
    (tmp_path / "file").write_text("\n from-file \n")
    _bt_u(runtime, "from-runtime")
    found = discover_token({"BEARER_TOKEN": "  ", "BEARER_TOKEN_FILE": str(tmp_path / "file"),
                            "XDG_RUNTIME_DIR": str(runtime)}, EUID)
    assert (found.origin, found.value) == (str(tmp_path / "file"), "from-file")


@pytest.mark.parametrize("contents", [None, " \n"], ids=["missing", "empty"])
def test_a_missing_or_empty_token_file_moves_on(runtime, tmp_path, contents):
    if contents is not None:
        (tmp_path / "file").write_text(contents)
    _bt_u(runtime, "from-runtime")
    found = discover_token({"BEARER_TOKEN_FILE": str(tmp_path / "file"),
                            "XDG_RUNTIME_DIR": str(runtime)}, EUID)
    assert found.value == "from-runtime"


def test_the_runtime_directory_comes_before_tmp(runtime):
    found = discover_token({"XDG_RUNTIME_DIR": str(runtime)}, EUID)
    # nothing in the runtime directory: /tmp/bt_u<euid> is next (absent or the user's)
    assert found is None or found.origin == f"/tmp/bt_u{EUID}"
    _bt_u(runtime, "from-runtime")
    assert discover_token({"XDG_RUNTIME_DIR": str(runtime)}, EUID).value == "from-runtime"


def test_nothing_found_is_none(tmp_path):
    assert discover_token({"XDG_RUNTIME_DIR": str(tmp_path)}, 2 ** 31 - 7) is None


def test_a_bt_u_file_of_another_uid_is_refused(runtime):
    path = _bt_u(runtime, "token")
    with pytest.raises(TokenError, match="owned by uid"):
        read_owned_token_file(path, EUID + 1)


@pytest.mark.parametrize("mode", [0o620, 0o602])
def test_a_bt_u_file_others_may_write_is_refused(runtime, mode):
    path = _bt_u(runtime, "token", mode)
    with pytest.raises(TokenError, match="writable by others"):
        discover_token({"XDG_RUNTIME_DIR": str(runtime)}, EUID)
    assert path.exists()


def test_a_symlink_at_bt_u_is_refused(runtime, tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("token")
    target.chmod(0o600)
    (runtime / f"bt_u{EUID}").symlink_to(target)
    with pytest.raises(TokenError, match="symbolic link"):
        discover_token({"XDG_RUNTIME_DIR": str(runtime)}, EUID)


def test_a_fifo_at_bt_u_is_refused_without_blocking(runtime):
    os.mkfifo(runtime / f"bt_u{EUID}", 0o600)
    with pytest.raises(TokenError, match="not a regular file"):
        discover_token({"XDG_RUNTIME_DIR": str(runtime)}, EUID)


def test_a_fifo_named_by_bearer_token_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo", 0o600)
    with pytest.raises(TokenError, match="not a regular file"):
        discover_token({"BEARER_TOKEN_FILE": str(tmp_path / "fifo")}, EUID)
