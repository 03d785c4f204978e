"""``pilotid agent``: a fork server that ``pilotid run`` hands its job to.

A pilot written in shell starts ``pilotid run`` once per job; a fresh interpreter pays
Python's start-up and pilotid's imports every time.  The agent pays them once: it runs as
the pilot, has imported what a run needs (``pilotid.commands.agent``), and forks a child
per connection, which becomes the client's ``pilotid`` process (``pilotid.agent.child``).
Only the agent's own account may connect: the socket's directory is 0700
(``pilotid.agent.listener``) and each peer's uid is checked (``SO_PEERCRED``).  The agent
probes nothing itself; it keeps the probe answers its children report
(``pilotid.agent.probes``) for the children it forks later.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import struct
import sys
from pathlib import Path
from typing import Any, Callable, Dict, List

from pilotid.agent.child import serve_one
from pilotid.agent.listener import listen
from pilotid.agent.probes import ProbeReports
from pilotid.strategies.probecache import PILOT_PROBE_CACHE, ProbeCache

log = logging.getLogger(__name__)

#: The signals the agent stops on; its children get back the dispositions it found.
STOPPING = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
#: How often the agent reaps its ended children while no one connects (seconds).
REAP_INTERVAL = 1.0


class AgentStopped(Exception):
    """Raised in the agent by SIGTERM, SIGINT or SIGHUP: stop listening."""


def serve(path: Path, run: Callable[[List[str]], int],
          cache: "ProbeCache[object]" = PILOT_PROBE_CACHE) -> int:
    """Listen on ``path`` and run each connection's command line with ``run`` in a child
    of its own; return 0 when told to stop (its running children go on).  The probe
    answers the children report are kept in ``cache``, which later children start with."""
    dispositions: Dict[int, Any] = {signum: signal.signal(signum, _stop) for signum in STOPPING}
    reports = ProbeReports(cache)
    try:
        listener = listen(path)
    except BaseException:
        reports.close()
        raise
    log.info("agent %d listening on %s for uid %d", os.getpid(), path, os.geteuid())
    try:
        while True:
            _reap()
            ready, _, _ = select.select([listener.fileno(), reports.read_fd], [], [],
                                        REAP_INTERVAL)
            if reports.read_fd in ready:
                reports.receive()
            if listener.fileno() in ready:
                conn, _ = listener.accept()
                with conn:
                    _hand_over(conn, listener, reports, run, dispositions)
    except AgentStopped:
        log.info("agent %d stopping; running jobs go on", os.getpid())
        return 0
    finally:
        listener.close()
        reports.close()
        try:
            os.unlink(path)
        except OSError:
            pass


def _stop(signum: int, frame: object) -> None:
    raise AgentStopped(signum)


def peer(conn: socket.socket) -> "tuple[int, int]":
    """(pid, uid) of the process that connected ``conn``: the kernel's word
    (``SO_PEERCRED``), not the client's."""
    pid, uid, _ = PEERCRED.unpack(conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                  PEERCRED.size))
    return pid, uid


def _hand_over(conn: socket.socket, listener: socket.socket, reports: ProbeReports,
               run: Callable[[List[str]], int], dispositions: Dict[int, Any]) -> None:
    pid, uid = peer(conn)
    if uid != os.geteuid():
        log.warning("agent refused a connection from pid %d of uid %d: only uid %d may hand "
                    "it jobs", pid, uid, os.geteuid())
        return
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child:
        log.debug("agent: pid %d's job runs in child %d", pid, child)
        return
    status = 1
    try:
        listener.close()
        reports.in_child()
        status = serve_one(conn, run, dispositions, pid)
    except BaseException:
        log.exception("agent child %d: the request of pid %d failed", os.getpid(), pid)
    finally:
        os._exit(status)


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
