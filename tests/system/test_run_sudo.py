"""End to end: ``pilotid run`` as the unprivileged pilot account, through real sudo.

The pilot is pilotid-pilot, started with setpriv (tests/system/node.py), running this
checkout's pilotid (the ``pilot_install`` copy) as ``python -m pilotid run --queues ...
--queue ... --job ... --workdir ... --json``, exactly as a site would.  Its own proxy is an
``X509_USER_PROXY`` (0600) in its own area, next to the work directories; the users'
proxies come from a throwaway CA (alice -> pilotid-alice, bob -> pilotid-bob, carol ->
pilotid-carol, whom the pilot may not sudo to, eve unmapped) through a grid-mapfile.  The
payloads are the runAthena and buildJob stand-ins (docs/payloads.rst).

The suite runs serially, so "no process of the target is left" is checked with the
account's whole process list (before and after the run).
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from pilotid.identity.testca import make_proxy
from tests.conftest import ALICE_DN, BOB_DN, CAROL_DN, EVE_DN
from tests.system import node

REPO = Path(__file__).resolve().parents[2]
MISSING_PRELOAD = "/nonexistent/libpilotid-missing-preload.so"


def documented_codes() -> Dict[str, int]:
    """Error class -> pilot error code, as docs/errors.rst's table documents them."""
    text = (REPO / "docs" / "errors.rst").read_text()
    return {name: int(code) for code, name in
            re.findall(r"\* - (\d+)\n\s+- ``(\w+)``", text)}


@dataclass
class Run:
    """One ``pilotid run`` by the pilot: exit status, the JSON result, stderr."""

    status: int
    result: Optional[Dict[str, Any]]
    stdout: str
    stderr: str

    def log(self) -> str:
        assert self.result is not None and self.result["stdout"], self.stderr
        return Path(self.result["stdout"]).read_text(errors="replace")

    def printed(self, key: str) -> Any:
        """A ``key=...`` line the stand-in printed (JSON for the ``*-json`` keys)."""
        for line in self.log().splitlines():
            if line.startswith(key + "="):
                value = line[len(key) + 1:]
                return json.loads(value) if key.endswith("-json") else value
        raise AssertionError(f"the payload printed no {key}= line:\n{self.log()}")


class Site:
    """A worker node's set-up for the pilot: queues, grid-mapfile, proxies, work area."""

    def __init__(self, base: Path, python: str, pythonpath: str, users: Any) -> None:
        self.base = base
        self.python = python
        self.pythonpath = pythonpath
        self.pilot = node.account(node.PILOT)
        self.alice = node.account(node.ALICE)
        self.bob = node.account(node.BOB)
        self.count = 0
        # the pilot's own area: 0700, its proxy, a TMPDIR only it may write, the job dirs
        self.area = self.own_dir(base / "pilot-area", 0o700)
        self.pilot_proxy = self.own_file(self.area / "x509up_pilot",
                                         make_proxy(users.pilot, bits=1024), 0o600)
        self.pilot_tmp = self.own_dir(self.area / "tmp", 0o700)
        proxies = self.own_dir(base / "user-proxies", 0o700)
        user_proxy = {name: self.own_file(proxies / f"x509up_{name}",
                                          make_proxy(getattr(users, name), bits=1024), 0o600)
                      for name in ("alice", "bob", "carol", "eve")}
        mapfile = base / "grid-mapfile"
        mapfile.write_text(f'"{ALICE_DN}" {node.ALICE}\n"{BOB_DN}" {node.BOB}\n'
                           f'"{CAROL_DN}" {node.CAROL}\n')
        mapfile.chmod(0o644)
        self.trf = base / "trf"  # site transformation directories, for single tests
        self.trf.mkdir(mode=0o755)
        self.stubborn_trf = base / "trf-stubborn"
        self.stubborn_trf.mkdir(mode=0o755)
        self.canaries = base / "canaries"
        self.canaries.mkdir()
        self.canaries.chmod(0o1777)
        self.jobs = base / "jobs"
        self.jobs.mkdir(mode=0o755)

        def sudo(user: str, **extra: Any) -> dict:
            return {"switcher": "sudo", "credential_source": "file",
                    "proxy_file": str(user_proxy[user]), "grid_mapfile": str(mapfile),
                    "sandbox": "acl", "umask": "0022", "timeout": 300, "grace_period": 5,
                    "standin_transformations": True,
                    # the site passes its TMPDIR; the injection test's variable by name
                    "env_pass": ["TMPDIR", "PILOTID_INJECTED"],
                    "work_root": str(self.area), "state_dir": str(self.area / "state"),
                    **extra}

        # a sudo front for the queue's sudo_path: it logs each call, then is the real sudo
        self.sudo_calls = self.own_file(self.area / "sudo-calls", b"", 0o600)
        self.sudo_front = base / "sudo-front"
        self.sudo_front.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {self.sudo_calls}\n"
                                   f"exec {shutil.which('sudo', path='/usr/bin:/bin')} \"$@\"\n")
        self.sudo_front.chmod(0o755)

        self.queues = base / "queues.json"
        self.queues.write_text(json.dumps({"queues": {
            "ANALY_SUDO": sudo("alice"),
            "ANALY_SUDO_BOB": sudo("bob"),
            "ANALY_SUDO_CAROL": sudo("carol"),
            "ANALY_SUDO_EVE": sudo("eve"),
            "ANALY_SUDO_EVE_RESCHEDULE": sudo("eve", on_probe_failure="reschedule"),
            "ANALY_SUDO_SITE_TRF": sudo("alice", transformation_dirs=[str(self.trf)]),
            "ANALY_SUDO_FRONT": sudo("alice", sudo_path=str(self.sudo_front)),
            "ANALY_SUDO_STUBBORN": sudo("alice", transformation_dirs=[str(self.stubborn_trf)],
                                        timeout=1, grace_period=1),
            "ANALY_NOOP": {"switcher": "noop", "credential_source": "file",
                           "proxy_file": str(user_proxy["alice"]),
                           "standin_transformations": True},
        }}, indent=1))
        self.queues.chmod(0o644)

    def own_dir(self, path: Path, mode: int) -> Path:
        path.mkdir()
        os.chown(path, self.pilot.uid, self.pilot.gid)
        path.chmod(mode)
        return path

    def own_file(self, path: Path, data: bytes, mode: int) -> Path:
        path.write_bytes(data)
        os.chown(path, self.pilot.uid, self.pilot.gid)
        path.chmod(mode)
        return path

    def workdir(self, inputs: Optional[Dict[str, bytes]] = None) -> Path:
        """A new job directory (0700, the pilot's) with ``inputs`` staged as 0600 files."""
        self.count += 1
        work = self.own_dir(self.area / f"job-{self.count}", 0o700)
        for name, data in (inputs or {}).items():
            path = work / name
            for parent in reversed(path.relative_to(work).parents[:-1]):
                if not (work / parent).exists():
                    self.own_dir(work / parent, 0o700)
            self.own_file(path, data, 0o600)
        return work

    def job(self, **fields: Any) -> Path:
        description = {"PandaID": 4300 + self.count, "prodUserID": ALICE_DN,
                       "transformation": "runAthena-00-00-11", "prodSourceLabel": "user"}
        description.update(fields)
        path = self.jobs / f"job-{self.count}-{len(os.listdir(self.jobs))}.json"
        path.write_text(json.dumps(description))
        path.chmod(0o644)
        return path

    def env(self, **extra: str) -> Dict[str, str]:
        return {"PYTHONPATH": self.pythonpath, "X509_USER_PROXY": str(self.pilot_proxy),
                **extra}

    def argv(self, queue: str, job: Path, workdir: Path) -> List[str]:
        return [self.python, "-m", "pilotid", "run", "--queues", str(self.queues),
                "--queue", queue, "--job", str(job), "--workdir", str(workdir), "--json"]

    def run(self, queue: str, job: Path, workdir: Path, **extra_env: str) -> Run:
        done = node.run_as(node.PILOT, self.argv(queue, job, workdir),
                           env=self.env(**extra_env), cwd=Path("/"))
        return _parsed(done.returncode, done.stdout, done.stderr)


def _parsed(status: int, stdout: bytes, stderr: bytes) -> Run:
    out = stdout.decode()
    try:
        result = json.loads(out) if out.strip() else None
    except ValueError:
        result = None
    return Run(status, result, out, stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def site(real_node, pilot_install, users):
    python, pythonpath = pilot_install
    base = node.make_shared_dir("pilotid-run-sudo-")
    try:
        yield Site(base, python, pythonpath, users)
    finally:
        subprocess.run(["rm", "-rf", "--", str(base)], check=False)


def target_processes(name: str = node.ALICE) -> set:
    return {pid for pid in node.processes_of(name) if _alive(pid)}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
    except OSError:
        return False
    return state != b"Z"


def assert_nothing_left(before: set, name: str = node.ALICE) -> None:
    deadline = time.monotonic() + 5
    left = target_processes(name) - before
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = target_processes(name) - before
    assert not left, f"processes of {name} left after the job: {sorted(left)}"


def world_writable(top: Path) -> List[str]:
    found = []
    for root, dirs, files in os.walk(top):
        for name in [".", *dirs, *files]:
            path = Path(root, name)
            info = path.lstat()
            if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o002:
                found.append(str(path))
    return found


def as_pilot_read_and_delete(paths: List[Path]) -> subprocess.CompletedProcess:
    """As the pilot: read every file under each path, then delete them all."""
    script = ("import os, shutil, sys\n"
              "for top in sys.argv[1:]:\n"
              "    files = [top] if os.path.isfile(top) else [os.path.join(r, f) for r, _, fs"
              " in os.walk(top) for f in fs]\n"
              "    for f in files:\n"
              "        open(f, 'rb').read()\n"
              "    shutil.rmtree(top) if os.path.isdir(top) else os.unlink(top)\n")
    return node.run_as(node.PILOT, ["python3", "-c", script, *map(str, paths)])


# --- a runAthena job through sudo, looked at from every side --------------------------------

RUNATHENA_INPUTS = {"data11_7TeV.AOD._0001.pool.root.1": b"AOD events\n" * 50,
                    "in/data11_7TeV.AOD._0002.pool.root.1": b"more events\n" * 50}


@pytest.fixture(scope="module")
def alice_run(site):
    """One rich runAthena job as alice: outputs in subdirectories written with umask 0077,
    the pilot's proxy tried, world-writable paths looked for from inside, a missing
    LD_PRELOAD, a TMPDIR only the pilot may write, a pilot token and a function-like value
    in the pilot's environment."""
    work = site.workdir(RUNATHENA_INPUTS)
    outputs = {"hist.root": "out/deep/user.alice.4300._00001.hist.root",
               "ntuple/AnalysisSkeleton.aan.root": "user.alice.4300._00001.aan.root"}
    by_type = {"hist": outputs["hist.root"],
               "IROOT": [("ntuple/AnalysisSkeleton.aan.root", outputs[
                   "ntuple/AnalysisSkeleton.aan.root"])]}  # runAthena's -o, keyed by type
    job_pars = (f"-j AnalysisSkeleton_topOptions.py -i '{json.dumps(list(RUNATHENA_INPUTS))}' "
                f"-o \"{by_type!r}\" --umask 077 --try-read {site.pilot_proxy} "
                "--dump-env --scratch --find-world-writable")
    job = site.job(jobPars=job_pars, inFiles=",".join(RUNATHENA_INPUTS),
                   outFiles=",".join(outputs.values()))
    canary = site.canaries / "shellshock"
    before = target_processes()
    run = site.run("ANALY_SUDO", job, work, LD_PRELOAD=MISSING_PRELOAD,
                   TMPDIR=str(site.pilot_tmp), PANDA_AUTH_TOKEN="pilot-secret-token",
                   PILOTID_FUNCTION_LIKE=f"() {{ :; }}; touch {canary}")
    return {"site": site, "work": work, "outputs": outputs, "run": run, "before": before,
            "canary": canary}


def test_runathena_runs_as_the_mapped_account(alice_run):
    run, site = alice_run["run"], alice_run["site"]
    assert run.status == 0, run.stderr
    result = run.result
    assert (result["outcome"], result["exit_code"], result["error_code"]) == ("succeeded", 0, 0)
    assert result["account"] == site.alice.as_dict()
    assert (result["switcher"], result["sandbox_mode"]) == ("sudo", "acl")
    assert run.printed("uid") == str(site.alice.uid)
    assert run.printed("user") == node.ALICE
    for final in alice_run["outputs"].values():
        assert (alice_run["work"] / final).stat().st_uid == site.alice.uid


def test_payload_umask_0077_still_leaves_outputs_the_pilot_can_read_and_delete(alice_run):
    work = alice_run["work"]
    assert alice_run["run"].printed("umask-set") == "0077"
    finals = [work / final for final in alice_run["outputs"].values()]
    assert all(path.is_file() for path in finals)
    done = as_pilot_read_and_delete([work / "out", work / "ntuple", *finals[1:]])
    assert done.returncode == 0, done.stderr.decode()
    assert not any(path.exists() for path in finals)


def test_pilots_own_proxy_is_unreadable_by_the_payload(alice_run):
    site = alice_run["site"]
    assert f"try-read {site.pilot_proxy}: denied" in alice_run["run"].log()
    env = alice_run["run"].printed("env-json")
    assert env["X509_USER_PROXY"] != str(site.pilot_proxy)
    assert "PANDA_AUTH_TOKEN" not in env


def test_payload_gets_the_users_proxy_not_the_pilots(alice_run):
    env = alice_run["run"].printed("env-json")
    assert Path(env["X509_USER_PROXY"]).parent.parent == alice_run["work"]
    assert not Path(env["X509_USER_PROXY"]).parent.exists()  # removed after the job


def test_egg_cache_is_gone_after_success(alice_run):
    egg = alice_run["run"].printed("PYTHON_EGG_CACHE")
    assert egg.startswith("/tmp/pilotid-egg-")
    assert not os.path.exists(egg)


def test_missing_ld_preload_does_not_reach_the_payload(alice_run):
    env = alice_run["run"].printed("env-json")
    assert "LD_PRELOAD" not in env
    assert "ld.so" not in Path(alice_run["run"].result["stderr"]).read_text()


def test_function_like_value_is_dropped_and_runs_nothing(alice_run):
    assert "PILOTID_FUNCTION_LIKE" not in alice_run["run"].printed("env-json")
    assert not alice_run["canary"].exists()


def test_tmpdir_only_the_pilot_may_write_does_not_break_the_payload(alice_run):
    run, site = alice_run["run"], alice_run["site"]
    assert run.printed("env-json")["TMPDIR"] == str(site.pilot_tmp)
    assert run.printed("scratch") == "/tmp"  # Python's tempfile fell back
    assert run.result["outcome"] == "succeeded"


def test_no_world_writable_path_in_the_work_directory_during_or_after(alice_run):
    assert alice_run["run"].printed("world-writable-json") == []
    assert world_writable(alice_run["work"]) == []


def test_work_directory_and_its_parent_are_given_back(alice_run):
    work, site = alice_run["work"], alice_run["site"]
    for path in (work, site.area):
        acl = subprocess.run(["getfacl", "-cp", str(path)], capture_output=True,
                             text=True).stdout
        assert node.ALICE not in acl, (path, acl)
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert not list(work.glob(".pilotid*"))


def test_no_process_of_the_target_is_left(alice_run):
    assert_nothing_left(alice_run["before"])


def test_accounting_record_names_the_user_and_the_account(alice_run):
    work, site = alice_run["work"], alice_run["site"]
    record = json.loads((work / "accounting.jsonl").read_text())
    assert record["user_dn"] == ALICE_DN
    assert record["account"] == site.alice.as_dict()
    assert record == {**alice_run["run"].result, "user_dn": ALICE_DN, "token": None}


# --- other jobs through sudo -----------------------------------------------------------------


def _sources_tarball() -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for name, text in (("MyAnalysis/src/Skeleton.cxx", b"int main() {}\n"),
                           ("MyAnalysis/cmt/requirements", b"package MyAnalysis\n")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text))
    return data.getvalue()


def test_buildjob_runs_as_bob_and_leaves_a_library_the_pilot_can_take(site):
    work = site.workdir({"user.bob.sources.tar.gz": _sources_tarball()})
    job = site.job(transformation="buildJob-00-00-03", prodUserID=BOB_DN,
                   jobPars="-i user.bob.sources.tar.gz -o lib/user.bob.lib.tgz "
                           "--sourceURL https://panda.example.org:25443",
                   outFiles="user.bob.lib.tgz")
    before = target_processes(node.BOB)
    run = site.run("ANALY_SUDO_BOB", job, work)
    assert run.status == 0, run.stderr
    assert (run.result["outcome"], run.result["account"]) == ("succeeded",
                                                              site.bob.as_dict())
    library = work / "lib" / "user.bob.lib.tgz"
    assert library.stat().st_uid == site.bob.uid
    with tarfile.open(library) as archive:
        info = json.load(archive.extractfile("lib/BUILD-INFO.json"))
    assert info["uid"] == site.bob.uid
    assert world_writable(work) == []
    done = as_pilot_read_and_delete([work / "lib"])
    assert done.returncode == 0, done.stderr.decode()
    assert_nothing_left(before, node.BOB)


def test_pilots_proxy_inside_the_work_directory_is_refused_before_anything_changes(site):
    """Issue 13, item 10: a work directory holding the pilot's own proxy is never opened."""
    work = site.workdir({"in.root": b"events\n"})
    own_proxy = site.own_file(work / "x509up_pilot", site.pilot_proxy.read_bytes(), 0o600)
    job = site.job(jobPars="-i \"['in.root']\"")
    run = site.run("ANALY_SUDO", job, work, X509_USER_PROXY=str(own_proxy))
    assert (run.result["outcome"], run.result["error_code"]) == ("setup_failed", 22), run.stderr
    assert "holds the pilot's own credential" in run.result["error"]
    assert stat.S_IMODE(own_proxy.stat().st_mode) == 0o600
    assert stat.S_IMODE(work.stat().st_mode) & 0o077 == 0
    acl = subprocess.run(["getfacl", "-cp", str(work)], capture_output=True, check=True)
    assert not re.search(rb"^user:[^:]", acl.stdout, re.MULTILINE), acl.stdout


def test_egg_cache_is_gone_after_a_payload_failure(site):
    work = site.workdir({"in.root": b"events\n"})
    before = target_processes()
    run = site.run("ANALY_SUDO", site.job(jobPars="-i \"['in.root']\" --fail 3"), work)
    assert (run.status, run.result["outcome"], run.result["exit_code"]) == (70, "payload_failed",
                                                                           3)
    assert not os.path.exists(run.printed("PYTHON_EGG_CACHE"))
    assert_nothing_left(before)


def test_an_ordinary_job_leaves_no_warning_in_the_pilots_log(site):
    """Nothing the pilot removes itself (its wrapper, written before the grant) is reported
    as moved out by the payload: a warning on every job would hide the real ones."""
    work = site.workdir({"in.root": b"events\n"})
    run = site.run("ANALY_SUDO", site.job(jobPars="-i \"['in.root']\""), work)
    assert (run.status, run.result["outcome"], run.result["sandbox_mode"]) == (
        0, "succeeded", "acl"), run.stderr
    assert "WARNING" not in run.stderr, run.stderr
    assert os.listdir(work) and not [name for name in os.listdir(work)
                                     if name.startswith(".pilotid-")]


def test_sigterm_to_the_pilot_reaches_the_payload_and_is_interrupted(site):
    work = site.workdir({"in.root": b"events\n"})
    job = site.job(jobPars="-i \"['in.root']\" --sleep 60")
    log = work / f"pilotid-{json.loads(job.read_text())['PandaID']}.stdout"
    before = target_processes()
    pilot = node.popen_as(node.PILOT, site.argv("ANALY_SUDO", job, work), env=site.env(),
                          cwd=Path("/"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and "argv-json=" in log.read_text()):
            assert pilot.poll() is None and time.monotonic() < deadline, "payload never ran"
            time.sleep(0.05)
        payloads = target_processes() - before
        assert payloads, "no payload process of the target is running"
        started = time.monotonic()
        pilot.send_signal(signal.SIGTERM)  # setpriv exec'd: this is the pilot itself
        stdout, stderr = pilot.communicate(timeout=60)
    finally:
        if pilot.poll() is None:
            pilot.kill()
    assert time.monotonic() - started < 10  # the payload went at once, no grace period
    run = _parsed(pilot.returncode, stdout, stderr)
    assert run.status == 73, run.stderr
    result = run.result
    assert (result["outcome"], result["error_code"], result["signal"]) == ("interrupted", 73,
                                                                           15)
    assert result["account"] == site.alice.as_dict()
    assert "argv-json=" in Path(result["stdout"]).read_text()  # logs kept
    assert json.loads((work / "accounting.jsonl").read_text())["outcome"] == "interrupted"
    assert not os.path.exists(run.printed("PYTHON_EGG_CACHE"))
    assert not list(work.glob(".pilotid*"))
    assert_nothing_left(before)


def test_processes_the_payload_leaves_behind_do_not_outlive_the_job(site):
    standin = site.trf / "runAthena"
    standin.write_text("#!/bin/bash\nsleep 300 </dev/null >/dev/null 2>&1 &\n"
                       "echo \"straggler=$!\"\n")
    standin.chmod(0o755)
    work = site.workdir()
    before = target_processes()
    run = site.run("ANALY_SUDO_SITE_TRF", site.job(jobPars=""), work)
    assert run.result["outcome"] == "succeeded", run.stderr
    straggler = int(run.printed("straggler"))
    assert_nothing_left(before)
    assert not _alive(straggler)


def test_payload_ignoring_sigterm_is_killed_and_still_cleaned_up_after(site):
    """At the time limit: SIGTERM (ignored), then SIGKILL as the target after the grace
    period, to the payload first, so that the wrapper still removes the egg cache."""
    standin = site.stubborn_trf / "runAthena"
    standin.write_text("#!/bin/bash\ntrap '' TERM\necho \"egg=$PYTHON_EGG_CACHE\"\n"
                       "sleep 60\n")
    standin.chmod(0o755)
    work = site.workdir()
    before = target_processes()
    run = site.run("ANALY_SUDO_STUBBORN", site.job(jobPars=""), work)
    result = run.result
    assert (run.status, result["outcome"], result["signal"]) == (72, "timed_out", 9), run.stderr
    assert "SIGKILL" in run.stderr
    egg = run.printed("egg")
    assert egg.startswith("/tmp/pilotid-egg-") and not os.path.exists(egg)
    assert not list(work.glob(".pilotid*"))
    assert_nothing_left(before)


# --- bad input: one clear line and the documented code ----------------------------------------


def _one_line_error(run: Run, code: int) -> str:
    """The error of a failed run: in the JSON result, or pilotid's one stderr line."""
    if run.result is not None:
        assert run.result["error_code"] == code
        error = run.result["error"]
        assert error and "\n" not in error
        assert f"ERROR job {run.result['panda_id']}: {error}" in run.stderr
        return error
    errors = [line for line in run.stderr.splitlines() if line.startswith("pilotid: error")]
    assert len(errors) == 1, run.stderr
    assert errors[0].startswith(f"pilotid: error {code} ")
    return errors[0]


def test_queue_sudo_path_is_the_sudo_that_switches(site):
    work = site.workdir({"in.root": b"events\n"})
    before = target_processes()
    run = site.run("ANALY_SUDO_FRONT", site.job(jobPars="-i \"['in.root']\""), work)
    assert run.result["outcome"] == "succeeded", run.stderr
    assert run.printed("uid") == str(site.alice.uid)
    calls = site.sudo_calls.read_text().splitlines()
    assert calls and all(c.startswith(f"-n -u {node.ALICE} -- ") for c in calls), calls
    assert any(".pilotid-wrapper-" in call for call in calls), calls
    assert_nothing_left(before)


def test_dn_not_in_the_grid_mapfile(site):
    run = site.run("ANALY_SUDO_EVE", site.job(prodUserID=EVE_DN), site.workdir())
    code = documented_codes()["AccountMappingError"]
    assert (run.status, run.result["outcome"]) == (code, "switch_failed")
    error = _one_line_error(run, code)
    assert EVE_DN in error and "grid-mapfile" in error


def test_queue_that_reschedules_hands_an_unmapped_dn_back(site):
    run = site.run("ANALY_SUDO_EVE_RESCHEDULE", site.job(prodUserID=EVE_DN), site.workdir())
    code = documented_codes()["RescheduleRequest"]
    assert (run.status, run.result["outcome"], run.result["account"]) == (code, "rescheduled",
                                                                         None)
    assert EVE_DN in _one_line_error(run, code)


def test_sudo_not_permitted_to_the_mapped_account(site):
    run = site.run("ANALY_SUDO_CAROL", site.job(prodUserID=CAROL_DN), site.workdir())
    code = documented_codes()["SwitchNotPermittedError"]
    assert (run.status, run.result["outcome"]) == (code, "switch_failed")
    error = _one_line_error(run, code)
    assert node.CAROL in error and "sudoers" in error


def test_nonexistent_work_directory(site):
    missing = site.area / "no-such-job-dir"
    run = site.run("ANALY_SUDO", site.job(), missing)
    code = documented_codes()["WorkdirError"]
    assert (run.status, run.result["outcome"]) == (code, "setup_failed")
    assert str(missing) in _one_line_error(run, code)
    assert "accounting" not in run.stderr


def test_work_directory_the_pilot_cannot_write(site):
    root_owned = site.base / "root-owned-workdir"
    root_owned.mkdir(mode=0o755, exist_ok=True)
    run = site.run("ANALY_SUDO", site.job(), root_owned)
    code = documented_codes()["WorkdirError"]
    assert (run.status, run.result["outcome"]) == (code, "setup_failed")
    assert "not writable" in _one_line_error(run, code)
    assert os.listdir(root_owned) == []


def test_malformed_job_json(site):
    job = site.job()
    job.write_text('{"PandaID": 4399, "transformation": "runAthena-00-00-11",')
    run = site.run("ANALY_SUDO", job, site.workdir())
    code = documented_codes()["JobDescriptionError"]
    assert (run.status, run.result, run.stdout) == (code, None, "")
    assert "not valid JSON" in _one_line_error(run, code)


def test_transformation_not_found(site):
    run = site.run("ANALY_SUDO", site.job(transformation="https://panda.example.org/trf/"
                                                          "prun-00-00-01"), site.workdir())
    code = documented_codes()["TransformationNotFoundError"]
    assert (run.status, run.result["outcome"]) == (code, "setup_failed")
    assert "prun-00-00-01" in _one_line_error(run, code)


def test_unknown_queue(site):
    run = site.run("ANALY_NO_SUCH_QUEUE", site.job(), site.workdir())
    code = documented_codes()["UnknownQueueError"]
    assert (run.status, run.result) == (code, None)
    error = _one_line_error(run, code)
    assert "ANALY_NO_SUCH_QUEUE" in error and "ANALY_SUDO" in error


# --- the no-op switcher and the demo -----------------------------------------------------------


@pytest.mark.parametrize("kind", ["runAthena", "buildJob"])
def test_noop_switcher_runs_the_same_jobs_as_the_pilot(site, kind):
    if kind == "runAthena":
        work = site.workdir(RUNATHENA_INPUTS)
        job = site.job(jobPars=f"-i '{json.dumps(list(RUNATHENA_INPUTS))}' "
                               "-o '{\"hist.root\": \"out/user.hist.root\"}'")
        output = work / "out" / "user.hist.root"
    else:
        work = site.workdir({"sources.tar.gz": _sources_tarball()})
        job = site.job(transformation="buildJob-00-00-03",
                       jobPars="-i sources.tar.gz -o lib/user.lib.tgz")
        output = work / "lib" / "user.lib.tgz"
    run = site.run("ANALY_NOOP", job, work)
    assert run.status == 0, run.stderr
    assert run.result["account"] == site.pilot.as_dict()
    assert (run.result["switcher"], run.result["sandbox_mode"]) == ("noop", "none")
    assert run.printed("uid") == str(site.pilot.uid)
    assert output.stat().st_uid == site.pilot.uid


def test_demo_runs_as_a_non_root_account_in_a_directory_of_its_own(site):
    """What ``make demo`` runs (``$(PY) -m pilotid.demo``), as pilotid-pilot."""
    home = site.own_dir(site.base / "demo-checkout", 0o755)
    done = node.run_as(node.PILOT, [site.python, "-m", "pilotid.demo"],
                       env={"PYTHONPATH": site.pythonpath}, cwd=home)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.decode()
    result = json.loads(out.split("\n\nwork directory:", 1)[0])
    assert (result["outcome"], result["account"]) == ("succeeded", site.pilot.as_dict())
    workdir = Path(result["workdir"])
    assert workdir.parent.parent == home / "demo-run"
    outputs = list(workdir.glob("user.demo.*.hist.root"))
    assert len(outputs) == 1 and outputs[0].stat().st_uid == site.pilot.uid
    assert str(workdir / "accounting.jsonl") in out and "(missing)" not in out


# --- injection, property-based, end to end -----------------------------------------------------

_NO_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\x7f")
_DANGEROUS = ("$(touch {c})", "`touch {c}`", "; touch {c}", "| touch {c}", "&& touch {c}",
              "\ntouch {c}\n", "'; touch {c}; '", '"; touch {c}; "', "\\\"$(touch {c})\\\"",
              "${{IFS}}touch${{IFS}}{c}", "%s%n%x%%{c}", "$'\\x41'$(touch {c})", "é∆😀 {c}")


def _values(canary: str, max_size: int = 40) -> st.SearchStrategy:
    dangerous = st.sampled_from(_DANGEROUS).map(lambda t: t.format(c=canary))
    short = st.text(_NO_NUL, max_size=max_size)
    long = st.tuples(st.text(_NO_NUL, min_size=1, max_size=3),
                     st.integers(2000, 8000)).map(lambda p: (p[0] * p[1])[:20000])
    mixed = st.tuples(short, dangerous, short).map("".join)
    return st.one_of(short, dangerous, mixed, long)


def _file_name() -> st.SearchStrategy:
    return (st.one_of(st.text(_NAME_CHARS, min_size=1, max_size=30),
                      st.sampled_from(["$(touch x).root", "`id`;|&.root", "a'b\"c%d.root",
                                       "données-∆.root", "-o", " lead", "trail "]))
            .filter(lambda n: n.strip() not in ("", ".", "..", "NULL") and "," not in n
                    and len(n.encode()) < 200))


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_job_fields_and_environment_reach_the_payload_verbatim_and_run_nothing(site, data):
    canary = site.canaries / f"c{site.count}"
    args = data.draw(st.lists(_values(str(canary)).filter(lambda a: not a.startswith("-")),
                              max_size=4), label="jobPars words")
    value = data.draw(_values(str(canary)), label="environment value")
    assume(not re.match(r"\s*\(\)\s*\{", value))  # an exported-function value is dropped
    in_name = data.draw(_file_name(), label="input file")
    out_name = data.draw(_file_name(), label="output file")
    assume(in_name.strip() != out_name.strip())
    in_name, out_name = in_name.strip(), out_name.strip()
    panda_id = data.draw(st.integers(1, 2**40).flatmap(
        lambda n: st.sampled_from([n, str(n), f" {n} ", f"{n:015d}"])), label="PandaID")
    work = site.workdir({in_name: b"input\n"})
    job_pars = (f"-i {shlex.quote(repr([in_name]))} "
                f"-o {shlex.quote(repr({'local.tmp': out_name}))} --dump-env "
                + " ".join(shlex.quote(a) for a in args))
    job = site.job(PandaID=panda_id, jobPars=job_pars, inFiles=[in_name], outFiles=[out_name])
    run = site.run("ANALY_SUDO", job, work, PILOTID_INJECTED=value)
    assert run.status == 0, run.stderr
    assert run.result["panda_id"] == int(str(panda_id).strip())
    words = ["-i", repr([in_name]), "-o", repr({"local.tmp": out_name}),
             "--dump-env", *args]
    assert run.printed("argv-json") == words
    assert run.printed("env-json")["PILOTID_INJECTED"] == value
    assert (work / out_name).is_file()
    assert f"read {in_name} (6 bytes)" in run.log()
    assert not canary.exists() and not list(site.canaries.iterdir())
