"""A native MyProxy client: the MYPROXYv2 protocol over TLS, with pyOpenSSL and cryptography.

The pieces, in the order a request goes through them:

* the **wire format** (``build_request``, ``parse_reply``, ``read_reply``, ``read_chain``,
  ``encode_chain``): NUL-terminated ``KEY=value`` lines one way, the same plus
  count-prefixed DER certificate chains the other way;
* the **credentials** on either side: ``ClientCredential`` (what the pilot or user
  authenticates with: a proxy, or a certificate and key) and ``RetrievedProxy`` (what a
  GET returns: new proxy, its key, and the chain above it);
* the **channel** (``_Channel``): one TLS connection with connect and read timeouts, the
  server verified against the CA directory and its identity checked as MyProxy clients do;
* the **client** (``MyProxyClient``): GET, INFO, PUT, STORE, DESTROY and GET_TRUSTROOTS, with
  bounded retries for connection-level failures and never for a refusal.

Errors: a refusal by the server (policy, passphrase, unknown credential) is a
``CredentialRefusedError`` carrying the server's own words; a server that cannot be
reached, does not answer in time, fails TLS or answers nonsense is a ``CredentialServerError``.
Nothing else escapes from the wire-format parsers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime
import enum
import errno
import ipaddress
import logging
import os
import re
import secrets
import select
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier
from OpenSSL import SSL, crypto

from pilotid.errors import (
    CredentialError,
    CredentialRefusedError,
    CredentialServerError,
    ProxyExpiredError,
    ProxyFileError,
    ProxyKeyError,
)
from pilotid.identity.credfile import write_private
from pilotid.identity.proxy import normalise_dn, slash_dn

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "MYPROXYv2"
DEFAULT_PORT = 7512
DEFAULT_LIFETIME = 12 * 3600           # what myproxy-logon asks for without -t
DEFAULT_STORED_LIFETIME = 7 * 24 * 3600  # myproxy-init -c default (one week)
DEFAULT_KEY_BITS = 2048
#: Largest reply pilotid accepts (trust roots of a big CA bundle fit easily).
MAX_REPLY_BYTES = 16 * 1024 * 1024
MAX_CERT_BYTES = 64 * 1024

PROXY_CERT_INFO_OID = ObjectIdentifier("1.3.6.1.5.5.7.1.14")
_INHERIT_ALL_OID = bytes.fromhex("06082b06010505071501")     # id-ppl-inheritAll
_LIMITED_OID = bytes.fromhex("060b2b060104019b5001010109")   # Globus limited proxy

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


class Command(enum.IntEnum):
    """MYPROXYv2 command numbers (``COMMAND=``)."""

    GET = 0
    PUT = 1
    INFO = 2
    DESTROY = 3
    CHANGE_PASSPHRASE = 4
    STORE = 5
    RETRIEVE = 6
    GET_TRUSTROOTS = 7


class ResponseType(enum.IntEnum):
    """MYPROXYv2 response types (``RESPONSE=``)."""

    OK = 0
    ERROR = 1
    AUTHORIZATION = 2


class Passphrase:
    """A MyProxy passphrase that never shows in logs, ``repr`` or ``str``.

    ``reveal()`` is called only where the request bytes are built.
    """

    __slots__ = ("_secret",)

    def __init__(self, secret: str) -> None:
        if "\n" in secret or "\0" in secret:
            raise CredentialError("a MyProxy passphrase cannot contain a newline or NUL")
        self._secret = secret

    def reveal(self) -> str:
        """The passphrase itself, for the request on the wire only."""
        return self._secret

    def __bool__(self) -> bool:
        return bool(self._secret)

    def __repr__(self) -> str:
        return "Passphrase('****')"

    __str__ = __repr__

    def __reduce__(self):  # never pickled into a log or a cache by accident
        raise TypeError("a Passphrase cannot be pickled")


# --------------------------------------------------------------------------- wire format

def _check_value(name: str, value: str) -> str:
    if "\n" in value or "\0" in value:
        raise CredentialError(f"MyProxy {name} {value!r} contains a newline or NUL; "
                              "remove it (the protocol is line based)")
    return value


def build_request(command: Command, username: str = "",
                  passphrase: Optional[Passphrase] = None, lifetime: int = 0,
                  fields: Sequence[Tuple[str, str]] = ()) -> bytes:
    """Return the NUL-terminated MYPROXYv2 request for ``command``.

    ``fields`` are the optional lines in order (``CRED_NAME``, ``CRED_DESC``,
    ``RETRIEVER_TRUSTED``, ``TRUSTED_CERTS``...).  A value with a newline or NUL is refused
    (``CredentialError``): it would smuggle another field into the request.
    """
    if lifetime < 0:
        raise CredentialError(f"a MyProxy lifetime cannot be negative ({lifetime} s)")
    lines = [
        f"VERSION={PROTOCOL_VERSION}",
        f"COMMAND={int(command)}",
        f"USERNAME={_check_value('username', username)}",
        f"PASSPHRASE={passphrase.reveal() if passphrase else ''}",
        f"LIFETIME={int(lifetime)}",
    ]
    for key, value in fields:
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            raise CredentialError(f"not a MyProxy request field name: {key!r}")
        lines.append(f"{key}={_check_value(key.lower(), value)}")
    return ("\n".join(lines) + "\n").encode("utf-8") + b"\0"


def redact_request(request: bytes) -> str:
    """The request as text for a debug log, with the passphrase replaced by ``****``."""
    text = request.rstrip(b"\0").decode("utf-8", "replace")
    return re.sub(r"(?m)^(PASSPHRASE|NEW_PHRASE)=.+$", r"\1=****", text)


@dataclass(frozen=True)
class Reply:
    """One server reply: its type, its ``KEY=value`` fields in order, and its error text.

    ``error`` joins every ``ERROR=`` line with a newline, as the server split them.
    """

    response: ResponseType
    fields: Tuple[Tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """True for ``RESPONSE=0``."""
        return self.response is ResponseType.OK

    @property
    def error(self) -> str:
        """The server's error message (all ``ERROR=`` lines, newline-joined)."""
        return "\n".join(v for k, v in self.fields if k == "ERROR").strip()

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of ``key``, or ``default``."""
        for k, v in self.fields:
            if k == key:
                return v
        return default

    def values(self, key: str) -> List[str]:
        """Every value of ``key``, in order."""
        return [v for k, v in self.fields if k == key]


def parse_reply(data: bytes) -> Reply:
    """Parse one reply message (without or with its terminating NUL).

    Raises ``CredentialServerError`` for anything that is not a MYPROXYv2 reply: wrong
    version, no or unknown ``RESPONSE``, undecodable bytes.
    """
    if data.endswith(b"\0"):
        data = data[:-1]
    if b"\0" in data:
        raise CredentialServerError("MyProxy server sent a reply with a NUL inside it; "
                                    "is this a MyProxy server?")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            raise CredentialServerError("MyProxy server sent an undecodable reply") from None
    fields: List[Tuple[str, str]] = []
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise CredentialServerError(f"MyProxy server sent a malformed reply line "
                                        f"{_preview(line)}; is this a MyProxy server?")
        fields.append((key, value))
    version = next((v for k, v in fields if k == "VERSION"), None)
    if version != PROTOCOL_VERSION:
        raise CredentialServerError(
            f"MyProxy server answered with protocol version {version!r}, not "
            f"{PROTOCOL_VERSION}; is this a MyProxy server?")
    kind = next((v for k, v in fields if k == "RESPONSE"), None)
    try:
        response = ResponseType(int(kind or ""))
    except ValueError:
        raise CredentialServerError(f"MyProxy server sent an unknown RESPONSE={kind!r}") from None
    return Reply(response, tuple(fields))


def _preview(text: Union[str, bytes], limit: int = 60) -> str:
    shown = text[:limit]
    return repr(shown) + ("..." if len(text) > limit else "")


class ByteSource:
    """What the readers below read from: ``read_exact(n)`` and ``read_until_nul(limit)``.

    ``BufferSource`` serves bytes already in memory; the TLS channel serves the network.
    Both raise ``CredentialServerError`` when the data ends too early.
    """

    def read_exact(self, count: int) -> bytes:  # pragma: no cover - interface
        """Return exactly ``count`` bytes."""
        raise NotImplementedError

    def read_until_nul(self, limit: int) -> bytes:  # pragma: no cover - interface
        """Return the bytes up to and including the next NUL (at most ``limit``)."""
        raise NotImplementedError


class BufferSource(ByteSource):
    """A ``ByteSource`` over bytes in memory (for parsing a recorded conversation)."""

    def __init__(self, data: bytes, what: str = "reply") -> None:
        self._data = bytes(data)
        self._pos = 0
        self._what = what

    @property
    def rest(self) -> bytes:
        """The bytes not read yet."""
        return self._data[self._pos:]

    def read_exact(self, count: int) -> bytes:
        """Return exactly ``count`` bytes, or raise ``CredentialServerError``."""
        end = self._pos + count
        if end > len(self._data):
            raise CredentialServerError(f"MyProxy {self._what} ended after "
                                        f"{len(self._data)} bytes, in the middle of a message")
        chunk = self._data[self._pos:end]
        self._pos = end
        return chunk

    def read_until_nul(self, limit: int) -> bytes:
        """Return the bytes up to and including the next NUL, or raise."""
        end = self._data.find(b"\0", self._pos)
        if end < 0 or end + 1 - self._pos > limit:
            if len(self._data) - self._pos > limit:
                raise CredentialServerError(f"MyProxy {self._what} is longer than {limit} bytes")
            raise CredentialServerError(f"MyProxy {self._what} ended before its terminating NUL")
        chunk = self._data[self._pos:end + 1]
        self._pos = end + 1
        return chunk


def read_reply(source: ByteSource, limit: int = MAX_REPLY_BYTES) -> Reply:
    """Read and parse the next reply from ``source``.

    Empty messages are skipped: over TLS 1.3 myproxy-server sends one stray NUL before its
    first reply.
    """
    for _ in range(16):
        message = source.read_until_nul(limit)
        if message != b"\0":
            return parse_reply(message)
    raise CredentialServerError("MyProxy server sent only empty messages")


def _der_length(source: ByteSource) -> Tuple[bytes, int]:
    """Read a DER SEQUENCE header; return it and the length of the contents."""
    header = source.read_exact(2)
    if header[0] != 0x30:
        raise CredentialServerError(
            f"MyProxy server sent a certificate that is not DER (starts with 0x{header[0]:02x})")
    first = header[1]
    if first < 0x80:
        return header, first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise CredentialServerError("MyProxy server sent a certificate with a bad DER length")
    extra = source.read_exact(count)
    return header + extra, int.from_bytes(extra, "big")


def read_chain(source: ByteSource) -> List[x509.Certificate]:
    """Read a count-prefixed chain: one byte N, then N DER certificates back to back.

    The first certificate is the newly signed one.  Raises ``CredentialServerError``
    for a zero count, a truncated or oversized certificate, or one that does not parse.
    """
    count = source.read_exact(1)[0]
    if count == 0:
        raise CredentialServerError("MyProxy server sent an empty certificate chain")
    chain = []
    for index in range(count):
        header, length = _der_length(source)
        if length > MAX_CERT_BYTES:
            raise CredentialServerError(
                f"MyProxy server sent a certificate of {length} bytes (more than {MAX_CERT_BYTES})")
        der = header + source.read_exact(length)
        try:
            certificate = x509.load_der_x509_certificate(der)
            # cryptography decodes these only when first used: decode them here, so that
            # a damaged certificate is this error and not a ValueError later
            certificate.extensions  # noqa: B018
            certificate.public_key()
            slash_dn(certificate.subject)
            slash_dn(certificate.issuer)
        except (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension,
                UnsupportedAlgorithm) as error:
            raise CredentialServerError(
                f"MyProxy server sent certificate {index + 1} of {count} that does not "
                f"parse: {error}") from None
        chain.append(certificate)
    return chain


def parse_chain(data: bytes) -> Tuple[List[x509.Certificate], bytes]:
    """Parse a count-prefixed chain from ``data``; return it and the bytes after it."""
    source = BufferSource(data, "certificate chain")
    chain = read_chain(source)
    return chain, source.rest


def encode_chain(certificates: Sequence[x509.Certificate]) -> bytes:
    """The count-prefixed DER chain a client sends back after signing a PUT request."""
    if not 0 < len(certificates) < 256:
        raise CredentialError(f"cannot send a chain of {len(certificates)} certificates")
    return bytes([len(certificates)]) + b"".join(
        c.public_bytes(serialization.Encoding.DER) for c in certificates)


# --------------------------------------------------------------------------- X.509 helpers

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
            # decoded when first used: a damaged certificate fails here, as ProxyFileError
            for certificate in certificates:
                certificate.public_key()
                slash_dn(certificate.subject)
                slash_dn(certificate.issuer)
                certificate.extensions  # noqa: B018
            same = _same_key(certificates[0], key)
        except (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
                x509.DuplicateExtension) as error:
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
        default_proxy = Path(f"/tmp/x509up_u{os.geteuid()}")  # noqa: S108 - Globus' default
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


@dataclass(frozen=True)
class StoredCredential:
    """One credential as INFO describes it (``CRED_*`` or ``CRED_<name>_*`` fields).

    ``name`` is None for the default (unnamed) credential.  Policies are the server's
    regular expressions, as stored.
    """

    name: Optional[str]
    owner: str
    start: datetime.datetime
    end: datetime.datetime
    description: Optional[str] = None
    retrievers: Optional[str] = None
    retriever_trusted: Optional[str] = None
    key_retrievers: Optional[str] = None
    renewers: Optional[str] = None
    lock_message: Optional[str] = None

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        """How long the stored credential is still valid."""
        return self.end - (now or _utcnow())

    def as_dict(self) -> Dict[str, object]:
        """JSON-ready fields (times as ISO 8601 UTC)."""
        return {"name": self.name, "owner": self.owner, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "description": self.description,
                "retrievers": self.retrievers, "retriever_trusted": self.retriever_trusted,
                "key_retrievers": self.key_retrievers, "renewers": self.renewers,
                "lock_message": self.lock_message,
                "time_left": int(self.time_left().total_seconds())}


_INFO_FIELDS = {"DESC": "description", "OWNER": "owner", "RETRIEVER": "retrievers",
                "RETRIEVER_TRUSTED": "retriever_trusted", "KEYRETRIEVERS": "key_retrievers",
                "RENEWER": "renewers", "LOCKMSG": "lock_message"}


def _epoch(value: Optional[str], key: str) -> datetime.datetime:
    if value is None or not value.strip().isdigit():
        raise CredentialServerError(f"MyProxy server sent {key}={value!r}, not a time")
    try:
        return datetime.datetime.fromtimestamp(int(value), datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise CredentialServerError(f"MyProxy server sent {key}={value!r}, out of range") from None


def parse_info(reply: Reply) -> List[StoredCredential]:
    """The credentials an INFO reply describes: the first one's fields are ``CRED_<FIELD>``,
    the others (named in ``ADDL_CREDS``) ``CRED_<name>_<FIELD>``."""
    if reply.get("CRED_START_TIME") is None:
        return []
    names: List[Optional[str]] = [reply.get("CRED_NAME")]
    extra = reply.get("ADDL_CREDS")
    if extra:
        names.extend(n for n in extra.split(",") if n)
    found = []
    for index, name in enumerate(names):
        prefix = "CRED_" if index == 0 else f"CRED_{name}_"
        values = {attr: reply.get(prefix + wire) for wire, attr in _INFO_FIELDS.items()}
        found.append(StoredCredential(
            name=name, owner=values.pop("owner") or "",
            start=_epoch(reply.get(prefix + "START_TIME"), prefix + "START_TIME"),
            end=_epoch(reply.get(prefix + "END_TIME"), prefix + "END_TIME"),
            **values))
    return found


_SAFE_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


def parse_trustroots(reply: Reply) -> Dict[str, bytes]:
    """The files of a trust-roots reply (``TRUSTED_CERTS=a,b`` and ``FILEDATA_a=<base64>``).

    Names that could escape a directory (``/``, ``..``, leading dot) are dropped with a
    warning; bad base64 is a ``CredentialServerError``.
    """
    listed = reply.get("TRUSTED_CERTS")
    files: Dict[str, bytes] = {}
    if not listed:
        return files
    for name in listed.split(","):
        if not name:
            continue
        if not _SAFE_FILENAME.fullmatch(name):
            log.warning("ignoring trust root file with an unsafe name %r", name)
            continue
        data = reply.get(f"FILEDATA_{name}")
        if data is None:
            raise CredentialServerError(f"MyProxy server listed trust root {name} "
                                        "but sent no FILEDATA for it")
        try:
            files[name] = base64.b64decode(data.encode("ascii"), validate=False)
        except (binascii.Error, UnicodeEncodeError):
            raise CredentialServerError(f"MyProxy server sent bad base64 for {name}") from None
    return files


# --------------------------------------------------------------------------- proxy signing

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


# --------------------------------------------------------------------------- the channel

def default_ca_dir(environ: Optional[Mapping[str, str]] = None) -> Path:
    """The trusted CA directory Globus tools use: ``X509_CERT_DIR``, else
    ``~/.globus/certificates`` if it exists, else ``/etc/grid-security/certificates``."""
    env = os.environ if environ is None else environ
    if env.get("X509_CERT_DIR"):
        return Path(env["X509_CERT_DIR"])
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    if os.geteuid() != 0 and (home / ".globus/certificates").is_dir():
        return home / ".globus/certificates"
    return Path("/etc/grid-security/certificates")


_VERIFY_REASONS = {
    2: "unable to get the issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "unable to get the local issuer certificate",
    21: "unable to verify the first certificate",
    24: "invalid CA certificate",
    26: "unsupported certificate purpose",
}


class _TransientFailure(Exception):
    """A connection-level failure worth another try (never a refusal, never TLS trust)."""


@dataclass(frozen=True)
class ServerAddress:
    """One MyProxy server: ``host`` and ``port``."""

    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(spec: str, port: int = DEFAULT_PORT) -> List[ServerAddress]:
    """``host``, ``host:port`` or a comma-separated list of them, as ``MYPROXY_SERVER``."""
    servers = []
    for item in (p.strip() for p in spec.split(",")):
        if not item:
            continue
        host, item_port = item, port
        if item.startswith("["):  # [IPv6]:port
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                item_port = _port(rest[1:], item)
        elif item.count(":") == 1:
            host, _, text = item.partition(":")
            item_port = _port(text, item)
        servers.append(ServerAddress(host, item_port))
    if not servers:
        raise CredentialError(f"no MyProxy server in {spec!r}: give host or host:port")
    return servers


def _port(text: str, item: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise CredentialError(f"bad port in MyProxy server {item!r}")
    return int(text)


def expected_server_names(host: str) -> Tuple[str, ...]:
    """The last-CN values a server's certificate may carry for ``host``."""
    host = host.lower().rstrip(".")
    return (host, f"host/{host}", f"myproxy/{host}")


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    if pattern.startswith("*.") and "." in host:
        return host.split(".", 1)[1] == pattern[2:] and pattern.count(".") >= 2
    return False


def check_server_identity(certificate: x509.Certificate, host: str,
                          server_dn: Optional[str] = None) -> None:
    """Accept the server's certificate for ``host`` as MyProxy clients do, or raise.

    With ``server_dn`` (``MYPROXY_SERVER_DN``) the subject must be exactly that DN.
    Otherwise the last CN must be ``<host>``, ``host/<host>`` or ``myproxy/<host>``, or a
    subjectAltName DNS entry (or IP address) must match ``host``.
    """
    subject = slash_dn(certificate.subject)
    if server_dn:
        if subject == normalise_dn(server_dn.strip()):
            return
        raise CredentialServerError(
            f"MyProxy server {host} presents {subject}, not the expected "
            f"MYPROXY_SERVER_DN {server_dn}; if that identity is acceptable, set "
            f"MYPROXY_SERVER_DN=\"{subject}\"")
    cns = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns and str(cns[-1].value).lower() in expected_server_names(host):
        return
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        if any(_dns_match(name, host) for name in san.get_values_for_type(x509.DNSName)):
            return
        try:
            address = ipaddress.ip_address(host.strip("[]"))
            if address in san.get_values_for_type(x509.IPAddress):
                return
        except ValueError:
            pass
    raise CredentialServerError(
        f"MyProxy server {host} presents {subject}, which is not /CN={host}, "
        f"/CN=host/{host} or /CN=myproxy/{host} and has no subjectAltName for {host}; "
        f"if that identity is acceptable, set MYPROXY_SERVER_DN=\"{subject}\"")


class _Channel(ByteSource):
    """One authenticated TLS connection to a MyProxy server, with timeouts on every wait."""

    def __init__(self, address: ServerAddress, context: SSL.Context, read_timeout: float,
                 verify_log: List[Tuple[int, int, str, str]], ca_dir: Path) -> None:
        self.address = address
        self.ca_dir = ca_dir
        self.read_timeout = read_timeout
        self._buffer = bytearray()
        self._verify_log = verify_log
        self._sock: Optional[socket.socket] = None
        self._conn: Optional[SSL.Connection] = None
        self._context = context

    # -- set-up
    def open(self, connect_timeout: float) -> None:
        """Connect and do the TLS handshake; raises ``_TransientFailure`` or a pilotid error."""
        try:
            sock = socket.create_connection((self.address.host, self.address.port),
                                            timeout=connect_timeout)
        except socket.gaierror as error:
            raise _TransientFailure(f"cannot resolve MyProxy server {self.address.host}: "
                                    f"{error.strerror}") from None
        except socket.timeout:
            raise _TransientFailure(f"MyProxy server {self.address} did not accept a "
                                    f"connection within {connect_timeout:g} s") from None
        except OSError as error:
            raise _TransientFailure(f"cannot connect to MyProxy server {self.address}: "
                                    f"{error.strerror or error}") from None
        sock.setblocking(False)
        self._sock = sock
        conn = SSL.Connection(self._context, sock)
        conn.set_connect_state()
        if not _is_ip(self.address.host):
            conn.set_tlsext_host_name(self.address.host.encode("idna"))
        self._conn = conn
        self._io(conn.do_handshake, "the TLS handshake", handshake=True)

    def close(self) -> None:
        """Close the connection (no close_notify wait: the server does not send one)."""
        if self._conn is not None:
            try:
                self._conn.shutdown()
            except SSL.Error:
                pass
        if self._sock is not None:
            self._sock.close()
        self._conn = self._sock = None

    def peer_certificate(self) -> x509.Certificate:
        """The server's certificate (after the handshake)."""
        assert self._conn is not None
        cert = self._conn.get_peer_certificate(as_cryptography=True)
        if cert is None:  # pragma: no cover - VERIFY_PEER makes this impossible
            raise CredentialServerError(f"MyProxy server {self.address} sent no certificate")
        return cert

    # -- I/O with deadlines
    def _io(self, operation: Callable, what: str, handshake: bool = False):
        assert self._sock is not None
        while True:
            try:
                return operation()
            except SSL.WantReadError:
                self._wait(readable=True, what=what, handshake=handshake)
            except SSL.WantWriteError:
                self._wait(readable=False, what=what, handshake=handshake)
            except SSL.ZeroReturnError:
                raise self._closed(what, handshake) from None
            except SSL.SysCallError as error:
                code = error.args[0] if error.args else -1
                if code in (-1, 0, errno.ECONNRESET, errno.EPIPE):
                    raise self._closed(what, handshake) from None
                raise CredentialServerError(
                    f"connection to MyProxy server {self.address} failed during {what}: "
                    f"{os.strerror(code) if code > 0 else error}") from None
            except SSL.Error as error:
                raise self._tls_error(error, what, handshake) from None
            except OSError as error:
                if handshake:
                    raise _TransientFailure(f"connection to MyProxy server {self.address} "
                                            f"failed during {what}: {error.strerror}") from None
                raise CredentialServerError(f"connection to MyProxy server {self.address} "
                                            f"failed during {what}: {error.strerror}") from None

    def _wait(self, readable: bool, what: str, handshake: bool) -> None:
        assert self._sock is not None
        rlist, wlist = ([self._sock], []) if readable else ([], [self._sock])
        ready = select.select(rlist, wlist, [], self.read_timeout)
        if not any(ready):
            message = (f"MyProxy server {self.address} did not answer within "
                       f"{self.read_timeout:g} s during {what}")
            raise CredentialServerError(message)

    def _closed(self, what: str, handshake: bool) -> Exception:
        message = f"MyProxy server {self.address} closed the connection during {what}"
        if handshake:
            return _TransientFailure(message)
        return CredentialServerError(message + " (truncated reply; see the server's log)")

    def _tls_error(self, error: SSL.Error, what: str, handshake: bool) -> Exception:
        reasons = _ssl_reasons(error)
        if "certificate verify failed" in reasons:
            return CredentialServerError(self._verify_message())
        if "alert" in reasons:
            return CredentialServerError(
                f"MyProxy server {self.address} rejected the TLS connection during {what} "
                f"({reasons}): check that it trusts the CA of your certificate and that "
                "your proxy is valid")
        return CredentialServerError(
            f"TLS error with MyProxy server {self.address} during {what}: {reasons}")

    def _verify_message(self) -> str:
        detail = ""
        if self._verify_log:
            code, depth, subject, issuer = self._verify_log[0]
            reason = _VERIFY_REASONS.get(code, f"verify error {code}")
            detail = f" ({reason}: {subject}, issued by {issuer})"
        return (f"cannot verify the certificate of MyProxy server {self.address}{detail} "
                f"against the CA directory {self.ca_dir}: install the CA that issued it there "
                "(<hash>.0 and .signing_policy), or set X509_CERT_DIR to a directory "
                "that has it")

    def send(self, data: bytes, what: str = "the request") -> None:
        """Send all of ``data``."""
        assert self._conn is not None
        view = memoryview(data)
        conn = self._conn
        while view:
            chunk = view[:16384]
            sent = self._io(lambda chunk=chunk: conn.send(chunk), what)
            view = view[sent:]

    def _fill(self, what: str) -> None:
        assert self._conn is not None
        chunk = self._io(lambda: self._conn.recv(65536), what)  # type: ignore[union-attr]
        if not chunk:
            raise self._closed(what, False)
        self._buffer.extend(chunk)

    def read_exact(self, count: int, what: str = "the reply") -> bytes:
        """Return exactly ``count`` bytes from the server."""
        while len(self._buffer) < count:
            self._fill(what)
        chunk = bytes(self._buffer[:count])
        del self._buffer[:count]
        return chunk

    def read_until_nul(self, limit: int, what: str = "the reply") -> bytes:
        """Return the server's bytes up to and including the next NUL."""
        start = 0
        while True:
            end = self._buffer.find(b"\0", start)
            if end >= 0:
                chunk = bytes(self._buffer[:end + 1])
                del self._buffer[:end + 1]
                return chunk
            if len(self._buffer) > limit:
                raise CredentialServerError(f"MyProxy server {self.address} sent a reply "
                                            f"longer than {limit} bytes")
            start = len(self._buffer)
            self._fill(what)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _ssl_reasons(error: SSL.Error) -> str:
    parts = []
    for item in (error.args[0] if error.args and isinstance(error.args[0], list) else []):
        if isinstance(item, tuple) and item:
            parts.append(str(item[-1]))
    return "; ".join(parts) or str(error)


# --------------------------------------------------------------------------- the client

class MyProxyClient:
    """A MyProxy client for one server (or a comma-separated list tried in order).

    ``credential`` authenticates the client (a ``ClientCredential``; by default the one
    Globus tools would use, see ``ClientCredential.from_environment``).  ``ca_dir`` is
    the trusted CA directory (default ``X509_CERT_DIR`` and Globus' fall-backs);
    ``server_dn`` pins the server's DN (default ``MYPROXY_SERVER_DN``).  Failures to
    connect are retried ``retries`` times with exponential ``backoff`` (seconds); a
    refusal, a TLS trust failure or a timeout after the request was sent never is.
    ``anonymous`` connects without a client certificate (GET_TRUSTROOTS only).
    """

    def __init__(self, server: str, port: Optional[int] = None,
                 credential: Optional[ClientCredential] = None,
                 ca_dir: Optional[Union[str, Path]] = None, server_dn: Optional[str] = None,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0,
                 retries: int = 2, backoff: float = 0.5,
                 environ: Optional[Mapping[str, str]] = None, anonymous: bool = False) -> None:
        env = os.environ if environ is None else environ
        if port is None:
            port = int(env.get("MYPROXY_SERVER_PORT") or DEFAULT_PORT)
        self.servers = parse_servers(server, port)
        self._credential = credential
        self.anonymous = anonymous
        self._environ = env
        self.ca_dir = Path(ca_dir) if ca_dir else default_ca_dir(env)
        self.server_dn = server_dn if server_dn is not None else env.get("MYPROXY_SERVER_DN")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = max(0, int(retries))
        self.backoff = backoff

    def __repr__(self) -> str:
        return (f"MyProxyClient({','.join(map(str, self.servers))!r}, "
                f"ca_dir={str(self.ca_dir)!r})")

    # -- credential and context
    def credential(self, required: bool = True) -> Optional[ClientCredential]:
        """The client credential (loaded from the environment on first use); None for an
        ``anonymous`` client, which presents no certificate (enough for trust roots)."""
        if self.anonymous:
            if required:
                raise CredentialError("this MyProxy request needs a credential; an anonymous "
                                      "client can only fetch trust roots")
            return None
        if self._credential is None:
            self._credential = ClientCredential.from_environment(self._environ)
        if self._credential is None and required:
            raise CredentialError(
                "no credential to authenticate to the MyProxy server: set X509_USER_PROXY "
                "(or X509_USER_CERT and X509_USER_KEY), or run grid-proxy-init")
        if self._credential is not None and self._credential.not_after <= _utcnow():
            raise ProxyExpiredError(
                f"the credential to authenticate with ({self._credential.origin}) expired at "
                f"{self._credential.not_after:%Y-%m-%d %H:%M} UTC: renew it")
        return self._credential

    def _context(self, credential: Optional[ClientCredential],
                 verify_log: List[Tuple[int, int, str, str]]) -> SSL.Context:
        if not self.ca_dir.is_dir():
            raise CredentialServerError(
                f"the CA directory {self.ca_dir} does not exist: set X509_CERT_DIR to the "
                "directory with the grid CAs (or install them there)")
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(SSL.TLS1_2_VERSION)
        context.set_options(SSL.OP_NO_COMPRESSION)
        if credential is not None:
            try:
                context.use_certificate(credential.certificate)
                context.use_privatekey(credential.key)
                for certificate in credential.chain:
                    context.add_extra_chain_cert(certificate)
            except SSL.Error as error:  # OpenSSL's own policy, e.g. a key it finds too small
                raise CredentialError(
                    f"OpenSSL refuses the credential to authenticate with "
                    f"({credential.origin}) for TLS: {_ssl_reasons(error)}; use a proxy that "
                    "meets this node's OpenSSL security level (2048-bit keys)") from None
        context.load_verify_locations(None, str(self.ca_dir))
        store = context.get_cert_store()
        if store is not None:
            store.set_flags(crypto.X509StoreFlags.ALLOW_PROXY_CERTS)

        def record(conn, cert, code, depth, ok):
            if not ok:
                try:
                    c = cert.to_cryptography()
                    verify_log.append((code, depth, slash_dn(c.subject), slash_dn(c.issuer)))
                except Exception:  # noqa: BLE001 - diagnostics only
                    verify_log.append((code, depth, "?", "?"))
            return bool(ok)

        context.set_verify(SSL.VERIFY_PEER, record)
        return context

    def _connect(self, credential: Optional[ClientCredential]) -> _Channel:
        failures: List[str] = []
        for attempt in range(self.retries + 1):
            if attempt:
                delay = self.backoff * (2 ** (attempt - 1))
                log.warning("MyProxy: %s; trying again in %.1f s (%d of %d)",
                            failures[-1], delay, attempt, self.retries)
                time.sleep(delay)
            for address in self.servers:
                verify_log: List[Tuple[int, int, str, str]] = []
                channel = _Channel(address, self._context(credential, verify_log),
                                   self.read_timeout, verify_log, self.ca_dir)
                try:
                    log.debug("MyProxy: connecting to %s", address)
                    channel.open(self.connect_timeout)
                    check_server_identity(channel.peer_certificate(), address.host,
                                          self.server_dn)
                    channel.send(b"0", "the delegation flag")
                    return channel
                except _TransientFailure as failure:
                    channel.close()
                    failures.append(str(failure))
                except BaseException:
                    channel.close()
                    raise
        tries = self.retries + 1
        raise CredentialServerError(
            f"{failures[-1]} (gave up after {tries} attempt{'s' if tries > 1 else ''}); "
            "check the server name and port, and that the server is up")

    def _exchange(self, command: Command, request: bytes, body: Callable[[_Channel], object],
                  credential_required: bool = True, what: str = "") -> object:
        credential = self.credential(required=credential_required)
        channel = self._connect(credential)
        try:
            log.debug("MyProxy %s request to %s:\n%s", command.name, channel.address,
                      redact_request(request))
            channel.send(request)
            return body(channel)
        finally:
            channel.close()

    def _authorize(self, channel: _Channel, reply: Reply, passphrase: Optional[Passphrase],
                   what: str) -> Reply:
        """Answer ``RESPONSE=2`` challenges with the passphrase (method ``password``)."""
        for _ in range(4):
            if reply.response is not ResponseType.AUTHORIZATION:
                return reply
            methods = [v.split(":", 1)[0] for v in reply.values("AUTHORIZATION_DATA")]
            if "password" not in methods or not passphrase:
                return reply  # _expect_ok turns it into a clear refusal
            answer = (b"\x01\x00\x00\x00" + passphrase.reveal().encode("utf-8") + b"\0")
            channel.send(answer, "the passphrase")
            reply = read_reply(channel)
        return reply

    def _first_reply(self, channel: _Channel, passphrase: Optional[Passphrase],
                     what: str) -> Reply:
        reply = read_reply(channel)
        reply = self._authorize(channel, reply, passphrase, what)
        return self._check(channel, reply, what)

    def _check(self, channel: _Channel, reply: Reply, what: str) -> Reply:
        if reply.ok:
            return reply
        if reply.response is ResponseType.ERROR:
            words = "; ".join(line.strip() for line in reply.error.splitlines() if line.strip())
            raise CredentialRefusedError(
                f"MyProxy server {channel.address} refused {what}: "
                f"{words or 'no reason given'}")
        raise CredentialRefusedError(
            f"MyProxy server {channel.address} asks for further authorization "
            f"({', '.join(reply.values('AUTHORIZATION_DATA')) or 'unknown method'}) for {what}, "
            "which this request did not give")

    # -- commands
    def get(self, username: str, credname: Optional[str] = None,
            passphrase: Optional[Passphrase] = None, lifetime: int = DEFAULT_LIFETIME,
            key: Optional[PrivateKey] = None, key_bits: int = DEFAULT_KEY_BITS) -> RetrievedProxy:
        """Retrieve a new proxy of ``username``'s credential ``credname``.

        Without ``passphrase`` this is trusted retrieval: the server lets the client's own
        certificate retrieve it when the credential's ``RETRIEVER_TRUSTED`` policy names it.
        ``key`` may be prepared ahead (``new_key()``); otherwise one of ``key_bits`` is made.
        Raises ``CredentialRefusedError`` with the server's words, or ``CredentialServerError``.
        """
        _require_username(username)
        if lifetime <= 0:
            raise CredentialError(f"a proxy lifetime must be positive, not {lifetime} s")
        what = _describe("the retrieval of", username, credname)
        fields = [("CRED_NAME", credname)] if credname else []
        request = build_request(Command.GET, username, passphrase, lifetime, fields)
        key = key or new_key(key_bits)
        csr = certificate_request(key)

        def body(channel: _Channel) -> RetrievedProxy:
            self._first_reply(channel, passphrase, what)
            channel.send(csr, "the certificate request")
            chain = read_chain(channel)
            self._check(channel, read_reply(channel), what)
            return _assemble(chain, key, channel.address)

        proxy = self._exchange(Command.GET, request, body, what=what)
        assert isinstance(proxy, RetrievedProxy)
        log.info("MyProxy: retrieved a proxy of %s from %s (%s left)", proxy.identity,
                 ",".join(map(str, self.servers)), _hours(proxy.time_left()))
        return proxy

    def info(self, username: str, credname: Optional[str] = None) -> List[StoredCredential]:
        """Describe the credentials the client owns under ``username`` (all of them, or
        only ``credname``)."""
        _require_username(username)
        fields = [("CRED_NAME", credname)] if credname else []
        request = build_request(Command.INFO, username, None, 0, fields)
        what = _describe("information on", username, credname)

        def body(channel: _Channel) -> List[StoredCredential]:
            return parse_info(self._first_reply(channel, None, what))

        found = self._exchange(Command.INFO, request, body, what=what)
        assert isinstance(found, list)
        if credname:
            found = [c for c in found if c.name == credname]
        return found

    def store(self, username: str, credential: ClientCredential,
              credname: Optional[str] = None, description: Optional[str] = None,
              retriever_trusted: Optional[str] = None, retrievers: Optional[str] = None,
              renewers: Optional[str] = None, lifetime: int = DEFAULT_LIFETIME,
              passphrase: Optional[Passphrase] = None) -> None:
        """STORE ``credential`` (a proxy or a certificate and key) as it is, as
        ``myproxy-store`` does.

        ``lifetime`` is the longest proxy the server will hand out from it;
        ``retriever_trusted`` the policy (regex) of who may retrieve it without a
        passphrase.  With ``passphrase`` the key is stored encrypted with it.
        """
        _require_username(username)
        fields = _policy_fields(credname, description, retrievers, renewers, retriever_trusted)
        request = build_request(Command.STORE, username, passphrase, lifetime, fields)
        what = _describe("storing", username, credname)
        payload = (_pem_cert(credential.certificate) + _pem_key(credential.key, passphrase)
                   + b"".join(_pem_cert(c) for c in credential.chain) + b"\0")

        def body(channel: _Channel) -> None:
            self._first_reply(channel, passphrase, what)
            channel.send(payload, "the credential")
            self._check(channel, read_reply(channel), what)

        self._exchange(Command.STORE, request, body, what=what)
        log.info("MyProxy: stored %s for %s (%s)", credential.identity, username,
                 credname or "default credential")

    def put(self, username: str, credname: Optional[str] = None,
            description: Optional[str] = None, retriever_trusted: Optional[str] = None,
            retrievers: Optional[str] = None, renewers: Optional[str] = None,
            lifetime: int = DEFAULT_LIFETIME, stored_lifetime: int = DEFAULT_STORED_LIFETIME,
            passphrase: Optional[Passphrase] = None, limited: bool = False) -> None:
        """PUT a new proxy delegated from the client credential, as ``myproxy-init`` does:
        the server sends a certificate request and the client signs a proxy valid
        ``stored_lifetime`` seconds.  ``lifetime`` is the longest proxy the server will
        hand out from it."""
        _require_username(username)
        fields = _policy_fields(credname, description, retrievers, renewers, retriever_trusted)
        request = build_request(Command.PUT, username, passphrase, lifetime, fields)
        what = _describe("delegation of", username, credname)

        def body(channel: _Channel) -> None:
            self._first_reply(channel, passphrase, what)
            csr_der = _read_der(channel)
            try:
                csr = x509.load_der_x509_csr(csr_der)
            except ValueError as error:
                raise CredentialServerError(
                    f"MyProxy server {channel.address} sent a certificate request that "
                    f"does not parse: {error}") from None
            if not csr.is_signature_valid:
                raise CredentialServerError(f"MyProxy server {channel.address} sent a "
                                            "certificate request with a bad signature")
            issuer = self.credential()
            assert issuer is not None
            proxy = sign_proxy(issuer, csr.public_key(), stored_lifetime, limited)
            channel.send(encode_chain([proxy, issuer.certificate, *issuer.chain]),
                         "the delegated proxy")
            self._check(channel, read_reply(channel), what)

        self._exchange(Command.PUT, request, body, what=what)
        log.info("MyProxy: delegated a proxy for %s (%s)", username,
                 credname or "default credential")

    def destroy(self, username: str, credname: Optional[str] = None) -> None:
        """DESTROY the client's credential ``credname`` (or the default one) of ``username``."""
        _require_username(username)
        fields = [("CRED_NAME", credname)] if credname else []
        request = build_request(Command.DESTROY, username, None, 0, fields)
        what = _describe("removing", username, credname)
        self._exchange(Command.DESTROY, request,
                       lambda channel: self._first_reply(channel, None, what), what=what)

    def trustroots(self) -> Dict[str, bytes]:
        """GET_TRUSTROOTS: the server's CA directory (``<hash>.0``, ``.signing_policy``,
        CRLs) as ``{file name: contents}``.  Authenticates with the client credential when
        there is one, anonymously otherwise."""
        request = build_request(Command.GET_TRUSTROOTS, "", None, 0, [("TRUSTED_CERTS", "1")])
        what = "the trust roots"

        def body(channel: _Channel) -> Dict[str, bytes]:
            return parse_trustroots(self._first_reply(channel, None, what))

        files = self._exchange(Command.GET_TRUSTROOTS, request, body,
                               credential_required=False, what=what)
        assert isinstance(files, dict)
        if not files:
            raise CredentialServerError(
                f"MyProxy server {','.join(map(str, self.servers))} sent no trust roots "
                "(its configuration may lack cert_dir)")
        return files


def _read_der(channel: _Channel) -> bytes:
    header, length = _der_length(channel)
    if length > MAX_CERT_BYTES:
        raise CredentialServerError(f"MyProxy server sent a request of {length} bytes")
    return header + channel.read_exact(length)


def _assemble(chain: List[x509.Certificate], key: PrivateKey,
              address: ServerAddress) -> RetrievedProxy:
    if not _same_key(chain[0], key):
        raise CredentialServerError(f"MyProxy server {address} returned a certificate for "
                                    "another key than the one requested")
    for child, parent in zip(chain, chain[1:]):
        if child.issuer != parent.subject:
            raise CredentialServerError(
                f"MyProxy server {address} returned a broken chain: "
                f"{slash_dn(child.subject)} is not issued by {slash_dn(parent.subject)}")
    return RetrievedProxy(tuple(chain), key)


def _require_username(username: str) -> None:
    if not username:
        raise CredentialError("a MyProxy username is needed (-l, or the owner's DN)")


def _describe(action: str, username: str, credname: Optional[str]) -> str:
    name = f"credential {credname!r}" if credname else "the default credential"
    return f"{action} {name} of {username!r}"


def _policy_fields(credname, description, retrievers, renewers, retriever_trusted
                   ) -> List[Tuple[str, str]]:
    fields = []
    if retrievers:
        fields.append(("RETRIEVER", retrievers))
    if renewers:
        fields.append(("RENEWER", renewers))
    if credname:
        fields.append(("CRED_NAME", credname))
    if description:
        fields.append(("CRED_DESC", description))
    if retriever_trusted:
        fields.append(("RETRIEVER_TRUSTED", retriever_trusted))
    return fields


def _hours(delta: datetime.timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}"


# --------------------------------------------------------------------------- trust roots on disk

TRUSTROOTS_MARKER = ".pilotid-trustroots"


def write_trustroots(files: Mapping[str, bytes], directory: Union[str, Path],
                     force: bool = False) -> Path:
    """Write trust roots into ``directory`` atomically: build a sibling directory, then swap.

    A directory pilotid made earlier (it holds ``.pilotid-trustroots``) is replaced; any
    other existing directory only with ``force``.  Returns the directory.
    """
    target = Path(directory)
    parent = target.parent
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise CredentialError(f"{target} exists and is not a directory: choose another -o")
    if target.is_dir() and not (target / TRUSTROOTS_MARKER).is_file() and not force:
        raise CredentialError(f"{target} exists and was not written by pilotid: use --force "
                              "to replace its contents, or choose a new directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
    try:
        os.chmod(staging, 0o755)  # noqa: S103 - a CA directory is public by nature
        for name, data in sorted(files.items()):
            if not _SAFE_FILENAME.fullmatch(name):
                continue
            (staging / name).write_bytes(data)
            os.chmod(staging / name, 0o644)
        (staging / TRUSTROOTS_MARKER).write_text("written by pilotid myproxy trustroots\n")
        if target.is_dir():
            _swap_directories(staging, target)
            shutil.rmtree(staging, ignore_errors=True)  # now holds the old contents
        else:
            os.rename(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise CredentialError(f"cannot write trust roots to {target}: {error.strerror}") from None
    return target


def _swap_directories(new: Path, old: Path) -> None:
    """Exchange two directories in one step (renameat2 RENAME_EXCHANGE), or as close as the
    system allows (two renames) where that call does not exist."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old),
                     rename_exchange) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, os.strerror(code))
    aside = old.with_name(old.name + f".old-{secrets.token_hex(4)}")
    os.rename(old, aside)
    os.rename(new, old)
    os.rename(aside, new)


__all__ = [
    "Command", "ResponseType", "Passphrase", "Reply", "ByteSource", "BufferSource",
    "build_request", "redact_request", "parse_reply", "read_reply", "read_chain",
    "parse_chain", "encode_chain", "parse_info", "parse_trustroots", "ClientCredential",
    "RetrievedProxy", "StoredCredential", "ServerAddress", "parse_servers",
    "check_server_identity", "expected_server_names", "default_ca_dir", "slash_dn",
    "is_proxy", "identity_of", "sign_proxy", "new_key", "certificate_request",
    "MyProxyClient", "write_trustroots", "TRUSTROOTS_MARKER", "DEFAULT_PORT",
    "DEFAULT_LIFETIME",
]
