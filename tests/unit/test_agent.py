"""``pilotid agent`` and ``pilotid run`` through it, as real processes (no-op switcher).

The agent runs as whoever runs the tests, from this checkout; the clients are real
``python -m pilotid run`` processes with ``PILOTID_AGENT`` set.  The refusal of another
account needs root and the node's ``pilotid-bob`` (``real_node``).  Waits are bounded
polls for a file or a line, never timings.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pytest

from pilotid.agent import protocol
from pilotid.agent.cgroup import unified_mount
from pilotid.agent.listener import listen, private_directory
from pilotid.errors import AgentSocketError
from pilotid.identity.credfile import write_private
from pilotid.identity.testca import TestCA, make_proxy
from tests.conftest import ALICE_DN
from tests.system import node

REPO = Path(__file__).resolve().parents[2]
#: The payload: says it started (with AGENT_MARK, which the queue passes), then sleeps
#: for its first argument (jobPars), then exits with its second.
PAYLOAD = """#!/bin/sh
echo "started mark=$AGENT_MARK"
sleep "${1:-0}"
exit "${2:-0}"
"""


def wait_for(what: str, ready: Callable[[], bool], seconds: float = 60) -> None:
    """Poll ``ready`` until it is true; fail after ``seconds`` (a hang, not a timing)."""
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting for {what} after {seconds} s")
        time.sleep(0.05)


class Pilot:
    """A pilot's files on a no-op queue, and ``pilotid run`` started through an agent."""

    def __init__(self, base: Path) -> None:
        self.base = base
        ca = TestCA(bits=1024)
        proxy = write_private(base / "x509up",
                              make_proxy(ca.issue(ALICE_DN, bits=1024), bits=1024))
        trf = base / "trf"
        trf.mkdir()
        (trf / "runAthena").write_text(PAYLOAD)
        (trf / "runAthena").chmod(0o755)
        (base / "queues.json").write_text(json.dumps({"queues": {"Q": {
            "switcher": "noop", "credential_source": "file", "proxy_file": str(proxy),
            "transformation_dirs": [str(trf)], "syslog_address": None,
            "env_pass": ["AGENT_MARK"], "grace_period": 2}}}))
        self.count = 0

    def job(self, job_pars: str = "") -> "tuple[Path, Path]":
        """(job file, fresh work directory) for a job with ``job_pars``."""
        self.count += 1
        job = self.base / f"job-{self.count}.json"
        job.write_text(json.dumps({"PandaID": 100 + self.count,
                                   "transformation": "runAthena-00-00-11",
                                   "jobPars": job_pars, "prodUserID": ALICE_DN}))
        workdir = self.base / f"work-{self.count}"
        workdir.mkdir(mode=0o700)
        return job, workdir

    def start(self, agent: Optional[Path], argv: List[str],
              preexec: Optional[Callable[[], None]] = None, **env: str) -> subprocess.Popen:
        """``python -m pilotid ARGV`` in the pilot's directory (relative paths: the client's
        working directory must reach the job), ``preexec`` run in it before."""
        environ = dict(os.environ, PYTHONPATH=str(REPO), **env)
        environ.pop("PILOTID_AGENT", None)
        if agent is not None:
            environ["PILOTID_AGENT"] = str(agent)
        return subprocess.Popen([sys.executable, "-m", "pilotid", *argv], cwd=self.base,
                                env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, preexec_fn=preexec)

    def run_argv(self, job: Path, workdir: Path) -> List[str]:
        return ["run", "--queues", "queues.json", "--queue", "Q", "--job", job.name,
                "--workdir", workdir.name, "--json"]


def start_agent(python: str, socket_path: Path, log: Path, env: Dict[str, str],
                account: Optional[str] = None) -> subprocess.Popen:
    """``pilotid agent --socket socket_path`` (as ``account`` where given), its output in
    ``log``, once it listens."""
    argv = [python, "-m", "pilotid", "agent", "--socket", str(socket_path)]
    with open(log, "w") as out:
        if account is None:
            process = subprocess.Popen(argv, env=dict(os.environ, **env), stdout=out,
                                       stderr=out, cwd="/")
        else:
            process = node.popen_as(account, argv, env=env, stdout=out, stderr=out, cwd="/")
    wait_for("the agent's socket", lambda: socket_path.exists() or process.poll() is not None)
    assert process.poll() is None, log.read_text()
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture
def pilot(tmp_path) -> Pilot:
    return Pilot(tmp_path)


@pytest.fixture
def agent(tmp_path):
    """A running agent of this account's: (socket path, log path)."""
    socket_path = tmp_path / "agent" / "socket"
    log = tmp_path / "agent.log"
    process = start_agent(sys.executable, socket_path, log, {"PYTHONPATH": str(REPO)})
    yield socket_path, log
    stop(process)
    assert process.returncode == 0, log.read_text()


def test_run_through_the_agent_answers_on_the_clients_own_stdout(pilot, agent):
    """The result reaches the client's stdout (its descriptor passed), relative paths
    resolve in the client's working directory, and the client's environment reaches the
    job (the queue passes AGENT_MARK to the payload)."""
    job, workdir = pilot.job()
    client = pilot.start(agent[0], pilot.run_argv(job, workdir), AGENT_MARK="from-client")
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    result = json.loads(out)
    assert result["outcome"] == "succeeded"
    assert Path(result["workdir"]) == workdir
    assert "started mark=from-client" in Path(result["stdout"]).read_text()
    assert "job 101: succeeded" in err  # the job's log lines on the client's stderr


def test_client_exits_with_the_jobs_pilot_error_code(pilot, agent):
    job, workdir = pilot.job("0 3")  # the payload exits 3: payload_failed
    client = pilot.start(agent[0], pilot.run_argv(job, workdir))
    out, err = client.communicate(timeout=120)
    assert client.returncode == 70, err
    assert json.loads(out)["outcome"] == "payload_failed"


def test_a_usage_error_is_the_command_lines_own(pilot, agent):
    client = pilot.start(agent[0], ["run", "--no-such-option"])
    out, err = client.communicate(timeout=120)
    assert client.returncode == 2
    assert "usage: pilotid run" in err


def _started(path: Path) -> Callable[[], bool]:
    def ready() -> bool:
        logs = list(path.glob("pilotid-*.stdout"))
        return bool(logs) and "started" in logs[0].read_text()
    return ready


def test_sigterm_to_the_client_reaches_the_job(pilot, agent):
    """The client forwards SIGTERM to the agent's child: the job stops its payload as an
    in-process run does (interrupted, 73) and the client exits with that code."""
    job, workdir = pilot.job("600")
    client = pilot.start(agent[0], pilot.run_argv(job, workdir))
    wait_for("the payload to start", _started(workdir))
    client.send_signal(signal.SIGTERM)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 73, err
    result = json.loads(out)
    assert (result["outcome"], result["signal"]) == ("interrupted", signal.SIGTERM)


def test_a_killed_client_ends_its_job_with_result_and_accounting(pilot, agent):
    """SIGKILL to the client (nothing forwarded): the child sees the connection close and
    ends the job as on SIGTERM; the accounting record says so, and the payload is gone."""
    job, workdir = pilot.job("600")
    client = pilot.start(agent[0], pilot.run_argv(job, workdir))
    wait_for("the payload to start", _started(workdir))
    client.kill()
    client.communicate(timeout=30)
    accounting = workdir / "accounting.jsonl"
    wait_for("the job's accounting record", accounting.exists)
    record = json.loads(accounting.read_text().splitlines()[-1])
    assert (record["outcome"], record["error_code"]) == ("interrupted", 73)
    wait_for("the payload to be gone", lambda: not [
        pid for pid in os.listdir("/proc") if pid.isdigit()
        and _cmdline(pid) == ["/bin/sh", str(pilot.base / "trf" / "runAthena"), "600"]])


def _cmdline(pid: str) -> List[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def test_jobs_running_when_the_agent_stops_finish_and_answer(pilot, agent):
    job, workdir = pilot.job("1")
    client = pilot.start(agent[0], pilot.run_argv(job, workdir))
    wait_for("the payload to start", _started(workdir))
    os.kill(int(_agent_pid(agent[1])), signal.SIGTERM)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    assert json.loads(out)["outcome"] == "succeeded"
    wait_for("the socket to be removed", lambda: not agent[0].exists())


def _agent_pid(log: Path) -> str:
    return log.read_text().split("agent ", 1)[1].split()[0]


def test_an_unreachable_agent_is_an_error_of_its_own_not_an_in_process_run(pilot, tmp_path):
    job, workdir = pilot.job()
    client = pilot.start(tmp_path / "nothing-listens", pilot.run_argv(job, workdir))
    out, err = client.communicate(timeout=120)
    assert client.returncode == 78
    assert out == ""
    assert err.startswith("pilotid: error 78 (pilot): cannot hand the job to the pilotid agent")
    assert list(workdir.iterdir()) == []


def test_an_empty_pilotid_agent_runs_in_process(pilot):
    job, workdir = pilot.job()
    client = pilot.start(None, pilot.run_argv(job, workdir), PILOTID_AGENT="")
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err


# -- what the client's process hands over besides its files --------------------------

#: The payload for the limits tests: its limits as the kernel shows them, and its nice value.
LIMITS_PAYLOAD = """#!/bin/sh
cat /proc/self/limits
echo "nice=$(nice)"
"""
#: Lower than any agent's limits here (the test's own): the client starts with these.
CLIENT_LIMITS = {resource.RLIMIT_NOFILE: (200, 300), resource.RLIMIT_CPU: (3000, 3600),
                 resource.RLIMIT_FSIZE: (1 << 30, 2 << 30), resource.RLIMIT_AS: (8 << 30, 12 << 30)}
#: How /proc/<pid>/limits names them.
LIMIT_NAMES = {resource.RLIMIT_NOFILE: "Max open files", resource.RLIMIT_CPU: "Max cpu time",
               resource.RLIMIT_FSIZE: "Max file size", resource.RLIMIT_AS: "Max address space"}


def _with_client_limits(nice: int) -> Callable[[], None]:
    def preexec() -> None:
        for limit, values in CLIENT_LIMITS.items():
            resource.setrlimit(limit, values)
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return preexec


def _payload_limits(text: str) -> Dict[str, "tuple[str, str]"]:
    found = {}
    for line in text.splitlines():
        for name in LIMIT_NAMES.values():
            if line.startswith(name):
                soft, hard = line[len(name):].split()[:2]
                found[name] = (soft, hard)
    return found


def test_the_payload_has_the_clients_resource_limits_and_nice_value(pilot, agent):
    """A client started with lower limits (soft and hard) and a higher nice value than the
    agent's: its job's payload runs with the client's, as it would in-process."""
    for limit, (_, hard) in CLIENT_LIMITS.items():
        own = resource.getrlimit(limit)[1]
        assert own == resource.RLIM_INFINITY or own > hard, "the agent's own is lower already"
    nice = min(os.getpriority(os.PRIO_PROCESS, 0) + 5, 19)
    (pilot.base / "trf" / "runAthena").write_text(LIMITS_PAYLOAD)
    job, workdir = pilot.job()
    client = pilot.start(agent[0], pilot.run_argv(job, workdir), _with_client_limits(nice))
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    shown = Path(json.loads(out)["stdout"]).read_text()
    assert _payload_limits(shown) == {
        LIMIT_NAMES[limit]: (str(soft), str(hard))
        for limit, (soft, hard) in CLIENT_LIMITS.items()}, shown
    assert f"nice={nice}" in shown


@pytest.fixture
def client_cgroup(real_node):
    """A fresh cgroup v2 group (``node.fresh_cgroup``): its name and ``cgroup.procs``."""
    mount = unified_mount()
    if mount is None:
        pytest.skip("no cgroup v2 hierarchy on this node")
    with node.fresh_cgroup(mount) as group:
        yield group


def test_the_job_joins_the_clients_control_group(pilot, agent, client_cgroup):
    """A client in a control group of its own (a batch slot's): the agent's child moves
    there (root may), so the payload is in it too."""
    name, procs = client_cgroup

    def join() -> None:
        procs.write_text(str(os.getpid()))

    (pilot.base / "trf" / "runAthena").write_text("#!/bin/sh\ngrep '^0::' /proc/self/cgroup\n")
    job, workdir = pilot.job()
    client = pilot.start(agent[0], pilot.run_argv(job, workdir), join)
    out, err = client.communicate(timeout=120)
    assert client.returncode == 0, err
    assert Path(json.loads(out)["stdout"]).read_text() == f"0::{name}\n"
    assert "control group" not in err


def test_a_client_of_protocol_version_1_is_told_to_restart_the_agent(agent, tmp_path):
    """What a client from before the limits were handed over sends (its argument count
    first): the agent's child answers 78 and says why on the client's own stderr."""
    body = b"\0".join([b"1", b"run", str(tmp_path).encode(), b"22", b"A=1"])
    read_end, write_end = os.pipe()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(agent[0]))
        protocol.send_request(sock, protocol.LENGTH.pack(len(body)) + body,
                              [0, write_end, write_end])
        os.close(write_end)
        assert list(protocol.answers(sock)) == [(protocol.STATUS, 78)]
        said = os.read(read_end, 4096).decode()
    finally:
        sock.close()
        os.close(read_end)
    assert said.startswith("pilotid: error 78 (pilot): the client speaks version 1"), said
    assert "restart the agent" in said


# -- the socket and who may connect ---------------------------------------------------


def test_socket_directory_is_made_0700_and_the_socket_0600(agent):
    socket_path, _ = agent
    assert os.stat(socket_path.parent).st_mode & 0o777 == 0o700
    assert os.stat(socket_path).st_mode & 0o777 == 0o600


@pytest.mark.parametrize("mode", [0o750, 0o705, 0o701])
def test_an_existing_directory_open_to_others_is_refused(tmp_path, mode):
    directory = tmp_path / "open"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(AgentSocketError, match="open to others"):
        listen(directory / "socket")
    assert not (directory / "socket").exists()


def test_a_symbolic_link_for_the_directory_is_refused(tmp_path):
    (tmp_path / "real").mkdir(mode=0o700)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(AgentSocketError, match="not a directory"):
        listen(tmp_path / "link" / "socket")


def test_a_directory_of_another_account_is_refused(real_node, tmp_path):
    directory = tmp_path / "bobs"
    directory.mkdir(mode=0o700)
    os.chown(directory, node.account(node.BOB).uid, node.account(node.BOB).gid)
    with pytest.raises(AgentSocketError, match="belongs to uid"):
        private_directory(directory)


def test_a_second_agent_on_a_live_socket_is_refused_and_a_stale_one_replaced(tmp_path):
    path = tmp_path / "agent" / "socket"
    first = listen(path)
    try:
        with pytest.raises(AgentSocketError, match="already listens"):
            listen(path)
    finally:
        first.close()
    listen(path).close()  # the dead agent's socket is replaced


def test_the_agent_command_refuses_an_unsafe_directory_with_its_code(tmp_path):
    (tmp_path / "open").mkdir(mode=0o755)
    (tmp_path / "open").chmod(0o755)
    done = subprocess.run([sys.executable, "-m", "pilotid", "agent", "--socket",
                           str(tmp_path / "open" / "socket")], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=120)
    assert done.returncode == 18, done.stderr
    assert "pilotid: error 18 (operator)" in done.stderr


def test_another_account_cannot_reach_the_socket(real_node, pilot_install, shared_tmp):
    """pilotid-bob against a root agent: the 0700 directory stops him at connect."""
    python, site = pilot_install
    socket_path = shared_tmp / "agent" / "socket"
    process = start_agent(python, socket_path, shared_tmp / "agent.log", {"PYTHONPATH": site})
    try:
        done = node.run_as(node.BOB, [python, "-m", "pilotid", "run", "--queues", "q"],
                           env={"PYTHONPATH": site, "PILOTID_AGENT": str(socket_path)},
                           cwd=shared_tmp, text=True)
        assert done.returncode == 78, done.stderr
        assert "Permission denied" in done.stderr
    finally:
        stop(process)


def test_another_uid_that_reaches_the_socket_is_refused_and_logged(real_node, pilot_install,
                                                                   shared_tmp):
    """With the directory and socket opened up behind the agent's back, pilotid-bob
    connects, and the agent refuses him by his uid (SO_PEERCRED) and logs it; nothing
    runs for him."""
    python, site = pilot_install
    socket_path = shared_tmp / "agent" / "socket"
    log = shared_tmp / "agent.log"
    process = start_agent(python, socket_path, log, {"PYTHONPATH": site})
    try:
        socket_path.parent.chmod(0o711)
        socket_path.chmod(0o666)
        done = node.run_as(node.BOB, [python, "-m", "pilotid", "run", "--help"],
                           env={"PYTHONPATH": site, "PILOTID_AGENT": str(socket_path)},
                           cwd=shared_tmp, text=True)
        assert done.returncode == 78, done.stderr
        assert "closed the connection without taking the job" in done.stderr
        assert done.stdout == ""  # not even the help: nothing ran for him
        bob = node.account(node.BOB).uid
        wait_for("the refusal in the agent's log",
                 lambda: "refused a connection from pid" in log.read_text())
        assert f"of uid {bob}: only uid {os.geteuid()} may hand it jobs" in log.read_text()
    finally:
        stop(process)
