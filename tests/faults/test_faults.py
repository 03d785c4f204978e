"""Fault injection: every row of docs/faults.rst, provoked for real, one test each.

Whole jobs through ``pilotid run`` as the unprivileged pilot (tests/security/scene.py);
the credential server rows go through tests/faults/pilot_driver.py (the same run, with a
MyProxy client of short timeouts) against a scripted TLS server
(tests/unit/fake_myproxy.py).  Every test checks the outcome and the pilot error code,
then ``Scene.check_aftermath``: the payload's logs and outputs are still there and
readable by the pilot, no copy of a credential is left outside the work directory, no
process of the job is left, and the accounting record was written.
"""

from __future__ import annotations

import datetime
import json
import os
import pwd
import re
import secrets
import shlex
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from pilotid.identity.credfile import write_private
from pilotid.identity.myproxy import ClientCredential, encode_chain
from pilotid.identity.testca import make_proxy
from tests.faults.fault_plugin import EXPLAIN_BUG, LAUNCH_BUG, install_fault_plugin
from tests.security.scene import JobRun, kill_all_with, own
from tests.system import node
from tests.unit.fake_myproxy import (
    FakeMyProxyServer,
    SilentListener,
    error_handler,
    signing_handler,
    truncating_handler,
)

GLEXEC = "/opt/pilotid-test/glexec/sbin/glexec"
GLEXEC_BROKEN = "/opt/pilotid-test/glexec/broken/sbin/glexec"
FAST_MYPROXY = {"connect_timeout": 2, "read_timeout": 2, "retries": 0}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "faults.rst"


def token() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def expect(run: JobRun, outcome: str, code: int, exit_code=None, signum=None) -> None:
    assert run.result is not None, run.why()
    assert (run.outcome, run.error_code) == (outcome, code), run.why()
    if exit_code is not None:
        assert run.result["exit_code"] == exit_code, run.why()
    if signum is not None:
        assert run.result["signal"] == signum, run.why()
    assert run.returncode == min(code, 255), run.why()


def payload(scene, body: str) -> None:
    """The runAthena transformation: a bash script; ``$1`` is the job's token."""
    scene.transformation("runAthena", "#!/bin/bash\nT=$1\n" + body + "\n")


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


# -- credential server ------------------------------------------------------------------

@pytest.fixture
def myproxy(scene, users):
    """A scripted MyProxy server for the scene: ``myproxy.serve(handler)`` -> queue fields."""

    class Lab:
        trust = users.ca.write_trust_dir(scene.base / "certificates")
        alice = ClientCredential.from_pem(
            users.alice.certificate.public_bytes(_PEM) + _key_pem(users.alice.key))
        servers: list = []

        pilot_proxy = own(write_private(scene.home / "x509up_pilot_2048",
                                        make_proxy(users.pilot)), node.PILOT, 0o600)

        def serve(self, handler, host_dn="/CN=localhost", name="localhost") -> dict:
            host = users.ca.issue(host_dn, server_name=name)
            server = FakeMyProxyServer(host, handler)
            self.servers.append(server)
            return self.queue(server.port)

        def queue(self, port: int) -> dict:
            return {"credential_source": "myproxy", "proxy_file": None,
                    "myproxy_server": "localhost", "myproxy_port": port}

        def env(self) -> dict:
            # OpenSSL's security level refuses 1024-bit keys for TLS: the scene's are
            return {"X509_CERT_DIR": str(self.trust), "X509_USER_PROXY": str(self.pilot_proxy),
                    "PILOTID_CREDENTIAL_CACHE": str(scene.home / f"cache-{token()}")}

    for path in [Lab.trust, *Lab.trust.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    lab = Lab()
    yield lab
    for server in lab.servers:
        server.close()


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


_PEM = serialization.Encoding.PEM


def myproxy_job(scene, lab, queue: dict, **driver) -> JobRun:
    payload(scene, "echo ran")
    return scene.run(scene.job(credname="pilotcred"), env=lab.env(),
                     driver=dict(FAST_MYPROXY, **driver), **queue)


def test_credential_server_down(scene, myproxy):
    with _closed_port() as port:
        run = myproxy_job(scene, myproxy, myproxy.queue(port))
    expect(run, "credential_failed", 35)
    scene.check_aftermath(run, expect_payload_logs=False)


class _closed_port:
    """A loopback port nothing listens on."""

    def __enter__(self) -> int:
        import socket
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        return self.port

    def __exit__(self, *exc) -> None:
        return None


def test_credential_server_never_answering(scene, myproxy):
    silent = SilentListener()
    try:
        run = myproxy_job(scene, myproxy, myproxy.queue(silent.port))
    finally:
        silent.close()
    expect(run, "credential_failed", 35)
    assert run.seconds < 30
    scene.check_aftermath(run, expect_payload_logs=False)


def test_credential_server_refusing(scene, myproxy):
    run = myproxy_job(scene, myproxy, myproxy.serve(error_handler("authentication failed")))
    expect(run, "credential_failed", 36)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_credential_server_unknown_credential(scene, myproxy):
    run = myproxy_job(scene, myproxy, myproxy.serve(error_handler(
        'No credentials exist with username "alice" and credential name "pilotcred".')))
    expect(run, "credential_failed", 36)
    assert "No credentials exist" in run.result["error"]
    scene.check_aftermath(run, expect_payload_logs=False)


def _expired_handler(signer: ClientCredential):
    """A GET that hands out a proxy which expired an hour ago."""

    def handle(session) -> None:
        session.reply(0)
        csr = x509.load_der_x509_csr(session.recv_der())
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([*signer.certificate.subject,
                             x509.NameAttribute(NameOID.COMMON_NAME, "proxy")])
        proxy = (x509.CertificateBuilder().subject_name(subject)
                 .issuer_name(signer.certificate.subject).public_key(csr.public_key())
                 .serial_number(x509.random_serial_number())
                 .not_valid_before(now - datetime.timedelta(hours=3))
                 .not_valid_after(now - datetime.timedelta(hours=1))
                 .sign(signer.key, hashes.SHA256()))
        session.send(encode_chain([proxy, signer.certificate]))
        session.reply(0)

    return handle


def test_credential_server_returning_an_expired_proxy(scene, myproxy):
    run = myproxy_job(scene, myproxy, myproxy.serve(_expired_handler(myproxy.alice)))
    expect(run, "credential_failed", 32)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_credential_server_dropping_the_connection_mid_reply(scene, myproxy):
    run = myproxy_job(scene, myproxy, myproxy.serve(truncating_handler(myproxy.alice)))
    expect(run, "credential_failed", 35)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_credential_server_with_a_wrong_certificate(scene, myproxy):
    queue = myproxy.serve(signing_handler(myproxy.alice), host_dn="/CN=impostor.example",
                          name="impostor.example")
    run = myproxy_job(scene, myproxy, queue)
    expect(run, "credential_failed", 35)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_credential_server_answering_runs_the_job(scene, myproxy):
    """The control row: the same scripted server, signing, and the job runs."""
    run = myproxy_job(scene, myproxy, myproxy.serve(signing_handler(myproxy.alice)))
    expect(run, "succeeded", 0, exit_code=0)
    scene.check_aftermath(run)


# -- the switch ---------------------------------------------------------------------------

def glexec_queue(path: str) -> dict:
    return {"switcher": "glexec", "glexec_path": path, "grid_mapfile": None}


def test_switch_binary_missing(scene):
    payload(scene, "echo ran")
    run = scene.run(**glexec_queue(str(scene.home / "no-such-glexec")))
    expect(run, "switch_failed", 51)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_switch_binary_not_executable(scene):
    payload(scene, "echo ran")
    fake = scene.home / "glexec"
    fake.write_text("#!/bin/sh\nexit 0\n")
    own(fake, node.PILOT, 0o644)
    run = scene.run(**glexec_queue(str(fake)))
    expect(run, "switch_failed", 51)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_switch_glexec_client_error_201(scene):
    """PanDA's ``glexec: test``: gLExec authorises the pilot's own proxy, which the site
    left group-readable; the stand-in refuses it as gLExec does."""
    payload(scene, "echo ran")
    scene.pilot_proxy.chmod(0o640)
    run = scene.run(**dict(glexec_queue(GLEXEC), switcher=None, glexec="test"))
    expect(run, "switch_failed", 53)
    assert "201" in run.result["error"] and "mode 0640" in run.result["error"], run.why()
    scene.check_aftermath(run, expect_payload_logs=False)


def test_switch_glexec_system_error_202(scene):
    payload(scene, "echo ran")
    run = scene.run(**glexec_queue(GLEXEC_BROKEN))
    expect(run, "switch_failed", 54)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_switch_glexec_authorisation_error_203(scene):
    payload(scene, "echo ran")
    run = scene.run(scene.job(prodUserID=scene.users.eve.dn),
                    proxy_file=str(scene.proxies["eve"]), **glexec_queue(GLEXEC))
    expect(run, "switch_failed", 52)
    scene.check_aftermath(run, expect_payload_logs=False)


def test_switch_glexec_payload_overlap_204(scene):
    payload(scene, "exit 203")
    run = scene.run(**glexec_queue(GLEXEC))
    expect(run, "payload_failed", 70, exit_code=203)
    scene.check_aftermath(run)


def test_switch_glexec_cannot_execute_126(scene, small_fs):
    """The work directory is on a noexec file system: gLExec switches, then cannot
    execute the wrapper there.  The token is in the work directory's name, so in the
    command line of gLExec and of anything it started for the wrapper."""
    payload(scene, "echo payload-ran")
    mark = token()
    workdir = small_fs("tmpfs", "1m", "noexec", name=f"noexec-{mark}")
    run = scene.run(workdir=workdir, token=mark, **glexec_queue(GLEXEC))
    expect(run, "switch_failed", 55)
    assert "126" in run.result["error"], run.why()
    assert "cannot execute" in run.payload_err(), run.why()
    assert "payload-ran" not in run.payload_out()
    scene.check_aftermath(run)


def pilotid_probe(scene, queues: Path) -> "tuple[int, list]":
    """``pilotid probe --json`` for the scene's queue, as the pilot: (status, checks)."""
    python, site = scene.pilot_install
    done = node.run_as(node.PILOT, [python, "-m", "pilotid", "probe", "--queues", str(queues),
                                    "--queue", "SEC", "--workdir", str(scene.workdir()),
                                    "--json"],
                       env={"PYTHONPATH": site, "X509_USER_PROXY": str(scene.pilot_proxy),
                            "TMPDIR": str(scene.home)}, timeout=60)
    return done.returncode, json.loads(done.stdout)


def sudo_program_fault(scene, sudo_path: Path, says: str) -> None:
    """One job, then ``pilotid probe``, with the queue's ``sudo_path`` at ``sudo_path``."""
    payload(scene, "echo ran")
    queues = scene.queues(sudo_path=str(sudo_path))
    run = scene.run(queues=queues)
    expect(run, "switch_failed", 51)
    error = run.result["error"]
    assert str(sudo_path) in error and says in error and "sudo_path" in error, run.why()
    status, checks = pilotid_probe(scene, queues)
    (sudo_check,) = [c for c in checks if c["name"] == "sudo"]
    assert (status, sudo_check["status"], sudo_check["error_code"]) == (51, "fail", 51), checks
    assert says in sudo_check["detail"], checks
    scene.check_aftermath(run, expect_payload_logs=False)


def test_switch_sudo_binary_missing(scene):
    sudo_program_fault(scene, scene.home / "no-such-sudo", "does not exist")


def test_switch_sudo_binary_not_executable(scene):
    fake = scene.home / "sudo"
    fake.write_text("#!/bin/sh\nexit 0\n")
    own(fake, node.PILOT, 0o644)
    sudo_program_fault(scene, fake, "is not executable by pilotid-pilot")


def test_switch_sudo_not_permitted(scene):
    payload(scene, "echo ran")
    run = scene.run(scene.job(prodUserID=scene.users.carol.dn),
                    proxy_file=str(scene.proxies["carol"]))
    expect(run, "switch_failed", 52)
    scene.check_aftermath(run, expect_payload_logs=False)


# -- isolation (bubblewrap): the runtime's failures are the site's, never the payload's ------

USERNS_OFF = Path(__file__).resolve().parent / "userns_off.py"


def isolation_fault(scene, code: int, popen_as=None, **queue) -> JobRun:
    """One job through ``isolation: bwrap`` that the runtime cannot start: the payload never
    ran, the job fails with ``code``, and ``pilotid probe`` fails its test container so."""
    payload(scene, "echo ran > ran.txt")
    queues = scene.queues(isolation="bwrap", **queue)
    run = scene.run(queues=queues)
    expect(run, "switch_failed", code)
    assert not (run.workdir / "ran.txt").exists(), run.why()
    scene.check_aftermath(run, expect_payload_logs=False)
    return run


def probe_isolation_check(scene, queues: Path) -> dict:
    _, checks = pilotid_probe(scene, queues)
    (check,) = [c for c in checks if c["name"] == "isolation"]
    return check


def test_isolation_bwrap_missing(scene):
    missing = str(scene.home / "no-such-bwrap")
    isolation_fault(scene, 58, bwrap_path=missing)
    check = probe_isolation_check(scene, scene.queues(isolation="bwrap", bwrap_path=missing))
    assert (check["status"], check["error_code"]) == ("fail", 58), check


def test_isolation_bind_source_missing(scene):
    missing = str(scene.home / "no-such-cvmfs")
    isolation_fault(scene, 62, bwrap_binds=[missing])
    check = probe_isolation_check(scene, scene.queues(isolation="bwrap", bwrap_binds=[missing]))
    assert (check["status"], check["error_code"]) == ("fail", 62), check


def test_isolation_user_namespaces_switched_off(scene, monkeypatch):
    """The pilot runs in a user namespace of the test's own where
    ``user.max_user_namespaces`` is 0 (tests/faults/userns_off.py): bwrap's namespaces are
    refused by the kernel, as on a node that switched them off."""
    original = node.popen_as

    def in_namespace_without_more(name, argv, env=None, **kwargs):
        pilot = pwd.getpwnam(name)
        inner = ["setpriv", "--reuid", str(pilot.pw_uid), "--regid", str(pilot.pw_gid),
                 "--init-groups", "--", *argv]
        own_env = {**(env or {}), "HOME": pilot.pw_dir, "USER": name, "LOGNAME": name}
        return original("root", [sys.executable, str(USERNS_OFF), *inner], env=own_env,
                        **kwargs)

    monkeypatch.setattr(node, "popen_as", in_namespace_without_more)
    isolation_fault(scene, 59)


# What fails only at the job's launch, after the pilot's checks and the test container passed:
# classified from bwrap's own message, the job reported, the grant undone (check_aftermath).

#: bwrap for the test container (its command reads the uid map); at a job's launch it fails
#: the way bwrap does: status 1 and a message (quoted in place of "$BWRAP_SAYS").
FAILING_AT_LAUNCH_BWRAP = """#!/bin/sh
case " $* " in *" /proc/self/uid_map "*) exec /usr/bin/bwrap "$@" ;; esac
echo "$BWRAP_SAYS" >&2
exit 1
"""

NAMESPACES_REFUSED = ("bwrap: No permissions to creating new namespace, likely because the "
                      "kernel does not allow non-privileged user namespaces.")


def failing_at_launch_bwrap(scene, says: str) -> str:
    """A bwrap the test container passes and a job's launch fails, saying ``says``."""
    path = scene.base / f"bwrap-{secrets.token_hex(4)}"
    path.write_text(FAILING_AT_LAUNCH_BWRAP.replace('"$BWRAP_SAYS"', shlex.quote(says)))
    path.chmod(0o755)
    return str(path)


def assert_not_granted(run: JobRun) -> None:
    acl = subprocess.run(["getfacl", "-p", "-n", str(run.workdir)], capture_output=True,
                         text=True, check=True).stdout
    alice = str(node.account(node.ALICE).uid)
    assert f"user:{alice}:" not in acl, acl


@pytest.mark.parametrize("says, code", [
    (NAMESPACES_REFUSED, 59),
    ("bwrap: Unexpected capabilities but not setuid, old file caps config?", 57),
])
def test_isolation_runtime_fails_at_launch(scene, says, code):
    """The namespaces refused when the job starts (another job took the last one, say), or
    bwrap failing otherwise: the runtime's code, under ``preferred`` too."""
    program = failing_at_launch_bwrap(scene, says)
    assert_not_granted(isolation_fault(scene, code, bwrap_path=program))
    payload(scene, "echo ran > ran.txt")
    run = scene.run(queues=scene.queues(isolation="bwrap", bwrap_path=program,
                                        isolation_policy="preferred"))
    expect(run, "switch_failed", code)
    assert not (run.workdir / "ran.txt").exists(), run.why()
    scene.check_aftermath(run, expect_payload_logs=False)


def test_isolation_runtime_fails_at_launch_optional_runs_once_without(scene):
    """``optional``: relaunched at once without isolation, the payload runs exactly once."""
    payload(scene, "echo ran >> ran.txt")
    program = failing_at_launch_bwrap(scene, NAMESPACES_REFUSED)
    run = scene.run(queues=scene.queues(isolation="bwrap", bwrap_path=program,
                                        isolation_policy="optional"))
    expect(run, "succeeded", 0)
    assert (run.workdir / "ran.txt").read_text() == "ran\n", run.why()
    assert "WITHOUT isolation" in run.stderr, run.why()
    scene.check_aftermath(run, outputs=["ran.txt"])


def test_isolation_bind_unreachable_by_the_user_at_launch(scene):
    """A bind source the pilot sees but the user cannot reach: the pilot's check and the
    test container (both the pilot's) pass, bwrap as alice fails to bind it."""
    closed = scene.home / "closed"
    closed.mkdir()
    own(closed, node.PILOT, 0o700)
    software = closed / "software"
    software.mkdir()
    own(software, node.PILOT, 0o755)
    assert_not_granted(isolation_fault(scene, 62, bwrap_binds=[str(software)]))


def test_switch_that_hangs(scene):
    """A gLExec that answers the probe and the kills but never starts the wrapper: the
    time limit stops it, and the pilot does not wait for it for ever."""
    payload(scene, "echo ran")
    mark = token()
    fake = scene.home / "hanging-glexec"
    fake.write_text(f"#!/bin/bash\ncase \"$1\" in *.pilotid-wrapper-*) "
                    f"exec /bin/sleep 3600.{mark};; esac\nexec {GLEXEC} \"$@\"\n")
    own(fake, node.PILOT, 0o755)
    try:
        run = scene.run(timeout=60, token=mark, time_limit=2, **glexec_queue(str(fake)))
    finally:
        kill_all_with(mark)
    expect(run, "timed_out", 72)
    scene.check_aftermath(run)


# -- a plugin with a bug --------------------------------------------------------------------

def test_plugin_switcher_raising_in_launch(scene):
    install_fault_plugin(Path(scene.pilot_install[1]))
    payload(scene, "echo ran > ran.txt")
    run = scene.run(switcher=LAUNCH_BUG)
    expect(run, "internal_error", 80)
    assert "PermissionError" in run.result["error"], run.why()
    assert run.result["sandbox_mode"] == "acl", run.why()  # granted, then given back
    acl = subprocess.run(["getfacl", "-p", run.workdir], capture_output=True, text=True)
    assert node.ALICE not in acl.stdout, acl.stdout
    scene.check_aftermath(run, expect_payload_logs=False)


def test_plugin_switcher_raising_in_explain(scene):
    install_fault_plugin(Path(scene.pilot_install[1]))
    mark = token()
    payload(scene, f"nohup sleep 300.{mark} >/dev/null 2>&1 &\necho done > done.txt")
    run = scene.run(scene.job(jobPars=mark), token=mark, switcher=EXPLAIN_BUG)
    expect(run, "internal_error", 80)
    assert "RuntimeError" in run.result["error"], run.why()
    scene.check_aftermath(run, outputs=["done.txt"])


# -- the payload --------------------------------------------------------------------------

def test_payload_exits_non_zero(scene):
    payload(scene, "echo output > result.txt; echo failing >&2; exit 3")
    run = scene.run()
    expect(run, "payload_failed", 70, exit_code=3)
    assert "failing" in run.payload_err()
    scene.check_aftermath(run, outputs=["result.txt"])


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGSEGV])
def test_payload_killed_by_a_signal(scene, signum):
    payload(scene, f"echo partial > partial.txt; kill -{int(signum)} $$")
    run = scene.run()
    expect(run, "terminated", 71, signum=int(signum))
    scene.check_aftermath(run, outputs=["partial.txt"])


@pytest.mark.parametrize("ignores_term", [False, True])
def test_payload_exceeds_the_time_limit(scene, ignores_term):
    mark = token()
    trap = "trap '' TERM; " if ignores_term else ""
    payload(scene, f"{trap}echo started > started.txt; sleep 30.{mark}")
    run = scene.run(scene.job(jobPars=mark), token=mark, timeout=60, time_limit=2)
    expect(run, "timed_out", 72)
    assert run.seconds < 20
    scene.check_aftermath(run, outputs=["started.txt"])


def test_payload_forks_children_that_outlive_it(scene):
    mark = token()
    payload(scene, f"nohup sleep 300.{mark}1 >/dev/null 2>&1 &\n"
                   f"setsid sleep 300.{mark}2 >/dev/null 2>&1 < /dev/null &\n"
                   f"( setsid bash -c 'trap \"\" TERM HUP; sleep 300.{mark}3' & ) &\n"
                   "sleep 0.3; echo done > done.txt")
    run = scene.run(scene.job(jobPars=mark), token=mark)
    expect(run, "succeeded", 0, exit_code=0)
    scene.check_aftermath(run, outputs=["done.txt"])


@pytest.fixture
def small_fs(scene):
    """Mount small file systems under the scene's base: ``small_fs(kind, size, extra, name)``
    (``extra``: more mount options, ``noexec`` say; ``name``: the mount point's)."""
    mounts = []

    def mount(kind: str = "tmpfs", size: str = "1m", extra: str = "", name: str = "") -> Path:
        # under the scene's base (root's, 0755): a parent the target can traverse, as the
        # sandbox never opens a parent with o+x and ramfs has no ACLs
        path = scene.base / (name or f"{kind}-{len(mounts)}")
        path.mkdir()
        options = f"size={size},mode=0700" if kind == "tmpfs" else "mode=0700"
        options += f",{extra}" if extra else ""
        subprocess.run(["mount", "-t", kind, "-o", options, kind, str(path)], check=True)
        mounts.append(path)
        return own(path, node.PILOT, 0o700)

    yield mount
    for path in mounts:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path, leave: int) -> None:
    """Fill the file system of ``path`` until ``leave`` bytes are free."""
    free = os.statvfs(path).f_bavail * os.statvfs(path).f_frsize
    filler = path / "filler"
    with open(filler, "wb") as out:
        out.write(b"\0" * max(0, free - leave))
    own(filler, node.PILOT, 0o600)


def test_payload_fills_its_output_directory(scene, small_fs):
    workdir = small_fs("tmpfs", "1m")
    payload(scene, "echo start; dd if=/dev/zero of=output.root bs=64k count=100; "
                   "status=$?; echo after; exit $status")
    run = scene.run(workdir=workdir)
    expect(run, "payload_failed", 70, exit_code=1)
    scene.check_aftermath(run, outputs=["output.root"], workdir_accounting=False)


# -- the pilot ----------------------------------------------------------------------------

@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_pilot_signalled_while_the_payload_runs(scene, signum):
    mark = token()
    payload(scene, f"echo started > started.txt; sleep 60.{mark}; echo never > never.txt")
    job = scene.job(jobPars=mark)
    started = time.monotonic()
    process, workdir, _ = scene.start(job)
    wait_for(workdir / "started.txt")
    os.kill(process.pid, signum)
    run = scene.finish(process, job, workdir, started, timeout=60, token=mark)
    expect(run, "interrupted", 73)
    assert not (workdir / "never.txt").exists()
    scene.check_aftermath(run, outputs=["started.txt"])


def test_pilot_terminated_during_the_credential_fetch(scene, myproxy):
    silent = SilentListener()
    payload(scene, "echo ran")
    job = scene.job(credname="pilotcred")
    started = time.monotonic()
    try:
        process, workdir, _ = scene.start(
            job, env=myproxy.env(), driver=dict(FAST_MYPROXY, read_timeout=30),
            **myproxy.queue(silent.port))
        time.sleep(2)
        os.kill(process.pid, signal.SIGTERM)
        run = scene.finish(process, job, workdir, started, timeout=60)
    finally:
        silent.close()
    expect(run, "interrupted", 73)
    assert run.seconds < 20
    scene.check_aftermath(run, expect_payload_logs=False)


def test_pilot_restarted_on_the_same_work_directory(scene):
    mark = token()
    payload(scene, f"echo started > started-$PANDAID.txt; sleep 60.{mark}")
    first = scene.job(jobPars=mark)
    started = time.monotonic()
    process, workdir, _ = scene.start(first)
    wait_for(workdir / f"started-{first['PandaID']}.txt")
    os.kill(process.pid, signal.SIGTERM)
    run = scene.finish(process, first, workdir, started, timeout=60, token=mark)
    expect(run, "interrupted", 73)
    payload(scene, "echo again > again.txt")
    second = scene.run(scene.job(PandaID=first["PandaID"] + 1), workdir=workdir)
    expect(second, "succeeded", 0, exit_code=0)
    for done in (run, second):
        scene.check_aftermath(done)
    assert (workdir / "again.txt").exists()


def _target_entries(scene, uid: int) -> list:
    """The pilot's objects under its home (work directories, their parents) that have an
    ACL entry, access or default, for ``uid``."""
    listing = subprocess.run(["getfacl", "-Rpn", str(scene.home)], capture_output=True,
                             text=True).stdout
    pilot = str(pwd.getpwnam(node.PILOT).pw_uid)
    found = []
    for block in listing.split("\n\n"):
        lines = block.splitlines()
        if f"# owner: {pilot}" in lines and any(
                line.startswith((f"user:{uid}:", f"default:user:{uid}:")) for line in lines):
            found.append(lines[0])
    return found


def test_pilot_killed_mid_job_has_its_grants_undone(scene):
    """SIGKILL to the pilot mid-payload: it never reclaims.  ``pilotid cleanup`` undoes the
    grant from the job's journal and removes the job's private directory (the credential
    copies, in the pilot's TMPDIR); a second killed pilot's are undone by the next run."""
    alice = pwd.getpwnam(node.ALICE).pw_uid
    mark = token()
    payload(scene, f"echo started > started-$PANDAID.txt; sleep 60.{mark}; echo ran")

    def killed(job) -> Path:
        process, workdir, _ = scene.start(job)
        wait_for(workdir / f"started-{job['PandaID']}.txt")
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=30)
        kill_all_with(mark)
        return workdir

    def private_directories(job) -> list:
        return list(scene.home.glob(f"pilotid-job-{job['PandaID']}-*"))

    first_job = scene.job(jobPars=mark)
    first = killed(first_job)
    assert _target_entries(scene, alice), "the killed pilot's grant should still be there"
    assert private_directories(first_job), "the killed pilot's private directory is left"
    python, site = scene.pilot_install
    done = node.run_as(node.PILOT, [python, "-m", "pilotid", "cleanup", "--queues",
                                    str(scene.queues()), "--queue", "SEC"],
                       env={"PYTHONPATH": site}, text=True)
    assert done.returncode == 0, done.stderr
    assert str(first) in done.stdout
    assert _target_entries(scene, alice) == []
    assert private_directories(first_job) == []
    second_job = scene.job(jobPars=mark, PandaID=6300002)
    killed(second_job)
    assert _target_entries(scene, alice) and private_directories(second_job)
    payload(scene, "echo again > again.txt")
    run = scene.run(scene.job(PandaID=6300003))
    expect(run, "succeeded", 0, exit_code=0)
    assert _target_entries(scene, alice) == [] and private_directories(second_job) == []
    assert not list((scene.state_dir / "journals").iterdir())
    assert not list((scene.state_dir / "private").iterdir())


DEEP_PAYLOAD = r"""top=$PWD
cd staged || exit 7
while :; do
  set -- */
  [ -d "$1" ] || break
  cd -- "$1" || exit 8
done
cat staged.txt > "$top/staged-read.txt" || exit 9
cd "$top" || exit 7
n=$(printf 'p%.0s' {1..240})
for i in $(seq 1 100); do
  case $((i % 3)) in 0) name="$n-$i";; 1) name="$n"$'\n'"$i";; 2) name="$n"$'\xff'"$i";; esac
  mkdir -- "$name" && cd -- "$name" && echo x > f || exit 10
done
echo done > "$top/done.txt"
"""


def stage_deep_tree(top: Path, depth: int) -> None:
    """The pilot's 0700 chain of ``depth`` directories (250-byte names, with newlines and
    bytes that are not UTF-8) under ``top``, a 0600 ``staged.txt`` at the bottom."""
    pilot = node.account(node.PILOT)
    os.mkdir(top, 0o700)
    os.chown(top, pilot.uid, pilot.gid)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index in range(depth):
            name = b"s" * 240 + (b"\n", b"\xff", b"-")[index % 3] + str(index).encode()
            os.mkdir(name, 0o700, dir_fd=fd)
            os.chown(name, pilot.uid, pilot.gid, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        staged = os.open("staged.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600, dir_fd=fd)
        os.write(staged, b"staged at the bottom\n")
        os.fchown(staged, pilot.uid, pilot.gid)
        os.close(staged)
    finally:
        os.close(fd)


def target_entries_on_pilot_objects(top: Path) -> list:
    """Objects of the pilot's under ``top`` whose ACLs still name a target account, and
    staged objects whose mode the grant did not give back."""
    pilot = node.account(node.PILOT).uid
    targets = {node.account(n).uid for n in (node.ALICE, node.BOB, node.CAROL)}
    left = []
    for root, dirs, files, rootfd in os.fwalk(os.fsencode(top)):
        for name in [b".", *dirs, *files]:
            info = os.stat(name, dir_fd=rootfd, follow_symlinks=False)
            if info.st_uid != pilot:
                continue
            if b"/staged" in root + b"/" + name and stat.S_IMODE(info.st_mode) not in (
                    0o700, 0o600):
                left.append((root[-40:], name[-20:], oct(info.st_mode)))
            path = f"/proc/self/fd/{rootfd}/{os.fsdecode(name)}"
            for attribute in ("system.posix_acl_access", "system.posix_acl_default"):
                try:
                    blob = os.getxattr(path, attribute, follow_symlinks=False)
                except OSError:
                    continue
                named = [ident for tag, _, ident in struct.iter_unpack("<HHI", blob[4:])
                         if tag == 0x02 and ident in targets]
                if named:
                    left.append((root[-40:], name[-20:], attribute))
    return left


def test_node_tree_deeper_than_the_pilot_open_file_limit(scene):
    """A staged tree and the payload's own, 100 levels each, with the pilot's open-file
    limit at 64: the grant opens all of it, the reclaim takes all of it back."""
    workdir = scene.workdir()
    stage_deep_tree(workdir / "staged", 100)
    payload(scene, DEEP_PAYLOAD)
    run = scene.run(workdir=workdir, open_files=64, timeout=300)
    expect(run, "succeeded", 0, exit_code=0)
    assert (workdir / "staged-read.txt").read_text() == "staged at the bottom\n"
    scene.check_aftermath(run, outputs=["staged-read.txt", "done.txt"])
    assert target_entries_on_pilot_objects(workdir) == []


# -- the node -----------------------------------------------------------------------------

def test_node_workdir_full_while_writing_the_wrapper(scene, small_fs):
    workdir = small_fs("tmpfs", "256k")
    fill(workdir, 64 * 1024)
    payload(scene, "echo ran")
    run = scene.run(workdir=workdir, env={"PILOT_BIG_SETTING": "x" * 100_000},
                    env_pass=["PILOT_BIG_SETTING"])
    expect(run, "setup_failed", 22)
    assert "wrapper" in run.result["error"]
    scene.check_aftermath(run, expect_payload_logs=False)


def test_node_private_directory_full_while_writing_the_proxy(scene, small_fs):
    """The proxy copy is written in the job's private directory, in the pilot's TMPDIR,
    never in the work directory (issue 13, item 6)."""
    private = small_fs("tmpfs", "256k")
    fill(private, 0)
    payload(scene, "echo ran")
    run = scene.run(env={"TMPDIR": str(private)})
    expect(run, "credential_failed", 30)
    assert [p.name for p in private.iterdir()] == ["filler"]
    scene.check_aftermath(run, expect_payload_logs=False)


def test_node_filesystem_without_acls_fails_an_acl_queue(scene, small_fs):
    """Issue 13, item 1: an ``acl`` queue fell back to world mode with a warning only."""
    workdir = small_fs("ramfs")
    payload(scene, "id -un > whoami.txt")
    run = scene.run(workdir=workdir)
    expect(run, "setup_failed", 61)
    assert str(workdir) in run.result["error"] and "acl-or-world" in run.result["error"]
    assert not (workdir / "whoami.txt").exists()
    assert workdir.stat().st_mode & 0o777 == 0o700  # never opened
    scene.check_aftermath(run, expect_payload_logs=False)


def test_node_filesystem_without_acls_in_a_queue_accepting_world_mode(scene, small_fs):
    workdir = small_fs("ramfs")
    payload(scene, "id -un > whoami.txt; umask > umask.txt")
    run = scene.run(workdir=workdir, sandbox="acl-or-world")
    expect(run, "succeeded", 0, exit_code=0)
    assert run.result["sandbox_mode"] == "world"
    assert (workdir / "whoami.txt").read_text().strip() == node.ALICE
    assert (workdir / "umask.txt").read_text().strip() == "0000"
    assert workdir.stat().st_mode & 0o777 == 0o700  # taken back
    scene.check_aftermath(run, outputs=["whoami.txt"])


def test_world_mode_another_account_cannot_replace_the_wrapper(scene, small_fs):
    """Issue 13, item 1: world mode made the work directory 0777 without the sticky bit, and
    another local account renamed the wrapper away and planted its own in its place."""
    workdir = small_fs("ramfs")
    payload(scene, "echo started > started.txt\n"
                   "for _ in $(seq 300); do [ -e go.txt ] && break; sleep 0.1; done")
    job = scene.job()
    started = time.monotonic()
    process, workdir, _ = scene.start(job, workdir, sandbox="acl-or-world")
    try:
        wait_for(workdir / "started.txt")
        (wrapper,) = workdir.glob(".pilotid-wrapper-*.sh")
        moved = node.run_as(node.BOB, ["mv", str(wrapper), str(workdir / "taken.sh")])
        sticky = bool(workdir.stat().st_mode & stat.S_ISVTX)
    finally:
        node.run_as(node.PILOT, ["touch", str(workdir / "go.txt")])
    run = scene.finish(process, job, workdir, started, timeout=60)
    assert moved.returncode != 0 and b"Operation not permitted" in moved.stderr
    assert sticky
    expect(run, "succeeded", 0, exit_code=0)
    scene.check_aftermath(run, outputs=["started.txt"])


def test_node_tmp_not_writable_by_the_target(scene):
    eggs = scene.base / "eggs-root-only"
    eggs.mkdir()
    eggs.chmod(0o755)
    payload(scene, "echo ran")
    run = scene.run(egg_cache_base=str(eggs))
    expect(run, "setup_failed", 60)
    assert "PYTHON_EGG_CACHE" in run.result["error"]
    scene.check_aftermath(run)


def test_node_two_pilots_same_and_different_users_at_once(scene):
    mark = token()
    payload(scene, f"id -un > whoami.txt; sleep 1.{mark}; echo $PANDAID > id.txt")
    bob_queues = scene.queues(proxy_file=str(scene.proxies["bob"]))
    jobs = [(scene.job(jobPars=mark, PandaID=6200001), None),
            (scene.job(jobPars=mark, PandaID=6200002), None),
            (scene.job(jobPars=mark, PandaID=6200003, prodUserID=scene.users.bob.dn),
             bob_queues)]
    started = time.monotonic()
    running = [(scene.start(job, queues=queues), job) for job, queues in jobs]
    runs = [scene.finish(process, job, workdir, started, token=mark)
            for (process, workdir, _), job in running]
    for run, who in zip(runs, (node.ALICE, node.ALICE, node.BOB)):
        expect(run, "succeeded", 0, exit_code=0)
        assert (run.workdir / "whoami.txt").read_text().strip() == who
        assert (run.workdir / "id.txt").read_text().strip() == str(run.job["PandaID"])
        scene.check_aftermath(run, outputs=["whoami.txt", "id.txt"])


# -- the table ----------------------------------------------------------------------------

def test_every_row_of_the_fault_table_has_its_test():
    names = set(re.findall(r"``(test_[a-z0-9_]+)``", DOCS.read_text()))
    tests = {name for name in globals() if name.startswith("test_")}
    tests.discard("test_every_row_of_the_fault_table_has_its_test")
    assert names == tests, f"only in the docs: {names - tests}; only here: {tests - names}"

