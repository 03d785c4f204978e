"""The node syslog lines (``pilotid.nodelog``), received by a real socket the test binds.

Each receiver is a real datagram socket, on loopback (UDP, as ``host:port``) or in a
temporary directory (a unix socket, as ``/dev/log`` is); the launcher runs a real payload
through the ``pilotid.testing`` fakes.  Runs as any user.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pytest

from pilotid.errors import SwitchNotPermittedError
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.identity.credfile import write_private
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.nodelog import NodeLog, escape, format_line
from pilotid.syslog_target import parse_address
from tests.conftest import ALICE_DN
from tests.unit.test_launcher import JOB, RefusingSwitcher, make_launcher, sh
from tests.unit.test_voms import make_ac, proxy_cert, voms_extension

AUTHPRIV = 10
NOTICE, WARNING, INFO = 5, 4, 6


@pytest.fixture(scope="module")
def credential_pem() -> bytes:
    ca = TestCA(bits=1024)
    return make_proxy(ca.issue(ALICE_DN, bits=1024), bits=1024)


@pytest.fixture
def credential(tmp_path: Path, credential_pem: bytes) -> Credential:
    path = write_private(tmp_path / "x509up_alice", credential_pem)
    return Credential(path=path, proxy=parse_proxy(credential_pem, path), source="static")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


class Receiver:
    """A bound datagram socket standing for syslogd; ``address`` is what a queue names."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self.sock = sock
        self.address = address
        sock.settimeout(5)

    def lines(self, count: int) -> List[Tuple[int, str]]:
        """The next ``count`` datagrams as (priority, text after the tag), then checks that
        no more came."""
        got = [self.sock.recv(65536) for _ in range(count)]
        self.sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            extra = self.sock.recv(65536)
            pytest.fail(f"one more line than expected: {extra!r}")
        parsed = []
        for data in got:
            assert data.endswith(b"\0")
            head, _, text = data[:-1].decode().partition(">")
            parsed.append((int(head.lstrip("<")), text))
        return parsed


@pytest.fixture
def udp_receiver() -> Iterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield Receiver(sock, f"127.0.0.1:{sock.getsockname()[1]}")
    finally:
        sock.close()


@pytest.fixture
def unix_receiver(tmp_path: Path) -> Iterator[Receiver]:
    path = tmp_path / "log"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    try:
        yield Receiver(sock, str(path))
    finally:
        sock.close()


def fields(text: str) -> Dict[str, str]:
    """``pilotid[pid]: pilot : K=v ; K=v`` as a dict (with ``ident`` and ``pilot``)."""
    tag, _, rest = text.partition(": ")
    pilot, _, rest = rest.partition(" : ")
    found = {"ident": tag, "pilot": pilot}
    for pair in rest.split(" ; "):
        key, _, value = pair.partition("=")
        assert key not in found, f"field {key} twice in {text!r}"
        found[key] = value
    return found


def test_a_job_sends_a_switch_line_then_an_end_line_to_authpriv(credential, workdir,
                                                                 udp_receiver):
    launcher = make_launcher(credential, sh("exit 0"), syslog_address=udp_receiver.address)
    result = launcher.run(JOB, workdir)
    (switch_priority, switch), (end_priority, end) = udp_receiver.lines(2)
    me = Account.current()
    assert result.outcome == "succeeded"
    assert switch_priority == AUTHPRIV * 8 + NOTICE
    assert fields(switch) == {
        "ident": f"pilotid[{os.getpid()}]", "pilot": me.name, "EVENT": "switch",
        "QUEUE": "ANALY_UNIT", "PANDAID": "4242", "SWITCHER": "recording",
        "DN": credential.identity, "ISSUER": "/DC=org/DC=example/CN=pilotid Test CA",
        "FQANS": "-", "USER": me.name, "UID": str(me.uid), "GID": str(me.gid),
        "PID": fields(switch)["PID"], "PWD": str(workdir),
        "COMMAND": fields(switch)["COMMAND"]}
    assert fields(switch)["COMMAND"].startswith(str(workdir / ".pilotid-wrapper-4242-"))
    assert end_priority == AUTHPRIV * 8 + INFO
    assert {k: v for k, v in fields(end).items() if k in (
        "EVENT", "PANDAID", "USER", "OUTCOME", "EXIT", "SIGNAL", "ERROR_CODE", "ERROR")} == {
        "EVENT": "end", "PANDAID": "4242", "USER": me.name, "OUTCOME": "succeeded",
        "EXIT": "0", "SIGNAL": "-", "ERROR_CODE": "0", "ERROR": "-"}


def test_the_queue_facility_and_a_unix_socket_are_used(credential, workdir, unix_receiver):
    launcher = make_launcher(credential, sh("exit 3"), syslog_address=unix_receiver.address,
                             syslog_facility="local3")
    launcher.run(JOB, workdir)
    (first, _), (second, end) = unix_receiver.lines(2)
    assert (first, second) == (19 * 8 + NOTICE, 19 * 8 + INFO)
    assert fields(end)["OUTCOME"] == "payload_failed" and fields(end)["EXIT"] == "3"


def test_a_refused_probe_is_one_refused_line_with_the_error(credential, workdir,
                                                            udp_receiver):
    queue_settings = {"syslog_address": udp_receiver.address}
    switcher = RefusingSwitcher(SwitchNotPermittedError("sudo refuses pilot -> carol"))
    launcher = make_launcher(credential, sh("exit 0"), switcher=switcher, **queue_settings)
    launcher.run(JOB, workdir)
    [(priority, line)] = udp_receiver.lines(1)
    found = fields(line)
    assert priority == AUTHPRIV * 8 + WARNING
    assert (found["EVENT"], found["OUTCOME"], found["USER"], found["DN"]) == (
        "refused", "switch_failed", "-", credential.identity)
    assert found["ERROR"] == "sudo refuses pilot -> carol"


def test_the_fqans_of_a_voms_proxy_are_logged_primary_first(credential, udp_receiver):
    voms = proxy_cert(extension=voms_extension(make_ac(
        fqans=("/atlas/Role=production", "/atlas"))))
    with_voms = dataclasses.replace(credential, proxy=dataclasses.replace(
        credential.proxy, certificates=(voms,) + credential.proxy.certificates))
    NodeLog("Q", address=udp_receiver.address).switched(
        1, with_voms, Account.current(), "sudo", "/w", "/w/run.sh", 99)
    [(_, line)] = udp_receiver.lines(1)
    assert fields(line)["FQANS"] == "/atlas/Role=production,/atlas"


def test_a_dn_with_a_newline_and_a_semicolon_cannot_forge_a_line_or_field(credential,
                                                                          udp_receiver):
    hostile = "/CN=eve\nDec  6 03:12:00 node sudo: x ; USER=root ; UID=0"
    forged = dataclasses.replace(credential, proxy=dataclasses.replace(
        credential.proxy, identity=hostile))
    NodeLog("Q", address=udp_receiver.address).switched(
        1, forged, Account("pilotid-alice", 1001, 1001), "sudo", "/w", "/w/run.sh", 99)
    [(_, line)] = udp_receiver.lines(1)
    found = fields(line)
    assert "\n" not in line
    assert (found["USER"], found["UID"]) == ("pilotid-alice", "1001")
    assert found["DN"] == "/CN=eve\\x0aDec  6 03:12:00 node sudo: x \\x3b USER=root \\x3b UID=0"


@pytest.mark.parametrize("value, shown", [
    ("/DC=org/CN=Alice Analyst 1234", "/DC=org/CN=Alice Analyst 1234"),
    ("a;b", "a\\x3bb"),
    ("a\nb\r\0c", "a\\x0ab\\x0d\\x00c"),
    ("Jos\\xC3\\xA9", "Jos\\\\xC3\\\\xA9"),
    ("José", "Jos\\xc3\\xa9"),
    (None, "-"),
    (1001, "1001"),
])
def test_values_are_escaped(value, shown):
    assert escape(value) == shown


def test_a_long_value_is_cut():
    assert escape("x" * 1000) == "x" * 400 + "..."


def test_a_line_reads_as_sudo_writes_its_own():
    assert format_line("pilot", [("EVENT", "switch"), ("USER", "alice")]) == \
        "pilot : EVENT=switch ; USER=alice"


@pytest.mark.parametrize("text, address", [
    ("/dev/log", "/dev/log"), ("127.0.0.1:514", ("127.0.0.1", 514)),
    ("[::1]:5514", ("::1", 5514))])
def test_addresses_are_a_socket_path_or_host_port(text, address):
    assert parse_address(text) == address


@pytest.mark.parametrize("text", ["dev/log", "localhost", "host:0", "host:65536", ":514"])
def test_other_addresses_are_refused(text):
    with pytest.raises(ValueError):
        parse_address(text)


def test_an_unreachable_syslog_is_one_error_on_the_pilot_log_and_the_job_stands(
        credential, tmp_path, caplog):
    launcher = make_launcher(credential, sh("exit 0"),
                             syslog_address=str(tmp_path / "no-such-socket"))
    results = []
    for name in ("w1", "w2"):
        (tmp_path / name).mkdir()
        with caplog.at_level(logging.DEBUG, logger="pilotid.nodelog"):
            results.append(launcher.run(JOB, tmp_path / name))
    errors = [r for r in caplog.records
              if r.name == "pilotid.nodelog" and r.levelno >= logging.ERROR]
    assert [r.outcome for r in results] == ["succeeded", "succeeded"]
    assert len(errors) == 1 and "no-such-socket" in errors[0].getMessage()


def test_a_null_address_sends_nothing(credential, workdir, udp_receiver):
    launcher = make_launcher(credential, sh("exit 0"), syslog_address=None)
    assert launcher.run(JOB, workdir).outcome == "succeeded"
    assert udp_receiver.lines(0) == []


def test_lines_follow_a_restarted_syslogd_on_the_same_socket(tmp_path):
    path = tmp_path / "log"
    node_log = NodeLog("Q", address=str(path))
    for round_ in range(2):  # syslogd gone and back: a new socket at the same path
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(str(path))
        try:
            node_log.send("info", [("EVENT", f"round{round_}")])
            assert b"EVENT=round" in sock.recv(4096)
        finally:
            sock.close()
            path.unlink()



def test_the_voms_extension_looked_for_is_the_one_voms_reads():
    from pilotid import nodelog
    from pilotid.identity.voms import VOMS_AC_EXTENSION_OID

    assert nodelog._VOMS_OID == VOMS_AC_EXTENSION_OID
