"""Shared set-up for the gLExec system tests: the installed stand-in, proxies, work dirs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from pilotid.identity.credfile import write_private
from pilotid.identity.testca import make_proxy
from tests.system import node

STANDIN_BASE = Path("/opt/pilotid-test/glexec")
STANDIN = STANDIN_BASE / "sbin" / "glexec"
BROKEN_STANDIN = STANDIN_BASE / "broken" / "sbin" / "glexec"
STANDIN_SOURCE = Path(__file__).resolve().parents[1] / "glexec" / "glexec-standin.py"
DRIVER = Path(__file__).resolve().parent / "glexec_driver.py"

#: A wrapper like pilotid's, reduced to what the switch needs: it records that it runs as the
#: target (uid=), the payload's status (status=) and its environment, and relays SIGTERM.
TEST_WRAPPER = r"""#!/bin/bash
marker=$1; shift
echo "uid=$(id -u)" > "$marker"
env > "$marker.env"
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM
wait "$child"; status=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
echo "status=$status" >> "$marker"
exit "$status"
"""


def standin_problem() -> str:
    """Why the installed stand-in cannot be used, or an empty string."""
    for path in (STANDIN, BROKEN_STANDIN):
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return f"{path} is missing: run tests/system/setup-node.sh as root"
        if info.st_uid != 0 or not info.st_mode & stat.S_ISUID:
            return f"{path} is not setuid root: run tests/system/setup-node.sh as root"
    installed = STANDIN_BASE / "libexec" / "glexec-standin.py"
    if not installed.exists() or installed.read_bytes() != STANDIN_SOURCE.read_bytes():
        return f"{installed} differs from {STANDIN_SOURCE}: run tests/system/setup-node.sh"
    return ""


@pytest.fixture(scope="session", name="standin")
def standin_fixture(real_node):
    """The installed gLExec stand-in (skip, or fail in CI, when it is missing or stale)."""
    problem = standin_problem()
    if problem:
        pytest.skip(problem)
    return STANDIN


def give_to_pilot(path: Path, mode: int = 0o600) -> Path:
    pilot = node.account(node.PILOT)
    os.chown(path, pilot.uid, pilot.gid)
    os.chmod(path, mode)
    return path


def write_proxy(directory: Path, identity, name: str, **kwargs) -> Path:
    """A proxy of ``identity`` (a testca Identity), the pilot's own 0600 file."""
    kwargs.setdefault("bits", 1024)
    return give_to_pilot(write_private(directory / name, make_proxy(identity, **kwargs)))


def work_dir(base: Path, target: str = node.ALICE) -> Path:
    """The pilot's work directory opened to ``target`` by ACL, as the sandbox does."""
    workdir = base / "work"
    workdir.mkdir()
    give_to_pilot(workdir, 0o700)
    acl = f"u:{target}:rwx,d:u:{target}:rwx,d:u:{node.PILOT}:rwx"
    subprocess.run(["setfacl", "-m", acl, str(workdir)], check=True)
    wrapper = workdir / "wrapper.sh"
    wrapper.write_text(TEST_WRAPPER)
    give_to_pilot(wrapper, 0o755)
    return workdir


def drive(pilot_install, spec: dict, timeout: float = 180) -> dict:
    """Run the driver as the pilot account with ``spec``; return its JSON answer."""
    python, site = pilot_install
    done = node.run_as(node.PILOT, [python, str(DRIVER), json.dumps(spec)],
                       env={"PYTHONPATH": site}, cwd=Path("/"), timeout=timeout)
    assert done.returncode == 0, done.stderr.decode()
    try:
        return json.loads(done.stdout)
    except ValueError:
        raise AssertionError(f"driver said {done.stdout!r}, stderr {done.stderr!r}") from None
