"""A real myproxy-server on 127.0.0.1 with a throwaway PKI, for the system tests.

What ``recipes/myproxy-lab.sh`` does, in Python: the test CA issues the host, user, pilot,
intruder and VOMS certificates; the trust directory gets the CA and its signing policy;
the server runs as the ``myproxy`` system account (host certificate, key and storage
directory owned by it, storage 0700) on an ephemeral port read back through ``-z``; the
grid tools (``grid-proxy-init``, ``voms-proxy-fake``, ``myproxy-init``/``-store``/``-logon``)
run with an environment that names this lab and nothing of the caller's.

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
from typing import Dict, Optional, Sequence

from pilotid.identity.testca import Identity, TestCA

SERVER_USER = "myproxy"
VOMS_HOST = "voms.example.org"
VOMS_DN = f"/DC=org/DC=example/CN={VOMS_HOST}"
TOOLS = ("myproxy-server", "myproxy-init", "myproxy-store", "myproxy-logon", "myproxy-info",
         "grid-proxy-init", "grid-proxy-info", "voms-proxy-fake", "voms-proxy-info")

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
    """The PKI, the tools' environment and the running server, all under ``base``."""

    def __init__(self, base: Path, ca: TestCA, people: Dict[str, Identity]) -> None:
        self.base = Path(base)
        self.ca = ca
        self.pki = self.base / "pki"
        self.pki.mkdir()
        self.cert_dir = ca.write_trust_dir(self.base / "certs")
        os.chmod(self.cert_dir, 0o755)
        self.voms_dir = self.base / "vomsdir"
        (self.voms_dir / "atlas").mkdir(parents=True)
        (self.voms_dir / "atlas" / f"{VOMS_HOST}.lsc").write_text(f"{VOMS_DN}\n{ca.dn}\n")
        for path in (self.voms_dir, self.voms_dir / "atlas"):
            os.chmod(path, 0o755)
        self.randfile = self.base / ".rnd"
        self.randfile.touch()
        self.files: Dict[str, "tuple[Path, Path]"] = {}
        for name, identity in people.items():
            self.files[name] = identity.write(self.pki, name)
        self.voms = ca.issue(VOMS_DN, server_name=VOMS_HOST)
        self.files["voms"] = self.voms.write(self.pki, "voms")
        self.host = ca.issue("/CN=localhost", server_name="localhost")
        self.server_dir = self.base / "srv"
        self.store_dir = self.server_dir / "store"
        self.port = 0
        self.pid = 0

    # -- environment and tools
    def env(self, proxy: Optional[Path] = None, **extra: str) -> Dict[str, str]:
        """Environment for a grid tool: this lab's trust and server, ``proxy`` to
        authenticate with."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
               "HOME": str(self.base), "X509_CERT_DIR": str(self.cert_dir),
               "X509_VOMS_DIR": str(self.voms_dir), "RANDFILE": str(self.randfile),
               "MYPROXY_SERVER_DN": "/CN=localhost"}
        if proxy is not None:
            env["X509_USER_PROXY"] = str(proxy)
        env.update(extra)
        return env

    def run(self, argv: Sequence[str], proxy: Optional[Path] = None, stdin: str = "",
            check: bool = True, **extra: str) -> subprocess.CompletedProcess:
        """Run a grid tool in this lab (stdin given, never inherited)."""
        done = subprocess.run(list(argv), env=self.env(proxy, **extra), input=stdin,
                              capture_output=True, text=True, timeout=60, cwd=self.base)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n"
                                 f"{done.stdout}\n{done.stderr}")
        return done

    @property
    def server_args(self) -> list:
        """``-s localhost -p <port>`` for the MyProxy tools."""
        return ["-s", "localhost", "-p", str(self.port)]

    def proxy(self, name: str, hours: int = 24) -> Path:
        """A proxy of ``name`` made by grid-proxy-init (RFC 3820), in the lab."""
        cert, key = self.files[name]
        out = self.base / f"{name}.proxy"
        if not out.exists():
            self.run(["grid-proxy-init", "-q", "-cert", str(cert), "-key", str(key),
                      "-out", str(out), "-hours", str(hours)])
        return out

    def voms_proxy(self, name: str, *fqans: str) -> Path:
        """A VOMS proxy of ``name`` with ``fqans`` made by voms-proxy-fake."""
        cert, key = self.files[name]
        voms_cert, voms_key = self.files["voms"]
        out = self.base / f"{name}-{'-'.join(f.strip('/').replace('/', '_') for f in fqans)}.proxy"
        argv = ["voms-proxy-fake", "-q", "-rfc", "-cert", str(cert), "-key", str(key),
                "-hostcert", str(voms_cert), "-hostkey", str(voms_key), "-voms", "atlas",
                "-uri", f"{VOMS_HOST}:15000", "-hours", "24", "-path-length", "10",
                "-out", str(out)]
        for fqan in fqans:
            argv += ["-fqan", fqan]
        self.run(argv)
        return out

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
        try:
            os.kill(self.pid, 0)
            return True
        except (ProcessLookupError, ValueError):
            return False
