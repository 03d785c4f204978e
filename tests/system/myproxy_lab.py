"""A real myproxy-server on 127.0.0.1 with a throwaway PKI, for the system tests.

What ``examples/myproxy-lab.sh`` (the tutorial's lab) does, in Python, and more: on top of
a ``VomsLab`` (its trust directory with the test CA and signing policy, its vomsdir and fake
VOMS server): the test
CA issues the host certificate (``/CN=localhost``) and the people's certificates; the
server runs as the ``myproxy`` system account (host certificate, key and storage directory
owned by it, storage 0700) on an ephemeral port read back through ``-z``; the grid tools
(``grid-proxy-init``, ``voms-proxy-fake``, ``myproxy-init``/``-store``/``-logon``) run with
an environment that names this lab and nothing of the caller's.

The system tests share one lab for the whole session (the ``myproxy`` fixture in
``tests/system/conftest.py``): the server is started once.  Each test module stores the
credentials it needs under its own credential names.

Gotcha kept from the recipe: never ``myproxy-logon -o /dev/null`` as root (it replaces
/dev/null with a regular file); every output here goes to a file in the lab.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from pilotid.identity.testca import Identity
from tests.system.voms_lab import VomsLab

SERVER_USER = "myproxy"
SERVER_DN = "/CN=localhost"
TOOLS = ("myproxy-server", "myproxy-init", "myproxy-store", "myproxy-logon", "myproxy-info",
         "grid-proxy-init", "grid-proxy-info", "voms-proxy-fake", "voms-proxy-info", "runuser")

SERVER_CONFIG = """\
# who may store (PUT/STORE)
accepted_credentials       "*"
# server-wide gate for GET: everyone may try, the credential's own policy decides
authorized_retrievers      "*"
default_retrievers         "*"
# retrieval without passphrase only where the credential names the retriever (-Z)
trusted_retrievers         "*"
default_trusted_retrievers "none"
# what GET_TRUSTROOTS sends
cert_dir                   {cert_dir}
"""


def missing_tool() -> Optional[str]:
    """Why the lab cannot run here (a missing program or account), or None."""
    for tool in TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tests/system/setup-node.sh installs it)"
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return f"account {SERVER_USER} is missing (the myproxy-server package creates it)"
    if not os.path.exists("/usr/lib/x86_64-linux-gnu/libmyproxy_voms.so"):
        return "libmyproxy-voms is not installed: FQAN policies would never match"
    return None


class MyProxyLab:
    """The running server, the people's credentials and the tools' environment, all in the
    directory of ``voms`` (a ``VomsLab``, whose trust directory and vomsdir it shares)."""

    def __init__(self, voms: VomsLab, people: Dict[str, Identity]) -> None:
        self.voms = voms
        self.base = voms.base
        self.ca = voms.ca
        self.cert_dir = voms.cert_dir
        self.voms_dir = voms.voms_dir
        self.files: Dict[str, Tuple[Path, Path]] = {
            name: voms.credentials(identity, name) for name, identity in people.items()}
        self.people = dict(people)
        self.host = self.ca.issue(SERVER_DN, server_name="localhost")
        self.server_dir = self.base / "srv"
        self.store_dir = self.server_dir / "store"
        self.port = 0
        self.pid = 0
        self._outputs = 0

    # -- environment and tools
    def env(self, proxy: Optional[Path] = None, **extra: str) -> Dict[str, str]:
        """Environment for a grid tool: this lab's trust and server, ``proxy`` to
        authenticate with."""
        env = self.voms.env(MYPROXY_SERVER_DN=SERVER_DN)
        if proxy is not None:
            env["X509_USER_PROXY"] = str(proxy)
        env.update(extra)
        return env

    def run(self, argv: Sequence[str], proxy: Optional[Path] = None, stdin: str = "",
            check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        """Run a grid tool in this lab (stdin given, never inherited)."""
        done = subprocess.run(list(argv), env=self.env(proxy, **extra), input=stdin,
                              capture_output=True, text=True, timeout=120, cwd=self.base)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    @property
    def server_args(self) -> List[str]:
        """``-s localhost -p <port>`` for the MyProxy tools."""
        return ["-s", "localhost", "-p", str(self.port)]

    def proxy(self, name: str, hours: int = 24) -> Path:
        """A proxy of ``name`` made by grid-proxy-init (RFC 3820), in the lab (made once)."""
        cert, key = self.files[name]
        out = self.base / f"{name}.proxy"
        if not out.exists():
            self.run(["grid-proxy-init", "-q", "-cert", str(cert), "-key", str(key),
                      "-out", str(out), "-hours", str(hours)])
        return out

    def voms_proxy(self, name: str, *fqans: str) -> Path:
        """A VOMS proxy (VO atlas) of ``name`` with ``fqans``, made by voms-proxy-fake."""
        return self.voms.fake(self.people[name], name, "atlas", fqans, hours=24,
                              options=("-rfc", "-path-length", "10"))

    def store(self, owner: str, credname: str, policy: str, username: str = "alice",
              hours: int = 24, max_hours: int = 12) -> None:
        """``owner`` delegates with ``myproxy-init -x -Z policy`` (``-x``: the policy is sent
        as written).  ``username`` ``None`` stores under the owner's DN (``-d``)."""
        cert, key = self.files[owner]
        who = ["-d"] if username is None else ["-l", username]
        self.run(["myproxy-init", *self.server_args, "-C", str(cert), "-y", str(key), *who,
                  "-k", credname, "-c", str(hours), "-t", str(max_hours), "-x", "-Z", policy])

    def logon(self, credname: str, proxy: Optional[Path] = None,
              cert_key: Optional[Tuple[Path, Path]] = None, username: str = "alice",
              hours: int = 1) -> Tuple[subprocess.CompletedProcess, Path]:
        """``myproxy-logon -n``, authenticating with ``proxy`` or with a certificate and
        key; returns the finished process and the output file (a new name in the lab each
        time: never /dev/null)."""
        self._outputs += 1
        out = self.base / f"logon-{credname}-{self._outputs}.pem"
        extra = {}
        if cert_key is not None:
            extra = {"X509_USER_CERT": str(cert_key[0]), "X509_USER_KEY": str(cert_key[1])}
        done = self.run(["myproxy-logon", *self.server_args, "-n", "-l", username,
                         "-k", credname, "-t", str(hours), "-o", str(out)],
                        proxy=proxy, check=False, **extra)
        return done, out

    # -- the server
    def start(self) -> None:
        """Start myproxy-server as the ``myproxy`` account; returns once it listens."""
        user = pwd.getpwnam(SERVER_USER)
        self.store_dir.mkdir(parents=True)
        os.chmod(self.store_dir, 0o700)
        config = self.server_dir / "myproxy-server.config"
        config.write_text(SERVER_CONFIG.format(cert_dir=self.cert_dir))
        host_cert, host_key = self.host.write(self.server_dir, "host")
        for path in (self.server_dir, self.store_dir, config, host_cert, host_key):
            os.chown(path, user.pw_uid, user.pw_gid)  # the server insists on owning its key
        os.chmod(self.server_dir, 0o755)
        pid_file, port_file = self.server_dir / "myproxy.pid", self.server_dir / "myproxy.port"
        argv = ["runuser", "-u", SERVER_USER, "--", "env",
                f"X509_CERT_DIR={self.cert_dir}", f"X509_VOMS_DIR={self.voms_dir}",
                f"X509_USER_CERT={host_cert}", f"X509_USER_KEY={host_key}",
                "myproxy-server", "-c", str(config), "-s", str(self.store_dir),
                "-l", "127.0.0.1", "-p", "0", "-P", str(pid_file), "-z", str(port_file)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"myproxy-server did not start: {done.stderr}")
        # the launcher returns once the daemon child listens; the files may lag a little
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if port_file.exists() and pid_file.exists() and port_file.read_text().strip():
                break
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        self.pid = int(pid_file.read_text())

    def stop(self) -> None:
        """Stop the server this lab started (by its PID) and wait until it is gone."""
        if not self.pid:
            return
        try:
            os.kill(self.pid, signal.SIGTERM)
        except ProcessLookupError:
            self.pid = 0
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = 0

    def alive(self) -> bool:
        """True while the server process exists."""
        if not self.pid:
            return False
        try:
            os.kill(self.pid, 0)
            return True
        except ProcessLookupError:
            return False
