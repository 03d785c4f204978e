"""What ``pilotid run`` and the agent say on the socket: one request, then two answers.

The client sends one request: a 4-byte length, then NUL-separated fields, all as bytes
(none of them can hold a NUL): the protocol's ``VERSION``, the client's nice value, the
number of resource limits, each as ``number:soft:hard`` (``resource.RLIMIT_*`` numbers
and values, ``-1`` unlimited), the number of arguments, the arguments, the working
directory, the umask in octal, the environment as ``NAME=value``; its descriptors 0, 1
and 2 are attached (``SCM_RIGHTS``).  The agent's child answers ``P`` with its pid (the
client forwards its signals there) and, when the command line has ended, ``S`` with its
exit status.  A request of another version is refused with ``VersionMismatch``: an
agent started before an upgrade fails on the version field (it expects an argument
count there), and a new agent tells an old client (whose first field is a number) to
restart it.  The client imports this module too, so it imports no more than the client
does: ``_socket`` (the C module under ``socket``, whose import costs ``enum``,
``selectors`` and about 2 ms of a client's start) and ``struct``; the sockets passed in
may be either module's.
"""

from __future__ import annotations

import _socket
import os
import struct

#: The request's length prefix.
LENGTH = struct.Struct("!I")
#: One answer: its kind and a number.
ANSWER = struct.Struct("!ci")
#: One descriptor in ``SCM_RIGHTS`` (a C int).
FD = struct.Struct("i")
PID = b"P"
STATUS = b"S"
#: A request larger than this (a huge environment) is refused.
MAX_REQUEST = 4 << 20
#: The client's descriptors the child takes over: standard input, output and error.
STANDARD_FDS = (0, 1, 2)
#: The request's first field.  Version 1 had none (it started with the argument count).
VERSION = b"pilotid-agent/2"


class ProtocolError(Exception):
    """The other side sent what this protocol does not allow."""


class VersionMismatch(ProtocolError):
    """The client speaks another version of this protocol than the agent: the agent was
    started from another ``pilotid`` than the client's (before an upgrade, say)."""


class Request:
    """A decoded request: what the client's process hands over (``limits``:
    ``{resource.RLIMIT_*: (soft, hard)}``)."""

    def __init__(self, argv: "list[str]", cwd: str, umask: int, environ: "dict[str, str]",
                 nice: int, limits: "dict[int, tuple[int, int]]") -> None:
        self.argv, self.cwd, self.umask, self.environ = argv, cwd, umask, environ
        self.nice, self.limits = nice, limits


def encode_request(argv: "list[bytes]", cwd: bytes, umask: int,
                   environ: "dict[bytes, bytes]", nice: int,
                   limits: "dict[int, tuple[int, int]]") -> bytes:
    """The request for ``argv`` run in ``cwd`` with ``umask``, ``environ``, the nice value
    ``nice`` and the resource ``limits``, length prefix included."""
    fields = [VERSION, b"%d" % nice, b"%d" % len(limits)]
    fields += [b"%d:%d:%d" % (limit, soft, hard) for limit, (soft, hard) in limits.items()]
    fields += [b"%d" % len(argv), *argv, cwd, b"%o" % umask]
    fields += [name + b"=" + value for name, value in environ.items()]
    body = b"\0".join(fields)
    return LENGTH.pack(len(body)) + body


def decode_request(body: bytes) -> Request:
    """The ``Request`` of a body (without its length prefix), decoded as the interpreter
    decodes its own (``os.fsdecode``)."""
    fields = body.split(b"\0")
    if fields[0] != VERSION:
        raise VersionMismatch(
            f"the client speaks {_version(fields[0])} of the agent's protocol, this agent "
            f"{VERSION.decode()}: the agent was started from another pilotid than the "
            "client's; restart the agent (pilotid agent) from the client's installation")
    nice = _number(fields, 1, "nice value")
    count = _number(fields, 2, "limit count")
    if count < 0:
        raise ProtocolError("the request's limit count is negative")
    limits = {}
    for item in fields[3:3 + count]:
        try:
            limit, soft, hard = (int(number) for number in item.split(b":"))
        except ValueError:
            raise ProtocolError("a resource limit of the request is not number:soft:hard") \
                from None
        limits[limit] = (soft, hard)
    rest = fields[3 + count:]
    count = _number(rest, 0, "argument count")
    if count < 0 or len(rest) < count + 3:
        raise ProtocolError("the request has fewer fields than its argument count says")
    argv = [os.fsdecode(word) for word in rest[1:count + 1]]
    cwd = os.fsdecode(rest[count + 1])
    try:
        umask = int(rest[count + 2], 8)
    except ValueError:
        raise ProtocolError("the request's umask is not an octal number") from None
    if not 0 <= umask <= 0o777:  # the range of a umask (its highest is 0777), not a mode
        raise ProtocolError("the request's umask is not one")
    environ = {}
    for item in rest[count + 3:]:
        name, equals, value = item.partition(b"=")
        if not name or not equals:
            raise ProtocolError("an environment entry of the request is not NAME=value")
        environ[os.fsdecode(name)] = os.fsdecode(value)
    return Request(argv, cwd, umask, environ, nice, limits)


def _number(fields: "list[bytes]", index: int, what: str) -> int:
    try:
        return int(fields[index])
    except (IndexError, ValueError):
        raise ProtocolError(f"the request has no {what} where one belongs") from None


def _version(first: bytes) -> str:
    if first.isdigit():  # version 1 started with the argument count
        return "version 1 (pilotid-agent/1)"
    return repr(first[:40].decode(errors="replace"))


def send_request(sock: _socket.socket, request: bytes, fds: "list[int]") -> None:
    """Send an ``encode_request`` result with ``fds`` attached to its first bytes."""
    rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))
    sent = sock.sendmsg([request], [rights])
    if sent < len(request):  # nothing more to send is no send: the other end may be gone
        sock.sendall(request[sent:])


def receive_request(sock: _socket.socket) -> "tuple[bytes, list[int]]":
    """(the request's body, the descriptors that came with it): exactly one descriptor
    per standard stream, else ``ProtocolError`` (any received are closed)."""
    data, fds, flags = _receive_fds(sock, 65536, len(STANDARD_FDS) + 1)
    try:
        if flags & _socket.MSG_CTRUNC or len(fds) != len(STANDARD_FDS):
            raise ProtocolError(f"the request came with {len(fds)} descriptors, "
                                f"not {len(STANDARD_FDS)}")
        while len(data) < LENGTH.size:
            data += _more(sock)
        (length,) = LENGTH.unpack_from(data)
        if length > MAX_REQUEST:
            raise ProtocolError(f"the request is {length} bytes long (at most {MAX_REQUEST})")
        while len(data) < LENGTH.size + length:
            data += _more(sock)
        if len(data) != LENGTH.size + length:
            raise ProtocolError("the client sent more than one request")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return data[LENGTH.size:], fds


def _receive_fds(sock: _socket.socket, size: int,
                 most: int) -> "tuple[bytes, list[int], int]":
    """(data, descriptors, flags) of one ``recvmsg``, ``SCM_RIGHTS`` taken apart (as
    ``socket.recv_fds`` does: kept here so that the client need not import ``socket``)."""
    data, ancillary, flags, _ = sock.recvmsg(size, _socket.CMSG_LEN(most * FD.size))
    fds: "list[int]" = []
    for level, kind, payload in ancillary:
        if (level, kind) == (_socket.SOL_SOCKET, _socket.SCM_RIGHTS):
            fds += (fd for (fd,) in FD.iter_unpack(payload[:len(payload) - len(payload) % FD.size]))
    return data, fds, flags


def _more(sock: _socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ProtocolError("the client closed the connection within its request")
    return chunk


def send_answer(sock: _socket.socket, kind: bytes, number: int) -> None:
    """Send one answer (``PID`` or ``STATUS``)."""
    sock.sendall(ANSWER.pack(kind, number))


def answers(sock: _socket.socket):
    """Yield (kind, number) for each answer until the other side closes."""
    pending = b""
    while True:
        chunk = sock.recv(64)
        if not chunk:
            return
        pending += chunk
        while len(pending) >= ANSWER.size:
            yield ANSWER.unpack_from(pending)
            pending = pending[ANSWER.size:]
