"""Parent ACLs (issue 13 item 4): the grant changes nothing outside the work directory but
from the queue's work root down, and the payload does not get at the pilot's files
through a parent."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.security.scene import own
from tests.system import node

PROBE = """#!/bin/bash
for f in "$@"; do
  if cat "$f" > /dev/null 2>&1; then echo "read $f"; else echo "blocked $f"; fi
done > parent-probe.txt
"""


def acl_of(path: Path) -> str:
    return subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True, text=True,
                          check=True).stdout


def test_a_work_root_of_its_own_keeps_the_pilots_files_from_the_payload(scene):
    """The issue's attack: with ``x`` on the pilot's home the payload read its queue
    settings, grid-mapfile and accounting file.  With the work directories in a work root
    of their own, the home gets no entry and they stay out of reach."""
    (scene.base / "pilot-jobs").mkdir()
    jobs = own(scene.base / "pilot-jobs", node.PILOT, 0o700)
    (jobs / "job-1").mkdir()
    work = own(jobs / "job-1", node.PILOT, 0o700)
    queues = scene.queues(work_root=str(jobs))
    scene.transformation("runAthena", PROBE)
    home_before = acl_of(scene.home)
    job = scene.job(jobPars=" ".join(str(p) for p in (queues, scene.mapfile,
                                                       scene.accounting)))
    run = scene.run(job, workdir=work, queues=queues)
    assert run.outcome == "succeeded", run.why()
    report = (work / "parent-probe.txt").read_text().split("\n")
    assert [line for line in report if line.startswith("read")] == []
    assert len([line for line in report if line.startswith("blocked")]) == 3
    assert acl_of(scene.home) == home_before


def test_without_a_work_root_a_work_directory_under_the_pilots_home_is_the_sites_to_fix(
        scene):
    queues = scene.queues(work_root=None)
    before = acl_of(scene.home)
    run = scene.run(queues=queues)
    assert (run.outcome, run.error_code) == ("setup_failed", 66), run.why()
    assert "chmod o+x" in run.result["error"]
    assert acl_of(scene.home) == before


def probe_work_root(scene, queues: Path, workdir: Path) -> dict:
    """``pilotid probe``'s work-root line, as the pilot through the real sudo."""
    python, site = scene.pilot_install
    done = node.run_as(node.PILOT, [python, "-m", "pilotid", "probe", "--queues", str(queues),
                                    "--queue", "SEC", "--workdir", str(workdir), "--json"],
                       env={"PYTHONPATH": site, "X509_USER_PROXY": str(scene.pilot_proxy)})
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert checks["test switch"]["status"] == "ok", checks
    return checks["work root"]


def test_probe_says_beforehand_that_the_target_cannot_reach_the_work_directory(scene):
    """What the job above fails with (66, the fix), ``pilotid probe`` says first; with a
    work root of the pilot's own, it is fine."""
    line = probe_work_root(scene, scene.queues(work_root=None), scene.workdir())
    assert (line["status"], line["error_code"]) == ("fail", 66), line
    assert "chmod o+x" in line["detail"] and node.ALICE in line["detail"]
    (scene.base / "pilot-jobs").mkdir()
    jobs = own(scene.base / "pilot-jobs", node.PILOT, 0o700)
    (jobs / "job-1").mkdir()
    work = own(jobs / "job-1", node.PILOT, 0o700)
    line = probe_work_root(scene, scene.queues(work_root=str(jobs)), work)
    assert line["status"] == "ok", line
