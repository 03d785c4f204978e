"""``examples/myproxy-lab.sh``, the tutorial's MyProxy server: it starts a real
myproxy-server to which alice delegates with ``pilotid myproxy store`` and from which the
pilot retrieves her proxy with ``pilotid myproxy get``, as part 3 of the tutorial does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.system import node

LAB = node.REPO / "examples" / "myproxy-lab.sh"
ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
PILOT_DN = "/DC=org/DC=example/OU=Robots/CN=Pilot Robot 99"


@pytest.fixture
def lab(real_node, tmp_path):
    """The lab's directory and the environment it printed, while its server runs."""
    directory = tmp_path / "lab"
    env = dict(os.environ, PILOTID=f"{sys.executable} -m pilotid")
    done = subprocess.run([str(LAB), str(directory)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    exported = {}
    for line in done.stdout.splitlines():
        if line.startswith("export "):
            exported.update(item.split("=", 1) for item in line.split()[1:])
    try:
        yield directory, dict(os.environ, **exported)
    finally:
        os.kill(int((directory / "myproxy.pid").read_text()), signal.SIGTERM)


def pilotid(env, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pilotid", "-q", *argv], env=env,
                          capture_output=True, text=True, timeout=120)


def test_lab_server_hands_alices_delegated_proxy_to_the_pilot_it_names(lab):
    directory, env = lab
    pki = directory / "pki"
    policy = pilotid(env, "policy", "--pilot-dn", PILOT_DN).stdout.strip()
    stored = pilotid(env, "myproxy", "store", "-C", str(pki / "alice.pem"), "-y",
                     str(pki / "alice.key"), "-l", "alice", "-k", "analysis", "-Z", policy)
    assert stored.returncode == 0, stored.stderr
    got = pilotid(dict(env, X509_USER_PROXY=str(pki / "x509up_pilot")), "myproxy", "get",
                  "-l", "alice", "-k", "analysis", "-o", str(directory / "got.pem"))
    assert got.returncode == 0, got.stderr
    info = pilotid(env, "proxy-info", str(directory / "got.pem"))
    assert f"identity : {ALICE_DN}" in info.stdout


def test_lab_refuses_a_directory_that_exists(real_node, tmp_path):
    done = subprocess.run([str(LAB), str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "exists already" in done.stderr
