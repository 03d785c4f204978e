"""payload_groups: the process groups a switcher must signal to reach all of a payload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pilotid.strategies.processes import payload_groups

#: Forks a grandchild that makes a process group of its own, then exits: the grandchild is
#: re-parented (no longer under the session leader) but stays in its session.
ORPHAN = """
import os, sys, time
if os.fork() == 0:
    os.setpgid(0, 0)
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(str(os.getpid()))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    time.sleep(30)
    os._exit(0)
os._exit(0)
"""


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def test_an_orphan_with_a_group_of_its_own_in_the_session_is_found(tmp_path):
    pidfile = tmp_path / "orphan.pid"
    leader = subprocess.Popen(
        ["/bin/sh", "-c", f'"{sys.executable}" -c "$0" "$1"; exec sleep 30', ORPHAN,
         str(pidfile)], start_new_session=True)
    try:
        wait_for(pidfile)
        orphan = int(pidfile.read_text())
        assert os.getpgid(orphan) == orphan
        groups = payload_groups(leader.pid, os.getuid())
        assert {leader.pid, orphan} <= groups
        assert payload_groups(leader.pid, os.getuid() + 54321) == {leader.pid}
    finally:
        for group in payload_groups(leader.pid, os.getuid()):
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        leader.wait()
