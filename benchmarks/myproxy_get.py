"""Benchmark: one MyProxy GET (trusted retrieval) by pilotid, myproxy-logon and MyProxyClient.

Not a test.  Starts a real myproxy-server on loopback with a throwaway PKI (the system
tests' lab: run as root on a node prepared by tests/system/setup-node.sh), stores one
credential with myproxy-init, then times, alternating round by round against the same
server, medians of ``--rounds`` (at least 15):

* ``pilotid``            GET in-process with a fresh 2048-bit key;
* ``pilotid-prepared``   GET in-process with a key made before the request (a pilot that
                         knows a job is coming makes it ahead);
* ``myproxy-logon``      the C client, one process per GET (how pilots call it), fresh key;
* ``MyProxyClient``      the PyPI client 2.2.0, in-process in its own interpreter, fresh
                         2048-bit key and certificate request made with cryptography (its
                         own X509Req code fails on pyOpenSSL 26) and ``CRED_NAME`` patched
                         in (it sends ``USERNAME=<user>-<cred>`` otherwise), as DOMAIN.md
                         describes;
* ``MyProxyClient-premade``  the same with the key and request made before the timer.

Prints the medians and the ratios the issue sets targets for: pilotid fresh-key GET at
most 0.5x myproxy-logon; prepared-key GET at most 1.0x MyProxyClient with a pre-made
request.  ``--mpc-python`` names an interpreter with ``myproxyclient`` installed
(``python3 -m venv V && V/bin/pip install myproxyclient==2.2.0``); without one that part is
skipped.

    sudo PYTHONPATH=. /opt/pilotid-test/venv/bin/python benchmarks/myproxy_get.py \\
        --rounds 15 --mpc-python /tmp/mpc/bin/python
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pilotid.identity.myproxy import ClientCredential, MyProxyClient, new_key  # noqa: E402
from pilotid.identity.testca import TestCA  # noqa: E402
from tests.system.myproxy_lab import MyProxyLab, missing_tool  # noqa: E402
from tests.system.voms_lab import VomsLab  # noqa: E402

PILOT_DN = "/DC=org/DC=example/OU=Robots/CN=Pilot Robot 99"
ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"

MPC_HELPER = textwrap.dedent('''
    import sys, time
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from myproxy.client import MyProxyClient
    host, port, cadir, auth, user, cred = sys.argv[1:7]
    cls = type("MPC", (MyProxyClient,),
               {"GET_CMD": MyProxyClient.GET_CMD + b"\\nCRED_NAME=" + cred.encode()})
    client = cls(hostname=host, port=int(port), caCertDir=cadir)
    def request():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
            key, hashes.SHA256())
        return key, csr.public_bytes(serialization.Encoding.DER)
    for line in sys.stdin:
        mode = line.strip()
        if mode == "premade":
            key, der = request()
            start = time.perf_counter()
        else:
            start = time.perf_counter()
            key, der = request()
        certs = client.logon(user, None, lifetime=7200, certReq=der,
                             sslCertFile=auth, sslKeyFile=auth)
        assert certs and b"BEGIN CERTIFICATE" in certs[0]
        print((time.perf_counter() - start) * 1000, flush=True)
''')


class MpcHelper:
    """MyProxyClient in its own interpreter, timed in-process, driven line by line."""

    def __init__(self, python: str, lab: MyProxyLab, workdir: Path) -> None:
        script = workdir / "mpc_helper.py"
        script.write_text(MPC_HELPER)
        self.process = subprocess.Popen(
            [python, str(script), "localhost", str(lab.port), str(lab.cert_dir),
             str(lab.proxy("pilot")), "alice", "pilotcred"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env=dict(lab.env(), MYPROXY_SERVER_DN="/CN=localhost"))

    def run(self, mode: str) -> float:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(mode + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("MyProxyClient helper died (see its stderr above)")
        return float(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--mpc-python", default=None,
                        help="python with myproxyclient installed (optional)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root: the server runs as the myproxy account")
    reason = missing_tool()
    if reason:
        parser.error(reason)
    rounds = max(15, args.rounds)
    base = Path(tempfile.mkdtemp(prefix="pilotid-bench-", dir="/tmp"))
    os.chmod(base, 0o755)  # noqa: S103 - the myproxy account must reach the lab
    ca = TestCA()
    lab = MyProxyLab(VomsLab(base, ca), {"alice": ca.issue(ALICE_DN), "pilot": ca.issue(PILOT_DN)})
    lab.start()
    helper = None
    try:
        cert, key = lab.files["alice"]
        lab.run(["myproxy-init", *lab.server_args, "-C", str(cert), "-y", str(key),
                 "-l", "alice", "-k", "pilotcred", "-c", "24", "-t", "12", "-x",
                 "-Z", PILOT_DN])
        pilot_proxy = lab.proxy("pilot")
        client = MyProxyClient("localhost", lab.port, ca_dir=lab.cert_dir, environ={},
                               credential=ClientCredential.load(pilot_proxy))
        out = base / "logon.pem"

        def pilotid_fresh() -> float:
            start = time.perf_counter()
            client.get("alice", "pilotcred", lifetime=7200)
            return (time.perf_counter() - start) * 1000

        def pilotid_prepared() -> float:
            prepared = new_key(2048)
            start = time.perf_counter()
            client.get("alice", "pilotcred", lifetime=7200, key=prepared)
            return (time.perf_counter() - start) * 1000

        def logon() -> float:
            start = time.perf_counter()
            lab.run(["myproxy-logon", *lab.server_args, "-n", "-l", "alice", "-k", "pilotcred",
                     "-t", "2", "-o", str(out)], proxy=pilot_proxy)
            return (time.perf_counter() - start) * 1000

        runners = {"pilotid": pilotid_fresh, "pilotid-prepared": pilotid_prepared,
                   "myproxy-logon": logon}
        if args.mpc_python:
            helper = MpcHelper(args.mpc_python, lab, base)
            runners["MyProxyClient"] = lambda: helper.run("fresh")  # type: ignore[union-attr]
            runners["MyProxyClient-premade"] = lambda: helper.run("premade")  # type: ignore
        for run in runners.values():  # warm up: imports, first connections
            run()
        times: Dict[str, List[float]] = {name: [] for name in runners}
        for _ in range(rounds):
            for name, run in runners.items():
                times[name].append(run())
        medians = {name: statistics.median(values) for name, values in times.items()}
        print(f"MyProxy GET, trusted retrieval, 2048-bit keys, median of {rounds} "
              f"(alternating) against myproxy-server on 127.0.0.1:{lab.port}")
        for name, value in medians.items():
            print(f"  {name:24s} {value:8.1f} ms")
        ratio = medians["pilotid"] / medians["myproxy-logon"]
        print(f"pilotid / myproxy-logon (fresh keys):               {ratio:5.2f}x  "
              f"(target <= 0.5x: {'met' if ratio <= 0.5 else 'NOT met'})")
        if "MyProxyClient-premade" in medians:
            ratio = medians["pilotid-prepared"] / medians["MyProxyClient-premade"]
            print(f"pilotid prepared / MyProxyClient pre-made request: {ratio:5.2f}x  "
                  f"(target <= 1.0x: {'met' if ratio <= 1.0 else 'NOT met'})")
            ratio = medians["pilotid"] / medians["MyProxyClient"]
            print(f"pilotid / MyProxyClient (fresh keys):              {ratio:5.2f}x")
        else:
            print("MyProxyClient not measured (give --mpc-python)")
    finally:
        if helper is not None:
            helper.close()
        lab.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
