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
from pathlib import Path

import pytest

from tests.system import node
from tests.tutorial_blocks import TUTORIAL, tutorial_commands, tutorial_queue, unmatched

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
ACCOUNTS = {node.PILOT: "pilot", node.ALICE: "alice"}


def shown(start: str):
    return next(c for c in tutorial_commands() if c.text.startswith(start) and c.output)


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


def tutorial_job(panda_id: int) -> dict:
    """The job description with ``panda_id`` from the tutorial's JSON blocks."""
    text = TUTORIAL.read_text(encoding="utf-8")
    for block in re.findall(r"\.\. code-block:: json\n\n((?:   .*\n|\n)+)", text):
        if f'"PandaID": {panda_id}' in block:
            return json.loads(block)
    raise AssertionError(f"the tutorial has no job {panda_id}")


def assert_last_runs_as_alice(python: str, site: str, steps, real, scratch: Path) -> None:
    """Run the page's ``steps`` as the pilot in ``scratch`` (``real`` turns the page's paths
    into this node's; ``pilotid`` is the test install's): each must succeed, and the last,
    a ``pilotid run --json``, must report the job ``succeeded`` as alice."""
    for step in steps:
        argv = shlex.split(real(step.text))
        if argv[0] == "pilotid":
            argv = [python, "-m", "pilotid", *argv[1:]]
        else:
            argv = ["/bin/sh", "-c", real(step.text)]
        done = node.run_as(node.PILOT, argv, env={"PYTHONPATH": site}, cwd=scratch, text=True)
        assert done.returncode == 0, (step.text, done.stdout, done.stderr)
    result = json.loads(done.stdout)
    assert (result["outcome"], result["account"]["name"]) == ("succeeded", node.ALICE)


def test_tutorial_token_job_runs_as_alice(shared_tmp, pilot_install):
    """Part 4 on the real node: the tokens made by its testissuer command, its token map
    (alice -> the test account), its queue and job, its commands as the pilot."""
    python, site = pilot_install
    home, scratch = shared_tmp / "home", shared_tmp / "scratch"
    pilot = node.account(node.PILOT)
    for directory in (home, scratch):
        directory.mkdir(mode=0o755)
        os.chown(directory, pilot.uid, pilot.gid)
    tokens = home / "tokens"
    names = {"/home/pilot/tokens": str(tokens), "/scratch/pilot": str(scratch),
             "/etc/pilotid/queues.json": str(shared_tmp / "queues.json"),
             "/etc/grid-security/token-map": str(shared_tmp / "token-map"),
             "/etc/grid-security/grid-mapfile": str(shared_tmp / "grid-mapfile"),
             "token-job.json": str(shared_tmp / "token-job.json")}

    def real(text: str) -> str:
        for page, path in names.items():
            text = text.replace(page, path)
        return text

    (shared_tmp / "token-map").write_text(f"sub https://tokens.example.org/ alice {node.ALICE}\n")
    (shared_tmp / "grid-mapfile").write_text("")
    (shared_tmp / "queues.json").write_text(real(json.dumps(
        {"queues": {"ANALY_TOKENS": tutorial_queue("ANALY_TOKENS")}})))
    (shared_tmp / "token-job.json").write_text(json.dumps(tutorial_job(4242201)))
    for path in ("token-map", "grid-mapfile", "queues.json", "token-job.json"):
        (shared_tmp / path).chmod(0o644)
    commands = [c for c in tutorial_commands() if c.prompt == "pilot$ "]
    start = next(i for i, c in enumerate(commands) if c.text.startswith("pilotid testissuer"))
    steps = [c for c in commands[start:] if not c.text.startswith("pilotid token-info")]
    assert_last_runs_as_alice(python, site, steps, real, scratch)


def test_tutorial_sudo_job_runs_as_alice(sudo_node, shared_tmp):
    """Part 2's job on the real node, as the page gives it: its commands as the pilot, its
    queue, the example job file the page copies (the page's JSON block is that file)."""
    python, site, names = sudo_node
    page_to_real = {page: real for real, page in names.items() if page.startswith("/")}
    example = node.REPO / "examples" / "jobs" / "runAthena-simple.json"
    assert json.loads(example.read_text()) == tutorial_job(4242002)

    def real(text: str) -> str:
        text = text.replace("/path/to/pilotid", str(node.REPO))
        for page, path in sorted(page_to_real.items(), key=lambda item: -len(item[0])):
            text = text.replace(page, path)
        return text

    commands = [c for c in tutorial_commands() if c.prompt == "pilot$ "]
    start = next(i for i, c in enumerate(commands)
                 if c.text.startswith("mkdir -m 700 /scratch/pilot/job-4242002"))
    end = next(i for i, c in enumerate(commands)
               if i > start and c.text.startswith("pilotid run"))
    assert_last_runs_as_alice(python, site, commands[start:end + 1], real,
                              Path(page_to_real["/scratch/pilot"]))
