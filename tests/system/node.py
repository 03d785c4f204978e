"""The real node the system tests run on: test accounts, traversable directories, run-as.

``tests/system/setup-node.sh`` (run as root by ``make test``) creates the accounts and the
sudoers rule; these helpers only use them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence, Tuple

from pilotid.identity.accounts import Account

PILOT = "pilotid-pilot"
ALICE = "pilotid-alice"
BOB = "pilotid-bob"
CAROL = "pilotid-carol"
REPO = Path(__file__).resolve().parents[2]


def missing_prerequisite() -> Optional[str]:
    """Why the system tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "system tests need root (run `make test` as root to set the node up)"
    for name in (PILOT, ALICE, BOB, CAROL):
        try:
            pwd.getpwnam(name)
        except KeyError:
            return f"test account {name} is missing: run tests/system/setup-node.sh as root"
    if not os.path.exists("/etc/sudoers.d/pilotid-test"):
        return "sudoers rule /etc/sudoers.d/pilotid-test is missing: run tests/system/setup-node.sh"
    if not traversable_by_all(Path(sys.executable)):
        return (f"{sys.executable} is not reachable by the test accounts: use the venv "
                "`make test` creates under /opt/pilotid-test")
    return None


def traversable_by_all(path: Path) -> bool:
    """True where every parent directory of ``path`` lets others through (o+x)."""
    for parent in Path(os.path.abspath(path)).parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    return True


def account(name: str) -> Account:
    """The ``Account`` of a test account."""
    return Account.by_name(name)


def make_shared_dir(prefix: str = "pilotid-sys-") -> Path:
    """A new directory under /tmp that every account can traverse (0755, owned by root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def install_pilot_copy(dest: Path) -> Path:
    """Copy this checkout's ``pilotid`` package under ``dest`` for the test accounts to import.

    The checkout may sit under a 0700 home; the copy is world-readable.  Returns the
    directory to put on ``PYTHONPATH``.
    """
    target = dest / "site"
    shutil.copytree(REPO / "pilotid", target / "pilotid",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(target):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)
    return target


def run_as(name: str, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
           cwd: Optional[Path] = None, timeout: float = 120,
           **kwargs) -> subprocess.CompletedProcess:
    """Run ``argv`` as account ``name`` (setpriv: execs in place), capturing its output."""
    user = pwd.getpwnam(name)
    full = ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid),
            "--init-groups", "--", *argv]
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir, "USER": name,
            "LOGNAME": name, "LANG": "C.UTF-8"}
    base.update(env or {})
    return subprocess.run(full, env=base, cwd=cwd, capture_output=True, timeout=timeout,
                          **kwargs)


def popen_as(name: str, argv: Sequence[str], env: Optional[Mapping[str, str]] = None,
             cwd: Optional[Path] = None, **kwargs) -> subprocess.Popen:
    """Start ``argv`` as account ``name``; the PID returned is the process itself."""
    user = pwd.getpwnam(name)
    full = ["setpriv", "--reuid", str(user.pw_uid), "--regid", str(user.pw_gid),
            "--init-groups", "--", *argv]
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": user.pw_dir, "USER": name,
            "LOGNAME": name, "LANG": "C.UTF-8"}
    base.update(env or {})
    return subprocess.Popen(full, env=base, cwd=cwd, **kwargs)


def processes_of(name: str) -> list:
    """PIDs of the processes account ``name`` runs now (an empty list when none)."""
    found = subprocess.run(["pgrep", "-u", name], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]


@contextlib.contextmanager
def fresh_cgroup(mount: str) -> Iterator[Tuple[str, Path]]:
    """A new cgroup v2 group (root makes it) under the hierarchy mounted at ``mount``: its
    name as ``/proc/<pid>/cgroup`` shows it and its ``cgroup.procs``; removed once its
    processes are gone (60 s at most)."""
    name = f"/pilotid-test-{secrets.token_hex(4)}"
    directory = Path(mount + name)
    directory.mkdir()
    procs = directory / "cgroup.procs"
    try:
        yield name, procs
    finally:
        deadline = time.monotonic() + 60
        while procs.read_text().strip() and time.monotonic() < deadline:
            time.sleep(0.05)
        directory.rmdir()
