"""Waiting for a payload without polling: a pidfd where the kernel has one.

``wait_for_exit`` returns as soon as the process ends (no sleep loop adding latency to every
job), or ``None`` when the timeout passes first.  A signal handler that raises (the
one ``pilotid.signals`` installs during a job) interrupts the wait.
"""

from __future__ import annotations

import os
import select
import subprocess
from typing import Any, Optional


def wait_for_exit(process: Any, timeout: Optional[float]) -> Optional[int]:
    """Wait up to ``timeout`` seconds (``None``: for ever) for ``process`` to end.

    Return its return code, or ``None`` if it is still running when the time is up.
    """
    if process.poll() is not None:
        return process.returncode
    pidfd = _pidfd(process.pid)
    if pidfd is None:
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(None if timeout is None else max(0, int(timeout * 1000))):
            return None
    finally:
        os.close(pidfd)
    return process.wait()


def _pidfd(pid: int) -> Optional[int]:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None
