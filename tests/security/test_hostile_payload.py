"""A hostile payload, switched to pilotid-alice by the real sudo, attacks the pilot.

Each test runs whole jobs with ``pilotid run`` as the unprivileged pilot (tests/security/
scene.py) with ``hostile_payload.py`` as the transformation; the payload reports every
attack it tried in ``attack-report.json`` and none may succeed.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest

from tests.security.scene import kill_all_with, own, wait_until_gone
from tests.system import node

HOSTILE = Path(__file__).with_name("hostile_payload.py")


def new_token() -> str:
    """Digits only: the payload puts it in ``sleep 3000.<token>``."""
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def intel(scene, workdir: Path, token: str, next_ids=()) -> dict:
    """What the payload is told about the pilot (what an attacker could find out)."""
    pilot = node.account(node.PILOT)
    return {"pilot_uid": pilot.uid, "pilot_proxy": str(scene.pilot_proxy),
            "tmp_pilot_proxy": str(scene.tmp_proxy), "home": str(scene.home),
            "trf": str(scene.trf), "workdir": str(workdir),
            "private_dir_glob": str(scene.home / "pilotid-job-*"), "token": token,
            "pilot_files": {"log": str(scene.pilot_log), "queue accounting file":
                            str(scene.accounting), "grid-mapfile": str(scene.mapfile)},
            "next_ids": list(next_ids), "cache_dir": str(scene.cache_dir),
            "decoy_dir": str(scene.home)}


@pytest.fixture
def hostile(scene):
    """The scene with the hostile transformation, a pilot proxy in /tmp and a cache name."""
    scene.install("runAthena", HOSTILE)
    pilot = node.account(node.PILOT)
    scene.tmp_proxy = scene.base / f"x509up_u{pilot.uid}"  # the pilot's /tmp-style proxy
    scene.tmp_proxy.write_bytes(scene.pilot_proxy.read_bytes())
    own(scene.tmp_proxy, node.PILOT, 0o600)
    scene.planted_copies.append(scene.tmp_proxy)
    scene.cache_dir = scene.base / f"pilotid-credentials-{pilot.uid}"
    scene.base.chmod(0o1777)  # a /tmp of its own: sticky, writable by all
    return scene


def hostile_job(scene, workdir: Path, token: str, only: str = "", exit_status: int = 0,
                next_ids=(), **fields) -> dict:
    pars = f"--intel '{json.dumps(intel(scene, workdir, token, next_ids))}' --token {token}"
    if only:
        pars += f" --only {only}"
    if exit_status:
        pars += f" --exit {exit_status}"
    return scene.job(jobPars=pars, **fields)


def attacks(run) -> list:
    return run.report()


def test_payload_cannot_reach_the_pilots_credentials_files_or_process(hostile):
    token = new_token()
    workdir = hostile.workdir()
    before = {p: p.read_bytes() for p in (hostile.pilot_proxy, hostile.tmp_proxy,
                                          hostile.pilot_log, hostile.mapfile)}
    try:
        run = hostile.run(hostile_job(hostile, workdir, token), workdir=workdir, token=token)
        assert run.outcome == "succeeded", run.why()
        report = attacks(run)
        succeeded = [a for a in report if a["result"] != "blocked"]
        assert not succeeded, json.dumps(succeeded, indent=1)
        assert len(report) >= 25
        for path, data in before.items():
            assert path.read_bytes() == data, f"{path} was changed"
        hostile.check_aftermath(run)
    finally:
        kill_all_with(token)


def test_payload_leaves_no_process_behind(hostile):
    """nohup, a setsid double fork, and a daemon ignoring TERM/HUP/INT in a new group and
    session: none may outlive the job."""
    token = new_token()
    workdir = hostile.workdir()
    try:
        run = hostile.run(hostile_job(hostile, workdir, token, only="processes"),
                          workdir=workdir, token=token)
        assert run.outcome == "succeeded", run.why()
        left = wait_until_gone(token, 3)
        assert not left, f"left behind: {left}"
        hostile.check_aftermath(run)
    finally:
        kill_all_with(token)


def test_traps_in_the_work_directory_neither_hang_nor_redirect_the_pilot(hostile):
    """The payload makes accounting.jsonl a FIFO (a pilot opening it to write would block
    for ever), plants the next jobs' log names as a symlink to the pilot's own log and a
    FIFO, and swaps its proxy's handover directory for a symlink to the pilot's home, where
    a file of the pilot's has the proxy copy's name; the pilot runs the next job in the same
    work directory (a restarted pilot)."""
    token = new_token()
    workdir = hostile.workdir()
    first = hostile.job()["PandaID"]
    log_before = hostile.pilot_log.read_bytes()
    decoy = hostile.home / "x509up"
    decoy.write_text("the pilot's own, not a proxy")
    own(decoy, node.PILOT, 0o600)
    try:
        run = hostile.run(hostile_job(hostile, workdir, token, only="traps",
                                      next_ids=[first + 1], PandaID=first),
                          workdir=workdir, token=token, timeout=60)
        assert run.outcome == "succeeded", run.why()
        assert [a for a in attacks(run) if a["result"] != "blocked"] == []
        hostile.check_aftermath(run)
        hostile.transformation("runAthena", "#!/bin/sh\necho benign\n")
        second = hostile.run(hostile.job(PandaID=first + 1), workdir=workdir, timeout=60)
        assert second.outcome == "succeeded", second.why()
        assert hostile.pilot_log.read_bytes() == log_before, "the pilot wrote into its own log"
        assert decoy.read_text() == "the pilot's own, not a proxy", "removed through the link"
        assert "benign" in second.payload_out()
        hostile.check_aftermath(second)
    finally:
        kill_all_with(token)


def test_a_planted_credential_cache_is_not_used(hostile, pilot_install):
    """The payload pre-creates the pilot's default MyProxy cache directory 0777; the pilot
    must not store a credential there (it still fetches, without a cache)."""
    token = new_token()
    workdir = hostile.workdir()
    run = hostile.run(hostile_job(hostile, workdir, token, only="traps"), workdir=workdir,
                      token=token, timeout=60)
    assert run.outcome == "succeeded", run.why()
    assert hostile.cache_dir.is_dir() and hostile.cache_dir.stat().st_uid == \
        node.account(node.ALICE).uid
    python, site = pilot_install
    code = ("import sys; from pilotid.identity.sources import CredentialCache; "
            "c = CredentialCache(sys.argv[1]); "
            "print(c.usable(), c.get('k', 0, lambda: b'RETRIEVED'))")
    done = node.run_as(node.PILOT, [python, "-c", code, str(hostile.cache_dir)],
                       env={"PYTHONPATH": site})
    assert done.stdout.decode().split() == ["False", "b'RETRIEVED'"], done.stderr
    assert os.listdir(hostile.cache_dir) == []


def test_a_forged_marker_is_blamed_on_the_payload_not_the_site(hostile):
    """The payload replaces the wrapper's marker (uid=0, status=0), prints sudo's refusal
    on stderr and fails: the pilot must not report a switch failure (the site's fault)."""
    token = new_token()
    workdir = hostile.workdir()
    run = hostile.run(hostile_job(hostile, workdir, token, only="marker", exit_status=1),
                      workdir=workdir, token=token)
    assert run.outcome == "payload_failed", run.why()
    assert run.error_code == 70
    hostile.check_aftermath(run)
