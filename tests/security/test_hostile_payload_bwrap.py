"""The attacker's suite again, with ``isolation: bwrap`` (real bubblewrap): under ``sudo``
as pilotid-alice, and under ``noop`` where the payload keeps the pilot's own uid.

Under ``noop`` + ``bwrap`` the uid is the pilot's: the container holds, of the job's
private directory, only the payload's own proxy copy (bound read-only; what the payload
makes beside it stays in the container's own /tmp), and the wrapper is bound read-only
(the payload can neither rewrite nor rename it); everything outside must be blocked, and
no process may be left.  The attacks on the pilot's process run under
``sudo`` only: under ``noop`` the processes above the payload in the container (the
wrapper, bwrap's init) have its uid, and signalling them only ends its own job.
"""

from __future__ import annotations

import json

import pytest

from tests.security import test_hostile_payload as attacker_suite
from tests.security.scene import kill_all_with, wait_until_gone
from tests.security.test_hostile_payload import attacks, hostile_job, new_token

hostile = attacker_suite.hostile  # the attacker's scene, the same fixture

#: The hostile payload's interpreter, outside the system the container sees.
INTERPRETER_DIR = "/opt/pilotid-test/venv"

SUDO_BWRAP = {"isolation": "bwrap", "bwrap_binds": [INTERPRETER_DIR]}
NOOP_BWRAP = {**SUDO_BWRAP, "switcher": "noop", "grid_mapfile": None}

#: What the payload may do under noop + bwrap, with the pilot's own uid, that the isolation
#: does not stop: list and read the skeleton of the private directory in its own /tmp (its
#: own proxy copy, bound read-only) and plant a file there (in the container's /tmp only),
#: and /proc of the processes above it in the container (the wrapper and bwrap's init, of
#: its own uid: the "pilot" it finds there is one of them; the real pilot is not in its PID
#: namespace).
INSIDE_THE_CONTAINER = ("private directory", "from /proc", "in /proc")


def run_attacks(hostile, queue: dict, only: str = "") -> "tuple":
    token = new_token()
    workdir = hostile.workdir()
    run = hostile.run(hostile_job(hostile, workdir, token, only=only), workdir=workdir,
                      token=token, **queue)
    return run, token


def test_under_sudo_and_bwrap_every_attack_is_blocked_and_the_pilot_not_even_found(hostile):
    """As without isolation, and more: the pilot's process is not found at all, and the
    path to the work directory (through the pilot's home here) is a skeleton in the
    container's own /tmp: a file made there never reaches the real home."""
    run, token = run_attacks(hostile, SUDO_BWRAP)
    try:
        assert run.outcome == "succeeded", run.why()
        report = attacks(run)
        by_name = {a["attack"]: a for a in report}
        assert by_name["find the pilot's process"]["detail"] == "None", by_name
        assert not (hostile.home / "planted").exists()
        succeeded = [a for a in report if a["result"] != "blocked" and a["attack"] not in (
            "find the pilot's process", "create a file in the pilot's home")]
        assert not succeeded, json.dumps(succeeded, indent=1)
        assert len(report) >= 20
    finally:
        kill_all_with(token)


@pytest.mark.parametrize("attacks_on", ["credentials", "files"])
def test_under_noop_and_bwrap_nothing_outside_the_container_is_reached(hostile, attacks_on):
    run, token = run_attacks(hostile, NOOP_BWRAP, only=attacks_on)
    try:
        assert run.outcome == "succeeded", run.why()
        report = attacks(run)
        succeeded = [a for a in report if a["result"] != "blocked"
                     and not any(inside in a["attack"] for inside in INSIDE_THE_CONTAINER)
                     and a["attack"] != "create a file in the pilot's home"]
        assert not succeeded, json.dumps(report, indent=1)
        assert not (hostile.home / "planted").exists()
        assert hostile.pilot_proxy.read_bytes().startswith(b"-----BEGIN")
    finally:
        kill_all_with(token)


@pytest.mark.parametrize("queue", [NOOP_BWRAP, SUDO_BWRAP], ids=["noop", "sudo"])
def test_under_bwrap_the_payload_leaves_no_process_behind(hostile, queue):
    run, token = run_attacks(hostile, queue, only="processes")
    try:
        assert run.outcome == "succeeded", run.why()
        assert not wait_until_gone(token, 3)
        hostile.check_aftermath(run)
    finally:
        kill_all_with(token)
