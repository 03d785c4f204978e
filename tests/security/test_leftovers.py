"""pilotid.leftovers on this machine: the pilot adopts what its payload leaves running."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time

from pilotid import leftovers


def _sleeper(mark: str) -> list:
    """A bash that starts a detached sleep and exits at once (an orphan is left)."""
    return ["/bin/bash", "-c", f"setsid /bin/sleep 30.{mark} </dev/null >/dev/null 2>&1 & "
            "exit 0"]


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return cmdline.read()
    except OSError:
        return b""


def _wait_for_child(mark: str, seconds: float = 5) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [p for p in leftovers.adopted_processes() if mark.encode() in _cmdline(p.pid)]
        if found:
            return found
        time.sleep(0.02)
    return []


def test_orphans_of_a_child_become_the_pilots_children_while_it_is_a_subreaper():
    assert leftovers.subreaper_supported()
    mark = str(secrets.randbelow(10**9))
    with leftovers.child_subreaper() as active:
        assert active
        subprocess.run(_sleeper(mark), check=True)
        found = _wait_for_child(mark)
        assert len(found) == 1 and found[0].uid == os.getuid() and not found[0].dead
        os.kill(found[0].pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while leftovers.reap([found[0].pid]) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert not [p for p in leftovers.adopted_processes() if p.pid == found[0].pid]


def test_without_the_subreaper_orphans_go_to_init():
    mark = str(secrets.randbelow(10**9))
    subprocess.run(_sleeper(mark), check=True)
    try:
        assert _wait_for_child(mark, 0.5) == []
    finally:
        subprocess.run(["pkill", "-f", f"sleep 30.{mark}"], check=False)


def test_the_environment_check_reads_own_processes():
    process = subprocess.Popen(["/bin/sleep", "5"], env={"X509_USER_PROXY": "/some/proxy"})
    try:
        time.sleep(0.05)
        assert leftovers.environment_holds(process.pid, "X509_USER_PROXY", "/some/proxy")
        assert not leftovers.environment_holds(process.pid, "X509_USER_PROXY", "/other")
    finally:
        process.kill()
        process.wait()
