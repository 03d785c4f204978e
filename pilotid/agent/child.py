"""One job in the agent: a forked child becomes the client's ``pilotid`` process.

The child takes over what the client's process had (its standard descriptors, working
directory, umask, environment, resource limits and nice value (``pilotid.agent.limits``),
control group where it may (``pilotid.agent.cgroup``), the signal dispositions the agent
started with), answers its pid, runs the command line in-process and answers its exit
status.  While it runs, the
connection is watched: a client that goes away (killed, say) ends the job as SIGTERM to an
in-process ``pilotid run`` does: the payload stopped, the result and accounting record
written, the work directory given back.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import traceback
from typing import Any, Callable, Dict, List

from pilotid.agent import protocol
from pilotid.agent.cgroup import join_cgroup_of
from pilotid.agent.limits import take_over_limits, take_over_nice
from pilotid.errors import AgentUnreachableError, exit_status

log = logging.getLogger(__name__)

#: How long a client may take to send its request (it sends it at once).
REQUEST_TIMEOUT = 30.0


def serve_one(conn: socket.socket, run: Callable[[List[str]], int],
              dispositions: Dict[int, Any], client: int) -> int:
    """Run the request on ``conn`` with ``run`` (``pilotid.cli.main``) as its process;
    return the exit status answered.  ``client`` is the pid of the process that connected
    (``SO_PEERCRED``): the child joins its control group where it may.  Called in the
    forked child only."""
    for signum, disposition in dispositions.items():
        signal.signal(signum, disposition)
    conn.settimeout(REQUEST_TIMEOUT)
    body, fds = protocol.receive_request(conn)
    conn.settimeout(None)
    for target, fd in zip(protocol.STANDARD_FDS, fds):
        if fd != target:
            os.dup2(fd, target)
    for fd in set(fds) - set(protocol.STANDARD_FDS):
        os.close(fd)
    _fresh_standard_streams()
    _fresh_logging()
    try:
        request = protocol.decode_request(body)
        os.chdir(request.cwd)
    except protocol.VersionMismatch as error:
        status = _refuse(str(error))
    except OSError as error:
        status = _refuse(f"cannot enter the client's working directory {request.cwd}: "
                         f"{error.strerror}")
    else:
        os.umask(request.umask)
        # before any thread: on Linux a nice value is a thread's, inherited by new ones
        take_over_limits(request.limits)
        take_over_nice(request.nice)
        join_cgroup_of(client)
        os.environ.clear()
        os.environ.update(request.environ)
        protocol.send_answer(conn, protocol.PID, os.getpid())
        finished = threading.Event()
        threading.Thread(target=_end_when_client_leaves, args=(conn, finished),
                         daemon=True).start()
        status = _run(run, request.argv)
        finished.set()
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        protocol.send_answer(conn, protocol.STATUS, status)
    except OSError:
        pass  # the client is gone; its job was ended all the same
    return status


def _run(run: Callable[[List[str]], int], argv: List[str]) -> int:
    """``run(argv)`` as the interpreter would end it: its status, ``SystemExit``'s code
    (argparse's usage errors, ``--help``), or 1 and the traceback on stderr."""
    try:
        return exit_status(run(argv) or 0)
    except SystemExit as done:
        if done.code is None or isinstance(done.code, int):
            return exit_status(done.code or 0)
        print(done.code, file=sys.stderr)
        return 1
    except BaseException:  # as the interpreter does: the traceback, then status 1
        traceback.print_exc()
        return 1


def _end_when_client_leaves(conn: socket.socket, finished: threading.Event) -> None:
    while True:
        try:
            data = conn.recv(4096)
        except OSError:
            data = b""
        if not data:
            break
    if not finished.is_set():
        log.warning("the client of agent child %d went away: stopping its job as on SIGTERM",
                    os.getpid())
        os.kill(os.getpid(), signal.SIGTERM)


def _fresh_standard_streams() -> None:
    """``sys.stdin``, ``stdout``, ``stderr`` on descriptors 0 to 2 as they now are (the
    client's), buffered as the interpreter would buffer them there."""
    for name, fd, mode in (("stdin", 0, "r"), ("stdout", 1, "w"), ("stderr", 2, "w")):
        old = getattr(sys, name)
        lines = name == "stderr" or (name == "stdout" and os.isatty(fd))
        setattr(sys, name, open(fd, mode, buffering=1 if lines else -1,
                                encoding=old.encoding, errors=old.errors, closefd=False))


def _fresh_logging() -> None:
    """No handler of the agent's: the command line sets its own (``-q``, ``--debug``)."""
    root = logging.getLogger()
    for handler in root.handlers[:]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def _refuse(message: str) -> int:
    error = AgentUnreachableError(message)
    print(f"pilotid: error {error.code} ({error.fault}): {error}", file=sys.stderr)
    return exit_status(error.code)
