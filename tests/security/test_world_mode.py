"""Issue 13, item 1 (the rest): world mode trusts no other local account.

A ``sandbox: "world"`` queue with real sudo; ``pilotid-bob`` (tests/security/intruder.py)
is the other local account.  He waits until the grant opens the work directory to
everyone and plants what he can: a forged marker, a FIFO under the proxy copy's name.
Each job is tried until his plant came before the wrapper (a race he wins nearly always;
bounded to a few jobs).
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

from tests.security.scene import own
from tests.system import node

_INTRUDER = Path(__file__).with_name("intruder.py")
TRIES = 5


def payload(scene, body: str) -> None:
    scene.transformation("runAthena", "#!/bin/bash\n" + body + "\n")


def world_workdir(scene) -> Path:
    """A work directory of the pilot's that bob can reach once the grant opens it."""
    scene.count += 1
    path = scene.base / f"world-{scene.count}"
    path.mkdir()
    return own(path, node.PILOT, 0o700)


def attacked_run(scene, attack: str):
    """Run one world-mode job while bob attacks it; (run, bob's report)."""
    script = scene.base / "intruder.py"
    if not script.exists():
        shutil.copy(_INTRUDER, script)
        script.chmod(0o644)
    drop = scene.base / "bob-drop"
    if not drop.exists():
        drop.mkdir()
        own(drop, node.BOB, 0o700)
    report = drop / f"report-{scene.count}.json"
    workdir = world_workdir(scene)
    bob = node.popen_as(node.BOB, [scene.pilot_install[0], str(script), str(workdir), attack,
                                   str(report), str(node.account(node.ALICE).uid)])
    try:
        run = scene.run(workdir=workdir, sandbox="world")
    finally:
        bob.send_signal(signal.SIGTERM)
        bob.wait(timeout=30)
    found = json.loads(report.read_text())
    report.unlink()  # it may hold what he stole: no copy left behind
    return run, found


def test_a_marker_planted_by_another_account_does_not_block_the_job(scene):
    payload(scene, "echo done > out.txt")
    for _ in range(TRIES):
        run, found = attacked_run(scene, "marker")
        if found["planted"]:
            break
    assert found["planted"], f"bob never planted before the wrapper: {found}"
    assert (run.outcome, run.result["exit_code"]) == ("succeeded", 0), run.why()
    assert "not made by the wrapper" in run.stderr, run.why()
    alice = node.account(node.ALICE).uid
    assert not [p for p in run.workdir.glob(".pilotid-target-*") if p.stat().st_uid == alice]
    scene.check_aftermath(run, outputs=["out.txt"])


def test_a_marker_planted_by_another_account_never_makes_a_failed_payload_succeed(scene):
    payload(scene, "exit 3")
    for _ in range(TRIES):
        run, found = attacked_run(scene, "marker")
        if found["planted"]:
            break
    assert found["planted"], f"bob never planted before the wrapper: {found}"
    assert (run.outcome, run.result["exit_code"]) == ("payload_failed", 3), run.why()
    scene.check_aftermath(run)


def test_a_fifo_under_the_proxy_copys_name_does_not_give_another_account_the_proxy(scene):
    payload(scene, "test -s \"$X509_USER_PROXY\" && echo ok > out.txt")
    key = scene.proxies["alice"].read_text().splitlines()
    key = key[next(i for i, line in enumerate(key) if "PRIVATE KEY" in line) + 1]
    for _ in range(TRIES):
        run, found = attacked_run(scene, "fifo")
        assert key not in found["stolen"], f"bob read alice's proxy: {found['planted']}"
        assert (run.outcome, run.result["exit_code"]) == ("succeeded", 0), run.why()
        if found["planted"] or ".pilotid-proxy-" not in " ".join(found["late"]):
            break  # he won the race, or there was no handover directory to plant in
    scene.check_aftermath(run, outputs=["out.txt"])


def test_an_ordinary_world_mode_job_reports_nothing_moved_out(scene):
    """The wrapper the grant opened to everyone, removed by the pilot after the job, is not
    reported as moved out by the payload."""
    payload(scene, "echo done")
    run = scene.run(workdir=world_workdir(scene), sandbox="world")
    assert (run.outcome, run.result and run.result["sandbox_mode"]) == ("succeeded", "world"), \
        run.why()
    assert "moved out" not in run.stderr, run.why()
