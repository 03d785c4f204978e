"""A throwaway certificate authority for demos and tests.

It issues end-entity certificates and signs proxies (RFC 3820 or legacy, full or limited)
the way ``grid-proxy-init`` does, so that ``make demo`` and the unit tests need no grid
tools.  Never use it for anything but a demonstration or a test: its keys live in memory
and on disk unprotected beyond mode 0600.
"""

from __future__ import annotations

import datetime
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from pilotid.identity.credfile import write_private

PROXY_CERT_INFO_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
# DER of ProxyPolicy's policyLanguage, RFC 3820 section 3.8
_INHERIT_ALL = bytes.fromhex("06082b06010505071501")
_LIMITED = bytes.fromhex("060b2b060104019b5001010109")


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def name_from_slash(dn: str) -> x509.Name:
    """Turn ``/DC=org/DC=example/CN=Alice`` into an ``x509.Name`` (in that order)."""
    oids = {"DC": NameOID.DOMAIN_COMPONENT, "C": NameOID.COUNTRY_NAME, "O": NameOID.ORGANIZATION_NAME,
            "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME,
            "L": NameOID.LOCALITY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME}
    parts = [p for p in dn.split("/") if p]
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in (p.split("=", 1) for p in parts)])


def _new_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Identity:
    """An end-entity certificate and its key, as issued by ``TestCA``."""

    dn: str
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    def write(self, directory: Path, stem: str) -> "tuple[Path, Path]":
        """Write ``<stem>.pem`` (0644) and ``<stem>.key`` (0600); return both paths."""
        cert_path = Path(directory) / f"{stem}.pem"
        cert_path.write_bytes(_pem_cert(self.certificate))
        return cert_path, write_private(Path(directory) / f"{stem}.key", _pem_key(self.key))


class TestCA:
    """A throwaway CA that issues user certificates and signs proxies."""

    __test__ = False  # not a pytest test class

    def __init__(self, dn: str = "/DC=org/DC=example/CN=pilotid Test CA", bits: int = 2048) -> None:
        self.dn = dn
        self.key = _new_key(bits)
        now = _utcnow()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name_from_slash(dn)).issuer_name(name_from_slash(dn))
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def issue(self, dn: str, bits: int = 2048, days: int = 7,
              server_name: Optional[str] = None) -> Identity:
        """Issue an end-entity certificate for ``dn`` (a host certificate if ``server_name``)."""
        key = _new_key(bits)
        now = _utcnow()
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(name_from_slash(dn)).issuer_name(self.certificate.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, True, False, False, False, False, False),
                           critical=True)
            # as real CAs do; voms-proxy-fake refuses certificates without a key identifier
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        if server_name:
            usage.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(server_name)]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        return Identity(dn, builder.sign(self.key, hashes.SHA256()), key)

    def write_trust_dir(self, directory: Path) -> Path:
        """Write the CA in OpenSSL hashed form (``<hash>.0``) plus a signing policy."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stem = _subject_hash(self.certificate)
        (directory / f"{stem}.0").write_bytes(_pem_cert(self.certificate))
        (directory / f"{stem}.signing_policy").write_text(
            f"access_id_CA X509 '{self.dn}'\npos_rights globus CA:sign\n"
            f"cond_subjects globus '\"*\"'\n")
        return directory


def _subject_hash(cert: x509.Certificate) -> str:
    """OpenSSL's ``-subject_hash`` of ``cert``, through pyOpenSSL."""
    from OpenSSL import crypto

    loaded = crypto.load_certificate(crypto.FILETYPE_PEM, _pem_cert(cert))
    return "%08x" % loaded.subject_name_hash()


def make_proxy(issuer: Identity, chain: List[x509.Certificate] = (),  # type: ignore[assignment]
               hours: float = 12, rfc: bool = True, limited: bool = False,
               bits: int = 2048, not_after: Optional[datetime.datetime] = None) -> bytes:
    """Sign a proxy of ``issuer`` and return the PEM file: proxy, its key, then the chain.

    ``issuer`` may itself be a proxy (``Identity`` of the previous proxy) with ``chain`` the
    certificates above it.  ``not_after`` overrides ``hours`` (use a past time for an
    expired proxy).
    """
    key = _new_key(bits)
    now = _utcnow()
    end = not_after or now + datetime.timedelta(hours=hours)
    if rfc:
        last = x509.NameAttribute(NameOID.COMMON_NAME, str(secrets.randbelow(2**31 - 1) + 1))
    else:
        last = x509.NameAttribute(NameOID.COMMON_NAME, "limited proxy" if limited else "proxy")
    subject = x509.Name(list(issuer.certificate.subject) + [last])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer.certificate.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(min(now - datetime.timedelta(minutes=5), end - datetime.timedelta(minutes=1)))
        .not_valid_after(end)
        .add_extension(x509.KeyUsage(True, False, True, True, False, False, False, False, False),
                       critical=True)
    )
    if rfc:
        language = _LIMITED if limited else _INHERIT_ALL
        info = b"\x30" + bytes([len(language) + 2]) + b"\x30" + bytes([len(language)]) + language
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PROXY_CERT_INFO_OID, info), critical=True)
    proxy = builder.sign(issuer.key, hashes.SHA256())
    parts = [_pem_cert(proxy), _pem_key(key), _pem_cert(issuer.certificate)]
    parts += [_pem_cert(c) for c in chain]
    return b"".join(parts)
