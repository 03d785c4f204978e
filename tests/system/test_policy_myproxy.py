"""Retrieval policies from ``pilotid.identity.policy`` on a real ``myproxy-server``.

The user stores with the real ``myproxy-init -x -Z``, the pilots retrieve with the real
``myproxy-logon``: the escaped policy lets a pilot whose DN is full of regex characters in,
keeps out a DN that the same DN written unescaped lets in, and a policy of a thousand DNs
works on this server (6.2.14 has no 255-character limit).

The server fixture is private to this module on purpose (another one is being written for the
MyProxy client tests; they are to be merged).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Optional

import pytest
from cryptography import x509

from pilotid.errors import ConfigurationError
from pilotid.identity.policy import (
    DN_FORM,
    LEGACY_MAX_LENGTH,
    RetrievalPolicy,
    check_length,
    dn_policy,
    fqan_policy,
)
from tests.system import node
from tests.system.voms_lab import VomsLab

SERVER_ACCOUNT = "myproxy"
SERVER_DN = "/CN=localhost"
# A queue's pilot whose DN is full of what MyProxy's matching treats specially.
SPECIAL_PILOT_DN = "/DC=org/DC=example/OU=Robots/CN=pilot (ANALY_*) v1.0?"
# What that DN, stored unescaped, matches instead: "(...)" is a group, "*" any text, "?" any char.
NAIVE_INTRUDER_DN = "/DC=org/DC=example/OU=Robots/CN=pilot ANALY_EVIL v1.0X"
BRACKET_PILOT_DN = "/DC=ch/DC=cern/OU=Robots/CN=pilot [glexec]|queue.b"
BRACKET_INTRUDER_DN = "/DC=ch/DC=cern/OU=Robots/CN=pilot g"
REFUSED = "authentication failed"

SERVER_CONFIG = """\
accepted_credentials       "*"
authorized_retrievers      "*"
default_retrievers         "*"
trusted_retrievers         "*"
default_trusted_retrievers "none"
"""


class MyProxyLab:
    """A running myproxy-server on 127.0.0.1 and the client commands against it."""

    def __init__(self, lab: VomsLab, port: int, pid: int) -> None:
        self.lab = lab
        self.port = port
        self.pid = pid
        self._outputs = 0

    def _client_env(self, cert: Path, key: Path, **extra: str):
        return self.lab.env(MYPROXY_SERVER_DN=SERVER_DN, X509_USER_CERT=str(cert),
                            X509_USER_KEY=str(key), **extra)

    def store(self, owner, owner_stem: str, credname: str, policy: str) -> None:
        """The owner delegates with ``myproxy-init -x -Z policy`` (-x first: sent unchanged)."""
        cert, key = self.lab.credentials(owner, owner_stem)
        done = subprocess.run(
            ["myproxy-init", "-s", "localhost", "-p", str(self.port), "-C", str(cert),
             "-y", str(key), "-l", "alice", "-k", credname, "-c", "2", "-t", "1",
             "-x", "-Z", policy],
            env=self._client_env(cert, key), stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=120)
        assert done.returncode == 0, f"myproxy-init failed: {done.stdout}{done.stderr}"

    def stored_policy(self, owner, owner_stem: str, credname: str) -> str:
        """The trusted retrieval policy ``myproxy-info`` shows for ``credname``."""
        cert, key = self.lab.credentials(owner, owner_stem)
        done = subprocess.run(
            ["myproxy-info", "-s", "localhost", "-p", str(self.port), "-l", "alice",
             "-k", credname],
            env=self._client_env(cert, key), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        for line in done.stdout.splitlines():
            name, _, value = line.strip().partition(": ")
            if name == "trusted retrieval policy":
                return value
        raise AssertionError(f"no trusted retrieval policy in {done.stdout!r}")

    def logon(self, identity, stem: str, credname: str, proxy: Optional[Path] = None):
        """The pilot retrieves with ``myproxy-logon -n``, authenticating with its certificate
        (or with ``proxy``); returns (CompletedProcess, output path)."""
        if proxy:  # with X509_USER_CERT set, myproxy-logon would authenticate with that instead
            env = self.lab.env(MYPROXY_SERVER_DN=SERVER_DN, X509_USER_PROXY=str(proxy))
        else:
            env = self._client_env(*self.lab.credentials(identity, stem))
        self._outputs += 1
        out = self.lab.base / f"got-{stem}-{credname}-{self._outputs}.pem"  # never /dev/null
        done = subprocess.run(
            ["myproxy-logon", "-s", "localhost", "-p", str(self.port), "-n", "-l", "alice",
             "-k", credname, "-t", "1", "-o", str(out)],
            env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=120)
        return done, out


@pytest.fixture(scope="module")
def myproxy(real_node, users):
    """A real myproxy-server as the ``myproxy`` account, on an ephemeral loopback port."""
    for tool in ("myproxy-server", "myproxy-init", "myproxy-logon", "myproxy-info",
                 "grid-proxy-init", "voms-proxy-fake", "runuser"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (see shared/recipes/myproxy-lab.sh)")
    try:
        account = pwd.getpwnam(SERVER_ACCOUNT)
    except KeyError:
        pytest.skip(f"no {SERVER_ACCOUNT} account (Debian package myproxy-server makes it)")
    base = node.make_shared_dir("pilotid-policy-")
    lab = VomsLab(base, users.ca)
    srv = base / "srv"
    (srv / "store").mkdir(parents=True)
    os.chmod(srv / "store", 0o700)
    (srv / "myproxy-server.config").write_text(SERVER_CONFIG)
    host_cert, host_key = users.ca.issue(SERVER_DN, server_name="localhost").write(srv, "host")
    for root, dirs, files in os.walk(srv):
        for name in [root] + [os.path.join(root, f) for f in files]:
            os.chown(name, account.pw_uid, account.pw_gid)
    started = subprocess.run(
        ["runuser", "-u", SERVER_ACCOUNT, "--", "env", f"X509_CERT_DIR={lab.cert_dir}",
         f"X509_VOMS_DIR={lab.voms_dir}", f"X509_USER_CERT={host_cert}",
         f"X509_USER_KEY={host_key}",
         "myproxy-server", "-c", str(srv / "myproxy-server.config"), "-s", str(srv / "store"),
         "-l", "127.0.0.1", "-p", "0", "-P", str(srv / "myproxy.pid"),
         "-z", str(srv / "myproxy.port")],
        env=lab.env(), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, f"myproxy-server did not start: {started.stderr}"
    # the launcher returns once the daemon child listens and has written both files
    pid = int((srv / "myproxy.pid").read_text())
    port = int((srv / "myproxy.port").read_text())
    yield MyProxyLab(lab, port, pid)
    os.kill(pid, signal.SIGTERM)
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def pilots(users):
    """Pilot and intruder certificates with DNs that stress the policy matching."""
    ca = users.ca
    return {"special": ca.issue(SPECIAL_PILOT_DN),
            "naive_intruder": ca.issue(NAIVE_INTRUDER_DN),
            "bracket": ca.issue(BRACKET_PILOT_DN),
            "bracket_intruder": ca.issue(BRACKET_INTRUDER_DN)}


def _retrieved_identity(out: Path) -> str:
    certificates = x509.load_pem_x509_certificates(out.read_bytes())
    return certificates[-1].subject.rfc4514_string()


def test_escaped_policy_is_stored_unchanged(myproxy, users):
    policy = dn_policy([SPECIAL_PILOT_DN])
    myproxy.store(users.alice, "alice", "special", policy)
    assert myproxy.stored_policy(users.alice, "alice", "special") == policy


def test_escaped_policy_lets_the_pilot_with_special_characters_retrieve(myproxy, users, pilots):
    myproxy.store(users.alice, "alice", "special-get", dn_policy([SPECIAL_PILOT_DN]))
    done, out = myproxy.logon(pilots["special"], "special", "special-get")
    assert done.returncode == 0, done.stderr
    assert "Alice Analyst 1234" in _retrieved_identity(out)
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_escaped_policy_refuses_the_dn_a_naive_policy_admits(myproxy, users, pilots):
    myproxy.store(users.alice, "alice", "escaped", dn_policy([SPECIAL_PILOT_DN]))
    myproxy.store(users.alice, "alice", "naive", SPECIAL_PILOT_DN)

    refused, out = myproxy.logon(pilots["naive_intruder"], "naive-intruder", "escaped")
    assert refused.returncode != 0 and REFUSED in refused.stderr
    assert not out.exists()

    # The same DN written as it is: the intruder gets Alice's proxy, the pilot does not.
    admitted, _ = myproxy.logon(pilots["naive_intruder"], "naive-intruder", "naive")
    assert admitted.returncode == 0, admitted.stderr
    locked_out, _ = myproxy.logon(pilots["special"], "special", "naive")
    assert locked_out.returncode != 0 and REFUSED in locked_out.stderr


def test_policy_with_several_pilot_dns_admits_each_and_nobody_else(myproxy, users, pilots):
    myproxy.store(users.alice, "alice", "two-queues",
                  dn_policy([SPECIAL_PILOT_DN, BRACKET_PILOT_DN]))
    for name in ("special", "bracket"):
        done, _ = myproxy.logon(pilots[name], name, "two-queues")
        assert done.returncode == 0, (name, done.stderr)
    for name in ("naive_intruder", "bracket_intruder"):
        done, _ = myproxy.logon(pilots[name], name.replace("_", "-"), "two-queues")
        assert done.returncode != 0 and REFUSED in done.stderr, name
    done, _ = myproxy.logon(users.pilot, "pilot", "two-queues")
    assert done.returncode != 0


def test_thousand_dn_policy_works_on_a_server_without_the_255_limit(myproxy, users, pilots):
    dns = [f"/DC=org/DC=example/OU=Robots/CN=pilot {i:04d} (queue {i % 37}).example.org"
           for i in range(999)] + [SPECIAL_PILOT_DN]
    policy = RetrievalPolicy(dn_policy(dns), DN_FORM)
    assert policy.length > 50000
    with pytest.raises(ConfigurationError, match="255"):
        check_length(policy, LEGACY_MAX_LENGTH)
    check_length(policy, None)
    myproxy.store(users.alice, "alice", "thousand", policy.text)
    started = time.monotonic()
    done, _ = myproxy.logon(pilots["special"], "special", "thousand")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 30
    refused, _ = myproxy.logon(pilots["naive_intruder"], "naive-intruder", "thousand")
    assert refused.returncode != 0 and REFUSED in refused.stderr


def test_fqan_policy_admits_the_spelling_a_real_voms_server_writes(myproxy, users):
    myproxy.store(users.alice, "alice", "fqan", fqan_policy("/atlas/Role=pilot"))
    full = myproxy.lab.fake(users.pilot, "pilot", "atlas", ["/atlas/Role=pilot/Capability=NULL",
                                                             "/atlas/Role=NULL/Capability=NULL"])
    short = myproxy.lab.fake(users.pilot, "pilot", "atlas", ["/atlas/Role=pilot"])
    other = myproxy.lab.fake(users.pilot, "pilot", "atlas", ["/atlas/Role=production"])
    for proxy in (full, short):
        done, _ = myproxy.logon(users.pilot, "pilot", "fqan", proxy=proxy)
        assert done.returncode == 0, (proxy.name, done.stderr)
    done, _ = myproxy.logon(users.pilot, "pilot", "fqan", proxy=other)
    assert done.returncode != 0 and REFUSED in done.stderr


def test_fqan_written_short_only_misses_the_full_spelling(myproxy, users):
    """Why fqan_policy accepts both spellings: the server compares the whole FQAN string."""
    myproxy.store(users.alice, "alice", "fqan-exact", fqan_policy("/atlas/Role=pilot", exact=True))
    full = myproxy.lab.fake(users.pilot, "pilot", "atlas", ["/atlas/Role=pilot/Capability=NULL"])
    done, _ = myproxy.logon(users.pilot, "pilot", "fqan-exact", proxy=full)
    assert done.returncode != 0 and REFUSED in done.stderr
