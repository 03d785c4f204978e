"""End to end: ``pilotid run`` as the unprivileged pilot through gLExec (the stand-in) with
``isolation: bwrap``: gLExec switches to alice, bubblewrap then isolates her payload.

The payload is test_run_bwrap.py's escaping one (a double fork into a session of its own
that keeps re-forking, marked on its command lines); a site setup line reports the
sentinel bwrap made in the work directory, as the wrapper sees it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
from pathlib import Path

import pytest

from tests.conftest import ALICE_DN
from tests.system import node
from tests.system.glexec_node import standin_fixture  # noqa: F401 - a fixture
from tests.system.test_run_bwrap import ESCAPING_PAYLOAD, assert_none_marked, marked
from tests.system.test_run_glexec import PANDA_ID, Site

SENTINEL_SETUP = ["echo \"sentinel=$(builtin echo .pilotid-started-*)\""]


@pytest.fixture(scope="module")
def glexec_bwrap_run(real_node, standin, users, pilot_install):
    base = node.make_shared_dir("pilotid-run-glexec-bwrap-")
    mark = f"glexecbwrap{secrets.token_hex(6)}"
    try:
        site = Site(base, users, pilot_install)
        trf = base / "trf"
        trf.mkdir(mode=0o755)
        (trf / "runAthena").write_text(ESCAPING_PAYLOAD)
        (trf / "runAthena").chmod(0o755)
        job = base / "job-escaping.json"
        home = Path(os.path.expanduser(f"~{node.PILOT}"))
        job.write_text(json.dumps({
            "PandaID": PANDA_ID, "transformation": "runAthena-00-00-11",
            "jobPars": " ".join([mark, str(site.pilot_proxy), str(home), str(base)]),
            "prodUserID": ALICE_DN,
            "prodSourceLabel": "user"}))
        job.chmod(0o644)
        queue = site.queue(isolation="bwrap", transformation_dirs=[str(trf)],
                           standin_transformations=False, setup=SENTINEL_SETUP)
        yield site, site.run(queue=queue, job=job), mark
    finally:
        for pid in marked(mark):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def printed(run, key: str) -> str:
    lines = [line for line in run.payload_log().splitlines() if line.startswith(f"{key}=")]
    return lines[-1].split("=", 1)[1] if lines else ""


def test_glexec_bwrap_job_succeeds_as_alice_in_a_container(glexec_bwrap_run):
    _, run, _ = glexec_bwrap_run
    assert (run.returncode, run.result["outcome"]) == (0, "succeeded"), run.log
    assert printed(run, "uid") == str(node.account(node.ALICE).uid)
    assert printed(run, "pid1") == "bwrap"


def test_glexec_bwrap_launch_made_the_sentinel_and_the_session_removed_it(glexec_bwrap_run):
    site, run, _ = glexec_bwrap_run
    assert printed(run, "sentinel").startswith(".pilotid-started-"), run.payload_log()
    assert not list(site.workdir.glob(".pilotid-started-*"))


def test_glexec_bwrap_payload_cannot_see_the_pilots_proxy_home_or_area(glexec_bwrap_run):
    """The pilot's area holds its proxies and the queue file: inside, only the work
    directory and the transformation directory (bound read-only) are there."""
    site, run, _ = glexec_bwrap_run
    assert (printed(run, "proxy"), printed(run, "home")) == ("unreadable", "invisible")
    assert sorted(printed(run, "area").split()) == ["trf", site.workdir.name]


def test_glexec_bwrap_payload_leaves_no_process_behind(glexec_bwrap_run):
    _, _, mark = glexec_bwrap_run
    assert_none_marked(mark)


@pytest.fixture
def fresh_site(shared_tmp, standin, users, pilot_install) -> Site:
    return Site(shared_tmp, users, pilot_install)


def test_glexec_bwrap_payload_past_its_time_limit_gets_its_sigterm_and_grace_period(
        fresh_site):
    """gLExec's kill reaches bwrap, which ignores it, and the wrapper, which passes it on."""
    site = fresh_site
    trf = site.base / "trf-graceful"
    trf.mkdir(mode=0o755)
    (trf / "runAthena").write_text("#!/bin/bash\ntrap 'echo saved > saved.txt; exit 0' TERM\n"
                                   "/bin/sleep 60 & wait\n")
    (trf / "runAthena").chmod(0o755)
    queue = site.queue(isolation="bwrap", transformation_dirs=[str(trf)],
                       standin_transformations=False, timeout=1, grace_period=10)
    run = site.run(queue=queue)
    assert (run.returncode, run.result["outcome"]) == (72, "timed_out"), run.log
    assert (site.workdir / "saved.txt").read_text() == "saved\n"
