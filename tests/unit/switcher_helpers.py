"""Small helpers shared by the switcher unit tests (not a test module)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

from pilotid.identity.credential import Credential
from pilotid.values import PayloadLogs

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
PROXY_BYTES = b"-----BEGIN CERTIFICATE-----\nnot really a proxy\n-----END CERTIFICATE-----\n"


def credential(directory: Path, dn: str = ALICE_DN) -> Credential:
    """A Credential whose file holds PROXY_BYTES (0600); its model only knows the DN."""
    path = directory / "x509up_test"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, PROXY_BYTES)
    os.close(fd)
    return Credential(path=path, proxy=SimpleNamespace(identity=dn), source="file")


def open_logs(directory: Path) -> PayloadLogs:
    """Fresh stdout/stderr log files in ``directory``."""
    return PayloadLogs(open(directory / "payload.stdout", "ab"),
                       open(directory / "payload.stderr", "ab"))


def close_logs(logs: PayloadLogs) -> None:
    logs.stdout.close()
    logs.stderr.close()


def wait_for(path: Path, timeout: float = 10.0) -> None:
    """Wait until ``path`` exists (a script signalled it is ready)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False
