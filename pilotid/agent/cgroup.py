"""The agent's child joins its client's control group (cgroup v2), where it may.

A batch system that accounts or limits a job by the control group it started the pilot's
``pilotid run`` in sees a job handed to the agent only if the agent's child moves itself
there: it writes its pid to that group's ``cgroup.procs``.  Only the unified hierarchy
(cgroup v2) is followed.  Moving needs write access to the client's group and to the
groups above both (delegation); an unprivileged pilot seldom has it, and then the job
stays in the agent's group: one WARNING says so, and the job goes on.
"""

from __future__ import annotations

import logging
import os
from typing import Optional

log = logging.getLogger(__name__)

#: Where the kernel lists the mounted file systems of this process's namespace.
MOUNTINFO = "/proc/self/mountinfo"


def join_cgroup_of(pid: int) -> None:
    """Move this process into the cgroup v2 of process ``pid`` (the client), unless it is
    there already; where that is not allowed, log one WARNING and stay."""
    wanted = cgroup_of(str(pid))
    own = cgroup_of("self")
    if wanted is None or wanted == own:
        return
    mount = unified_mount()
    if mount is None or wanted.startswith("/.."):  # not reachable from this namespace
        _stay(own, wanted, "its control group is not reachable from here")
        return
    try:
        fd = os.open(os.path.join(mount, wanted.lstrip("/"), "cgroup.procs"),
                     os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.write(fd, b"%d" % os.getpid())
        finally:
            os.close(fd)
    except OSError as error:
        _stay(own, wanted, error.strerror or str(error))


def cgroup_of(process: str) -> Optional[str]:
    """The cgroup v2 path of ``/proc/<process>`` (``"self"`` or a pid), or ``None`` (no
    such process, or no cgroup v2)."""
    try:
        with open(f"/proc/{process}/cgroup", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            return line[3:]
    return None


def unified_mount() -> Optional[str]:
    """Where the cgroup v2 hierarchy's root is mounted (``/sys/fs/cgroup``, or
    ``/sys/fs/cgroup/unified`` on a hybrid node), or ``None``."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        mount, _, kind = line.partition(" - ")
        fields = mount.split()
        if kind.split()[:1] == ["cgroup2"] and len(fields) > 4 and fields[3] == "/":
            return fields[4]
    return None


def _stay(own: Optional[str], wanted: str, why: str) -> None:
    log.warning("the job stays in the agent's control group %s, not its client's %s (%s): "
                "a batch system that accounts by control group does not see it",
                own, wanted, why)
