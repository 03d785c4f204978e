"""End to end: the node syslog lines of ``pilotid run`` through real sudo.

The pilot (pilotid-pilot, with setpriv) runs ``python -m pilotid run`` on sudo queues whose
``syslog_address`` is a unix datagram socket this test binds in a shared directory, as
syslogd binds ``/dev/log``; what arrives there is what the node's syslog would get.  The
lines are printed (``pytest -s`` shows them) and checked field by field.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path
from typing import Dict, Iterator, List

import pytest

from tests.conftest import ALICE_DN, CAROL_DN
from tests.system import node
from tests.system.test_run_sudo import Site

AUTHPRIV = 10


class SyslogSocket:
    """A unix datagram socket standing for ``/dev/log`` (mode 0666, as syslogd makes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        os.chmod(path, 0o666)  # noqa: S103 - every account may log, as with /dev/log
        self.sock.settimeout(0.5)

    def drain(self) -> List[str]:
        """Every line received so far, as bytes after the priority, decoded."""
        lines = []
        while True:
            try:
                lines.append(self.sock.recv(65536).rstrip(b"\0").decode())
            except socket.timeout:
                return lines

    def close(self) -> None:
        self.sock.close()


def fields(line: str) -> Dict[str, str]:
    priority, _, rest = line.partition(">")
    tag, _, rest = rest.partition(": ")
    pilot, _, rest = rest.partition(" : ")
    found = {"priority": priority.lstrip("<"), "tag": tag, "pilot": pilot}
    found.update(pair.partition("=")[::2] for pair in rest.split(" ; "))
    return found


@pytest.fixture(scope="module")
def traced(real_node, pilot_install, users) -> Iterator[tuple]:
    python, pythonpath = pilot_install
    base = node.make_shared_dir("pilotid-syslog-sudo-")
    receiver = None
    try:
        site = Site(base, python, pythonpath, users)
        receiver = SyslogSocket(base / "log")
        queues = json.loads(site.queues.read_text())["queues"]
        traced_queues = {name: dict(queues[name], syslog_address=str(receiver.path))
                         for name in ("ANALY_SUDO", "ANALY_SUDO_CAROL")}
        site.queues = base / "syslog-queues.json"
        site.queues.write_text(json.dumps({"queues": traced_queues}))
        site.queues.chmod(0o644)
        site.syslog_queues = traced_queues  # type: ignore[attr-defined]
        yield site, receiver
    finally:
        if receiver is not None:
            receiver.close()
        subprocess.run(["rm", "-rf", "--", str(base)], check=False)


def test_a_job_through_sudo_leaves_a_switch_line_and_an_end_line(traced):
    site, receiver = traced
    receiver.drain()
    run = site.run("ANALY_SUDO", site.job(PandaID=7001), site.workdir())
    lines = receiver.drain()
    print("\n".join(lines))
    assert run.status == 0, run.stderr
    assert len(lines) == 2, lines
    switch, end = map(fields, lines)
    alice = node.account(node.ALICE)
    assert {k: switch[k] for k in ("priority", "pilot", "EVENT", "QUEUE", "PANDAID", "SWITCHER",
                                   "DN", "USER", "UID", "GID")} == {
        "priority": str(AUTHPRIV * 8 + 5), "pilot": node.PILOT, "EVENT": "switch",
        "QUEUE": "ANALY_SUDO", "PANDAID": "7001", "SWITCHER": "sudo", "DN": ALICE_DN,
        "USER": node.ALICE, "UID": str(alice.uid), "GID": str(alice.gid)}
    assert switch["tag"].startswith("pilotid[") and switch["COMMAND"].endswith(".sh")
    assert (end["EVENT"], end["OUTCOME"], end["EXIT"], end["USER"]) == (
        "end", "succeeded", "0", node.ALICE)


def test_a_refused_sudo_leaves_one_refused_line_naming_the_user(traced):
    site, receiver = traced
    receiver.drain()
    run = site.run("ANALY_SUDO_CAROL", site.job(PandaID=7002, prodUserID=CAROL_DN),
                   site.workdir())
    lines = receiver.drain()
    print("\n".join(lines))
    assert run.result is not None and run.result["outcome"] == "switch_failed", run.stderr
    [refused] = map(fields, lines)
    assert refused["priority"] == str(AUTHPRIV * 8 + 4)
    assert (refused["EVENT"], refused["OUTCOME"], refused["DN"]) == (
        "refused", "switch_failed", CAROL_DN)
    assert refused["ERROR"] != "-"


def test_the_fqans_of_a_real_voms_proxy_are_in_the_switch_line(traced, voms_lab, users):
    """A proxy made by the real voms-proxy-fake: its FQANs, primary first."""
    site, receiver = traced
    made = voms_lab.fake(users.alice, "alice", "atlas", ["/atlas/Role=production", "/atlas"])
    proxy = site.own_file(site.area / "x509up_alice_voms", made.read_bytes(), 0o600)
    queues = site.base / "syslog-voms-queues.json"
    queues.write_text(json.dumps({"queues": {"ANALY_SUDO_VOMS": dict(
        site.syslog_queues["ANALY_SUDO"], proxy_file=str(proxy))}}))
    queues.chmod(0o644)
    site.queues = queues
    receiver.drain()
    run = site.run("ANALY_SUDO_VOMS", site.job(PandaID=7003), site.workdir())
    lines = receiver.drain()
    print("\n".join(lines))
    assert run.status == 0, run.stderr
    switch = fields(lines[0])
    assert (switch["EVENT"], switch["USER"]) == ("switch", node.ALICE)
    assert switch["FQANS"].startswith("/atlas/Role=production")
    assert "/atlas" in switch["FQANS"].split(",")
