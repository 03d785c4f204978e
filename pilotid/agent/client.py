"""``pilotid run`` handed to an agent: the whole of what the client process does.

It connects to the agent's socket, sends its command line, working directory, umask,
environment, nice value, resource limits and standard descriptors, forwards SIGTERM,
SIGINT and SIGHUP to the agent's child that runs the job, and exits with that child's
status.  A shell pilot starts it once per job: it imports nothing that the interpreter's
start has not (``os``, ``sys``) but the C modules under ``signal`` and ``socket`` (those
two import ``enum`` and ``selectors``: about 6 ms, a bare sudo's time), ``struct`` and
``resource`` (a C module), and not the error tree: ``UNREACHABLE`` is
``AgentUnreachableError.code``, which a unit test keeps equal.
"""

from __future__ import annotations

import _signal
import _socket
import os
import resource
import sys

from pilotid.agent import protocol

#: ``pilotid.errors.AgentUnreachableError``: its code, and whose fault it is.
UNREACHABLE = 78
FAULT = "pilot"
FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)


class _Child:
    """The agent's child for this job, once known, and the signals to pass it."""

    def __init__(self) -> None:
        self.pid = 0
        self.pending: "list[int]" = []
        self.forwarded = 0

    def signal(self, signum: int, frame: object) -> None:
        if self.pid:
            self._send(signum)
        else:
            self.pending.append(signum)

    def known(self, pid: int) -> None:
        self.pid = pid
        for signum in self.pending:
            self._send(signum)

    def _send(self, signum: int) -> None:
        self.forwarded = signum
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass  # it has just ended: its status is on its way


def run_through_agent(path: str, argv: "list[str]") -> int:
    """Run the command line ``argv`` in the agent listening at ``path``; its exit status."""
    child = _Child()
    for signum in FORWARDED:
        _signal.signal(signum, child.signal)
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
        request = protocol.encode_request([os.fsencode(word) for word in argv],
                                          os.getcwdb(), _umask(), dict(os.environb),
                                          os.getpriority(os.PRIO_PROCESS, 0), _limits())
        try:
            protocol.send_request(sock, request, _standard_fds())
        except BrokenPipeError:
            pass  # the other end closed: a refusal, or a child that has answered already
        for kind, number in protocol.answers(sock):
            if kind == protocol.PID:
                child.known(number)
            elif kind == protocol.STATUS:
                return number
    except (ConnectionResetError, BrokenPipeError):
        pass  # the agent closed the connection on the request: a refusal (below)
    except OSError as error:
        return _fail(f"cannot hand the job to the pilotid agent at {path} "
                     f"(PILOTID_AGENT): {error.strerror or error}")
    finally:
        sock.close()
    if not child.pid:
        return _fail(f"the pilotid agent at {path} (PILOTID_AGENT) closed the connection "
                     "without taking the job: is it running as this account, and was it "
                     "started from this pilotid (restart it after an upgrade)? (its log says)")
    if child.forwarded:  # it died of the signal, as an in-process run would have
        return 128 + child.forwarded
    return _fail(f"the pilotid agent's process for this job (pid {child.pid}) ended without "
                 "an exit status (killed?)")


def _umask() -> int:
    umask = os.umask(0o077)
    os.umask(umask)
    return umask


def _limits() -> "dict[int, tuple[int, int]]":
    """Every resource limit this platform has: ``{resource.RLIMIT_*: (soft, hard)}``."""
    limits = (getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_"))
    return {limit: resource.getrlimit(limit) for limit in limits}


def _standard_fds() -> "list[int]":
    """Descriptors 0, 1 and 2, with /dev/null in place of one that is closed."""
    fds = []
    for fd in protocol.STANDARD_FDS:
        try:
            os.fstat(fd)
        except OSError:
            fd = os.open(os.devnull, os.O_RDWR)
        fds.append(fd)
    return fds


def _fail(message: str) -> int:
    print(f"pilotid: error {UNREACHABLE} ({FAULT}): {message}", file=sys.stderr)
    return UNREACHABLE
