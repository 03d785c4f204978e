"""docs/tutorial.rst on the real node: the outputs it shows for ``pilotid probe`` on a sudo
queue and for ``examples/myproxy-lab.sh`` are what they print, with the tutorial's own queue
settings, its test credentials (``pilotid testca``) and the test accounts standing in for
``pilot`` and ``alice``.  ``...`` on the page stands for what varies, and so do numbers."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys

import pytest

from tests.system import node
from tests.tutorial_blocks import TUTORIAL, tutorial_commands, unmatched

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
ACCOUNTS = {node.PILOT: "pilot", node.ALICE: "alice"}


def shown(start: str):
    return next(c for c in tutorial_commands() if c.text.startswith(start) and c.output)


def tutorial_queue(name: str) -> dict:
    """The settings of queue ``name`` from the tutorial's JSON block."""
    text = TUTORIAL.read_text(encoding="utf-8")
    for block in re.findall(r"\.\. code-block:: json\n\n((?:   .*\n|\n)+)", text):
        if f'"{name}"' in block:
            return json.loads(block)["queues"][name]
    raise AssertionError(f"the tutorial has no queue {name}")


@pytest.fixture
def sudo_node(shared_tmp, pilot_install):
    """The tutorial's part 2 on the test node: its queue, a grid-mapfile for alice, the
    pilot's proxies made with pilotid testca, the pilot's scratch directory."""
    python, site = pilot_install
    home, scratch = shared_tmp / "home", shared_tmp / "scratch"
    proxies = home / "proxies"
    pilot = node.account(node.PILOT)
    for directory in (home, scratch):  # the pilot's, as the tutorial's root made them
        directory.mkdir(mode=0o755)
        os.chown(directory, pilot.uid, pilot.gid)
    made = node.run_as(node.PILOT, [python, "-m", "pilotid", "-q", "testca", str(proxies),
                                    "--user", "alice", ALICE_DN], env={"PYTHONPATH": site})
    assert made.returncode == 0, made.stderr
    mapfile = shared_tmp / "grid-mapfile"
    mapfile.write_text(f'"{ALICE_DN}" {node.ALICE}\n')
    settings = dict(tutorial_queue("ANALY_SUDO"), proxy_file=str(proxies / "x509up_alice"),
                    grid_mapfile=str(mapfile))
    queues = shared_tmp / "queues.json"
    queues.write_text(json.dumps({"queues": {"ANALY_SUDO": settings}}))
    names = {str(proxies): "/home/pilot/proxies", str(queues): "/etc/pilotid/queues.json",
             str(scratch): "/scratch/pilot", **ACCOUNTS}
    return python, site, names


def test_tutorial_shows_what_pilotid_probe_prints_on_a_sudo_queue(sudo_node):
    python, site, names = sudo_node
    command = shown("pilotid probe")
    argv = shlex.split(command.text)[1:]
    page_to_real = {page: real for real, page in names.items() if page.startswith("/")}
    argv = [page_to_real.get(a, a) for a in argv]
    done = node.run_as(node.PILOT, [python, "-m", "pilotid", *argv], env={"PYTHONPATH": site},
                       cwd=page_to_real["/scratch/pilot"], text=True)
    assert done.returncode == 0, done.stderr
    missing, extra = unmatched(command.output, (done.stdout + done.stderr).splitlines(), names)
    assert (missing, extra) == ([], [])


def test_tutorial_shows_what_the_myproxy_lab_prints(real_node, tmp_path):
    if shutil.which("myproxy-server") is None:
        pytest.skip("myproxy-server is not installed (Debian package myproxy-server)")
    command = shown("examples/myproxy-lab.sh")
    page_dir = shlex.split(command.text)[1]
    lab = tmp_path / "lab"
    done = subprocess.run([str(node.REPO / "examples" / "myproxy-lab.sh"), str(lab)],
                          env=dict(os.environ, PILOTID=f"{sys.executable} -m pilotid"),
                          capture_output=True, text=True, timeout=300)
    try:
        assert done.returncode == 0, done.stderr
        missing, extra = unmatched(command.output, (done.stdout + done.stderr).splitlines(),
                                   {str(lab): page_dir})
        assert (missing, extra) == ([], [])
    finally:
        if (lab / "myproxy.pid").exists():
            os.kill(int((lab / "myproxy.pid").read_text()), signal.SIGTERM)
