"""The agent's wire protocol (``pilotid.agent.protocol``) over real socket pairs."""

from __future__ import annotations

import os
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pilotid.agent import protocol
from pilotid.agent.client import FAULT, UNREACHABLE
from pilotid.errors import AgentUnreachableError

#: What a command line, a directory or an environment entry may hold: any byte but NUL.
WORDS = st.binary(max_size=40).map(lambda b: b.replace(b"\0", b"x"))
NAMES = st.binary(min_size=1, max_size=12).map(
    lambda b: b.replace(b"\0", b"x").replace(b"=", b"x"))


@given(argv=st.lists(WORDS, max_size=6), cwd=WORDS,
       environ=st.dictionaries(NAMES, WORDS, max_size=6))
def test_request_round_trips_any_bytes(argv, cwd, environ):
    """Arguments, directory and environment arrive as the interpreter would decode its own
    (``os.fsdecode``): empty words, ``=`` in values and bytes that are not UTF-8 included."""
    encoded = protocol.encode_request(argv, cwd, environ)
    got_argv, got_cwd, got_environ = protocol.decode_request(encoded[protocol.LENGTH.size:])
    assert got_argv == [os.fsdecode(w) for w in argv]
    assert got_cwd == os.fsdecode(cwd)
    assert got_environ == {os.fsdecode(k): os.fsdecode(v) for k, v in environ.items()}


@pytest.mark.parametrize("body", [b"x\0a\0/", b"3\0a\0/", b"0\0/\0NOEQUALS", b"0\0/\0=v"])
def test_malformed_request_is_refused(body):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_request(body)


def test_standard_descriptors_reach_the_other_side():
    """The three descriptors sent are the same open files on the receiving side."""
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pipes = [os.pipe() for _ in range(3)]
    try:
        request = protocol.encode_request([b"run"], b"/", {b"A": b"1"})
        protocol.send_request(client, request, [w for _, w in pipes])
        body, fds = protocol.receive_request(server)
        assert protocol.decode_request(body) == (["run"], "/", {"A": "1"})
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
        request = protocol.encode_request([b"run"], b"/", environ)
        fds = [os.dup(0), os.dup(1), os.dup(2)]
        sender = threading.Thread(target=protocol.send_request, args=(client, request, fds))
        sender.start()
        body, received = protocol.receive_request(server)
        sender.join()
        for fd in fds + received:
            os.close(fd)
        assert len(protocol.decode_request(body)[2]) == 300
    finally:
        client.close()
        server.close()


def test_a_request_without_three_descriptors_is_refused_and_its_descriptors_closed():
    client, server = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    try:
        protocol.send_request(client, protocol.encode_request([], b"/", {}), [write_end])
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
