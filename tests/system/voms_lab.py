"""A throwaway VOMS set-up for the system tests: trust directory, vomsdir, fake VOMS server.

Proxies are made by the real ``voms-proxy-fake`` (signing ACs with a VOMS host certificate
issued by the test CA) and read back by the real ``voms-proxy-info``.  Everything lives in a
directory the ``myproxy`` account can read, so the same lab serves the myproxy-server tests.
"""

from __future__ import annotations

import datetime
import os
import re
import subprocess
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from asn1crypto import cms, core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from pilotid.identity.credfile import write_private
from pilotid.identity.testca import Identity, TestCA

VOMS_HOST = "voms.example.org"
VOMS_DN = f"/DC=org/DC=example/CN={VOMS_HOST}"
VOS = ("atlas", "cms")
_VOMS_EXT = x509.ObjectIdentifier("1.3.6.1.4.1.8005.100.100.5")
_PROXY_CERT_INFO = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.14")


class VomsLab:
    """Trust directory and vomsdir under ``base``; makes and inspects VOMS proxies."""

    def __init__(self, base: Path, ca: TestCA) -> None:
        self.base = Path(base)
        self.ca = ca
        self.cert_dir = ca.write_trust_dir(self.base / "certs")
        self.voms_dir = self.base / "vomsdir"
        self.voms = ca.issue(VOMS_DN, server_name=VOMS_HOST)
        self.voms_cert, self.voms_key = self.voms.write(self.base, "voms-host")
        for vo in VOS:
            (self.voms_dir / vo).mkdir(parents=True, exist_ok=True)
            # <vomsdir>/<vo>/<host>.lsc: the VOMS server's DN, then its CA's
            (self.voms_dir / vo / f"{VOMS_HOST}.lsc").write_text(f"{VOMS_DN}\n{ca.dn}\n")
        for path in (self.cert_dir, self.voms_dir, *self.voms_dir.iterdir()):
            os.chmod(path, 0o755)
        self.randfile = self.base / ".rnd"
        self.randfile.touch()
        self._count = 0

    def env(self, **extra: str) -> Dict[str, str]:
        """Environment for the grid tools: this lab's trust, nothing of the caller's."""
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG": "C.UTF-8",
               "HOME": str(self.base), "X509_CERT_DIR": str(self.cert_dir),
               "X509_VOMS_DIR": str(self.voms_dir), "RANDFILE": str(self.randfile)}
        env.update(extra)
        return env

    def credentials(self, identity: Identity, stem: str) -> "tuple[Path, Path]":
        """Write ``identity``'s certificate and 0600 key (once) and return their paths."""
        cert, key = self.base / f"{stem}.pem", self.base / f"{stem}.key"
        if not cert.exists():
            identity.write(self.base, stem)
        return cert, key

    def fake(self, holder: Identity, stem: str, vo: str, fqans: Sequence[str],
             uri: Optional[str] = f"{VOMS_HOST}:15000", hours: int = 12,
             options: Sequence[str] = ("-rfc",)) -> Path:
        """A VOMS proxy of ``holder`` made by ``voms-proxy-fake``; returns its path."""
        cert, key = self.credentials(holder, stem)
        self._count += 1
        out = self.base / f"{stem}-{vo}-{self._count}.proxy"
        argv = ["voms-proxy-fake", "-q", *options, "-cert", str(cert), "-key", str(key),
                "-hostcert", str(self.voms_cert), "-hostkey", str(self.voms_key),
                "-voms", vo, "-hours", str(hours), "-bits", "2048", "-out", str(out)]
        if uri:
            argv += ["-uri", uri]
        for fqan in fqans:
            argv += ["-fqan", fqan]
        done = subprocess.run(argv, env=self.env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and out.exists(), f"voms-proxy-fake failed: {done.stderr}"
        return out

    def combine(self, holder: Identity, proxies: Sequence[Path], stem: str,
                hours: float = 8) -> Path:
        """One RFC proxy of ``holder`` carrying the ACs of every proxy in ``proxies``.

        ``voms-proxy-fake`` puts one VO per proxy; a proxy with several VOs (what
        ``voms-proxy-init -voms atlas -voms cms`` makes) is assembled from their real ACs.
        """
        acs: List[cms.AttributeCertificateV2] = []
        for path in proxies:
            first = x509.load_pem_x509_certificates(path.read_bytes())[0]
            raw = first.extensions.get_extension_for_oid(_VOMS_EXT).value.value
            acs.extend(_ACSeq.load(raw)["acs"])
        extension = _ACSeq({"acs": _ACs(acs)}).dump(force=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.datetime.now(datetime.timezone.utc)
        serial = x509.random_serial_number() >> 100
        subject = x509.Name(list(holder.certificate.subject)
                            + [x509.NameAttribute(x509.NameOID.COMMON_NAME, str(serial))])
        proxy = (x509.CertificateBuilder()
                 .subject_name(subject).issuer_name(holder.certificate.subject)
                 .public_key(key.public_key()).serial_number(serial)
                 .not_valid_before(now - datetime.timedelta(minutes=5))
                 .not_valid_after(now + datetime.timedelta(hours=hours))
                 .add_extension(x509.UnrecognizedExtension(_VOMS_EXT, extension), critical=False)
                 .add_extension(x509.KeyUsage(True, False, True, True, False, False, False, False,
                                              False), critical=True)
                 .add_extension(x509.UnrecognizedExtension(
                     _PROXY_CERT_INFO, bytes.fromhex("300c300a06082b06010505071501")),
                     critical=True)
                 .sign(holder.key, hashes.SHA256()))
        pem = b"".join([
            proxy.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM,
                              serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()),
            holder.certificate.public_bytes(serialization.Encoding.PEM)])
        return write_private(self.base / f"{stem}-combined.proxy", pem)

    def info(self, path: Path) -> "VomsProxyInfo":
        """``voms-proxy-info -all -file path``, parsed."""
        done = subprocess.run(["voms-proxy-info", "-all", "-file", str(path)], env=self.env(),
                              capture_output=True, text=True, timeout=60)
        return VomsProxyInfo.parse(done.stdout, done.returncode, done.stderr)


class _ACs(core.SequenceOf):
    _child_spec = cms.AttributeCertificateV2


class _ACSeq(core.Sequence):
    _fields = [("acs", _ACs)]


class VomsProxyInfo:
    """What ``voms-proxy-info -all`` printed: the proxy's lines and one dict per VO section."""

    def __init__(self, proxy: Dict[str, str], vos: List[Dict[str, object]], returncode: int,
                 stderr: str) -> None:
        self.proxy = proxy
        self.vos = vos
        self.returncode = returncode
        self.stderr = stderr

    @classmethod
    def parse(cls, text: str, returncode: int, stderr: str) -> "VomsProxyInfo":
        proxy: Dict[str, str] = {}
        vos: List[Dict[str, object]] = []
        current: Dict[str, str] = proxy
        for line in text.splitlines():
            if line.startswith("=== VO "):
                vos.append({"attribute": []})
                current = vos[-1]  # type: ignore[assignment]
                continue
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip(), value.strip()
            if key == "attribute":
                current["attribute"].append(value)  # type: ignore[union-attr]
            else:
                current[key] = value
        return cls(proxy, vos, returncode, stderr)


def seconds(timeleft: str) -> int:
    """``voms-proxy-info``'s ``H:MM:SS`` as seconds."""
    match = re.fullmatch(r"(\d+):(\d\d):(\d\d)", timeleft.strip())
    assert match, f"unexpected timeleft {timeleft!r}"
    hours, minutes, secs = (int(g) for g in match.groups())
    return hours * 3600 + minutes * 60 + secs
