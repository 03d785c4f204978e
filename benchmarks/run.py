"""pilotid's benchmarks against the real peers, in one run: prints a table of ratios.

Not part of ``make test``.  Run as root on a node prepared by ``tests/system/setup-node.sh``
(the pilot account ``pilotid-pilot`` may ``sudo -n -u pilotid-alice``)::

    sudo PYTHONPATH=. /opt/pilotid-test/venv/bin/python benchmarks/run.py

Everything pilotid is compared with is timed by the same process, the pilot's
(``benchmarks/pilot_side.py``, started as ``pilotid-pilot``), side by side and alternating
round by round; each figure is the median of ``--rounds`` (at least 15):

switch overhead
    a ``/bin/true`` payload (a ``runAthena`` transformation whose ``#!`` line is
    ``/bin/true``) through the whole launcher: proxy check and copy, probe, wrapper, ACL
    grant, switch, reclaim, accounting, in a fresh work directory each time; against bare
    ``sudo -n -u pilotid-alice /bin/bash -c true``.  The same with the no-op switcher
    against bare ``/bin/bash -c true``.
``pilotid run`` CLI
    ``pilotid run`` as a new process per job (interpreter start-up and imports included),
    as a pilot written in shell runs it (the installed command, ``bin/pilotid``, under the
    benchmark's interpreter), with the sudo and the no-op switcher, against bare
    sudo; the same handed to ``pilotid agent`` (``PILOTID_AGENT``: the client process
    only, the job in a child of the agent); and the import budget: the top-level sum of
    ``python -X importtime`` for the no-op run, against the same bare sudo.  The pilot's
    copy of pilotid is byte-compiled first, as an installed package is.
sandbox grant
    ``grant_target_access`` on a work directory of ``--files`` staged-in files (100 per
    directory; 90% mode 0644, 5% 0755, 5% 0600: mostly already readable) against
    ``setfacl -R -m u:pilotid-alice:rwX`` and ``chmod -R go+rwx`` on the same tree, put
    back between runs (untimed).  ``reclaim`` of each grant is timed too, for information.
isolation
    the same ``/bin/true`` launch through ``noop`` + ``bwrap`` and ``sudo`` + ``bwrap``,
    against the launch without isolation and against bare ``bwrap`` with the isolation's
    own options: what the isolation adds, in units of a bare ``bwrap`` start.
concurrency
    ``--concurrency`` ``pilotid run`` processes started at once through the sudo switcher
    (all must succeed), in-process and through ``pilotid agent``, against as many bare
    ``sudo ... /bin/bash -c true`` at once.
MyProxy GET
    ``benchmarks/myproxy_get.py`` (its own alternating medians), its pilotid and
    myproxy-logon rows.

Targets (issue 6): "pilotid adds at most 1.5x the bare switch"; the grant at most 0.5x
``setfacl -R``.  Issue 16: ``pilotid run`` (no-op and sudo; in a fresh interpreter and
through the agent) at most 8x bare sudo, its imports at most half that budget (4x), and 32
concurrent runs at least 3x the throughput measured before (``BEFORE_THROUGHPUT``).  The
switch target is shown read both ways: the whole launch at most 1.5x the bare switch, and
what the launch adds (pilotid minus bare) at most 1.5x the bare switch.
"""

from __future__ import annotations

import argparse
import compileall
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pilotid.identity.credfile import write_private  # noqa: E402
from pilotid.identity.testca import TestCA, make_proxy  # noqa: E402
from pilotid.payloads.wrapper import bash_loadables  # noqa: E402
from pilotid.queuefile import load_queue  # noqa: E402
from pilotid.strategies.bubblewrap import BubblewrapIsolation  # noqa: E402
from tests.system import node  # noqa: E402

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
#: 32 concurrent ``pilotid run`` (sudo) per second on this machine before the start-up work
#: of issue 16 (docs/performance.md, 2026-12-06); the target is at least 3 times that.
BEFORE_THROUGHPUT = 8.6
SUDO_BARE = ["sudo", "-n", "-u", node.ALICE, "/bin/bash", "-c", "true"]
BASH_BARE = ["/bin/bash", "-c", "true"]
def floor_script(stdin_proxy: bool) -> str:
    """What pilotid's wrapper must do for a /bin/true payload, bare, in one bash: make and
    remove a private egg cache (loading bash's loadable builtins where the node has them,
    as the wrapper does), store a proxy file (sudo's stdin handover only) and run the
    payload as a child."""
    load = "".join(f"enable -f {path} {Path(path).name}; " for path in bash_loadables())
    proxy = ': >"$f"; ' if stdin_proxy else ""
    return (f"{load}d=/tmp/pilotid-floor-$$-$RANDOM; f=/tmp/pilotid-floor-$$-$RANDOM.pem; "
            f'mkdir -m 700 "$d"; {proxy}(exec /bin/true); rm -rf "$d" "$f"')


#: The programs pilotid's design runs for a /bin/true payload, bare (the probe's sudo is
#: made once per pilot, not per job: ``probe_cache_lifetime``).
SUDO_FLOOR = [["sudo", "-n", "-u", node.ALICE, "/bin/bash", "-c", floor_script(True)]]
NOOP_FLOOR = [["/bin/bash", "-c", floor_script(False)]]


class PilotSide:
    """``pilot_side.py`` running as the pilot account, driven one request at a time."""

    def __init__(self, python: str, site: Path, config: dict) -> None:
        script = Path(config["scratch"]).parent / "pilot_side.py"
        shutil.copy(Path(__file__).with_name("pilot_side.py"), script)
        script.chmod(0o644)
        self.process = node.popen_as(
            node.PILOT, [python, str(script), json.dumps(config)],
            env={"PYTHONPATH": str(site)}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, cwd=script.parent)  # not the checkout: `python -m` looks in the cwd first

    def ask(self, **request) -> dict:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the pilot side died; see its stderr above")
        answer = json.loads(line)
        if "exception" in answer:
            raise RuntimeError(f"pilot side, {request['op']}: {answer['exception']}")
        return answer

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def own(path: Path, mode: int) -> None:
    """Give ``path`` to the pilot account with ``mode``."""
    pilot = node.account(node.PILOT)
    os.chown(path, pilot.uid, pilot.gid)
    os.chmod(path, mode)


def prepare(base: Path) -> dict:
    """The pilot's files under ``base``: proxy, grid-mapfile, queues, transformation, job."""
    pilot_dir = base / "pilot"
    pilot_dir.mkdir()
    own(pilot_dir, 0o755)
    ca = TestCA()
    proxy = write_private(pilot_dir / "x509up_alice", make_proxy(ca.issue(ALICE_DN), hours=24))
    own(proxy, 0o600)
    mapfile = pilot_dir / "grid-mapfile"
    mapfile.write_text(f'"{ALICE_DN}" {node.ALICE}\n')
    trf = pilot_dir / "trf"
    trf.mkdir()
    (trf / "runAthena").write_text("#!/bin/true\n")  # the payload: /bin/true
    (trf / "runAthena").chmod(0o755)
    queue = {"credential_source": "file", "proxy_file": str(proxy),
             "grid_mapfile": str(mapfile), "transformation_dirs": [str(trf)]}
    # the grid-mapfile is the sudo switcher's setting: a noop queue refuses it
    noop_queue = {key: value for key, value in queue.items() if key != "grid_mapfile"}
    queues = pilot_dir / "queues.json"
    queues.write_text(json.dumps({"queues": {
        "BENCH_SUDO": dict(queue, switcher="sudo"),
        "BENCH_NOOP": dict(noop_queue, switcher="noop"),
        "BENCH_SUDO_BWRAP": dict(queue, switcher="sudo", isolation="bwrap"),
        "BENCH_NOOP_BWRAP": dict(noop_queue, switcher="noop", isolation="bwrap")}}))
    job = {"PandaID": 6000001, "transformation": "runAthena-00-00-11", "jobPars": "",
           "prodUserID": ALICE_DN, "prodSourceLabel": "user"}
    (pilot_dir / "job.json").write_text(json.dumps(job))
    command = pilot_dir / "pilotid"  # the installed command: bin/pilotid under its interpreter
    shutil.copy(REPO / "bin" / "pilotid", command)
    command.chmod(0o755)
    scratch = pilot_dir / "scratch"
    scratch.mkdir()
    own(scratch, 0o755)
    for path in (mapfile, queues, pilot_dir / "job.json"):
        path.chmod(0o644)
    return {"queues": str(queues), "job": job, "scratch": str(scratch),
            "log": str(pilot_dir / "pilot.log"), "job_file": str(pilot_dir / "job.json"),
            "command": str(command)}


def alternate(rounds: int, runners: Dict[str, Callable[[], float]]) -> Dict[str, float]:
    """Run each runner once per round, in turn; return the median per runner (ms)."""
    for run in runners.values():  # warm-up: imports, page cache, sudo's first lookups
        run()
    times: Dict[str, List[float]] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(run())
    return {name: statistics.median(values) for name, values in times.items()}


def timed_command(side: PilotSide, argv: List[str]) -> Callable[[], float]:
    def run() -> float:
        answer = side.ask(op="command", argv=argv)
        if answer["returncode"] != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {answer['returncode']}: "
                               f"{answer['stderr']}")
        return answer["ms"]
    return run


def timed_commands(side: PilotSide, argvs: List[List[str]]) -> Callable[[], float]:
    def run() -> float:
        answer = side.ask(op="commands", argvs=argvs)
        if answer["returncode"] != 0:
            raise RuntimeError(f"{argvs} failed with status {answer['returncode']}")
        return answer["ms"]
    return run


def timed_launch(side: PilotSide, queue: str) -> Callable[[], float]:
    def run() -> float:
        answer = side.ask(op="launch", queue=queue)
        if answer["outcome"] != "succeeded":
            raise RuntimeError(f"launch on {queue}: {answer['outcome']} "
                               f"(error code {answer['error_code']}): {answer['error']}")
        return answer["ms"]
    return run


class Table:
    """The rows of the result table: (what, pilotid, baseline, ratio, target)."""

    def __init__(self) -> None:
        self.rows: List[tuple] = []

    def add(self, what: str, ours: str, theirs: str, ratio: Optional[float],
            target: Optional[float] = None, at_least: Optional[float] = None) -> None:
        verdict = ""
        if target is not None and ratio is not None:
            verdict = f"<= {target}x: {'met' if ratio <= target else 'NOT met'}"
        if at_least is not None and ratio is not None:
            verdict = f">= {at_least}x: {'met' if ratio >= at_least else 'NOT met'}"
        self.rows.append((what, ours, theirs, "" if ratio is None else f"{ratio:.2f}x",
                          verdict))

    def markdown(self) -> str:
        head = ("| measurement | pilotid | baseline | ratio | target |\n"
                "|---|---|---|---|---|\n")
        return head + "".join("| " + " | ".join(row) + " |\n" for row in self.rows)


def switch_rows(side: PilotSide, python: str, config: dict, rounds: int,
                table: Table) -> None:
    medians = alternate(rounds, {
        "sudo": timed_launch(side, "BENCH_SUDO"),
        "bare-sudo": timed_command(side, SUDO_BARE),
        "noop": timed_launch(side, "BENCH_NOOP"),
        "bare-bash": timed_command(side, BASH_BARE),
        "sudo-floor": timed_commands(side, SUDO_FLOOR),
        "noop-floor": timed_commands(side, NOOP_FLOOR),
    })
    for ours, bare, what in (("sudo", "bare-sudo", "sudo switcher vs bare `sudo -n -u "
                                                    "pilotid-alice /bin/bash -c true`"),
                             ("noop", "bare-bash", "no-op switcher vs bare `/bin/bash -c "
                                                   "true`")):
        added = medians[ours] - medians[bare]
        table.add(f"switch: /bin/true through the launcher, {what}",
                  f"{medians[ours]:.1f} ms", f"{medians[bare]:.1f} ms",
                  medians[ours] / medians[bare], 1.5)
        table.add(f"switch, what pilotid adds: {what}, the difference in units of the bare "
                  "switch", f"+{added:.1f} ms", f"{medians[bare]:.1f} ms",
                  added / medians[bare], 1.5)
    names = [Path(path).name for path in bash_loadables()]
    loads = f"loadable {', '.join(names)}" if names else "mkdir and rm"
    table.add(f"switch: sudo switcher vs the programs its design runs, bare (sudo bash with "
              f"{loads}, the proxy stored, the payload as a child)",
              f"{medians['sudo']:.1f} ms", f"{medians['sudo-floor']:.1f} ms",
              medians["sudo"] / medians["sudo-floor"])
    table.add(f"switch: no-op switcher vs the programs its design runs, bare (bash with "
              f"{loads}, the payload as a child)", f"{medians['noop']:.1f} ms",
              f"{medians['noop-floor']:.1f} ms", medians["noop"] / medians["noop-floor"])


def isolation_rows(side: PilotSide, config: dict, rounds: int, table: Table) -> None:
    """Launches through noop+bwrap and sudo+bwrap against the same launch without isolation
    and against bare bwrap with the isolation's own options (the scratch directory in place
    of the work directory), alternating in one run."""
    isolation = BubblewrapIsolation(load_queue(config["queues"], "BENCH_NOOP_BWRAP"))
    bare = [isolation.program, *isolation.options(Path(config["scratch"])), "--", "/bin/true"]
    medians = alternate(rounds, {
        "noop+bwrap": timed_launch(side, "BENCH_NOOP_BWRAP"),
        "noop": timed_launch(side, "BENCH_NOOP"),
        "bare-bwrap": timed_command(side, bare),
        "sudo+bwrap": timed_launch(side, "BENCH_SUDO_BWRAP"),
        "sudo": timed_launch(side, "BENCH_SUDO"),
    })
    alone = medians["bare-bwrap"]
    for switch in ("noop", "sudo"):
        isolated, plain = medians[f"{switch}+bwrap"], medians[switch]
        table.add(f"isolation: /bin/true through {switch}+bwrap vs through {switch}",
                  f"{isolated:.1f} ms", f"{plain:.1f} ms", isolated / plain)
        table.add(f"isolation, what bwrap adds to a {switch} launch, in units of a bare "
                  "`bwrap` start with the same options", f"+{isolated - plain:.1f} ms",
                  f"{alone:.1f} ms", (isolated - plain) / alone, 1.5)


def start_agent(side: PilotSide, config: dict) -> str:
    """Start ``pilotid agent`` as the pilot (once: later calls reuse it); its socket."""
    socket_path = str(Path(config["scratch"]).parent / "agent" / "socket")
    if not Path(socket_path).exists():
        side.ask(op="agent", socket=socket_path)
    return socket_path


def cli_argv(python: str, config: dict, queue: str, workdir: str) -> List[str]:
    """``pilotid run`` of the benchmark job on ``queue``, as a shell-written pilot runs it:
    the ``pilotid`` command as installed (``bin/pilotid``; not ``python -m``, whose
    ``runpy`` the command does not pay)."""
    return [python, config["command"], "run", "--queues", config["queues"], "--queue", queue,
            "--job", config["job_file"], "--workdir", workdir, "--json"]


def cli_rows(side: PilotSide, python: str, config: dict, rounds: int, table: Table) -> None:
    """``pilotid run`` as a new process per job (interpreter start-up and imports included),
    no-op and sudo, against bare sudo; and the imports' share, against the same bare sudo."""
    workdir = Path(config["scratch"]) / "cli"
    imports: List[float] = []

    through_agent = {"PILOTID_AGENT": start_agent(side, config)}

    def in_fresh_workdir(op: str, argv: List[str],
                         env: Optional[Dict[str, str]] = None) -> Callable[[], float]:
        def run() -> float:
            workdir.mkdir()
            own(workdir, 0o700)
            try:
                answer = side.ask(op=op, argv=argv, env=env or {})
            finally:
                shutil.rmtree(workdir)
            if answer["returncode"] != 0:
                raise RuntimeError(f"pilotid run exited {answer['returncode']}: "
                                   f"{answer['stderr']}")
            if op == "importtime":
                imports.append(answer["import_ms"])
            return answer["ms"]
        return run

    medians = alternate(rounds, {
        "cli-sudo": in_fresh_workdir("command", cli_argv(python, config, "BENCH_SUDO",
                                                         str(workdir))),
        "bare-sudo": timed_command(side, SUDO_BARE),
        "cli-noop": in_fresh_workdir("command", cli_argv(python, config, "BENCH_NOOP",
                                                         str(workdir))),
        "imports": in_fresh_workdir("importtime", [python, "-X", "importtime",
                                                   *cli_argv(python, config, "BENCH_NOOP",
                                                             str(workdir))[1:]]),
        "agent-sudo": in_fresh_workdir("command", cli_argv(python, config, "BENCH_SUDO",
                                                           str(workdir)), through_agent),
        "agent-noop": in_fresh_workdir("command", cli_argv(python, config, "BENCH_NOOP",
                                                           str(workdir)), through_agent),
    })
    bare = medians["bare-sudo"]
    for name, what in (("cli-sudo", "sudo switcher"), ("cli-noop", "no-op switcher")):
        table.add(f"`pilotid run` CLI (new interpreter per job), {what}, vs bare sudo",
                  f"{medians[name]:.1f} ms", f"{bare:.1f} ms", medians[name] / bare, 8)
    for name, what in (("agent-sudo", "sudo switcher"), ("agent-noop", "no-op switcher")):
        table.add(f"`pilotid run` CLI through `pilotid agent` (PILOTID_AGENT), {what}, vs "
                  "bare sudo", f"{medians[name]:.1f} ms", f"{bare:.1f} ms",
                  medians[name] / bare, 8)
    imported = statistics.median(imports[1:])  # not the warm-up round
    table.add("import budget: what `pilotid run` (no-op, file source) imports, interpreter "
              "start-up modules included (`-X importtime`, top-level sum), vs bare sudo",
              f"{imported:.1f} ms", f"{bare:.1f} ms", imported / bare, 4)


def grant_rows(side: PilotSide, base: Path, files: int, rounds: int, table: Table) -> None:
    tree = base / "pilot" / "scratch" / "staged"
    made = side.ask(op="tree", path=str(tree), files=files, per_dir=100)
    reclaims: List[float] = []

    def pilotid() -> float:
        answer = side.ask(op="grant", path=str(tree), account=node.ALICE)
        reclaims.append(answer["reclaim_ms"])
        return answer["ms"]

    def reset_after(run: Callable[[], float]) -> Callable[[], float]:
        def wrapped() -> float:
            try:
                return run()
            finally:
                side.ask(op="reset", path=str(tree))
        return wrapped

    medians = alternate(rounds, {
        "pilotid": reset_after(pilotid),
        "setfacl": reset_after(timed_command(
            side, ["setfacl", "-R", "-m", f"u:{node.ALICE}:rwX", str(tree)])),
        "chmod": reset_after(timed_command(side, ["chmod", "-R", "go+rwx", str(tree)])),
    })
    what = f"grant: work dir of {made['objects'] - 1:,} objects (mostly readable)"
    table.add(f"{what}, pilotid vs `setfacl -R -m u:pilotid-alice:rwX`",
              f"{medians['pilotid']:.0f} ms", f"{medians['setfacl']:.0f} ms",
              medians["pilotid"] / medians["setfacl"], 0.5)
    table.add(f"{what}, pilotid vs `chmod -R go+rwx`", f"{medians['pilotid']:.0f} ms",
              f"{medians['chmod']:.0f} ms", medians["pilotid"] / medians["chmod"])
    reclaimed = statistics.median(reclaims[1:])  # not the warm-up round
    table.add("reclaim of that grant (no target), vs the grant's `setfacl -R -m`",
              f"{reclaimed:.0f} ms", f"{medians['setfacl']:.0f} ms",
              reclaimed / medians["setfacl"], 0.3)
    shutil.rmtree(tree)


def concurrency_rows(side: PilotSide, python: str, config: dict, n: int,
                     rounds: int, table: Table) -> None:
    cli = cli_argv(python, config, "BENCH_SUDO", "{workdir}")
    failures: List[str] = []

    def pilotid() -> float:
        answer = side.ask(op="concurrent", n=n, argv=cli)
        bad = [o for o in answer["outcomes"] if o != "succeeded"]
        if bad:
            failures.extend(bad)
            raise RuntimeError(f"{len(bad)} of {n} concurrent jobs did not succeed: {bad[:3]}")
        return answer["ms"]

    def bare() -> float:
        answer = side.ask(op="concurrent", n=n, argv=SUDO_BARE)
        if any(answer["returncodes"]):
            raise RuntimeError(f"bare sudo failed: {answer['returncodes']}")
        return answer["ms"]

    through_agent = {"PILOTID_AGENT": start_agent(side, config)}

    def agent() -> float:
        answer = side.ask(op="concurrent", n=n, argv=cli, env=through_agent)
        bad = [o for o in answer["outcomes"] if o != "succeeded"]
        if bad:
            raise RuntimeError(f"{len(bad)} of {n} jobs through the agent did not succeed: "
                               f"{bad[:3]}")
        return answer["ms"]

    medians = alternate(rounds, {"pilotid": pilotid, "bare": bare, "agent": agent})
    table.add(f"concurrency: {n} `pilotid run` at once (sudo switcher, {os.cpu_count()} "
              f"cores), all succeeded ({n * (rounds + 1)} jobs); vs {n} bare sudo at once",
              f"{medians['pilotid']:.0f} ms = {n / medians['pilotid'] * 1000:.1f} jobs/s",
              f"{medians['bare']:.0f} ms = {n / medians['bare'] * 1000:.1f} /s",
              medians["pilotid"] / medians["bare"])
    throughput = n / medians["pilotid"] * 1000
    table.add(f"concurrency: {n} `pilotid run` at once, throughput vs before the lazy imports "
              f"({BEFORE_THROUGHPUT} jobs/s, docs/performance.md, 2026-12-06)",
              f"{throughput:.1f} jobs/s", f"{BEFORE_THROUGHPUT} jobs/s",
              throughput / BEFORE_THROUGHPUT, at_least=3)
    through = n / medians["agent"] * 1000
    table.add(f"concurrency: {n} `pilotid run` at once through `pilotid agent` (sudo "
              f"switcher), all succeeded ({n * (rounds + 1)} jobs); vs {n} bare sudo at once",
              f"{medians['agent']:.0f} ms = {through:.1f} jobs/s",
              f"{medians['bare']:.0f} ms = {n / medians['bare'] * 1000:.1f} /s",
              medians["agent"] / medians["bare"])
    table.add(f"concurrency: {n} `pilotid run` at once through `pilotid agent`, throughput "
              f"vs before the lazy imports ({BEFORE_THROUGHPUT} jobs/s)",
              f"{through:.1f} jobs/s", f"{BEFORE_THROUGHPUT} jobs/s",
              through / BEFORE_THROUGHPUT, at_least=3)
    table.add(f"concurrency: {n} `pilotid run` at once, through `pilotid agent` vs a new "
              "interpreter per job (the rows above, same run)", f"{through:.1f} jobs/s",
              f"{throughput:.1f} jobs/s", through / throughput)


def myproxy_rows(rounds: int, table: Table) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "myproxy_get.py"), "--rounds", str(rounds)],
        env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
        timeout=1800)
    if done.returncode != 0:
        table.add("MyProxy GET (benchmarks/myproxy_get.py)", "failed", done.stderr[-200:], None)
        return
    found = dict(re.findall(r"^  (\S+)\s+([0-9.]+) ms$", done.stdout, re.MULTILINE))
    ours, theirs = float(found["pilotid"]), float(found["myproxy-logon"])
    table.add("MyProxy GET, trusted retrieval, fresh 2048-bit key: pilotid vs "
              "`myproxy-logon` (benchmarks/myproxy_get.py)", f"{ours:.1f} ms",
              f"{theirs:.1f} ms", ours / theirs, 0.5)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sudo = subprocess.run(["sudo", "-V"], capture_output=True, text=True).stdout.splitlines()
    return (f"{platform.node()}: {os.cpu_count()} x {cpu}, Linux {platform.release()}, "
            f"Python {platform.python_version()}, {sudo[0] if sudo else 'sudo ?'}, "
            f"{datetime.date.today().isoformat()}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="rounds per figure (>= 15)")
    parser.add_argument("--files", type=int, default=100_000,
                        help="staged-in files for the grant benchmark")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--only", choices=("switch", "isolation", "cli", "grant",
                                           "concurrency", "myproxy"),
                        action="append", help="run only these parts (repeatable)")
    args = parser.parse_args(argv)
    reason = node.missing_prerequisite()
    if reason:
        parser.error(reason)
    rounds = max(15, args.rounds)
    parts = args.only or ["switch", "isolation", "cli", "grant", "concurrency", "myproxy"]
    base = node.make_shared_dir("pilotid-bench-")
    table = Table()
    side = None
    try:
        site = node.install_pilot_copy(base)
        # as an installed package is (pip byte-compiles): the pilot account cannot write
        # __pycache__ into the copy, and would compile every module in every process
        compileall.compile_dir(str(site), quiet=1)
        config = prepare(base)
        python = sys.executable
        side = PilotSide(python, site, config)
        if "switch" in parts:
            switch_rows(side, python, config, rounds, table)
        if "isolation" in parts:
            isolation_rows(side, config, rounds, table)
        if "cli" in parts:
            cli_rows(side, python, config, rounds, table)
        if "grant" in parts:
            grant_rows(side, base, args.files, rounds, table)
        if "concurrency" in parts:
            concurrency_rows(side, python, config, args.concurrency, rounds, table)
        if "myproxy" in parts:
            myproxy_rows(rounds, table)
    finally:
        if side is not None:
            side.close()
        shutil.rmtree(base, ignore_errors=True)
    print(f"pilotid benchmarks, medians of {rounds} alternating rounds")
    print(f"machine: {machine()}")
    print(f"command: {' '.join(['python', 'benchmarks/run.py', *(argv or sys.argv[1:])])}")
    print()
    print(table.markdown(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
