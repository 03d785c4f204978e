"""A pilot on the real node running whole jobs with ``pilotid run``, and the checks every
job must pass afterwards.  Shared by tests/security and tests/faults (not a test module).

``Scene`` lays out, under a shared temporary directory:

``pilot-home/`` (pilotid-pilot, 0700)
    the pilot's own files: its proxy ``x509up_pilot`` (what ``X509_USER_PROXY`` names in
    the pilot's environment), the users' proxies the ``file`` source reads, the
    grid-mapfile, the queue settings, the job files, the queue's accounting file, a log
    of its own (``pilot.log``), and the work directories ``work-*`` (0700).
``trf/`` (root, 0755)
    the transformations the queues find first: the stand-ins a test writes (``runAthena``
    is what a job with transformation ``runAthena-...`` runs).

``Scene.run`` runs one job as the pilot (``setpriv``, like a batch system would start it)
and returns a ``JobRun``: the JSON result, the exit status, the pilot's stderr, and the
work directory.  ``Scene.check_aftermath`` asserts the promise of issue 6 for a finished
job: its logs and outputs are still there and readable by the pilot, no copy of a
credential is left outside the work directory, no process of the job is left, and the
accounting record was written.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from pilotid.identity.credfile import write_private
from pilotid.identity.testca import make_proxy
from tests.system import node

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
BOB_DN = "/DC=org/DC=example/OU=People/CN=Bob O'Builder (Test)"
CAROL_DN = "/DC=org/DC=example/OU=People/CN=Carol Unsudoable"
PYTHON = "/opt/pilotid-test/venv/bin/python"
_DRIVER = Path(__file__).resolve().parents[1] / "faults" / "pilot_driver.py"
#: Trees under /tmp that hold no job's files: test installations, benchmark trees.
_SKIPPED = ("/tmp/pytest-of-", "/tmp/pilotid-install-", "/tmp/pilotid-bench-",
            "/tmp/pilotid-prof-")


def own(path: Path, name: str, mode: int) -> Path:
    """Give ``path`` to account ``name`` with ``mode``; return it."""
    entry = pwd.getpwnam(name)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    os.chmod(path, mode)
    return path


def processes_with(token: str) -> List[str]:
    """``pid user command`` of every process whose command line holds ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            uid = os.stat(f"/proc/{entry}").st_uid
        except OSError:
            continue
        if token.encode() in cmdline and b"pgrep" not in cmdline:
            found.append(f"{entry} uid={uid} {cmdline.decode(errors='replace').strip()}")
    return found


def wait_until_gone(token: str, seconds: float = 5.0) -> List[str]:
    """The processes holding ``token`` still there after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    left = processes_with(token)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = processes_with(token)
    return left


def kill_all_with(token: str) -> None:
    """Clean up after a failed test: SIGKILL whatever holds ``token``."""
    for line in processes_with(token):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class JobRun:
    """One ``pilotid run`` as the pilot, finished."""

    job: Dict
    workdir: Path
    returncode: int
    result: Optional[Dict]
    stderr: str
    seconds: float
    token: str = ""

    @property
    def outcome(self) -> Optional[str]:
        return self.result["outcome"] if self.result else None

    @property
    def error_code(self) -> Optional[int]:
        return self.result["error_code"] if self.result else None

    def why(self) -> str:
        """Everything useful for an assertion message."""
        return (f"exit status {self.returncode}, result {json.dumps(self.result)}\n"
                f"pilot stderr:\n{self.stderr[-3000:]}\npayload stderr:\n{self.payload_err()}")

    def payload_out(self) -> str:
        return _read(self.result and self.result.get("stdout"))

    def payload_err(self) -> str:
        return _read(self.result and self.result.get("stderr"))

    def report(self, name: str = "attack-report.json") -> Dict:
        """A JSON file the payload left in the work directory."""
        return json.loads((self.workdir / name).read_text())


def _read(path: Optional[str]) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(errors="replace")
    except OSError as error:
        return f"({path}: {error.strerror})"


@dataclass
class Scene:
    """The pilot's files and the transformations; see the module docstring."""

    base: Path
    users: object
    pilot_install: tuple
    queue: Dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        (self.base / "pilot-home").mkdir()
        self.home = own(self.base / "pilot-home", node.PILOT, 0o700)
        self.trf = self.base / "trf"
        self.trf.mkdir()
        self.trf.chmod(0o755)
        self.pilot_proxy = self._private("x509up_pilot", make_proxy(self.users.pilot, bits=1024))
        self.proxies = {
            "alice": self._private("x509up_alice", make_proxy(self.users.alice, bits=1024)),
            "bob": self._private("x509up_bob", make_proxy(self.users.bob, bits=1024)),
            "carol": self._private("x509up_carol", make_proxy(self.users.carol, bits=1024)),
            "eve": self._private("x509up_eve", make_proxy(self.users.eve, bits=1024)),
        }
        self.mapfile = self._public("grid-mapfile", (
            f'"{ALICE_DN}" {node.ALICE}\n"{BOB_DN}" {node.BOB}\n"{CAROL_DN}" {node.CAROL}\n'))
        self.accounting = self._public("accounting.jsonl", "")
        self.pilot_log = self._public("pilot.log", "the pilot's own log\n")
        self.state_dir = self.home / "state"
        self.started = time.time()
        self.count = 0
        #: copies of credentials a test put outside the work directories on purpose
        self.planted_copies: List[Path] = []

    # -- files -------------------------------------------------------------------------

    def _private(self, name: str, data: bytes) -> Path:
        return own(write_private(self.home / name, data), node.PILOT, 0o600)

    def _public(self, name: str, text: str) -> Path:
        path = self.home / name
        path.write_text(text)
        return own(path, node.PILOT, 0o644)

    def transformation(self, name: str, text: str) -> Path:
        """Install a transformation (script ``text``) under ``trf/<name>``, 0755."""
        path = self.trf / name
        path.write_text(text)
        path.chmod(0o755)
        return path

    def install(self, name: str, source: Path) -> Path:
        """Install the file ``source`` as the transformation ``name``."""
        return self.transformation(name, source.read_text())

    def workdir(self, name: Optional[str] = None) -> Path:
        """A new 0700 work directory of the pilot's under its home."""
        self.count += 1
        path = self.home / (name or f"work-{self.count}")
        path.mkdir()
        return own(path, node.PILOT, 0o700)

    def queues(self, **overrides) -> Path:
        """The queue settings file with one queue ``SEC`` (sudo, file source) + overrides."""
        queue = {"switcher": "sudo", "credential_source": "file",
                 "proxy_file": str(self.proxies["alice"]), "grid_mapfile": str(self.mapfile),
                 "transformation_dirs": [str(self.trf)], "accounting_file": str(self.accounting),
                 "grace_period": 2, "standin_transformations": True,
                 # work directories in the home (x for the target there, as before
                 # work_root) and on the scene's own small file systems; the journals in a
                 # state directory of the scene's own
                 "work_root": str(self.base), "state_dir": str(self.state_dir)}
        queue.update(self.queue)
        if "time_limit" in overrides:  # the queue's 'timeout' (run() has a timeout of its own)
            overrides["timeout"] = overrides.pop("time_limit")
        queue.update(overrides)
        queue = {k: v for k, v in queue.items() if v is not None}
        path = self.home / f"queues-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps({"queues": {"SEC": queue}}))
        return own(path, node.PILOT, 0o644)

    # -- running -----------------------------------------------------------------------

    def job(self, **fields) -> Dict:
        """A job description for alice's runAthena, with ``fields`` replacing defaults."""
        job = {"PandaID": 6100000 + self.count, "transformation": "runAthena-00-00-11",
               "jobPars": "", "prodUserID": ALICE_DN, "prodSourceLabel": "user"}
        job.update(fields)
        return job

    def start(self, job: Dict, workdir: Optional[Path] = None, env: Optional[Dict] = None,
              queues: Optional[Path] = None, driver: Optional[Dict] = None,
              open_files: Optional[int] = None, slot: Sequence[str] = (),
              **queue) -> "tuple[subprocess.Popen, Path, Path]":
        """Start ``pilotid run`` for ``job`` as the pilot; (process, workdir, job file).

        With ``driver`` (options for tests/faults/pilot_driver.py: MyProxy timeouts), the
        job runs through that driver instead of the CLI, with the same result.  With
        ``open_files``, the pilot's soft open-file limit is that (``prlimit``).  ``slot``
        is a command the pilot's is started through, as a batch slot would start it
        (``prlimit ... -- nice -n 5``).
        """
        python, site = self.pilot_install
        workdir = workdir or self.workdir()
        job_file = self.home / f"job-{secrets.token_hex(4)}.json"
        job_file.write_text(json.dumps(job))
        own(job_file, node.PILOT, 0o600)
        queues = queues or self.queues(**queue)
        pilot_env = {"PYTHONPATH": site, "X509_USER_PROXY": str(self.pilot_proxy),
                     "BEARER_TOKEN": "pilot-secret-token", "PANDA_AUTH_TOKEN": "pilot-panda",
                     "LD_PRELOAD": "/nonexistent/pilot-preload.so", "TMPDIR": str(self.home)}
        pilot_env.update(env or {})
        argv = [python, "-m", "pilotid", "run", "--queues", str(queues), "--queue", "SEC",
                "--job", str(job_file), "--workdir", str(workdir), "--json"]
        if driver is not None:
            script = self.base / "pilot_driver.py"
            if not script.exists():
                shutil.copy(_DRIVER, script)
                script.chmod(0o644)
            argv = [python, str(script), str(queues), "SEC", str(job_file), str(workdir),
                    json.dumps(driver)]
        if open_files is not None:
            argv = ["prlimit", f"--nofile={open_files}:", "--", *argv]
        argv = [*slot, *argv]
        process = node.popen_as(node.PILOT, argv, env=pilot_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        return process, workdir, job_file

    def finish(self, process: subprocess.Popen, job: Dict, workdir: Path, started: float,
               timeout: float = 120, token: str = "") -> JobRun:
        """Wait for a run started by ``start``; a pilot that hangs is killed and failed."""
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            raise AssertionError(f"pilotid run did not finish within {timeout} s (hung); "
                                 f"stderr:\n{err.decode(errors='replace')[-3000:]}") from None
        try:
            result = json.loads(out)
        except ValueError:
            result = None
        return JobRun(job, workdir, process.returncode, result, err.decode(errors="replace"),
                      time.monotonic() - started, token)

    def run(self, job: Optional[Dict] = None, workdir: Optional[Path] = None,
            env: Optional[Dict] = None, timeout: float = 120, token: str = "",
            driver: Optional[Dict] = None, open_files: Optional[int] = None,
            slot: Sequence[str] = (), **queue) -> JobRun:
        """Run one job as the pilot and wait for it (see ``start``)."""
        job = job or self.job()
        started = time.monotonic()
        process, workdir, _ = self.start(job, workdir, env, driver=driver,
                                         open_files=open_files, slot=slot, **queue)
        return self.finish(process, job, workdir, started, timeout, token)

    # -- the promise ---------------------------------------------------------------------

    def check_aftermath(self, run: JobRun, outputs: Sequence[str] = (),
                        expect_payload_logs: bool = True,
                        workdir_accounting: bool = True) -> None:
        """The checks of issue 6 for every finished job (see the module docstring).

        ``workdir_accounting=False`` where the work directory's file system is full: the
        queue's accounting file must have the record, the work directory's cannot.
        """
        assert run.result is not None, run.why()
        # logs and outputs still there, and readable by the pilot
        paths = [Path(run.workdir) / o for o in outputs]
        if expect_payload_logs:
            paths += [Path(run.result["stdout"]), Path(run.result["stderr"])]
        for path in paths:
            done = node.run_as(node.PILOT, ["/bin/cat", str(path)])
            assert done.returncode == 0, f"the pilot cannot read {path}: {done.stderr!r}"
        # the accounting record, in the work directory and in the queue's file
        files = [Path(run.workdir) / "accounting.jsonl"] if workdir_accounting else []
        for accounting in (*files, self.accounting):
            records = [json.loads(line) for line in accounting.read_text().splitlines()
                       if line.strip()]
            mine = [r for r in records if r["panda_id"] == run.job["PandaID"]]
            assert mine, f"no accounting record for job {run.job['PandaID']} in {accounting}"
            assert mine[-1]["outcome"] == run.outcome
            assert mine[-1]["error_code"] == run.error_code
        # no copy of a credential outside the work directory
        leaks = self.credential_copies_outside(Path(run.workdir))
        assert not leaks, f"credential copies left outside the work directory: {leaks}"
        # no process of the job left
        if run.token:
            left = wait_until_gone(run.token, 3)
            kill_all_with(run.token)
            assert not left, f"processes of the job left behind: {left}"
        # nothing of the payload's account still open to it in the pilot's home
        acl = subprocess.run(["getfacl", "-p", "-n", str(self.home)], capture_output=True,
                             text=True).stdout
        target_uids = {str(node.account(n).uid) for n in (node.ALICE, node.BOB, node.CAROL)}
        assert not [line for line in acl.splitlines()
                    if line.startswith("user:") and line.split(":")[1] in target_uids], acl

    def credential_copies_outside(self, workdir: Path) -> List[str]:
        """Files under /tmp (and the pilot's home, outside ``workdir``) written since the
        scene started that hold a private key or a certificate of the scene's proxies."""
        needles = []
        for proxy in (*self.proxies.values(), self.pilot_proxy):
            lines = proxy.read_text().splitlines()
            needles.append(lines[1].encode())  # the first base64 line of the proxy cert
            key_start = next(i for i, line in enumerate(lines) if "PRIVATE KEY" in line)
            needles.append(lines[key_start + 1].encode())
        sources = {str(p) for p in (*self.proxies.values(), self.pilot_proxy,
                                    *self.planted_copies)}
        found = []
        for top in ("/tmp", str(self.home), "/var/tmp", "/dev/shm"):
            for root, dirs, files in os.walk(top):
                if root.startswith(str(workdir)):
                    dirs[:] = []
                    continue
                dirs[:] = [d for d in dirs if not os.path.join(root, d).startswith(_SKIPPED)]
                for name in files:
                    path = os.path.join(root, name)
                    if path in sources:
                        continue
                    try:
                        info = os.lstat(path)
                        if (not (info.st_mode & 0o170000 == 0o100000)
                                or info.st_mtime < self.started - 1 or info.st_size > 1 << 20):
                            continue
                        data = Path(path).read_bytes()
                    except OSError:
                        continue
                    if any(n in data for n in needles):
                        found.append(path)
        return found

    def cleanup(self) -> None:
        """Remove what the scene made that its shared temporary directory does not hold."""
        shutil.rmtree(self.base, ignore_errors=True)
