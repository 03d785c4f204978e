"""Fixtures the unit tests of more than one module share."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from pilotid.workdir import acl_supported


@pytest.fixture
def area():
    """A 0755 directory under /tmp (whose parents anyone may traverse) with POSIX ACLs;
    removed afterwards whatever modes the test left inside."""
    path = Path(tempfile.mkdtemp(prefix="pilotid-sandbox-", dir="/tmp"))  # noqa: S108
    path.chmod(0o755)
    if not acl_supported(path):
        shutil.rmtree(path)
        pytest.skip("/tmp has no POSIX ACLs here")
    yield path
    subprocess.run(["chmod", "-R", "u+rwx", str(path)], check=False)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def pilot_tmp(tmp_path, monkeypatch):
    """The pilot's TMPDIR: ``tmp_path/tmp`` (0700)."""
    base = tmp_path / "tmp"
    base.mkdir(mode=0o700)
    monkeypatch.setenv("TMPDIR", str(base))
    return base


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory):
    """Grant journals of the launcher's tests go to a directory of the test's own, never
    to the home of the account running the tests (``default_state_dir``).  Not through
    ``monkeypatch``: an autouse fixture's would be undone after the test's own fixtures,
    which some tests' patches of ``subprocess`` would then still break."""
    saved = os.environ.get("XDG_STATE_HOME")
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("state"))
    yield
    if saved is None:
        del os.environ["XDG_STATE_HOME"]
    else:
        os.environ["XDG_STATE_HOME"] = saved
