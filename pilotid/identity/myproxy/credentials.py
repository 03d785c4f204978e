"""The X.509 side of MyProxy: what a client authenticates with, and what it gets or makes.

``ClientCredential`` is what the pilot or user presents over TLS (a proxy, or a certificate
and its key, with the chain above it); ``RetrievedProxy`` is what a GET returns (new proxy,
its key, the chain) and how it is written as a Globus proxy file.  ``new_key`` and
``certificate_request`` make what a GET sends; ``sign_proxy`` makes the proxy a PUT
delegates.  Key and certificate work is done with ``cryptography``.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from pilotid.errors import (
    CredentialServerError,
    ProxyExpiredError,
    ProxyFileError,
    ProxyKeyError,
)
from pilotid.identity.credfile import write_private
from pilotid.identity.default_proxy import default_proxy_path
from pilotid.identity.dn import slash_dn
from pilotid.identity.myproxy.wire import DECODE_ERRORS, Passphrase, decoded

DEFAULT_KEY_BITS = 2048

PROXY_CERT_INFO_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
_INHERIT_ALL_OID = bytes.fromhex("06082b06010505071501")     # id-ppl-inheritAll
_LIMITED_OID = bytes.fromhex("060b2b060104019b5001010109")   # Globus limited proxy

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


def is_proxy(certificate: x509.Certificate) -> bool:
    """True for an RFC 3820 proxy (ProxyCertInfo) or a legacy Globus proxy."""
    try:
        certificate.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
        return True
    except x509.ExtensionNotFound:
        pass
    rdns = certificate.subject.rdns
    if len(rdns) < 2 or x509.Name(rdns[:-1]) != certificate.issuer:
        return False
    last = list(rdns[-1])
    return len(last) == 1 and last[0].oid == NameOID.COMMON_NAME


def identity_of(chain: Sequence[x509.Certificate]) -> str:
    """The identity DN of a chain: the subject of its first non-proxy certificate."""
    for certificate in chain:
        if not is_proxy(certificate):
            return slash_dn(certificate.subject)
    return slash_dn(chain[-1].subject) if chain else ""


def _not_after(certificate: x509.Certificate) -> datetime.datetime:
    return certificate.not_valid_after_utc


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


_PEM_KEY = re.compile(rb"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.+?-----END \1PRIVATE KEY-----",
                      re.DOTALL)


def _pem_key(key: PrivateKey, passphrase: Optional[Passphrase] = None) -> bytes:
    if passphrase:
        encryption: serialization.KeySerializationEncryption = \
            serialization.BestAvailableEncryption(passphrase.reveal().encode("utf-8"))
        key_format = serialization.PrivateFormat.PKCS8
    else:
        encryption = serialization.NoEncryption()
        key_format = serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, key_format, encryption)


def _pem_cert(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _same_key(certificate: x509.Certificate, key: PrivateKey) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    return (certificate.public_key().public_bytes(der, spki)
            == key.public_key().public_bytes(der, spki))


@dataclass(frozen=True)
class ClientCredential:
    """What a client authenticates with over TLS: a certificate, its key and its chain.

    A proxy file gives the proxy, its key and the certificates above it; a certificate and
    key pair gives the end-entity certificate (and any chain in the certificate file).
    ``origin`` says where it came from, for messages; ``path`` is the file it was read
    from (the certificate file for a pair).
    """

    certificate: x509.Certificate
    key: PrivateKey
    chain: Tuple[x509.Certificate, ...] = ()
    origin: str = "credential"
    path: Optional[Path] = None

    def __repr__(self) -> str:
        return f"ClientCredential({self.subject!r}, origin={self.origin!r})"

    def pem(self, passphrase: Optional[Passphrase] = None) -> bytes:
        """Certificate, key, then chain, as PEM (what STORE sends); with ``passphrase`` the
        key is encrypted with it."""
        return (_pem_cert(self.certificate) + _pem_key(self.key, passphrase)
                + b"".join(_pem_cert(c) for c in self.chain))

    @property
    def subject(self) -> str:
        """The subject DN of the certificate (a proxy's own subject)."""
        return slash_dn(self.certificate.subject)

    @property
    def identity(self) -> str:
        """The identity DN: the first non-proxy subject in the chain."""
        return identity_of((self.certificate,) + self.chain)

    @property
    def not_after(self) -> datetime.datetime:
        """When the first certificate of the chain to expire expires."""
        return min(_not_after(c) for c in (self.certificate,) + self.chain)

    @classmethod
    def from_pem(cls, data: bytes, key_data: Optional[bytes] = None,
                 origin: str = "credential") -> "ClientCredential":
        """Parse PEM: certificates (leaf first) and an unencrypted key (from ``key_data``
        if given, else from ``data``).

        Raises ``ProxyFileError`` when there is no certificate, ``ProxyKeyError`` when the
        key is missing, encrypted or does not match the first certificate.
        """
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except (ValueError, x509.InvalidVersion):
            raise ProxyFileError(f"{origin} holds no PEM certificate: give a proxy "
                                 "(grid-proxy-init) or a certificate and its key") from None
        match = _PEM_KEY.search(data if key_data is None else key_data)
        if not match:
            raise ProxyKeyError(f"{origin} has no private key: a proxy file holds proxy, "
                                "key and chain; for a certificate give its key file too")
        if b"ENCRYPTED" in match.group(0):
            raise ProxyKeyError(f"the private key of {origin} is encrypted: make a proxy "
                                "with grid-proxy-init and use that instead")
        try:
            key = serialization.load_pem_private_key(match.group(0), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise ProxyKeyError(f"cannot read the private key of {origin}: {error}") from None
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
            raise ProxyKeyError(f"the key of {origin} is neither RSA nor EC")
        try:
            for certificate in certificates:
                decoded(certificate)
            same = _same_key(certificates[0], key)
        except DECODE_ERRORS as error:
            raise ProxyFileError(f"{origin} holds a damaged certificate ({error})") from None
        if not same:
            raise ProxyKeyError(f"the private key in {origin} does not belong to its "
                                "first certificate")
        return cls(certificates[0], key, tuple(certificates[1:]), origin)

    @classmethod
    def load(cls, cert_path: Union[str, Path],
             key_path: Optional[Union[str, Path]] = None) -> "ClientCredential":
        """Load a proxy file, or a certificate file and its key file."""
        data = _read_file(Path(cert_path), "credential")
        key_data = _read_file(Path(key_path), "key") if key_path else None
        origin = str(cert_path) if key_path is None else f"{cert_path} (key {key_path})"
        return dataclasses.replace(cls.from_pem(data, key_data, origin), path=Path(cert_path))

    @classmethod
    def from_environment(cls, environ: Optional[Mapping[str, str]] = None
                         ) -> Optional["ClientCredential"]:
        """The credential Globus tools would use, or None when there is none.

        ``X509_USER_PROXY``; else ``X509_USER_CERT`` with ``X509_USER_KEY``; else
        ``/tmp/x509up_u<uid>``; else ``~/.globus/usercert.pem`` with ``userkey.pem``.
        A variable that names a missing file is an error, not a reason to look further.
        """
        env = os.environ if environ is None else environ
        if env.get("X509_USER_PROXY"):
            return cls.load(env["X509_USER_PROXY"])
        if env.get("X509_USER_CERT") or env.get("X509_USER_KEY"):
            cert, key = env.get("X509_USER_CERT"), env.get("X509_USER_KEY")
            if not (cert and key):
                raise ProxyFileError("X509_USER_CERT and X509_USER_KEY must be set together")
            return cls.load(cert, key)
        default_proxy = default_proxy_path()
        if default_proxy.is_file():
            return cls.load(default_proxy)
        home = Path(env.get("HOME") or os.path.expanduser("~"))
        cert_file, key_file = home / ".globus/usercert.pem", home / ".globus/userkey.pem"
        if cert_file.is_file() and key_file.is_file():
            return cls.load(cert_file, key_file)
        return None


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise ProxyFileError(f"cannot read {what} file {path}: {error.strerror}") from None


@dataclass(frozen=True)
class RetrievedProxy:
    """What a GET returns: the new proxy, its private key, and the chain above it."""

    certificates: Tuple[x509.Certificate, ...]
    key: PrivateKey = field(repr=False)

    @classmethod
    def from_chain(cls, chain: Sequence[x509.Certificate], key: PrivateKey,
                   server: object) -> "RetrievedProxy":
        """Check what ``server`` returned for a request made with ``key`` (the first
        certificate is for that key, each is issued by the next) and keep it.

        Raises ``CredentialServerError`` naming the server otherwise.
        """
        if not _same_key(chain[0], key):
            raise CredentialServerError(f"MyProxy server {server} returned a certificate for "
                                        "another key than the one requested")
        for child, parent in zip(chain, chain[1:]):
            if child.issuer != parent.subject:
                raise CredentialServerError(
                    f"MyProxy server {server} returned a broken chain: "
                    f"{slash_dn(child.subject)} is not issued by {slash_dn(parent.subject)}")
        return cls(tuple(chain), key)

    @property
    def certificate(self) -> x509.Certificate:
        """The new proxy certificate."""
        return self.certificates[0]

    @property
    def subject(self) -> str:
        """The new proxy's subject DN."""
        return slash_dn(self.certificate.subject)

    @property
    def identity(self) -> str:
        """The user's identity DN (first non-proxy subject)."""
        return identity_of(self.certificates)

    @property
    def not_after(self) -> datetime.datetime:
        """When the proxy stops being usable (the earliest end in its chain)."""
        return min(_not_after(c) for c in self.certificates)

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        """How long the proxy is still valid (negative once expired)."""
        return self.not_after - (now or _utcnow())

    def pem(self) -> bytes:
        """The proxy file: proxy certificate, its key, then the chain (Globus layout)."""
        return (_pem_cert(self.certificate) + _pem_key(self.key)
                + b"".join(_pem_cert(c) for c in self.certificates[1:]))

    def write(self, path: Union[str, Path]) -> Path:
        """Write ``pem()`` to a new 0600 file at ``path`` (never over an existing one)."""
        return write_private(Path(path), self.pem())


def _proxy_cert_info(limited: bool) -> bytes:
    language = _LIMITED_OID if limited else _INHERIT_ALL_OID
    policy = b"\x30" + bytes([len(language)]) + language
    return b"\x30" + bytes([len(policy)]) + policy


def sign_proxy(issuer: ClientCredential, public_key, lifetime: int,
               limited: bool = False) -> x509.Certificate:
    """Sign a proxy of ``issuer`` for ``public_key``, valid ``lifetime`` seconds (never
    beyond the issuer's own chain).

    The proxy is of the issuer's kind: RFC 3820 (ProxyCertInfo, ``CN=<serial>``) unless the
    issuer is a legacy proxy (``CN=proxy`` / ``CN=limited proxy``); a proxy of a limited
    proxy is limited too.
    """
    now = _utcnow()
    end = min(now + datetime.timedelta(seconds=lifetime), issuer.not_after)
    if end <= now:
        raise ProxyExpiredError(f"{issuer.origin} has expired ({issuer.not_after:%Y-%m-%d %H:%M} "
                                "UTC): renew it before delegating")
    legacy = is_proxy(issuer.certificate) and not _has_proxy_cert_info(issuer.certificate)
    issuer_cn = issuer.certificate.subject.rdns[-1]
    limited = limited or any(a.value == "limited proxy" for a in issuer_cn) or (
        _has_proxy_cert_info(issuer.certificate) and _is_limited_rfc(issuer.certificate))
    serial = secrets.randbelow(2**31 - 2) + 1
    last = "limited proxy" if (legacy and limited) else "proxy" if legacy else str(serial)
    subject = x509.Name(list(issuer.certificate.subject.rdns)
                        + [x509.RelativeDistinguishedName(
                            [x509.NameAttribute(NameOID.COMMON_NAME, last)])])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(issuer.certificate.subject)
        .public_key(public_key).serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(end)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                       critical=True)
    )
    if not legacy:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(PROXY_CERT_INFO_OID, _proxy_cert_info(limited)),
            critical=True)
    return builder.sign(issuer.key, hashes.SHA256())


def _has_proxy_cert_info(certificate: x509.Certificate) -> bool:
    try:
        certificate.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
        return True
    except x509.ExtensionNotFound:
        return False


def _is_limited_rfc(certificate: x509.Certificate) -> bool:
    ext = certificate.extensions.get_extension_for_oid(PROXY_CERT_INFO_OID)
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    return _LIMITED_OID in raw


def new_key(bits: int = DEFAULT_KEY_BITS) -> rsa.RSAPrivateKey:
    """A fresh RSA key for a GET (generate it ahead of time to keep it off the critical path)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def certificate_request(key: PrivateKey) -> bytes:
    """The DER certificate request a GET sends (the server sets the subject itself)."""
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
        key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.DER)
