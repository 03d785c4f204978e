"""``pilotid run`` through ``pilotid agent`` as pilotid-pilot, with real sudo to pilotid-alice.

The agent runs as the pilot (setpriv) with its socket in the pilot's 0700 home; the
client is the same ``python -m pilotid run ... --json`` the other system tests run, with
``PILOTID_AGENT`` set (``tests/security/scene.py``).  Each job gets the checks every job
of the scene gets (``check_aftermath``: accounting, no credential copy outside the work
directory, no ACL entry of the target left in the pilot's home).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.system import node

PAYLOAD = """#!/bin/bash
echo "whoami=$(id -un)"
echo started
sleep "${1:-0}"
"""


@pytest.fixture
def agent(scene):
    """The pilot's agent, listening in its home: the socket's path."""
    python, site = scene.pilot_install
    socket_path = scene.home / "agent" / "socket"
    log = scene.base / "agent.log"
    with open(log, "w") as out:
        process = node.popen_as(node.PILOT, [python, "-m", "pilotid", "agent", "--socket",
                                             str(socket_path)],
                                env={"PYTHONPATH": site}, stdout=out, stderr=out, cwd="/")
    deadline = time.monotonic() + 60
    while not socket_path.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the agent did not start listening"
        time.sleep(0.05)
    assert process.poll() is None, log.read_text()
    yield socket_path
    process.terminate()
    assert process.wait(timeout=30) == 0, log.read_text()


def test_a_sudo_job_through_the_agent_runs_as_the_user(scene, agent):
    scene.transformation("runAthena", PAYLOAD)
    run = scene.run(env={"PILOTID_AGENT": str(agent)})
    assert (run.returncode, run.outcome) == (0, "succeeded"), run.why()
    assert run.result["account"]["name"] == node.ALICE
    assert f"whoami={node.ALICE}" in run.payload_out()
    assert "agent child" not in run.stderr  # no message of the agent's: the job's lines only
    scene.check_aftermath(run)


def test_the_socket_is_the_pilots_alone(scene, agent):
    pilot = node.account(node.PILOT).uid
    for path, mode in ((agent.parent, 0o700), (agent, 0o600)):
        found = path.stat()
        assert (found.st_uid, found.st_mode & 0o777) == (pilot, mode)


def test_a_killed_client_ends_its_sudo_job_and_gives_the_work_directory_back(scene, agent):
    """SIGKILL to ``pilotid run``: the agent's child stops the payload through sudo, writes
    the result and accounting record, reclaims the grant (no entry for alice left)."""
    scene.transformation("runAthena", PAYLOAD)
    job = scene.job(jobPars="600")
    started = time.monotonic()
    process, workdir, _ = scene.start(job, env={"PILOTID_AGENT": str(agent)})
    deadline = time.monotonic() + 60
    while not any("started" in p.read_text() for p in workdir.glob("pilotid-*.stdout")):
        assert time.monotonic() < deadline and process.poll() is None, \
            process.communicate()[1].decode(errors="replace")
        time.sleep(0.05)
    process.kill()
    run = scene.finish(process, job, workdir, started)
    assert run.returncode == -9
    accounting = workdir / "accounting.jsonl"
    deadline = time.monotonic() + 60
    while not accounting.exists():
        assert time.monotonic() < deadline, "no accounting record after the client died"
        time.sleep(0.05)
    record = json.loads(accounting.read_text().splitlines()[-1])
    assert (record["outcome"], record["error_code"]) == ("interrupted", 73)
    acl = subprocess.run(["getfacl", "-R", "-p", "-n", str(workdir)], capture_output=True,
                         text=True).stdout
    alice = str(node.account(node.ALICE).uid)
    assert not [line for line in acl.splitlines() if line.startswith(f"user:{alice}:")], acl
    assert not [p for p in Path("/proc").iterdir() if p.name.isdigit()
                and _is_payload(p, workdir)]


def _is_payload(proc: Path, workdir: Path) -> bool:
    try:
        return b"sleep\x00600" in (proc / "cmdline").read_bytes()
    except OSError:
        return False
