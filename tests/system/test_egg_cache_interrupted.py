"""Issue 16, item 8: a wrapper stopped while it makes its egg cache leaves none behind.

Run as a test account under strace, which holds the ``mkdir`` of the egg cache at its
return (``delay_exit``): the directory exists, the wrapper has not yet gone on.  A TERM
then (the pilot's time limit, a pilot stopping) must not leave the directory behind; a
KILL, which no trap sees, must find it named in the marker already, for the launcher to
remove it as the account after the job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.marker import read_marker
from pilotid.payloads.wrapper import EGG_CACHE_PREFIX, WrapperSpec, write_wrapper
from pilotid.values import ProxyHandover
from tests.system import node

#: How long strace holds every mkdir at its return (microseconds): time to signal the wrapper.
HOLD = 3_000_000


@pytest.fixture
def held_wrapper(shared_tmp):
    """(wrapper process, work directory, egg cache base): the wrapper for /bin/true runs as
    Alice and is held in the mkdir of its egg cache, which exists already."""
    alice = node.account(node.ALICE)
    work, eggs = shared_tmp / "work", shared_tmp / "eggs"
    for path in (work, eggs):
        path.mkdir(mode=0o700)
        os.chown(path, alice.uid, alice.gid)
    wrapper = shared_tmp / "wrapper.sh"
    write_wrapper(WrapperSpec(
        command=PayloadCommand(argv=("/bin/true",)), workdir=work,
        handover=ProxyHandover(work / "proxy"), marker=work / "marker",
        environment=(("PATH", "/usr/bin:/bin"),), egg_cache_base=eggs), wrapper)
    os.chown(wrapper, alice.uid, alice.gid)
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=mkdir,mkdirat",
         "-e", f"inject=mkdir,mkdirat:delay_exit={HOLD}", "setpriv", "--reuid",
         str(alice.uid), "--regid", str(alice.gid), "--init-groups", "--", str(wrapper)],
        env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not list(eggs.glob(f"{EGG_CACHE_PREFIX}*")):
            assert tracer.poll() is None and time.monotonic() < deadline, "no egg cache made"
            time.sleep(0.05)
        yield tracer, work, eggs
    finally:
        if tracer.poll() is None:
            tracer.kill()
        tracer.wait(timeout=60)


def wrapper_pid(tracer: subprocess.Popen) -> int:
    """The traced wrapper: strace's one child (setpriv exec'd the wrapper)."""
    children = Path(f"/proc/{tracer.pid}/task/{tracer.pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_a_wrapper_terminated_while_it_makes_its_egg_cache_removes_it(held_wrapper):
    tracer, work, eggs = held_wrapper
    os.kill(wrapper_pid(tracer), signal.SIGTERM)
    tracer.wait(timeout=60)
    assert os.listdir(eggs) == []
    assert read_marker(work / "marker").error == "interrupted"


def test_a_wrapper_killed_while_it_makes_its_egg_cache_has_named_it(held_wrapper):
    """The marker names the egg cache before it exists: a KILL leaves nothing unnamed."""
    tracer, work, eggs = held_wrapper
    os.kill(wrapper_pid(tracer), signal.SIGKILL)
    tracer.wait(timeout=60)
    (egg,) = os.listdir(eggs)
    assert read_marker(work / "marker").egg_cache == egg[len(EGG_CACHE_PREFIX):]
