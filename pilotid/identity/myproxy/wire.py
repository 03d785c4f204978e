"""The MYPROXYv2 wire format: requests, replies and certificate chains as bytes.

A client sends NUL-terminated ``KEY=value`` lines (``build_request``); the server answers
the same way (``parse_reply``, ``read_reply``), with count-prefixed DER certificate chains
in between for GET and PUT (``read_chain``, ``encode_chain``).  INFO and GET_TRUSTROOTS
replies are decoded by ``parse_info`` and ``parse_trustroots``.  The readers read from a
``ByteSource``: bytes in memory (``BufferSource``) or the TLS channel
(``pilotid.identity.myproxy.channel``).

Anything that is not a MYPROXYv2 message is a ``CredentialServerError``; a request value
that would smuggle in another field is a ``CredentialError``.  Nothing else escapes.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
import logging
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from pilotid.errors import CredentialError, CredentialServerError
from pilotid.identity.dn import slash_dn

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "MYPROXYv2"
#: Largest reply pilotid accepts (trust roots of a big CA bundle fit easily).
MAX_REPLY_BYTES = 16 * 1024 * 1024
MAX_CERT_BYTES = 64 * 1024
#: File names a trust-roots reply may use (nothing that could leave its directory).
TRUSTROOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")


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
            certificate = decoded(x509.load_der_x509_certificate(der))
        except DECODE_ERRORS as error:
            raise CredentialServerError(
                f"MyProxy server sent certificate {index + 1} of {count} that does not "
                f"parse: {error}") from None
        chain.append(certificate)
    return chain


#: What ``cryptography`` raises for a certificate it cannot decode.
DECODE_ERRORS = (ValueError, TypeError, x509.InvalidVersion, x509.DuplicateExtension,
                 UnsupportedAlgorithm)


def decoded(certificate: x509.Certificate) -> x509.Certificate:
    """Return ``certificate`` once every part pilotid reads of it has been decoded.

    ``cryptography`` decodes extensions, key and names only when first used; decoding them
    here makes a damaged certificate fail at once (one of ``DECODE_ERRORS``), not later.
    """
    certificate.extensions  # noqa: B018
    certificate.public_key()
    slash_dn(certificate.subject)
    slash_dn(certificate.issuer)
    return certificate


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


def read_der(source: ByteSource, what: str = "request") -> bytes:
    """Read one DER object (the certificate request a server sends for PUT), header and all."""
    header, length = _der_length(source)
    if length > MAX_CERT_BYTES:
        raise CredentialServerError(f"MyProxy server sent a {what} of {length} bytes")
    return header + source.read_exact(length)


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
        if not TRUSTROOT_NAME.fullmatch(name):
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


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
