"""The pilot's half of ``benchmarks/run.py``: runs AS THE PILOT ACCOUNT, times on request.

Not a benchmark by itself.  ``run.py`` (root) starts it with ``setpriv`` as the pilot and
sends one JSON request per line on standard input; each answer is one JSON line on standard
output.  Everything that is compared is timed here, in the same process, with the same
clock, so that pilotid and the bare commands it is compared with pay the same costs:

``{"op": "launch", "queue": Q}``
    one ``PayloadLauncher.run`` of the benchmark job on queue ``Q`` (launcher built once per
    queue, as a pilot does) in a fresh work directory; answers ``ms``, ``outcome``,
    ``error_code``.
``{"op": "command", "argv": [...], "env": {...}}``
    one ``subprocess.run(argv)`` (``env``, optional: added to the environment); answers
    ``ms`` and ``returncode``.
``{"op": "importtime", "argv": [...]}``
    one ``subprocess.run(argv)`` of a Python started with ``-X importtime``; answers ``ms``,
    ``returncode`` and ``import_ms``: the sum of the top-level imports it reported (each
    counted with what it imported), the interpreter's own start-up modules included.
``{"op": "commands", "argvs": [[...], ...]}``
    the same for several commands in turn, timed together.
``{"op": "tree", "path": P, "files": N, "per_dir": M}``
    make the staged-in tree for the grant benchmark (untimed).
``{"op": "grant", "path": P, "account": A}``
    ``grant_target_access`` timed, then ``reclaim`` timed apart; answers ``ms`` (the grant),
    ``reclaim_ms`` and ``changes``.
``{"op": "reset", "path": P}``
    put the tree back as ``tree`` made it: no ACLs, the original modes (untimed).
``{"op": "concurrent", "n": N, "argv": [...], "env": {...}}``
    start ``N`` copies of ``argv`` at once (``{workdir}`` replaced by a fresh directory for
    each; ``env`` as for ``command``) and wait for all; answers ``ms`` (all done) and every
    ``returncode``.
``{"op": "agent", "socket": PATH}``
    start ``pilotid agent --socket PATH`` (as the pilot, like everything here) and answer
    once it listens (``pid``); it is stopped when the requests end.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pilotid.factory import build_launcher
from pilotid.identity.accounts import Account
from pilotid.payloads.job import JobSpec
from pilotid.queuefile import load_queue
from pilotid.workdir import grant_target_access, reclaim

FILE_MODES = (0o644,) * 18 + (0o600, 0o755)  # 90% readable, 5% private, 5% executable


class PilotSide:
    """The state of the pilot half: launchers by queue, the original modes of the tree."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.scratch = Path(config["scratch"])
        self.job = JobSpec.from_description(config["job"])
        self.launchers: dict = {}
        self.modes: dict = {}
        self.agents: list = []

    def launch(self, request: dict) -> dict:
        queue = request["queue"]
        if queue not in self.launchers:
            self.launchers[queue] = build_launcher(load_queue(self.config["queues"], queue))
        workdir = Path(tempfile.mkdtemp(prefix="job-", dir=self.scratch))
        start = time.perf_counter()
        result = self.launchers[queue].run(self.job, workdir)
        elapsed = (time.perf_counter() - start) * 1000
        shutil.rmtree(workdir, ignore_errors=True)
        return {"ms": elapsed, "outcome": result.outcome, "error_code": result.error_code,
                "error": result.error}

    @staticmethod
    def command(request: dict) -> dict:
        env = dict(os.environ, **request.get("env", {}))
        start = time.perf_counter()
        done = subprocess.run(request["argv"], stdin=subprocess.DEVNULL, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = (time.perf_counter() - start) * 1000
        return {"ms": elapsed, "returncode": done.returncode,
                "stderr": done.stderr.decode(errors="replace")[-500:]}

    @staticmethod
    def importtime(request: dict) -> dict:
        start = time.perf_counter()
        done = subprocess.run(request["argv"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        elapsed = (time.perf_counter() - start) * 1000
        total = 0
        for line in done.stderr.decode(errors="replace").splitlines():
            # "import time: <self us> | <cumulative us> | <indent><module>": indented
            # modules are inside their importer's cumulative figure already
            parts = line.split("|")
            if (len(parts) == 3 and parts[0].startswith("import time:")
                    and parts[1].strip().isdigit() and not parts[2].startswith("  ")):
                total += int(parts[1])
        return {"ms": elapsed, "returncode": done.returncode, "import_ms": total / 1000,
                "stderr": done.stderr.decode(errors="replace")[-500:]}

    @staticmethod
    def commands(request: dict) -> dict:
        """Run each argv of ``request["argvs"]`` in turn; the time of the whole sequence."""
        start = time.perf_counter()
        codes = [subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL).returncode
                 for argv in request["argvs"]]
        elapsed = (time.perf_counter() - start) * 1000
        return {"ms": elapsed, "returncode": max(codes), "stderr": ""}

    def tree(self, request: dict) -> dict:
        top = Path(request["path"])
        top.mkdir(mode=0o700)
        os.chmod(top, 0o700)
        modes = self.modes.setdefault(str(top), {".": 0o700})
        per_dir = request["per_dir"]
        for index in range(request["files"]):
            directory = f"d{index // per_dir:04d}"
            if index % per_dir == 0:
                (top / directory).mkdir()
                os.chmod(top / directory, 0o755)  # noqa: S103 - staged-in dirs as sites make them
                modes[directory] = 0o755
            name = f"{directory}/f{index:06d}.root"
            mode = FILE_MODES[index % len(FILE_MODES)]
            fd = os.open(top / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
            os.write(fd, b"x")
            os.close(fd)
            os.chmod(top / name, mode)
            modes[name] = mode
        return {"objects": len(modes)}

    def reset(self, request: dict) -> dict:
        top = Path(request["path"])
        subprocess.run(["setfacl", "-R", "-b", str(top)], check=True)
        for name, mode in self.modes[str(top)].items():
            os.chmod(top / name, mode)
        return {}

    @staticmethod
    def grant(request: dict) -> dict:
        account = Account.by_name(request["account"])
        start = time.perf_counter()
        grant = grant_target_access(Path(request["path"]), account, "acl")
        elapsed = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        reclaim(grant)
        reclaimed = (time.perf_counter() - start) * 1000
        return {"ms": elapsed, "reclaim_ms": reclaimed, "changes": len(grant.changes),
                "mode": grant.mode}

    def concurrent(self, request: dict) -> dict:
        argvs = []
        workdirs = []
        for _ in range(request["n"]):
            workdir = tempfile.mkdtemp(prefix="cjob-", dir=self.scratch)
            workdirs.append(workdir)
            argvs.append([a.replace("{workdir}", workdir) for a in request["argv"]])
        env = dict(os.environ, **request.get("env", {}))
        start = time.perf_counter()
        processes = [subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=env) for argv in argvs]
        outputs = [p.communicate()[0] for p in processes]
        elapsed = (time.perf_counter() - start) * 1000
        outcomes = []
        for output in outputs:
            try:
                outcomes.append(json.loads(output)["outcome"])
            except (ValueError, KeyError):
                outcomes.append(output.decode(errors="replace")[-200:])
        for workdir in workdirs:
            shutil.rmtree(workdir, ignore_errors=True)
        return {"ms": elapsed, "returncodes": [p.returncode for p in processes],
                "outcomes": outcomes}


    def agent(self, request: dict) -> dict:
        socket_path = Path(request["socket"])
        agent = subprocess.Popen([sys.executable, "-m", "pilotid", "agent", "--socket",
                                  str(socket_path)], stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.agents.append(agent)
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"pilotid agent did not start: {agent.stderr.read()!r}")
            time.sleep(0.05)
        return {"pid": agent.pid}

    def close(self) -> None:
        for agent in self.agents:
            agent.terminate()
            agent.wait(timeout=60)


def main() -> int:
    config = json.loads(sys.argv[1])
    logging.basicConfig(filename=config["log"], level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    side = PilotSide(config)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = getattr(side, request["op"])(request)
        except Exception as error:  # report it to run.py, which stops the benchmark
            answer = {"exception": f"{type(error).__name__}: {error}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    side.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
