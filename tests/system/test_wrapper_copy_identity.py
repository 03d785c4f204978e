"""The device and inode the wrapper notes for its credential copies, through real sudo.

The pilot finds a copy the payload renamed by the ``proxy-copy=``/``token-copy=`` lines of
the marker: they must be the copy's own ``os.lstat`` figures, whether the wrapper read
them with bash's loadable ``stat`` or, without it, with the program.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from pilotid.payloads import wrapper
from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.marker import read_marker
from pilotid.payloads.wrapper import WrapperSpec, write_wrapper
from pilotid.values import ProxyHandover
from tests.system import node

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def run_through_sudo(base: Path) -> "tuple[subprocess.CompletedProcess, Path, str]":
    """Write a wrapper for /bin/true taking a proxy and a token on standard input and run
    it as Alice through ``sudo -n -u``, under strace; (result, handover directory, trace)."""
    alice = node.account(node.ALICE)
    work, handover, eggs = base / "work", base / "handover", base / "eggs"
    for path in (work, handover, eggs):
        path.mkdir(mode=0o700)
        os.chown(path, alice.uid, alice.gid)
    script, trace = base / "wrapper.sh", base / "trace"
    write_wrapper(WrapperSpec(
        command=PayloadCommand(argv=("/bin/true",)), workdir=work,
        handover=ProxyHandover(handover / "x509up", from_stdin=True,
                               payload_token=handover / "token"),
        marker=work / "marker", environment=(("PATH", "/usr/bin:/bin"),),
        egg_cache_base=eggs), script)
    os.chown(script, alice.uid, alice.gid)
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "sudo", "-n", "-u",
         node.ALICE, str(script)], input=f"{PEM}\0token-value".encode(), capture_output=True,
        timeout=60, env={"PATH": "/usr/bin:/bin"})
    return done, handover, trace.read_text()


def programs(trace: str) -> list:
    """The programs the traced command started (execve calls that succeeded)."""
    return [Path(m.group(1)).name for m in re.finditer(r'execve\("([^"]+)".*= 0$', trace,
                                                       re.MULTILINE)]


def assert_copies_are_noted(base: Path, done: subprocess.CompletedProcess,
                            handover: Path) -> None:
    assert done.returncode == 0, done.stderr.decode()
    noted = read_marker(base / "work" / "marker").copies
    actual = tuple((info.st_dev, info.st_ino)
                   for info in (os.lstat(handover / "x509up"), os.lstat(handover / "token")))
    assert noted == actual


def test_copies_are_noted_with_the_loadable_stat_without_starting_a_program(shared_tmp):
    """No fork for either copy (the node has the loadables: test_wrapper_loadables)."""
    done, handover, trace = run_through_sudo(shared_tmp)
    assert_copies_are_noted(shared_tmp, done, handover)
    assert "stat" not in programs(trace), programs(trace)


def test_copies_are_noted_with_the_program_where_no_loadable_is_trusted(
        shared_tmp, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(wrapper, "LOADABLE_DIRS", ())
    done, handover, trace = run_through_sudo(shared_tmp)
    assert_copies_are_noted(shared_tmp, done, handover)
    assert programs(trace).count("stat") == 2, programs(trace)
