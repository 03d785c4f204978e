"""The agent's wire protocol (``pilotid.agent.protocol``) over real socket pairs."""

from __future__ import annotations

import os
import signal
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotid.agent import protocol
from pilotid.agent.client import FAULT, FORWARDED, UNREACHABLE, run_through_agent
from pilotid.errors import AgentUnreachableError

#: What a command line, a directory or an environment entry may hold: any byte but NUL.
WORDS = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"x"))
NAMES = st.binary(min_size=1, max_size=12).map(
    lambda b: b.replace(b"\0", b"x").replace(b"=", b"x"))


#: A resource limit's value: unlimited (-1) or a number.
LIMIT_VALUES = st.integers(-1, 1 << 62)
NO_LIMITS: "dict[int, tuple[int, int]]" = {}


@given(argv=st.lists(WORDS, max_size=6), cwd=WORDS, umask=st.integers(0, 0o777),
       environ=st.dictionaries(NAMES, WORDS, max_size=6), nice=st.integers(-20, 19),
       limits=st.dictionaries(st.integers(0, 40), st.tuples(LIMIT_VALUES, LIMIT_VALUES),
                              max_size=16))
def test_request_round_trips_any_bytes(argv, cwd, umask, environ, nice, limits):
    """Arguments, directory and environment arrive as the interpreter would decode its own
    (``os.fsdecode``): empty words, ``=`` in values and bytes that are not UTF-8 included;
    the nice value and limits (unlimited included) as they were."""
    encoded = protocol.encode_request(argv, cwd, umask, environ, nice, limits)
    got = protocol.decode_request(encoded[protocol.LENGTH.size:])
    assert got.argv == [os.fsdecode(w) for w in argv]
    assert (got.cwd, got.umask) == (os.fsdecode(cwd), umask)
    assert got.environ == {os.fsdecode(k): os.fsdecode(v) for k, v in environ.items()}
    assert (got.nice, got.limits) == (nice, limits)


V = protocol.VERSION


@pytest.mark.parametrize("fields", [
    [V, b"0", b"0", b"x", b"a", b"/", b"22"],            # no argument count
    [V, b"0", b"0", b"3", b"a", b"/", b"22"],            # fewer arguments than counted
    [V, b"0", b"0", b"0", b"/", b"22", b"NOEQUALS"],     # an environment entry without '='
    [V, b"0", b"0", b"0", b"/", b"22", b"=v"],           # ... without a name
    [V, b"0", b"0", b"0", b"/", b"99"],                  # a umask that is not octal
    [V, b"0", b"0", b"0", b"/", b"1000"],                # ... nor a umask
    [V, b"0", b"0", b"0", b"/"],                         # no umask at all
    [V, b"x", b"0", b"0", b"/", b"22"],                  # no nice value
    [V, b"0", b"1", b"7:1", b"0", b"/", b"22"],          # a limit without its hard value
    [V, b"0", b"1", b"0", b"/", b"22"],                  # fewer limits than counted
    [V],                                                 # nothing but the version
    [V, b"0", b"-1", b"1", b"run", b"/", b"22"],         # a negative limit count
], ids=["count", "fewer", "no-equals", "no-name", "not-octal", "too-big", "no-umask",
        "no-nice", "half-limit", "fewer-limits", "version-only", "negative-limits"])
def test_malformed_request_is_refused(fields):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_request(b"\0".join(fields))


def test_a_request_of_version_1_is_refused_with_a_word_to_restart_the_agent():
    """What a client from before limits were handed over sends: its argument count first."""
    with pytest.raises(protocol.VersionMismatch, match="version 1.*restart the agent"):
        protocol.decode_request(b"\0".join([b"1", b"run", b"/", b"22", b"A=1"]))


def test_a_request_of_a_later_version_is_refused():
    with pytest.raises(protocol.VersionMismatch, match="pilotid-agent/3.*restart the agent"):
        protocol.decode_request(b"\0".join([b"pilotid-agent/3", b"0", b"0", b"0", b"/", b"22"]))


def test_standard_descriptors_reach_the_other_side():
    """The three descriptors sent are the same open files on the receiving side."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pipes = [os.pipe() for _ in range(3)]
    try:
        request = protocol.encode_request([b"run"], b"/", 0o022, {b"A": b"1"}, 0, NO_LIMITS)
        protocol.send_request(client, request, [w for _, w in pipes])
        body, fds = protocol.receive_request(server)
        got = protocol.decode_request(body)
        assert (got.argv, got.cwd, got.umask, got.environ) == (["run"], "/", 0o022, {"A": "1"})
        for number, (fd, (read_end, _)) in enumerate(zip(fds, pipes)):
            os.write(fd, b"stream %d" % number)
            os.close(fd)
            assert os.read(read_end, 100) == b"stream %d" % number
    finally:
        client.close()
        server.close()
        for read_end, write_end in pipes:
            os.close(read_end)
            os.close(write_end)


def test_a_request_of_several_chunks_is_read_whole():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    environ = {b"BIG%d" % n: b"v" * 1000 for n in range(300)}  # about 300 kB
    try:
        request = protocol.encode_request([b"run"], b"/", 0o022, environ, 0, NO_LIMITS)
        fds = [os.dup(0), os.dup(1), os.dup(2)]
        sender = threading.Thread(target=protocol.send_request, args=(client, request, fds))
        sender.start()
        body, received = protocol.receive_request(server)
        sender.join()
        for fd in fds + received:
            os.close(fd)
        assert len(protocol.decode_request(body).environ) == 300
    finally:
        client.close()
        server.close()


def test_a_request_without_three_descriptors_is_refused_and_its_descriptors_closed():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    try:
        request = protocol.encode_request([], b"/", 0, {}, 0, NO_LIMITS)
        protocol.send_request(client, request, [write_end])
        os.close(write_end)
        with pytest.raises(protocol.ProtocolError, match="1 descriptors"):
            protocol.receive_request(server)
        assert os.read(read_end, 1) == b""  # no copy of the write end left open
    finally:
        os.close(read_end)
        client.close()
        server.close()


def test_answers_are_read_as_they_come():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    protocol.send_answer(server, protocol.PID, 1234)
    protocol.send_answer(server, protocol.STATUS, 73)
    server.close()
    assert list(protocol.answers(client)) == [(protocol.PID, 1234), (protocol.STATUS, 73)]
    client.close()


def test_client_reports_the_error_trees_code_without_importing_it():
    assert (UNREACHABLE, FAULT) == (AgentUnreachableError.code, AgentUnreachableError.fault)


class _Recording:
    """A socket whose sends are recorded, passed on to the real one."""

    def __init__(self, sock):
        self.sock, self.sent = sock, []

    def sendmsg(self, buffers, ancillary):
        self.sent.append(("sendmsg", b"".join(buffers)))
        return self.sock.sendmsg(buffers, ancillary)

    def sendall(self, data):
        self.sent.append(("sendall", data))
        return self.sock.sendall(data)


def test_a_request_sent_whole_is_followed_by_no_empty_send():
    """An empty ``sendall`` after a complete ``sendmsg`` fails with EPIPE where the agent's
    child has answered and closed already (a usage error ends at once): nothing follows."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    fds = [os.dup(0), os.dup(1), os.dup(2)]
    try:
        recording = _Recording(client)
        request = protocol.encode_request([b"run"], b"/", 0o022, {b"A": b"1"}, 0, NO_LIMITS)
        protocol.send_request(recording, request, fds)
        assert recording.sent == [("sendmsg", request)]
        body, received = protocol.receive_request(server)
        for fd in received:
            os.close(fd)
    finally:
        for fd in fds:
            os.close(fd)
        client.close()
        server.close()


def test_the_client_reads_the_answers_of_an_agent_that_closed_at_once(tmp_path):
    """An agent's child that answers and closes before the client is done sending (its
    command line failed at once): the client exits with the status answered, not 78."""
    path = str(tmp_path / "socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def answer_and_close():
        conn, _ = listener.accept()
        with conn:
            _, fds = protocol.receive_request(conn)
            for fd in fds:
                os.close(fd)
            protocol.send_answer(conn, protocol.PID, os.getpid())
            protocol.send_answer(conn, protocol.STATUS, 2)

    agent = threading.Thread(target=answer_and_close)
    agent.start()
    saved = {signum: signal.getsignal(signum) for signum in FORWARDED}
    try:
        assert run_through_agent(path, ["run", "--no-such-option"]) == 2
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        agent.join()
        listener.close()
