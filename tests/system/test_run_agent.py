"""``pilotid run`` through ``pilotid agent`` as pilotid-pilot, with real sudo to pilotid-alice.

The agent runs as the pilot (setpriv) with its socket in the pilot's 0700 home; the
client is the same ``python -m pilotid run ... --json`` the other system tests run, with
``PILOTID_AGENT`` set (``tests/security/scene.py``).  Each job gets the checks every job
of the scene gets (``check_aftermath``: accounting, no credential copy outside the work
directory, no ACL entry of the target left in the pilot's home).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from pilotid.agent.cgroup import unified_mount
from tests.system import node

PAYLOAD = """#!/bin/bash
echo "whoami=$(id -un)"
echo started
sleep "${1:-0}"
"""


#: The payload of the limits tests: its limits as the kernel shows them, and its nice value.
LIMITS_PAYLOAD = """#!/bin/bash
cat /proc/self/limits
echo "nice=$(nice)"
"""


def _agent(scene, slot=(), preexec=None):
    """The pilot's agent (started through ``slot``, ``preexec`` run as root in it first),
    listening in its home: its socket."""
    python, site = scene.pilot_install
    socket_path = scene.home / "agent" / "socket"
    log = scene.base / "agent.log"
    with open(log, "w") as out:
        process = node.popen_as(node.PILOT, [*slot, python, "-m", "pilotid", "agent",
                                             "--socket", str(socket_path)],
                                env={"PYTHONPATH": site}, stdout=out, stderr=out, cwd="/",
                                preexec_fn=preexec)
    deadline = time.monotonic() + 60
    while not socket_path.exists() and process.poll() is None:
        assert time.monotonic() < deadline, "the agent did not start listening"
        time.sleep(0.05)
    assert process.poll() is None, log.read_text()
    yield socket_path
    process.terminate()
    assert process.wait(timeout=30) == 0, log.read_text()


@pytest.fixture
def agent(scene):
    """The pilot's agent, listening in its home: the socket's path."""
    yield from _agent(scene)


@pytest.fixture
def limited_agent(scene):
    """The pilot's agent started with a hard open-file limit of 1024 and nice 5."""
    yield from _agent(scene, ["prlimit", "--nofile=1024:1024", "--", "nice", "-n", "5"])


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


@pytest.fixture
def agent_in_a_cgroup(scene):
    """The pilot's agent in a cgroup v2 group of its own that root made (a slot's): its
    socket, and the group as ``/proc/<pid>/cgroup`` names it."""
    mount = unified_mount()
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy on this node")
    with node.fresh_cgroup(mount) as (name, procs):
        agent = _agent(scene, preexec=lambda: procs.write_text(str(os.getpid())))
        yield next(agent), name
        next(agent, None)  # stops the agent


def test_a_job_the_pilot_cannot_move_stays_in_the_agents_control_group_and_says_so(
        scene, agent_in_a_cgroup):
    """The pilot (no delegation) cannot move its agent's child into the client's group (the
    root group here): the job runs all the same, and the client's stderr says where it
    stays, once."""
    socket_path, name = agent_in_a_cgroup
    scene.transformation("runAthena", "#!/bin/bash\ngrep '^0::' /proc/self/cgroup\n")
    run = scene.run(env={"PILOTID_AGENT": str(socket_path)})
    assert (run.returncode, run.outcome) == (0, "succeeded"), run.why()
    assert run.payload_out() == f"0::{name}\n"
    assert run.stderr.count(f"the job stays in the agent's control group {name}, not its "
                            "client's / (Permission denied)") == 1, run.stderr


def _limit(shown: str, name: str) -> "tuple[str, str]":
    """(soft, hard) of the limit ``name`` in a ``/proc/<pid>/limits`` text."""
    line = next(line for line in shown.splitlines() if line.startswith(name))
    soft, hard = line[len(name):].split()[:2]
    return soft, hard


def test_a_sudo_job_through_the_agent_has_the_slots_limits_and_nice_value(scene, agent):
    """The pilot's client started in a batch slot's limits (lower than the agent's, soft
    and hard) and nice value: the payload, through sudo as alice, has them."""
    scene.transformation("runAthena", LIMITS_PAYLOAD)
    run = scene.run(env={"PILOTID_AGENT": str(agent)},
                    slot=["prlimit", "--nofile=200:300", "--cpu=3000:3600",
                          "--fsize=1073741824:2147483648", "--", "nice", "-n", "7"])
    assert (run.returncode, run.outcome) == (0, "succeeded"), run.why()
    shown = run.payload_out()
    assert _limit(shown, "Max open files") == ("200", "300"), shown
    assert _limit(shown, "Max cpu time") == ("3000", "3600"), shown
    assert _limit(shown, "Max file size") == ("1073741824", "2147483648"), shown
    assert "nice=7" in shown
    assert "the agent's" not in run.stderr  # nothing kept of the agent's


def test_what_the_agent_cannot_raise_stays_the_agents_and_is_said(scene, limited_agent):
    """An agent (unprivileged, as the pilot) with a lower hard open-file limit and a higher
    nice value than its client's: the job keeps the agent's, and the client's stderr
    says so, once for each."""
    scene.transformation("runAthena", LIMITS_PAYLOAD)
    run = scene.run(env={"PILOTID_AGENT": str(limited_agent)},
                    slot=["prlimit", "--nofile=2048:4096", "--"])
    assert (run.returncode, run.outcome) == (0, "succeeded"), run.why()
    shown = run.payload_out()
    assert _limit(shown, "Max open files") == ("1024", "1024"), shown
    assert "nice=5" in shown
    assert run.stderr.count("RLIMIT_NOFILE (4096) is above the agent's (1024)") == 1
    assert run.stderr.count("nice value 0 is below the agent's (5)") == 1
