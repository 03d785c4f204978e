"""The X.509 proxy model: what a proxy file holds, whose it is, and how long it lasts.

A proxy file is PEM: the proxy certificate, its unencrypted private key, then the chain up
to (and sometimes including) the user's own certificate.  ``parse_proxy`` reads such bytes
into a ``ProxyInfo``; ``load_proxy`` reads a file and refuses one that is unusable, each
problem with its own error: ``ProxyFileError`` (cannot be read, not a proxy file),
``ProxyKeyError`` (no key, or not the first certificate's), ``ProxyExpiredError``.

Names are shown in OpenSSL's slash form (``pilotid.identity.dn``), as ``grid-proxy-info``
shows them, and proxy types with ``grid-proxy-info``'s wording.
"""

from __future__ import annotations

import datetime
import errno
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple, Union

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from pilotid.errors import ProxyExpiredError, ProxyFileError, ProxyKeyError
from pilotid.identity.dn import slash_dn
from pilotid.identity.proxycertinfo import policy_language

log = logging.getLogger(__name__)

# Proxy types, worded as grid-proxy-info -type prints them.
END_ENTITY = "end entity credential"
LEGACY_PROXY = "full legacy globus proxy"
LEGACY_LIMITED_PROXY = "limited legacy globus proxy"
RFC3820_PROXY = "RFC 3820 compliant impersonation proxy"
RFC3820_LIMITED_PROXY = "RFC 3820 compliant limited proxy"
RFC3820_INDEPENDENT_PROXY = "RFC 3820 compliant independent proxy"
RFC3820_RESTRICTED_PROXY = "RFC 3820 compliant restricted proxy"
DRAFT_PROXY = "Proxy draft (pre-RFC) compliant impersonation proxy"
DRAFT_LIMITED_PROXY = "Proxy draft (pre-RFC) compliant limited proxy"
DRAFT_INDEPENDENT_PROXY = "Proxy draft (pre-RFC) compliant independent proxy"
DRAFT_RESTRICTED_PROXY = "Proxy draft (pre-RFC) compliant restricted proxy"

LIMITED_TYPES = frozenset({LEGACY_LIMITED_PROXY, RFC3820_LIMITED_PROXY, DRAFT_LIMITED_PROXY})

PROXY_CERT_INFO_OID = "1.3.6.1.5.5.7.1.14"          # RFC 3820 ProxyCertInfo
DRAFT_PROXY_CERT_INFO_OID = "1.3.6.1.4.1.3536.1.222"  # GSI-3 (pre-RFC) ProxyCertInfo
INHERIT_ALL_OID = "1.3.6.1.5.5.7.21.1"              # id-ppl-inheritAll: impersonation
INDEPENDENT_OID = "1.3.6.1.5.5.7.21.2"              # id-ppl-independent
LIMITED_POLICY_OID = "1.3.6.1.4.1.3536.1.1.1.9"     # Globus limited-proxy policy language

RENEW_HINT = "make a new one with grid-proxy-init or voms-proxy-init (-valid H:M)"
MAX_PROXY_SIZE = 1 << 20  # a proxy with a long chain and VOMS attributes is a few kB

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")
_LEGACY_CNS = {"proxy": LEGACY_PROXY, "limited proxy": LEGACY_LIMITED_PROXY}


def format_time_left(delta: datetime.timedelta) -> str:
    """``H:MM:SS`` as ``grid-proxy-info`` prints a time left (``0:00:00`` once expired)."""
    seconds = max(0, int(delta.total_seconds()))
    text = "%d:%02d:%02d" % (seconds // 3600, seconds % 3600 // 60, seconds % 60)
    if seconds > 86400:
        text += "  (%.1f days)" % (seconds / 86400)
    return text


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _not_before(cert: x509.Certificate) -> datetime.datetime:
    return getattr(cert, "not_valid_before_utc", None) or _utc(cert.not_valid_before)


def _not_after(cert: x509.Certificate) -> datetime.datetime:
    return getattr(cert, "not_valid_after_utc", None) or _utc(cert.not_valid_after)


def _now(now: Optional[datetime.datetime]) -> datetime.datetime:
    return _utc(now) if now else datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class ProxyInfo:
    """A parsed proxy file (or an end-entity credential: certificate and key in one file).

    ``subject`` and ``issuer`` are the first certificate's, ``identity`` the subject of the
    first certificate in the chain that is not a proxy: the user (or of an independent
    proxy, which by definition does not act for whoever signed it).  ``not_after`` is the
    earliest end of validity in the chain, since a proxy is worth nothing once a
    certificate it derives from has expired (``grid-proxy-info`` counts the same way).
    ``pem`` is the whole file as read, to hand the proxy on unchanged; it holds the
    private key and is left out of ``repr``.
    """

    path: Optional[Path]
    subject: str
    issuer: str
    identity: str
    proxy_type: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    key_bits: int
    chain_length: int
    certificates: Tuple[x509.Certificate, ...] = field(repr=False)
    pem: bytes = field(repr=False)

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        """How long the proxy is still valid at ``now`` (negative once it has expired)."""
        return self.not_after - _now(now)

    @property
    def is_limited(self) -> bool:
        """True for a limited proxy (legacy, draft or RFC 3820), which may not start jobs."""
        return self.proxy_type in LIMITED_TYPES

    @property
    def is_proxy(self) -> bool:
        """False for an end-entity credential (a user's certificate and key)."""
        return self.proxy_type != END_ENTITY

    def as_dict(self, now: Optional[datetime.datetime] = None) -> dict:
        """The proxy as ``pilotid proxy-info --json`` shows it (no key material)."""
        left = self.time_left(now).total_seconds()
        return {
            "path": str(self.path) if self.path is not None else None,
            "subject": self.subject,
            "issuer": self.issuer,
            "identity": self.identity,
            "type": self.proxy_type,
            "is_proxy": self.is_proxy,
            "is_limited": self.is_limited,
            "key_bits": self.key_bits,
            "chain_length": self.chain_length,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "time_left": max(0, int(left)),
            "expired": left <= 0,
        }


def _describe(path: Optional[Path]) -> str:
    return f"proxy file {path}" if path is not None else "the proxy data"


def _pem_blocks(data: bytes, where: str) -> List[Tuple[str, bytes, int]]:
    """Split ``data`` into (label, block, line) for each PEM block; text between is ignored."""
    blocks: List[Tuple[str, bytes, int]] = []
    position = 0
    line, counted = 1, 0  # newlines are counted once, from where the last count stopped
    while True:
        begin = _PEM_BEGIN.search(data, position)
        if not begin:
            return blocks
        label = begin.group(1).decode("ascii")
        end_marker = b"-----END " + begin.group(1) + b"-----"
        end = data.find(end_marker, begin.end())
        line += data.count(b"\n", counted, begin.start())
        counted = begin.start()
        next_begin = data.find(b"-----BEGIN ", begin.end())
        if end < 0 or 0 <= next_begin < end:
            raise ProxyFileError(
                f"{where} is truncated: the '{label}' block at line {line} has no END line "
                "(the file was cut short while being copied or written)")
        position = end + len(end_marker)
        blocks.append((label, data[begin.start():position], line))


def _proxy_type(cert: x509.Certificate, where: str, index: int) -> str:
    """The type of ``cert``, from its ProxyCertInfo extension or its last RDN."""
    try:
        extensions = list(cert.extensions)
    except ValueError:
        raise ProxyFileError(
            f"{where}: certificate {index} has malformed extensions") from None
    for ext in extensions:
        oid = ext.oid.dotted_string
        if oid not in (PROXY_CERT_INFO_OID, DRAFT_PROXY_CERT_INFO_OID):
            continue
        try:
            language = policy_language(ext.value.public_bytes())
        except (ValueError, AttributeError):
            raise ProxyFileError(
                f"{where}: certificate {index} has a ProxyCertInfo extension that cannot be "
                "read (a damaged or hand-made proxy)") from None
        rfc = oid == PROXY_CERT_INFO_OID
        if language == INHERIT_ALL_OID:
            return RFC3820_PROXY if rfc else DRAFT_PROXY
        if language == LIMITED_POLICY_OID:
            return RFC3820_LIMITED_PROXY if rfc else DRAFT_LIMITED_PROXY
        if language == INDEPENDENT_OID:
            return RFC3820_INDEPENDENT_PROXY if rfc else DRAFT_INDEPENDENT_PROXY
        return RFC3820_RESTRICTED_PROXY if rfc else DRAFT_RESTRICTED_PROXY
    rdns = cert.subject.rdns
    if len(rdns) >= 2 and x509.Name(rdns[:-1]) == cert.issuer:
        last = list(rdns[-1])
        if len(last) == 1 and last[0].oid == x509.NameOID.COMMON_NAME:
            legacy = _LEGACY_CNS.get(str(last[0].value))
            if legacy:
                return legacy
    return END_ENTITY


def _load_certificate(block: bytes, where: str, index: int, line: int) -> x509.Certificate:
    try:
        cert = x509.load_pem_x509_certificate(block)
    except (ValueError, x509.InvalidVersion):
        raise ProxyFileError(
            f"{where}: certificate {index} (line {line}) is damaged and cannot be decoded "
            "(truncated or corrupted base64)") from None
    # cryptography decodes names, extensions and the key only when asked, and asn1crypto
    # (slash_dn) its own way: ask now, so that damage inside the DER is this error, not a
    # ValueError from wherever the field is first used.
    try:
        cert.extensions  # noqa: B018 - parsed for the check
        cert.public_key()
        slash_dn(cert.subject)
        slash_dn(cert.issuer)
    except (ValueError, TypeError, UnsupportedAlgorithm, x509.DuplicateExtension) as error:
        raise ProxyFileError(
            f"{where}: certificate {index} (line {line}) is damaged inside ({error}); "
            f"{RENEW_HINT}") from None
    return cert


def _load_key(label: str, block: bytes, where: str, line: int):
    if label == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block:
        raise ProxyKeyError(
            f"{where}: the private key (line {line}) is encrypted; a proxy's key never is, so "
            f"this looks like a user key: {RENEW_HINT} from it")
    try:
        # Only the public half is used here (compared with the certificate's) and the key
        # object is dropped: cryptography's consistency check of the private RSA numbers
        # (~30 ms for 2048 bits, most of a job's start-up) protects signing, never done here.
        return serialization.load_pem_private_key(block, password=None,
                                                  unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ProxyKeyError(
            f"{where}: the private key (line {line}) is damaged or of an unknown kind "
            "and cannot be read") from None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_chain(certs: List[x509.Certificate], where: str) -> None:
    """Each certificate must be issued, and signed, by the one after it."""
    for index, (cert, issuer) in enumerate(zip(certs, certs[1:]), start=1):
        if cert.issuer != issuer.subject:
            raise ProxyFileError(
                f"{where}: the chain is out of order: certificate {index} was issued by "
                f"{slash_dn(cert.issuer)} but certificate {index + 1} is "
                f"{slash_dn(issuer.subject)} (the proxy must come first, then its issuers)")
        try:
            cert.verify_directly_issued_by(issuer)
        except InvalidSignature:
            raise ProxyFileError(
                f"{where}: certificate {index} ({slash_dn(cert.subject)}) is not signed by "
                f"the key of certificate {index + 1}: the file was tampered with or "
                "pieced together from different proxies") from None
        except (UnsupportedAlgorithm, TypeError, ValueError) as error:
            log.debug("%s: signature of certificate %d not checked: %s", where, index, error)


def _identity(certs: List[x509.Certificate], types: List[str]) -> str:
    # An independent proxy does not act for its issuer: it is an identity of its own, as
    # grid-proxy-info reports it.
    for cert, kind in zip(certs, types):
        if kind in (END_ENTITY, RFC3820_INDEPENDENT_PROXY, DRAFT_INDEPENDENT_PROXY):
            return slash_dn(cert.subject)
    # The file ends with a proxy: its issuer is the next one up, absent from the file.
    issuer = certs[-1].issuer
    rdns = issuer.rdns
    while len(rdns) > 1 and [str(a.value) for a in rdns[-1]] in (["proxy"], ["limited proxy"]):
        rdns = rdns[:-1]
    log.debug("no end-entity certificate in the file; identity taken from the last issuer")
    return slash_dn(x509.Name(rdns))


def parse_proxy(data: bytes, path: Optional[Path] = None) -> ProxyInfo:
    """Parse the PEM bytes of a proxy file into a ``ProxyInfo``; ``path`` names it in errors.

    The certificates keep their order (the proxy first); the private key may come before,
    between or after them.  Raises ``ProxyFileError`` for empty, garbled or truncated data,
    a broken chain, or no certificate; ``ProxyKeyError`` for a missing, encrypted or
    mismatched key.  Does not check the time: see ``load_proxy``.
    """
    where = _describe(path)
    if len(data) > MAX_PROXY_SIZE:
        raise ProxyFileError(f"{where} is larger than {MAX_PROXY_SIZE} bytes: not a proxy")
    if not data.strip():
        raise ProxyFileError(f"{where} is empty: {RENEW_HINT}")
    blocks = _pem_blocks(data, where)
    if not blocks:
        hint = " (it looks like DER: convert it with openssl x509 -inform der)" \
            if data[:1] == b"\x30" else ""
        raise ProxyFileError(f"{where} is not a PEM proxy file: no '-----BEGIN' line{hint}")
    certs: List[x509.Certificate] = []
    keys = []
    for label, block, line in blocks:
        if label in ("CERTIFICATE", "X509 CERTIFICATE"):
            certs.append(_load_certificate(block, where, len(certs) + 1, line))
        elif label.endswith("PRIVATE KEY"):
            keys.append((_load_key(label, block, where, line), line))
        else:
            log.debug("%s: ignoring a '%s' block at line %d", where, label, line)
    if not certs:
        raise ProxyFileError(f"{where} holds no certificate, so it is not a proxy: {RENEW_HINT}")
    if not keys:
        raise ProxyKeyError(
            f"{where} holds certificates but no private key: it is a certificate, not a "
            f"proxy; {RENEW_HINT}")
    if len(keys) > 1:
        raise ProxyFileError(
            f"{where} holds {len(keys)} private keys (lines "
            f"{', '.join(str(line) for _, line in keys)}); a proxy file has exactly one")
    key, key_line = keys[0]
    key_spki = _spki(key.public_key())
    if key_spki != _spki(certs[0].public_key()):
        others = [i for i, c in enumerate(certs[1:], start=2) if _spki(c.public_key()) == key_spki]
        detail = (f"it belongs to certificate {others[0]}: the proxy certificate must come first"
                  if others else "the key and the certificate come from different proxies")
        raise ProxyKeyError(
            f"{where}: the private key (line {key_line}) does not match the first certificate "
            f"({slash_dn(certs[0].subject)}); {detail}")
    _check_chain(certs, where)
    types = [_proxy_type(cert, where, i) for i, cert in enumerate(certs, start=1)]
    first = certs[0]
    return ProxyInfo(
        path=Path(path) if path is not None else None,
        subject=slash_dn(first.subject),
        issuer=slash_dn(first.issuer),
        identity=_identity(certs, types),
        proxy_type=types[0],
        not_before=_not_before(first),
        not_after=min(_not_after(c) for c in certs),
        key_bits=int(getattr(first.public_key(), "key_size", 0)),
        chain_length=len(certs),
        certificates=tuple(certs),
        pem=bytes(data),
    )


_OPEN_ERRORS = {
    errno.ENOENT: "does not exist",
    errno.EACCES: "cannot be read: permission denied",
    errno.EPERM: "cannot be read: operation not permitted",
    errno.ELOOP: "is a symbolic link loop (or a chain of links too long to follow)",
    errno.ENOTDIR: "cannot be reached: a part of its path is not a directory",
    errno.EISDIR: "is a directory, not a proxy file",
    errno.ENAMETOOLONG: "has a name too long for the system",
}


def read_proxy_file(path: Union[str, Path]) -> bytes:
    """Return the bytes of the proxy file at ``path``, or raise ``ProxyFileError`` saying why.

    Only a regular file is read (not a directory, FIFO or device) and at most
    ``MAX_PROXY_SIZE`` bytes of it.
    """
    path = Path(path)
    where = _describe(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        reason = _OPEN_ERRORS.get(error.errno or 0, f"cannot be opened: {error.strerror}")
        if error.errno == errno.ENOENT and os.path.islink(path):
            reason = f"is a dangling symbolic link (to {os.readlink(path)})"
        elif error.errno in (errno.EACCES, errno.EPERM):
            reason += f" for uid {os.geteuid()}"
        raise ProxyFileError(f"{where} {reason}") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ProxyFileError(f"{where} is a directory, not a proxy file")
        if not stat.S_ISREG(mode):
            raise ProxyFileError(f"{where} is not a regular file (a FIFO, socket or device)")
        if mode & 0o077:
            log.warning("%s is readable or writable by others (mode %04o); a proxy should be "
                        "0600", where, stat.S_IMODE(mode))
        chunks = []
        size = 0
        while size <= MAX_PROXY_SIZE:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise ProxyFileError(f"{where} cannot be read: {error.strerror}") from None
    finally:
        os.close(fd)
    if size > MAX_PROXY_SIZE:
        raise ProxyFileError(f"{where} is larger than {MAX_PROXY_SIZE} bytes: not a proxy file")
    return b"".join(chunks)


def check_lifetime(info: ProxyInfo, min_lifetime: int = 0,
                   now: Optional[datetime.datetime] = None) -> None:
    """Raise ``ProxyExpiredError`` unless ``info`` is valid for ``min_lifetime`` more seconds."""
    moment = _now(now)
    left = info.time_left(moment)
    where = _describe(info.path)
    limiter = ""
    first_end = _not_after(info.certificates[0])
    if info.not_after < first_end:
        limiter = (" (cut short by the certificate it derives from, which ends at "
                   f"{info.not_after:%Y-%m-%d %H:%M:%S} UTC)")
    if left.total_seconds() <= 0:
        raise ProxyExpiredError(
            f"{where} of {info.identity} expired at {info.not_after:%Y-%m-%d %H:%M:%S} UTC, "
            f"{format_time_left(-left)} ago{limiter}: {RENEW_HINT}")
    if left.total_seconds() < min_lifetime:
        raise ProxyExpiredError(
            f"{where} of {info.identity} has {format_time_left(left)} left, but at least "
            f"{format_time_left(datetime.timedelta(seconds=min_lifetime))} is needed"
            f"{limiter}: {RENEW_HINT}")
    if info.not_before > moment:
        log.warning("%s is not valid before %s UTC: check this node's clock", where,
                    f"{info.not_before:%Y-%m-%d %H:%M:%S}")


def load_proxy(path: Union[str, Path], min_lifetime: int = 0,
               now: Optional[datetime.datetime] = None) -> ProxyInfo:
    """Read, parse and check the proxy file at ``path``; return its ``ProxyInfo``.

    Raises ``ProxyFileError`` (unreadable, missing, a directory, a symlink loop, empty,
    garbled, truncated), ``ProxyKeyError`` (no key, an encrypted one, or not the first
    certificate's) or ``ProxyExpiredError`` (expired, or under ``min_lifetime`` seconds
    left at ``now``).
    """
    path = Path(path)
    info = parse_proxy(read_proxy_file(path), path)
    check_lifetime(info, min_lifetime, now)
    return info
