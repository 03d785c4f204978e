"""Issue 13, item 2, on the real node (real sudo and the gLExec stand-in, the real
``pilotid-alice``): no process of the payload outlives the job, even one that left the
job's process tree and keeps changing its PID.

The relay double-forks, calls ``setsid`` and re-forks every few milliseconds, each
generation exiting as soon as its child exists: any list of PIDs is stale before it is
used.  Its processes carry a token in their command line (``$0`` of every generation), so
that the check counts them alone among ``pilotid-alice``'s processes: other jobs may run as
her on this node at the same time.

The queue leases the account per job (``leftover_processes: "account"``): the sweep then
stops every process of ``pilotid-alice`` on the node, those of a concurrent job included.
What the payload queues with ``at`` or ``cron`` escapes any kill: ``pilotid probe`` says
whether the account may.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path
from typing import Dict, List

import pytest

from pilotid.identity.scheduling import SCHEDULERS
from tests.security.scene import own
from tests.system import node
from tests.system.glexec_node import STANDIN, standin_fixture  # noqa: F401 - a fixture

#: Jobs per test.  Before the sweep the relay outlived the first job in every run tried (4
#: through sudo, 1 more through each switch with ``leftover_processes: "job"``).
ROUNDS = 3
#: Seconds the relay gets to be gone once ``pilotid run`` returned.
SETTLE = 2.0
KILL = "/bin/kill"
#: Seconds without a heartbeat after which the relay counts as gone.
QUIET = 0.3


def relay_payload(token: str, beat: Path) -> str:
    """A transformation that leaves the relay running and exits 0 at once; every
    generation of the relay adds a byte to ``beat``."""
    hop = f"hop() {{ printf . >>{beat}; hop & exit 0; }}; hop & exit 0"
    return ("#!/bin/bash\n"
            f"( setsid /bin/bash -c '{hop}' relay-{token} </dev/null >/dev/null 2>&1 & )\n"
            "sleep 0.3\n"
            "exit 0\n")


def processes_of(uid: int, token: str) -> List[str]:
    """``pid state`` of the processes whose real uid is ``uid`` and whose command line
    holds ``token``; zombies are not counted (they run nothing)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        state = fields.get("State", "?").split()[0]
        if (int(fields.get("Uid", "-1").split()[0]) == uid and token.encode() in cmdline
                and state not in ("Z", "X")):
            found.append(f"{entry} {state}")
    return found


def beating(beat: Path, seconds: float) -> bool:
    """True while ``beat`` still grows ``seconds`` after the job: a generation of the
    relay lives a few milliseconds, too short for a look at /proc to see it reliably, but
    every one of them adds to its heartbeat."""
    deadline = time.monotonic() + seconds
    size = beat.stat().st_size
    while time.monotonic() < deadline:
        time.sleep(QUIET)
        grown = beat.stat().st_size
        if grown == size:
            return False
        size = grown
    return True


def end_relay(beat: Path) -> None:
    """Clean up after a job the relay outlived: as ``pilotid-alice``, SIGSTOP every process
    of hers until the heartbeat stops (a look at /proc cannot keep up with the relay, and a
    SIGSTOP by pid lands after the process forked), then SIGKILL them all."""
    for _ in range(100):
        node.run_as(node.ALICE, [KILL, "-STOP", "--", "-1"])
        if not beating(beat, QUIET):
            break
    node.run_as(node.ALICE, [KILL, "-KILL", "--", "-1"])


def switch_through(switcher: str, request) -> Dict:
    """The queue fields of ``switcher``: the scene's sudo, or the gLExec stand-in (which
    maps alice's DN to ``pilotid-alice`` too)."""
    if switcher == "sudo":
        return {}
    request.getfixturevalue("standin")
    return {"switcher": "glexec", "glexec_path": str(STANDIN), "grid_mapfile": None,
            "switch_retry_delay": 0}


@pytest.mark.parametrize("switcher", ["sudo", "glexec"])
def test_a_reforking_daemon_does_not_outlive_the_job(scene, switcher, request):
    """After each of ``ROUNDS`` jobs, within ``SETTLE`` s of the result, the relay's
    heartbeat has stopped and no process of ``pilotid-alice`` holding its token is left
    (stopped ones included).  The sweep goes through the queue's switch."""
    queue = switch_through(switcher, request)
    alice = node.account(node.ALICE).uid
    for attempt in range(ROUNDS):
        token = secrets.token_hex(8)
        beat = scene.base / f"beat-{token}"
        beat.touch()
        own(beat, node.ALICE, 0o644)
        scene.transformation("runAthena", relay_payload(token, beat))
        try:
            run = scene.run(timeout=90, leftover_processes="account", **queue)
            assert run.outcome == "succeeded", run.why()
            assert run.result["switcher"] == switcher
            assert beat.stat().st_size > 0, "the relay never started"
            assert not beating(beat, SETTLE), (
                f"job {attempt + 1} of {ROUNDS}: the relay outlived the job "
                f"({beat.stat().st_size} generations so far)\n{run.why()}")
            left = processes_of(alice, token)
            assert not left, f"job {attempt + 1}: processes of the relay left: {left}"
        finally:
            if beating(beat, QUIET):
                end_relay(beat)


def test_probe_says_whether_the_payloads_account_may_queue_work_with_at_or_cron(scene):
    """``pilotid probe`` as the pilot, through the real sudo to ``pilotid-alice``: one line
    each for ``at`` and ``cron``, saying whether that program is installed here."""
    python, site = scene.pilot_install
    argv = [python, "-m", "pilotid", "probe", "--queues", str(scene.queues()), "--queue",
            "SEC", "--workdir", str(scene.workdir()), "--json"]
    done = node.run_as(node.PILOT, argv, env={"PYTHONPATH": site,
                                              "X509_USER_PROXY": str(scene.pilot_proxy)})
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert checks["test switch"]["status"] == "ok", checks
    for scheduler in SCHEDULERS:
        line = checks[scheduler.name]
        installed = any(os.path.exists(path) for path in scheduler.commands)
        assert ("not installed" not in line["detail"]) == installed, line
        if installed and line["status"] == "warn":
            assert f"{node.ALICE} may" in line["detail"], line
