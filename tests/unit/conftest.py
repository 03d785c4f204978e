"""Fixtures the unit tests of more than one module share."""

from __future__ import annotations

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
