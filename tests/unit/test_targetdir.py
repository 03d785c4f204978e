"""The wrapper's own directory in world mode (``pilotid.payloads.targetdir``): the real
wrapper makes it, and only a directory the target made and alone may write counts.

The "target" here is the account running the tests; another account's plants are stood
in for by what that account could not make (a directory writable by others, a symlink).
The real other account is tests/security/test_world_mode.py's.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from pilotid.identity.accounts import Account
from pilotid.payloads.targetdir import MARKER_NAME, PROXY_NAME, TargetDirectory
from pilotid.values import WrapperMarker
from tests.unit.test_wrapper import Run

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def target(tmp_path: Path) -> TargetDirectory:
    (tmp_path / "work").mkdir()
    return TargetDirectory(tmp_path / "work" / ".pilotid-target-7-ab-", Account.current())


def own_dir(target: TargetDirectory, suffix: str = "1" * 32, marker: str = "") -> Path:
    path = Path(f"{target.prefix}{suffix}")
    path.mkdir(mode=0o755)
    if marker:
        (path / MARKER_NAME).write_text(marker)
    return path


def test_the_wrapper_keeps_marker_and_proxy_in_a_new_directory_of_its_own(tmp_path):
    run = Run(tmp_path)
    prefix = run.work / ".pilotid-target-7-ab-"
    spec = replace(run.spec(from_stdin=True), target_directory=prefix)
    result = run.run(spec, stdin=PEM)
    assert result.returncode == 0, result.stderr
    (made,) = [p for p in run.work.iterdir() if p.name.startswith(prefix.name)]
    assert stat.S_IMODE(made.stat().st_mode) == 0o755
    proxy = made / PROXY_NAME
    assert proxy.read_bytes() == PEM and stat.S_IMODE(proxy.stat().st_mode) == 0o600
    assert run.seen()["env"][b"X509_USER_PROXY"] == os.fsencode(proxy)
    assert not run.marker.exists() and not run.proxy.exists()
    found, tampered = TargetDirectory(prefix, Account.current()).read()
    assert tampered is None and found is not None
    copy = proxy.stat()
    assert replace(found, egg_cache=None) == WrapperMarker(
        os.geteuid(), 0, copies=((copy.st_dev, copy.st_ino),))


def test_a_name_planted_where_the_pilot_would_have_written_is_never_opened(tmp_path):
    run = Run(tmp_path)
    os.mkfifo(run.marker)
    os.mkfifo(run.proxy)
    spec = replace(run.spec(from_stdin=True), target_directory=run.work / ".pilotid-target-")
    assert run.run(spec, stdin=PEM, timeout=30).returncode == 0


def test_no_directory_means_the_wrapper_never_ran(target):
    assert target.read() == (None, None)
    assert target.made() == []


def test_a_directory_others_may_write_is_not_the_wrappers(target, caplog):
    planted = own_dir(target, marker="uid=0\nstatus=0\n")
    planted.chmod(0o777)
    assert target.read() == (None, None)
    assert "not made by the wrapper" in caplog.text


def test_a_symlink_under_the_prefix_is_not_followed(target, tmp_path, caplog):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o755)
    (elsewhere / MARKER_NAME).write_text(f"uid={os.geteuid()}\nstatus=0\n")
    Path(f"{target.prefix}{'2' * 32}").symlink_to(elsewhere)
    assert target.read() == (None, None)
    assert "is not the wrapper's directory" in caplog.text


def test_the_wrappers_directory_with_its_marker_counts(target):
    made = own_dir(target, marker=f"uid={os.geteuid()}\nstatus=3\n")
    assert target.read() == (WrapperMarker(os.geteuid(), 3), None)
    assert target.made() == [made]


@pytest.mark.parametrize("marker", ["", "garbage\n", "uid=12345\nstatus=0\n"])
def test_a_missing_or_changed_marker_in_the_wrappers_directory_was_the_payloads(target,
                                                                                 marker):
    own_dir(target, marker=marker)
    found, tampered = target.read()
    assert tampered is not None and "the payload changed it" in tampered


def test_a_second_directory_of_the_target_was_the_payloads(target):
    own_dir(target, "1" * 32, f"uid={os.geteuid()}\nstatus=0\n")
    own_dir(target, "2" * 32, f"uid={os.geteuid()}\nstatus=0\n")
    found, tampered = target.read()
    assert found is None and tampered is not None and "2 directories" in tampered
    assert len(target.made()) == 2
