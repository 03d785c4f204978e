"""``pilotid run`` through gLExec, end to end, as an unprivileged pilot (issue 5).

The pilot is ``pilotid-pilot`` running ``python -m pilotid run`` (the checkout copied by the
``pilot_install`` fixture), with a queue whose ``switcher`` is ``glexec`` and whose
``glexec_path`` is the gLExec stand-in installed by tests/system/setup-node.sh.  The job is
a runAthena job (pilotid's runAthena stand-in).  Every refusal is provoked for real through
the stand-in; only which installation answers is chosen by a small front script where a
configuration has to break after the probe.

Other suites may run processes as pilotid-alice at the same time, so "nothing left" is
checked for this job's processes only: its gLExec session and the target's processes
whose working directory is this job's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from pilotid.errors import (
    PayloadFailedError,
    PilotInterruptedError,
    RescheduleRequest,
    SwitchClientError,
    SwitchExecError,
    SwitchNotPermittedError,
    SwitchSystemError,
)
from pilotid.identity.credfile import write_private
from pilotid.identity.testca import make_proxy
from pilotid.strategies.glexec import TARGET_PROXY_NAME
from tests.conftest import ALICE_DN, EVE_DN, PILOT_DN
from tests.system import node
from tests.system.glexec_node import (  # noqa: F401 - standin is a fixture
    BROKEN_STANDIN,
    STANDIN,
    give_to_pilot,
    standin_fixture,
    write_proxy,
)

QUEUE = "ANALY_GLEXEC"
PANDA_ID = 5001
INPUT = "data11_7TeV.AOD._0001.pool.root.1"
OUTPUT = f"user.alice.{PANDA_ID}._00001.hist.root"
#: Site setup lines (run by the wrapper as the target, before the payload) that report what
#: the payload gets: its proxy file's owner, mode and content, and whether it may look into
#: the job's private directory of the pilot's.
REPORT_SETUP = [
    "stat -c 'target-proxy-owner=%U mode=%a' \"$X509_USER_PROXY\"",
    "echo \"target-proxy-sha256=$(sha256sum < \"$X509_USER_PROXY\" | cut -d' ' -f1)\"",
    # the job's private directory (the pilot's TMPDIR is unset: /tmp), which must exist
    f"for d in /tmp/pilotid-job-{PANDA_ID}-*/; do [ -d \"$d\" ] || {{ echo private-dir=none;"
    " break; }; if ls \"$d\" >/dev/null 2>&1; then echo private-dir=open; else"
    " echo private-dir=closed; fi; break; done",
]


@dataclass
class PilotRun:
    """What one ``pilotid run`` left: its exit status, JSON result, own log and job logs."""

    returncode: int
    result: dict
    log: str
    workdir: Path

    def payload_log(self, which: str = "stdout") -> str:
        path = self.workdir / f"pilotid-{PANDA_ID}.{which}"
        return path.read_text(errors="replace") if path.exists() else ""

    def reported(self) -> Dict[str, str]:
        """The ``key=value`` lines of the payload's stdout log."""
        pairs = {}
        for line in self.payload_log().splitlines():
            for word in line.split():
                if "=" in word:
                    key, value = word.split("=", 1)
                    pairs.setdefault(key, value)
        return pairs


class Site:
    """A worker node's view for one test: proxies, queue settings, a job, a work directory."""

    def __init__(self, base: Path, users, pilot_install) -> None:
        self.base = base
        self.python, self.pythonpath = pilot_install
        self.alice_proxy = write_proxy(base, users.alice, "x509up_alice")
        self.pilot_proxy = write_proxy(base, users.pilot, "x509up_pilot")
        self.users = users
        self.workdir = self.make_workdir(base / "work")

    def make_workdir(self, path: Path) -> Path:
        """A 0700 work directory of the pilot's, with the job's input staged (0600)."""
        path.mkdir(parents=True)
        give_to_pilot(path, 0o700)
        (path / INPUT).write_bytes(b"stand-in AOD events\n" * 50)
        give_to_pilot(path / INPUT, 0o600)
        return path

    def queue(self, **fields) -> Path:
        settings = {"switcher": "glexec", "credential_source": "file",
                    "proxy_file": str(self.alice_proxy), "glexec_path": str(STANDIN),
                    "switch_retries": 3, "switch_retry_delay": 0, "timeout": 300,
                    "grace_period": 10, "standin_transformations": True}
        settings.update(fields)
        settings = {k: v for k, v in settings.items() if v is not None}
        path = self.base / "queues.json"
        path.write_text(json.dumps({"queues": {QUEUE: settings}}, indent=1))
        path.chmod(0o644)
        return path

    def job(self, *extra: str, dn: str = ALICE_DN) -> Path:
        pars = (f"-j AnalysisSkeleton_topOptions.py -i '[\"{INPUT}\"]' "
                f"-o '{{\"hist.root\": \"{OUTPUT}\"}}' " + " ".join(extra))
        path = self.base / "job.json"
        path.write_text(json.dumps({
            "PandaID": PANDA_ID, "transformation": "runAthena-00-00-11", "jobPars": pars,
            "prodUserID": dn, "inFiles": INPUT, "outFiles": OUTPUT,
            "prodSourceLabel": "user"}))
        path.chmod(0o644)
        return path

    def argv(self, queue: Path, job: Path, workdir: Path) -> List[str]:
        return [self.python, "-m", "pilotid", "run", "--queues", str(queue), "--queue", QUEUE,
                "--job", str(job), "--workdir", str(workdir), "--json"]

    def environment(self, **extra: str) -> Dict[str, str]:
        env = {"PYTHONPATH": self.pythonpath, "X509_USER_PROXY": str(self.pilot_proxy)}
        env.update(extra)
        return env

    def run(self, queue: Optional[Path] = None, job: Optional[Path] = None,
            workdir: Optional[Path] = None, env: Optional[Dict[str, str]] = None,
            umask: Optional[str] = None) -> PilotRun:
        """Run one job as the pilot account and return what it left."""
        workdir = workdir or self.workdir
        argv = self.argv(queue or self.queue(), job or self.job(), workdir)
        if umask is not None:  # the batch system's umask, set before the pilot starts
            argv = ["/bin/sh", "-c", f'umask {umask} && exec "$@"', "sh", *argv]
        done = node.run_as(node.PILOT, argv, env=self.environment(**(env or {})),
                           cwd=Path("/"), timeout=120)
        return finished(done.returncode, done.stdout, done.stderr, workdir)


@contextlib.contextmanager
def pilot_running(site, queue, job) -> Iterator[subprocess.Popen]:
    """``pilotid run`` of ``job`` on ``queue`` as the pilot, in the background; killed on
    the way out if it is still running (a failed assertion)."""
    pilot = node.popen_as(node.PILOT, site.argv(queue, job, site.workdir),
                          env=site.environment(), cwd=Path("/"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE)
    try:
        yield pilot
    finally:
        if pilot.poll() is None:
            pilot.kill()
            pilot.wait()


def finished(returncode: int, stdout: bytes, stderr: bytes, workdir: Path) -> PilotRun:
    log = stderr.decode(errors="replace")
    try:
        result = json.loads(stdout)
    except ValueError:
        raise AssertionError(f"pilotid run printed {stdout!r} (exit {returncode}); "
                             f"its log:\n{log}") from None
    return PilotRun(returncode, result, log, workdir)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def readable_by_pilot(path: Path) -> bool:
    done = node.run_as(node.PILOT, ["/bin/cat", str(path)], cwd=Path("/"))
    return done.returncode == 0


def acl_of(path: Path) -> str:
    return subprocess.run(["getfacl", "-cp", str(path)], capture_output=True, text=True,
                          check=True).stdout


def proc_stat(pid: int) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], sid [3])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def children_of(pid: int) -> List[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = proc_stat(int(entry.name))
            if fields and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def job_processes(workdir: Path, session: Optional[int] = None) -> List[int]:
    """Live processes of this job: in gLExec's ``session``, or the target's in ``workdir``."""
    alice = node.account(node.ALICE).uid
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = proc_stat(int(entry.name))
        if not fields or fields[0] == "Z":
            continue
        if session is not None and int(fields[3]) == session:
            found.append(int(entry.name))
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            owner = entry.stat().st_uid
        except OSError:
            continue
        if owner == alice and (cwd == str(workdir) or cwd.startswith(f"{workdir}/")):
            found.append(int(entry.name))
    return found


def wait_until(predicate, timeout: float = 30, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


@pytest.fixture
def site(shared_tmp, standin, users, pilot_install) -> Site:
    site = Site(shared_tmp, users, pilot_install)
    yield site
    for pid in job_processes(shared_tmp):  # what a failed test left running
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# --- a runAthena job through gLExec: one run, several things to show --------------------------

@pytest.fixture(scope="module")
def main_run(real_node, standin, users, pilot_install):
    base = node.make_shared_dir("pilotid-run-glexec-")
    try:
        site = Site(base, users, pilot_install)
        run = site.run(queue=site.queue(setup=REPORT_SETUP),
                       job=site.job(f"--try-read {site.alice_proxy}",
                                    f"--try-read {site.pilot_proxy}"))
        yield site, run
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_runathena_job_succeeds_as_the_account_glexec_maps_the_user_to(main_run):
    site, run = main_run
    alice = node.account(node.ALICE)
    assert (run.returncode, run.result["outcome"], run.result["exit_code"]) == \
        (0, "succeeded", 0), run.log
    assert run.result["account"] == alice.as_dict()
    assert (run.result["switcher"], run.result["sandbox_mode"]) == ("glexec", "acl")
    reported = run.reported()
    assert (reported["uid"], reported["euid"], reported["user"]) == \
        (str(alice.uid), str(alice.uid), node.ALICE)


def test_nothing_the_pilot_removed_is_reported_as_moved_out(main_run):
    """The wrapper, written before the grant and removed by the pilot after the job, is
    not an object the payload moved out of the work directory."""
    _, run = main_run
    assert "moved out" not in run.log, run.log


def test_payloads_proxy_is_the_users_proxy_in_a_target_file_0600(main_run):
    site, run = main_run
    reported = run.reported()
    assert reported["X509_USER_PROXY"] == str(site.workdir / TARGET_PROXY_NAME)
    assert (reported["target-proxy-owner"], reported["mode"]) == (node.ALICE, "600")
    assert reported["target-proxy-sha256"] == sha256(site.alice_proxy)


def test_outputs_are_readable_by_the_pilot_after_the_job(main_run):
    site, run = main_run
    output = site.workdir / OUTPUT
    assert output.stat().st_uid == node.account(node.ALICE).uid
    assert readable_by_pilot(output)
    assert json.loads(output.read_text())["who"]["user"] == node.ALICE
    assert readable_by_pilot(Path(run.result["stdout"]))
    assert readable_by_pilot(Path(run.result["stderr"]))


def test_egg_cache_of_the_payload_is_gone(main_run):
    site, run = main_run
    egg_cache = run.reported()["PYTHON_EGG_CACHE"]
    assert egg_cache.startswith("/tmp/pilotid-egg-")
    assert not os.path.lexists(egg_cache)


def test_payload_cannot_read_the_pilots_proxy_nor_its_private_copies(main_run):
    site, run = main_run
    log = run.payload_log()
    assert f"try-read {site.pilot_proxy}: denied" in log
    assert f"try-read {site.alice_proxy}: denied" in log
    assert run.reported()["private-dir"] == "closed"


def test_glexec_stderr_is_kept_apart_from_the_payloads_stdout(main_run):
    site, run = main_run
    assert "glexec-standin[" in run.payload_log("stderr")
    assert "glexec-standin[" not in run.payload_log("stdout")
    assert f"{ALICE_DN} (caller {node.PILOT}) mapped to {node.ALICE}" in \
        run.payload_log("stderr")


def test_nothing_of_the_job_is_left_in_the_work_directory_but_its_files(main_run):
    site, run = main_run
    left = sorted(p.name for p in site.workdir.iterdir())
    assert left == sorted(["accounting.jsonl", INPUT, OUTPUT, f"pilotid-{PANDA_ID}.stdout",
                           f"pilotid-{PANDA_ID}.stderr"])
    assert f"u:{node.ALICE}" not in acl_of(site.workdir).replace("user:", "u:")
    record = json.loads((site.workdir / "accounting.jsonl").read_text().splitlines()[-1])
    assert (record["user_dn"], record["outcome"]) == (ALICE_DN, "succeeded")


# --- the seed's site quirks ----------------------------------------------------------------

def test_ld_preload_to_a_missing_file_breaks_nothing(site):
    """The seed's pilot crashed when the loader's complaint reached gLExec's output."""
    run = site.run(env={"LD_PRELOAD": "/nonexistent/libpilotid-missing.so"})
    assert run.result["outcome"] == "succeeded", run.log
    for which in ("stdout", "stderr"):
        assert "libpilotid-missing" not in run.payload_log(which)
    assert "LD_PRELOAD" not in run.payload_log("stdout")


def test_tmpdir_the_target_cannot_write_does_not_hold_the_egg_cache(site):
    closed = site.base / "batch-tmp"
    closed.mkdir(mode=0o700)
    give_to_pilot(closed, 0o700)
    run = site.run(env={"TMPDIR": str(closed)})
    assert run.result["outcome"] == "succeeded", run.log
    assert run.reported()["PYTHON_EGG_CACHE"].startswith("/tmp/pilotid-egg-")


def test_batch_system_umask_0077_leaves_outputs_readable_by_the_pilot(site):
    run = site.run(umask="0077")
    assert run.result["outcome"] == "succeeded", run.log
    assert run.reported()["umask"] == "0022"
    assert readable_by_pilot(site.workdir / OUTPUT)


def test_work_directory_under_parents_0700_is_opened_and_closed_again(site):
    home = site.base / "pilot-home"
    scratch = home / "scratch"
    for path in (home, scratch):
        path.mkdir()
        give_to_pilot(path, 0o700)
    workdir = site.make_workdir(scratch / "job")
    run = site.run(workdir=workdir, queue=site.queue(work_root=str(home)))
    assert run.result["outcome"] == "succeeded", run.log
    assert readable_by_pilot(workdir / OUTPUT)
    for parent in (home, scratch):
        assert node.ALICE not in acl_of(parent)
        assert parent.stat().st_mode & 0o777 == 0o700


# --- each refusal: its own outcome and pilot error code ----------------------------------------

def assert_never_ran(run: PilotRun) -> None:
    assert "runAthena stand-in" not in run.payload_log(), "the payload ran"


def test_pilot_proxy_with_group_bits_is_a_client_error_in_test_mode(site):
    site.pilot_proxy.chmod(0o640)
    run = site.run(queue=site.queue(switcher=None, glexec="test"))
    assert run.result["outcome"] == "switch_failed", run.log
    assert run.result["error_code"] == SwitchClientError.code == run.returncode
    assert "201" in run.result["error"] and "mode 0640" in run.result["error"]
    assert_never_ran(run)


def test_unmapped_dn_fails_the_job_as_not_permitted(site):
    eve = write_proxy(site.base, site.users.eve, "x509up_eve")
    run = site.run(queue=site.queue(proxy_file=str(eve)), job=site.job(dn=EVE_DN))
    assert run.result["outcome"] == "switch_failed", run.log
    assert run.result["error_code"] == SwitchNotPermittedError.code == run.returncode
    assert "203" in run.result["error"]
    assert run.result["account"] is None
    assert_never_ran(run)


def test_unmapped_dn_with_reschedule_hands_the_job_back(site):
    eve = write_proxy(site.base, site.users.eve, "x509up_eve")
    run = site.run(queue=site.queue(proxy_file=str(eve), on_probe_failure="reschedule"),
                   job=site.job(dn=EVE_DN))
    assert run.result["outcome"] == "rescheduled", run.log
    assert run.result["error_code"] == RescheduleRequest.code == run.returncode
    assert "203" in run.result["error"]
    assert_never_ran(run)


def test_broken_glexec_configuration_at_the_probe_is_a_system_error(site):
    run = site.run(queue=site.queue(glexec_path=str(BROKEN_STANDIN)))
    assert run.result["outcome"] == "switch_failed", run.log
    assert run.result["error_code"] == SwitchSystemError.code == run.returncode
    assert run.log.count("gLExec probe attempt") == 2, "202 is retried, 3 tries in all"
    assert_never_ran(run)


def breaking_glexec(site: Site, failures: int) -> Path:
    """A gLExec front whose configuration is broken for the first ``failures`` launches.

    The probe (``/usr/bin/env ... id``) goes to the working stand-in; a launch goes to the
    stand-in with the broken configuration while the counter is under ``failures``.  Both
    answers are the stand-in's own.
    """
    counter = site.base / "glexec-calls"
    counter.mkdir()
    give_to_pilot(counter, 0o700)
    script = site.base / "glexec-breaking"
    script.write_text(f"""#!/bin/sh
if [ "$1" = /usr/bin/env ]; then exec {STANDIN} "$@"; fi
n=$(ls {counter} | wc -l)
touch {counter}/call-$n
if [ "$n" -lt {failures} ]; then exec {BROKEN_STANDIN} "$@"; fi
exec {STANDIN} "$@"
""")
    script.chmod(0o755)
    return script


def test_broken_configuration_at_launch_is_retried_then_fails(site):
    script = breaking_glexec(site, failures=99)
    run = site.run(queue=site.queue(glexec_path=str(script)))
    assert run.result["outcome"] == "switch_failed", run.log
    assert run.result["error_code"] == SwitchSystemError.code == run.returncode
    assert "202" in run.result["error"]
    assert len(list((site.base / "glexec-calls").iterdir())) == 3
    assert run.log.count("launching again in 0s") == 2
    assert "giving up after 3 launches" in run.log
    assert_never_ran(run)


def test_broken_configuration_at_launch_that_recovers_runs_the_job(site):
    script = breaking_glexec(site, failures=1)
    run = site.run(queue=site.queue(glexec_path=str(script)))
    assert run.result["outcome"] == "succeeded", run.log
    assert run.result["account"]["name"] == node.ALICE
    assert len(list((site.base / "glexec-calls").iterdir())) == 2


@pytest.fixture
def noexec_workdir(site):
    """A work directory on a file system mounted noexec (some sites' scratch)."""
    mount = site.base / "noexec"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "noexec,nosuid,nodev,mode=0755,size=16m",
                    "pilotid-noexec", str(mount)], check=True)
    try:
        yield site.make_workdir(mount / "work")
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_wrapper_that_cannot_be_executed_is_an_exec_error(site, noexec_workdir):
    run = site.run(workdir=noexec_workdir)
    assert run.result["outcome"] == "switch_failed", run.log
    assert run.result["error_code"] == SwitchExecError.code == run.returncode
    assert "126" in run.result["error"]
    assert "cannot execute" in run.payload_log("stderr")
    assert_never_ran(run)


def test_payload_exiting_203_is_its_own_failure_not_an_authorisation_error(site):
    run = site.run(job=site.job("--fail 203"))
    assert (run.result["outcome"], run.result["exit_code"]) == ("payload_failed", 203), run.log
    assert run.result["error_code"] == PayloadFailedError.code == run.returncode
    assert "reported as 204" in run.payload_log("stderr")


def test_each_refusal_has_its_own_pilot_error_code():
    codes = [SwitchClientError.code, SwitchSystemError.code, SwitchNotPermittedError.code,
             SwitchExecError.code, PayloadFailedError.code, RescheduleRequest.code]
    assert len(set(codes)) == len(codes)


# --- signals through gLExec -----------------------------------------------------------------

def test_sigterm_to_the_pilot_stops_the_payload_through_glexec(site):
    queue = site.queue(setup=["echo partial > partial.out"], grace_period=20)
    with pilot_running(site, queue, site.job("--sleep 60")) as pilot:
        stdout_log = site.workdir / f"pilotid-{PANDA_ID}.stdout"
        assert wait_until(lambda: stdout_log.exists() and "argv-json=" in stdout_log.read_text()), \
            "the payload never started"
        glexec = [pid for pid in children_of(pilot.pid) if proc_stat(pid)[3] == str(pid)]
        assert len(glexec) == 1, "gLExec, the pilot's child leading its own session"
        session = glexec[0]
        assert job_processes(site.workdir, session), "the payload is not running"
        refused = node.run_as(node.PILOT, ["/bin/kill", "-TERM", str(session)], cwd=Path("/"))
        assert refused.returncode != 0
        assert b"not permitted" in refused.stderr, "the pilot may not signal the lingering gLExec"
        sent = time.monotonic()
        pilot.send_signal(signal.SIGTERM)
        stdout, stderr = pilot.communicate(timeout=60)
        elapsed = time.monotonic() - sent
    run = finished(pilot.returncode, stdout, stderr, site.workdir)
    assert run.result["outcome"] == "interrupted", run.log
    assert run.result["signal"] == signal.SIGTERM, "SIGTERM reached the payload, no SIGKILL"
    assert run.result["error_code"] == PilotInterruptedError.code == run.returncode
    assert elapsed < 2, f"the pilot took {elapsed:.1f}s to stop the payload (0.3s here)"
    assert job_processes(site.workdir, session) == []
    assert readable_by_pilot(site.workdir / "partial.out")
    assert "argv-json=" in run.payload_log("stdout")
    assert "glexec-standin[" in run.payload_log("stderr")


# --- PanDA's glexec: test mode ---------------------------------------------------------------

def test_panda_glexec_test_mode_switches_with_the_pilots_own_proxy(site):
    run = site.run(queue=site.queue(switcher=None, glexec="test", setup=REPORT_SETUP))
    assert run.result["outcome"] == "succeeded", run.log
    pilot = node.account(node.PILOT)
    assert run.result["account"] == pilot.as_dict()
    assert f"{PILOT_DN} (caller {node.PILOT}) mapped to {node.PILOT}" in \
        run.payload_log("stderr")
    reported = run.reported()
    assert reported["X509_USER_PROXY"] == str(site.workdir / TARGET_PROXY_NAME)
    assert reported["target-proxy-sha256"] == sha256(site.alice_proxy), \
        "the payload still gets the user's proxy"


# --- proxy lifetime ----------------------------------------------------------------------------

def test_proxy_shorter_than_a_launch_needs_is_refused_before_glexec_runs(site):
    short = write_proxy(site.base, site.users.alice, "x509up_short", hours=1)
    run = site.run(queue=site.queue(proxy_file=str(short), timeout=7200))
    assert (run.result["outcome"], run.result["error_code"]) == ("credential_failed", 32), \
        run.log
    assert "glexec-standin[" not in run.payload_log("stderr")


def test_long_payload_gets_the_renewed_proxy_pushed_through_glexec(site):
    """The proxy is under the refresh threshold; once the source has a longer one, the
    launcher pushes it to the target's proxy file with gLExec while the payload runs."""
    queue = site.queue(timeout=120, proxy_refresh_threshold=20 * 3600,
                       proxy_refresh_interval=1)
    with pilot_running(site, queue, site.job("--sleep 4")) as pilot:
        target = site.workdir / TARGET_PROXY_NAME
        assert wait_until(lambda: target.exists()), "gLExec never wrote the target proxy"
        assert target.read_bytes() == site.alice_proxy.read_bytes()
        renewed = site.base / "x509up_alice.new"
        write_private(renewed, make_proxy(site.users.alice, hours=24, bits=1024))
        give_to_pilot(renewed)
        os.replace(renewed, site.alice_proxy)  # as a renewal cron job would
        assert wait_until(lambda: target.exists() and
                          target.read_bytes() == site.alice_proxy.read_bytes(), timeout=10), \
            "the renewed proxy never reached the target's proxy file"
        assert target.stat().st_uid == node.account(node.ALICE).uid
        stdout, stderr = pilot.communicate(timeout=60)
    run = finished(pilot.returncode, stdout, stderr, site.workdir)
    assert run.result["outcome"] == "succeeded", run.log
    assert "pushed to the payload" in run.log


# --- pilotid probe -------------------------------------------------------------------------------

def test_probe_shows_glexec_its_mode_and_both_mappings(site):
    done = node.run_as(node.PILOT, [site.python, "-m", "pilotid", "probe", "--queues",
                                    str(site.queue()), "--queue", QUEUE, "--workdir",
                                    str(site.workdir), "--json"],
                       env=site.environment(), cwd=Path("/"))
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert done.returncode == 0, checks
    binary = checks["gLExec"]
    assert binary["status"] == "ok"
    assert str(STANDIN) in binary["detail"] and "mode 4110" in binary["detail"]
    assert "owner root" in binary["detail"] and "setuid root" in binary["detail"]
    pilot = checks["gLExec switch with the pilot's proxy"]
    assert pilot["status"] == "ok" and f"maps to {node.PILOT}" in pilot["detail"]
    user = checks["gLExec switch with the user's proxy"]
    assert user["status"] == "ok" and f"{ALICE_DN} maps to {node.ALICE}" in user["detail"]
    assert checks["test switch"]["status"] == "ok"


def test_probe_fails_on_a_broken_glexec(site):
    done = node.run_as(node.PILOT, [site.python, "-m", "pilotid", "probe", "--queues",
                                    str(site.queue(glexec_path=str(BROKEN_STANDIN))),
                                    "--queue", QUEUE, "--workdir", str(site.workdir), "--json"],
                       env=site.environment(), cwd=Path("/"))
    checks = {c["name"]: c for c in json.loads(done.stdout)}
    assert checks["test switch"]["status"] == "fail"
    assert checks["test switch"]["error_code"] == SwitchSystemError.code == done.returncode


def stubborn_transformations(site: Site, main_ignores_term: bool) -> Path:
    """A transformation directory whose runAthena has a child that ignores SIGTERM and,
    if ``main_ignores_term``, ignores it too."""
    trf = site.base / "trf"
    trf.mkdir()
    script = trf / "runAthena"
    script.write_text(f"""#!/bin/bash
{"trap '' TERM" if main_ignores_term else ""}
echo "argv-json=[]"
( trap '' TERM; exec sleep 300 ) &
sleep 300 & wait
""")
    script.chmod(0o755)
    trf.chmod(0o755)
    return trf


@pytest.mark.parametrize("main_ignores_term, signum", [(True, signal.SIGKILL),
                                                       (False, signal.SIGTERM)])
def test_payload_ignoring_sigterm_ends_through_glexec_with_all_its_processes(
        site, main_ignores_term, signum):
    """SIGKILL after the grace period must reach the payload's own process group, not only
    the wrapper's; a child that ignores SIGTERM must not outlive a payload that obeyed."""
    trf = stubborn_transformations(site, main_ignores_term)
    queue = site.queue(grace_period=1, transformation_dirs=[str(trf)])
    with pilot_running(site, queue, site.job()) as pilot:
        stdout_log = site.workdir / f"pilotid-{PANDA_ID}.stdout"
        assert wait_until(lambda: stdout_log.exists() and "argv-json=" in stdout_log.read_text())
        time.sleep(0.3)
        (session,) = [pid for pid in children_of(pilot.pid) if proc_stat(pid)[3] == str(pid)]
        pilot.send_signal(signal.SIGTERM)
        stdout, stderr = pilot.communicate(timeout=60)
    run = finished(pilot.returncode, stdout, stderr, site.workdir)
    assert (run.result["outcome"], run.result["signal"]) == ("interrupted", signum), run.log
    assert wait_until(lambda: job_processes(site.workdir, session) == [], timeout=5), \
        [Path(f"/proc/{p}/cmdline").read_bytes() for p in job_processes(site.workdir, session)]
