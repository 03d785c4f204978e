"""End to end: ``pilotid run`` as the unprivileged pilot with ``isolation: bwrap`` (real
bubblewrap), under ``noop`` (the payload keeps the pilot's own uid) and ``sudo`` (alice).

The payload is the escapes issue's: it double-forks into a session of its own that keeps
re-forking, tries the pilot's proxy and home, and counts the processes it can see.  Its
processes carry a random mark in their command lines, so that "none left" is checked on
the whole node without mistaking another test's processes (the machine is shared).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from pathlib import Path
from typing import List

import pytest

from tests.system import node
from tests.system.test_run_sudo import Site, assert_nothing_left, target_processes

ESCAPING_PAYLOAD = """#!/bin/bash
mark=$1 proxy=$2 home=$3 area=$4
# the escapes: a double fork into a session of its own that keeps re-forking
( setsid /bin/bash -c 'while :; do /bin/sleep 300 & /bin/sleep 0.1; done' "$mark" \\
    </dev/null >/dev/null 2>&1 & )
/bin/sleep 0.3
if cat "$proxy" >/dev/null 2>&1; then echo proxy=readable; else echo proxy=unreadable; fi
if ls "$home" >/dev/null 2>&1; then echo home=visible; else echo home=invisible; fi
echo "area=$(ls -A "$area" 2>/dev/null | tr '\n' ' ')"
echo "pid1=$(cat /proc/1/comm)"
echo "commands=$(cat /proc/[0-9]*/comm 2>/dev/null | sort -u | tr '\n' ' ')"
echo "uid=$(id -u)"
echo "tmp=$(ls -A /tmp | grep -v '^pilotid-egg-' | tr '\n' ' ')"
echo "egg=$PYTHON_EGG_CACHE"
"""


class BwrapSite(Site):
    """The sudo suite's site, with its noop and sudo queues again under ``isolation: bwrap``."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        queues = json.loads(self.queues.read_text())["queues"]
        # a payload that takes SIGTERM as its cue to save its work, then exits
        self.graceful_trf = self.base / "trf-graceful"
        self.graceful_trf.mkdir(mode=0o755)
        trf = {"transformation_dirs": [str(self.trf)], "standin_transformations": False}
        bwrap = {"isolation": "bwrap", **trf}
        queues["ANALY_NOOP_BWRAP"] = {**queues["ANALY_NOOP"], **bwrap}
        queues["ANALY_SUDO_BWRAP"] = {**queues["ANALY_SUDO"], **bwrap}
        queues["ANALY_NOOP_BARE"] = {**queues["ANALY_NOOP"], **trf}
        queues["ANALY_NOOP_BWRAP_MISSING"] = {**queues["ANALY_NOOP_BWRAP"],
                                              "bwrap_path": "/nonexistent/bwrap"}
        queues["ANALY_NOOP_BWRAP_MISSING_PREFERRED"] = {
            **queues["ANALY_NOOP_BWRAP_MISSING"], "isolation_policy": "preferred"}
        queues["ANALY_NOOP_BWRAP_STUBBORN"] = {
            **queues["ANALY_NOOP_BWRAP"], "transformation_dirs": [str(self.stubborn_trf)],
            "timeout": 1, "grace_period": 1}
        queues["ANALY_SUDO_BWRAP_GRACEFUL"] = {
            **queues["ANALY_SUDO_BWRAP"], "transformation_dirs": [str(self.graceful_trf)],
            "timeout": 1, "grace_period": 10}
        queues["ANALY_NOOP_BWRAP_GRACEFUL"] = {
            **queues["ANALY_NOOP_BWRAP"], "transformation_dirs": [str(self.graceful_trf)],
            "timeout": 1, "grace_period": 10}
        queues["ANALY_NOOP_BWRAP_NO_CVMFS"] = {**queues["ANALY_NOOP_BWRAP"],
                                               "bwrap_binds": ["/nonexistent/cvmfs"]}
        self.queues.write_text(json.dumps({"queues": queues}, indent=1))
        (self.trf / "runAthena").write_text(ESCAPING_PAYLOAD)
        (self.trf / "runAthena").chmod(0o755)
        (self.stubborn_trf / "runAthena").write_text(
            "#!/bin/bash\ntrap '' TERM\n"
            "( setsid /bin/bash -c '/bin/sleep 300; :' \"$1\" </dev/null >/dev/null 2>&1 & )\n"
            "/bin/sleep 60\n")
        (self.stubborn_trf / "runAthena").chmod(0o755)
        (self.graceful_trf / "runAthena").write_text(
            "#!/bin/bash\ntrap 'echo saved > saved.txt; exit 0' TERM\n"
            "/bin/sleep 60 & wait\n")
        (self.graceful_trf / "runAthena").chmod(0o755)

    def escape(self, queue: str) -> "tuple":
        """Run the escaping payload on ``queue``; return the run and its mark."""
        mark = f"escape{secrets.token_hex(6)}"
        home = Path(os.path.expanduser(f"~{node.PILOT}"))
        words = [mark, str(self.pilot_proxy), str(home), str(self.area)]
        return self.run(queue, self.job(jobPars=" ".join(words)), self.workdir()), mark


@pytest.fixture(scope="module")
def site(real_node, pilot_install, users):
    python, pythonpath = pilot_install
    base = node.make_shared_dir("pilotid-run-bwrap-")
    try:
        yield BwrapSite(base, python, pythonpath, users)
    finally:
        subprocess.run(["rm", "-rf", "--", str(base)], check=False)


def marked(mark: str) -> List[int]:
    """Live processes anywhere on the node whose command line holds ``mark``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if mark.encode() in cmdline and state != b"Z":
                found.append(int(entry))
    return found


def assert_none_marked(mark: str) -> None:
    deadline = time.monotonic() + 5
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not marked(mark), f"processes of the payload left after the job: {marked(mark)}"


@pytest.fixture(scope="module")
def noop_run(site):
    return site.escape("ANALY_NOOP_BWRAP")


@pytest.fixture(scope="module")
def sudo_run(site):
    before = target_processes()
    run, mark = site.escape("ANALY_SUDO_BWRAP")
    return run, mark, before


# --- noop + bwrap: the pilot's own uid, isolated --------------------------------------------

def test_noop_bwrap_job_succeeds_as_the_pilot(noop_run, site):
    run, _ = noop_run
    assert run.result["outcome"] == "succeeded", run.stderr
    assert run.printed("uid") == str(site.pilot.uid)


def test_noop_bwrap_payload_leaves_no_process_behind(noop_run):
    _, mark = noop_run
    assert_none_marked(mark)


def test_noop_bwrap_payload_cannot_read_the_pilots_proxy(noop_run):
    assert noop_run[0].printed("proxy") == "unreadable"


def test_noop_bwrap_payload_cannot_see_the_pilots_home_or_other_jobs(noop_run, site):
    """The pilot's area holds its proxy and every job's directory: inside, only the job's
    own directory is there (bwrap made the path to it)."""
    run, _ = noop_run
    assert (run.printed("home"), run.printed("area")) == ("invisible", "job-1 ")


def sees_the_pilot(run) -> bool:
    """Whether the payload saw a process of the pilot's or of the node's beyond its own."""
    return bool(set(run.printed("commands").split()) & {"python3", "python", "pilotid",
                                                        "sudo", "setpriv", "systemd"})


def test_noop_bwrap_payload_sees_only_its_own_processes(noop_run):
    run, _ = noop_run
    assert not sees_the_pilot(run) and run.printed("pid1") == "bwrap"


def test_noop_bwrap_payload_gets_a_fresh_tmp_with_its_egg_cache(noop_run):
    """Only the egg cache and the paths bwrap made to the work directory and to the
    payload's proxy copy (bound alone from the job's private directory) are in /tmp."""
    run, _ = noop_run
    top = Path(run.result["workdir"]).relative_to("/tmp").parts[0]
    entries = run.printed("tmp").split()
    others = [entry for entry in entries if entry != top]
    assert top in entries
    assert len(others) == 1 and others[0].startswith(f"pilotid-job-{run.result['panda_id']}-")
    assert run.printed("egg").startswith("/tmp/pilotid-egg-")


def test_without_isolation_the_same_payload_reads_the_pilots_proxy(site):
    """The control: what bwrap takes away is there without it."""
    run, mark = site.escape("ANALY_NOOP_BARE")
    try:
        assert run.printed("proxy") == "readable" and sees_the_pilot(run)
    finally:
        for pid in marked(mark):
            os.kill(pid, 9)


# --- sudo + bwrap: alice, isolated ------------------------------------------------------------

def test_sudo_bwrap_job_succeeds_as_alice(sudo_run, site):
    run = sudo_run[0]
    assert run.result["outcome"] == "succeeded", run.stderr
    assert run.printed("uid") == str(site.alice.uid)


def test_sudo_bwrap_payload_leaves_no_process_behind(sudo_run):
    _, mark, before = sudo_run
    assert_none_marked(mark)
    assert_nothing_left(before)


def test_sudo_bwrap_payload_cannot_see_the_pilots_proxy_home_or_processes(sudo_run):
    run = sudo_run[0]
    assert (run.printed("proxy"), run.printed("home")) == ("unreadable", "invisible")
    assert run.printed("area").split() == [Path(run.result["workdir"]).name]
    assert not sees_the_pilot(run)


# --- runtime failures are the site's, never the payload's ----------------------------------

def test_bwrap_missing_fails_the_job_with_its_own_code(site):
    run, _ = site.escape("ANALY_NOOP_BWRAP_MISSING")
    assert (run.status, run.result["outcome"]) == (58, "switch_failed"), run.stderr


def test_bwrap_missing_under_preferred_runs_without_isolation_and_says_so(site):
    run, mark = site.escape("ANALY_NOOP_BWRAP_MISSING_PREFERRED")
    try:
        assert run.result["outcome"] == "succeeded", run.stderr
        assert "WITHOUT isolation" in run.stderr
    finally:
        for pid in marked(mark):
            os.kill(pid, 9)


def test_missing_bind_source_fails_the_job_with_its_own_code(site):
    run, _ = site.escape("ANALY_NOOP_BWRAP_NO_CVMFS")
    assert (run.status, run.result["outcome"]) == (62, "switch_failed"), run.stderr



def test_the_kernel_ends_the_job_not_the_pilots_leftover_kill(noop_run, sudo_run):
    """The namespace's init is awaited, never taken for the payload's leftover."""
    for run in (noop_run[0], sudo_run[0]):
        assert "outlived the payload" not in run.stderr, run.stderr


def test_a_payload_past_its_time_limit_is_ended_with_everything_it_started(site):
    """SIGTERM ignored, a daemon started: the time limit still ends the job as timed out,
    and nothing of it is left: the SIGKILL after the grace period ends the container."""
    mark = f"stubborn{secrets.token_hex(6)}"
    run = site.run("ANALY_NOOP_BWRAP_STUBBORN", site.job(jobPars=mark), site.workdir())
    assert (run.status, run.result["outcome"]) == (72, "timed_out"), run.stderr
    assert_none_marked(mark)


def test_probe_starts_a_test_container_and_reports_its_mode(site):
    done = node.run_as(node.PILOT, [site.python, "-m", "pilotid", "probe", "--queues",
                                    str(site.queues), "--queue", "ANALY_NOOP_BWRAP",
                                    "--workdir", str(site.workdir()), "--json"],
                       env=site.env(), cwd=Path("/"))
    (check,) = [c for c in json.loads(done.stdout) if c["name"] == "isolation"]
    assert check["status"] == "ok" and "unprivileged mode" in check["detail"], check


@pytest.mark.parametrize("queue", ["ANALY_NOOP_BWRAP_GRACEFUL", "ANALY_SUDO_BWRAP_GRACEFUL"])
def test_a_payload_past_its_time_limit_gets_its_sigterm_and_grace_period(site, queue):
    """bwrap ignores the SIGTERM, the wrapper passes it on: the payload saves its work."""
    work = site.workdir()
    before = target_processes()
    run = site.run(queue, site.job(jobPars=""), work)
    assert (run.status, run.result["outcome"]) == (72, "timed_out"), run.stderr
    assert (work / "saved.txt").read_text() == "saved\n"
    assert_nothing_left(before)
