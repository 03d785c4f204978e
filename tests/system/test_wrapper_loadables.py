"""The wrapper with bash's loadable mkdir, rm and stat, as the node has them (bash-builtins).

Run as a test account, traced with strace: the egg cache is made and removed without
starting a program, and the site's setup lines still get the programs, not the loadables.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Sequence

import pytest

from pilotid.payloads.job import PayloadCommand
from pilotid.payloads.marker import read_marker
from pilotid.payloads.wrapper import LOADABLE_BUILTINS, WrapperSpec, bash_loadables, write_wrapper
from pilotid.values import ProxyHandover
from tests.system import node


@pytest.fixture
def scene(shared_tmp):
    """A work directory and an egg cache base of Alice's, in a directory she can reach."""
    alice = node.account(node.ALICE)
    work = shared_tmp / "work"
    eggs = shared_tmp / "eggs"
    for path in (work, eggs):
        path.mkdir(mode=0o700)
        os.chown(path, alice.uid, alice.gid)
    return shared_tmp, work, eggs


def run_wrapper(scene, setup: Sequence[str] = ()) -> "tuple[subprocess.CompletedProcess, str]":
    """Write the wrapper for /bin/true and run it as Alice under strace, as a switch to her
    would (the leftover modes stripped); (result, trace)."""
    base, work, eggs = scene
    wrapper, trace = base / "wrapper.sh", base / "trace"
    write_wrapper(WrapperSpec(
        command=PayloadCommand(argv=("/bin/true",), setup=tuple(setup)), workdir=work,
        handover=ProxyHandover(work / "proxy"), marker=work / "marker",
        environment=(("PATH", "/usr/bin:/bin"),), egg_cache_base=eggs,
        strip_leftover_modes=True), wrapper)
    alice = node.account(node.ALICE)
    os.chown(wrapper, alice.uid, alice.gid)
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), "setpriv",
         "--reuid", str(alice.uid), "--regid", str(alice.gid), "--init-groups", "--",
         str(wrapper)], capture_output=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    return done, trace.read_text()


def programs(trace: str) -> list:
    """The programs the traced wrapper started (execve calls that succeeded)."""
    return [Path(m.group(1)).name for m in re.finditer(r'execve\("([^"]+)".*= 0$', trace,
                                                       re.MULTILINE)]


def test_the_node_has_the_loadables_the_wrapper_uses(real_node):
    found = bash_loadables()
    assert [Path(p).name for p in found] == list(LOADABLE_BUILTINS), (
        "setup-node.sh installs bash-builtins: the wrapper should find mkdir, rm and stat")


def test_egg_cache_is_made_and_removed_without_starting_a_program(scene):
    done, trace = run_wrapper(scene)
    assert done.returncode == 0, done.stderr.decode()
    started = programs(trace)
    assert "mkdir" not in started and "rm" not in started, started
    # the payload, then the cleanup's one find for the modes the payload left (issue 13)
    assert started[-2:] == ["true", "find"], started
    _, work, eggs = scene
    assert read_marker(work / "marker").payload_status == 0
    assert os.listdir(eggs) == []


def test_site_setup_lines_get_the_programs_not_the_loadables(scene):
    check = ('[ "$(type -t mkdir)" = file ] && [ "$(type -t rm)" = file ] && '
             '[ "$(type -t stat)" = file ]')
    done, trace = run_wrapper(scene, setup=[check, 'mkdir -v -p "$PWD/made"'])
    assert done.returncode == 0, done.stderr.decode()
    _, work, eggs = scene
    assert (work / "made").is_dir()
    assert os.listdir(eggs) == []
