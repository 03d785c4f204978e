"""VOMS attributes of a proxy: VO, FQANs, issuer and validity of its attribute certificates.

A VOMS proxy carries, in the non-critical extension ``1.3.6.1.4.1.8005.100.100.5``, the
attribute certificates (RFC 3281 / 5755) a VOMS server signed for the proxy's owner.  VOMS
declares the extension value as ``AC_SEQ ::= SEQUENCE { acs SEQUENCE OF AttributeCertificate }``
(one AC per VO).  Each AC holds the FQANs in the attribute ``1.3.6.1.4.1.8005.100.100.4`` as an
``IetfAttrSyntax``: its ``policyAuthority`` is the URI ``<vo>://<host>:<port>`` of the VOMS
server (just ``<vo>:`` when the server gave none) and its values are the FQANs as octet strings,
in the order the VOMS server granted them (the first is the primary FQAN).

This module reads; it does not verify.  It does not check the AC's signature against a
``vomsdir`` nor the holder against the proxy chain, so its result is for display, policies
and bookkeeping, never for an authorisation decision (that is the VOMS-aware service's job:
the MyProxy server, gLExec/LCMAPS, the storage element).

Like ``voms-proxy-info``, which asks the VOMS library to recurse the chain, the attributes
are taken from the first certificate of the chain (proxy first) that carries the extension: a
plain proxy delegated from a VOMS proxy still shows its parent's attributes.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509

from pilotid.errors import ProxyFileError

log = logging.getLogger(__name__)

VOMS_AC_EXTENSION_OID = "1.3.6.1.4.1.8005.100.100.5"
VOMS_FQAN_ATTRIBUTE_OID = "1.3.6.1.4.1.8005.100.100.4"

# OpenSSL's short names, so that DNs read as voms-proxy-info prints them.
_SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
    "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.12": "title", "2.5.4.17": "postalCode", "2.5.4.42": "GN", "2.5.4.43": "initials",
    "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
    "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
}


class _AttributeCertificates(core.SequenceOf):
    _child_spec = cms.AttributeCertificateV2


class _VomsACSequence(core.Sequence):
    """VOMS's ``AC_SEQ``: a SEQUENCE whose one field is the SEQUENCE OF AttributeCertificate."""

    _fields = [("acs", _AttributeCertificates)]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class VomsAttributes:
    """What one VOMS attribute certificate in a proxy says.

    ``fqans`` are in the order the VOMS server granted them (the first is the primary FQAN),
    spelled as in the AC (a real VOMS server writes ``/atlas/Role=NULL/Capability=NULL``).
    ``issuer`` is the VOMS server's DN in slash form, ``uri`` its ``host:port`` (None when
    the AC names none).  ``holder_issuer``/``holder_serial`` identify the certificate the AC
    was issued for, as the AC states them.  Times are timezone-aware (UTC).
    """

    vo: str
    fqans: Tuple[str, ...]
    issuer: str
    uri: Optional[str]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int
    holder_issuer: Optional[str] = None
    holder_serial: Optional[int] = None

    @property
    def primary_fqan(self) -> Optional[str]:
        """The first FQAN (the one services map by), or None if the AC lists none."""
        return self.fqans[0] if self.fqans else None

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        """How long the attribute certificate is still valid (negative once it has expired)."""
        return self.not_after - (now or _utcnow())

    def as_dict(self, now: Optional[datetime.datetime] = None) -> Dict[str, Any]:
        """The attributes as JSON-ready values (times ISO 8601, ``time_left`` in seconds)."""
        return {
            "vo": self.vo,
            "fqans": list(self.fqans),
            "issuer": self.issuer,
            "uri": self.uri,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "time_left": int(self.time_left(now).total_seconds()),
            "serial": self.serial,
            "holder_issuer": self.holder_issuer,
            "holder_serial": self.holder_serial,
        }


def voms_attributes(certificates: Sequence[x509.Certificate]) -> Tuple[VomsAttributes, ...]:
    """Return the VOMS attributes of a proxy chain, one ``VomsAttributes`` per AC.

    ``certificates`` is the proxy's chain as ``cryptography`` certificates, proxy first.  The
    ACs are read from the first certificate that carries the VOMS extension; an empty tuple
    means the proxy has no VOMS attributes.  A VOMS extension that cannot be decoded raises
    ``ProxyFileError`` naming the certificate.
    """
    for certificate in certificates:
        raw = _voms_extension_value(certificate)
        if raw is not None:
            return _decode_extension(raw, _subject_for_message(certificate))
    return ()


def _voms_extension_value(certificate: x509.Certificate) -> Optional[bytes]:
    oid = x509.ObjectIdentifier(VOMS_AC_EXTENSION_OID)
    try:
        extension = certificate.extensions.get_extension_for_oid(oid)
    except x509.ExtensionNotFound:
        return None
    except ValueError as error:  # cryptography refuses e.g. duplicated extensions
        raise ProxyFileError(
            f"certificate {_subject_for_message(certificate)} has unreadable extensions "
            f"({error}): recreate the proxy") from None
    value = extension.value
    return value.value if isinstance(value, x509.UnrecognizedExtension) else None


def _decode_extension(raw: bytes, where: str) -> Tuple[VomsAttributes, ...]:
    try:
        sequence = _VomsACSequence.load(raw, strict=True)
        found = tuple(_decode_ac(ac) for ac in sequence["acs"])
    except _MalformedAC as error:
        raise ProxyFileError(
            f"VOMS extension {VOMS_AC_EXTENSION_OID} of {where} is malformed: {error}; "
            "recreate the proxy with voms-proxy-init") from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as error:
        # asn1crypto parses lazily and signals bad DER with any of these
        raise ProxyFileError(
            f"VOMS extension {VOMS_AC_EXTENSION_OID} of {where} is not a valid sequence of "
            f"attribute certificates ({type(error).__name__}: {_first_line(error)}); "
            "the proxy is damaged or was not made by VOMS: recreate it with voms-proxy-init"
        ) from None
    if not found:
        raise ProxyFileError(
            f"VOMS extension {VOMS_AC_EXTENSION_OID} of {where} holds no attribute certificate: "
            "recreate the proxy with voms-proxy-init")
    return found


class _MalformedAC(Exception):
    """Raised inside this module for a well-formed DER that is not what VOMS writes."""


def _decode_ac(ac: cms.AttributeCertificateV2) -> VomsAttributes:
    info = ac["ac_info"]
    validity = info["att_cert_validity_period"]
    not_before = _aware(validity["not_before_time"].native)
    not_after = _aware(validity["not_after_time"].native)
    authority, fqans = _fqan_attribute(info["attributes"])
    vo, uri = _split_policy_authority(authority, fqans)
    holder_issuer, holder_serial = _holder(info["holder"])
    return VomsAttributes(
        vo=vo, fqans=fqans, issuer=_ac_issuer(info["issuer"]), uri=uri,
        not_before=not_before, not_after=not_after, serial=int(info["serial_number"].native),
        holder_issuer=holder_issuer, holder_serial=holder_serial)


def _fqan_attribute(
        attributes: Iterable[cms.AttCertAttribute]) -> Tuple[Optional[str], Tuple[str, ...]]:
    for attribute in attributes:
        if attribute["type"].dotted != VOMS_FQAN_ATTRIBUTE_OID:
            continue
        values = list(attribute["values"])
        if len(values) != 1:
            raise _MalformedAC(f"the FQAN attribute has {len(values)} values, VOMS writes one")
        syntax = values[0].parse(cms.IetfAttrSyntax)
        authority = None
        if syntax["policy_authority"].native:
            authority = str(syntax["policy_authority"].native[0])
        return authority, tuple(_fqan_text(v) for v in syntax["values"])
    raise _MalformedAC(f"an attribute certificate has no FQAN attribute {VOMS_FQAN_ATTRIBUTE_OID}")


def _fqan_text(value: cms.IetfAttrValue) -> str:
    native = value.native
    if isinstance(native, bytes):
        try:
            return native.decode("utf-8")
        except UnicodeDecodeError:
            raise _MalformedAC(f"an FQAN is not UTF-8 text: {native!r}") from None
    if value.name == "string":
        return str(native)
    raise _MalformedAC(f"an FQAN is an {value.name}, not text")


def _split_policy_authority(authority: Optional[str],
                            fqans: Tuple[str, ...]) -> Tuple[str, Optional[str]]:
    # "atlas://voms.cern.ch:15001" -> ("atlas", "voms.cern.ch:15001"); "atlas:" -> ("atlas", None)
    if authority:
        vo, sep, rest = authority.partition("://")
        if not sep:
            vo, _, rest = authority.partition(":")
        if vo:
            return vo, rest or None
    # VOMS always names the VO; fall back on the first FQAN's root group rather than fail.
    if fqans and fqans[0].startswith("/"):
        return fqans[0].split("/")[1], None
    raise _MalformedAC("an attribute certificate names no VO (no policyAuthority, no FQAN)")


def _ac_issuer(issuer: cms.AttCertIssuer) -> str:
    names = issuer.chosen["issuer_name"] if issuer.name == "v2_form" else issuer.chosen
    return _directory_name(names, "the AC issuer")


def _holder(holder: cms.Holder) -> Tuple[Optional[str], Optional[int]]:
    base = holder["base_certificate_id"]
    if not base.native:
        return None, None
    return _directory_name(base["issuer"], "the AC holder"), int(base["serial"].native)


def _directory_name(names: Optional[asn1_x509.GeneralNames], what: str) -> str:
    for general_name in names or ():
        if general_name.name == "directory_name":
            return _slash_dn(general_name.chosen)
    raise _MalformedAC(f"{what} is not given as a directory name")


def _slash_dn(name: asn1_x509.Name) -> str:
    """An asn1crypto ``Name`` in OpenSSL's slash form (``/DC=org/CN=...``), as OpenSSL prints.

    Private on purpose: ``pilotid.identity.dn.slash_dn`` formats ``cryptography`` names; this
    one is for the names inside an attribute certificate, which ``cryptography`` cannot parse.
    Like OpenSSL's one-line form, bytes outside printable ASCII are written ``\\xHH``.
    """
    parts: List[str] = []
    for rdn in name.chosen:
        entries = []
        for attribute in rdn:
            oid = attribute["type"].dotted
            entries.append(f"{_SHORT_NAMES.get(oid, oid)}={_printable(attribute['value'].native)}")
        parts.append("+".join(entries))
    return "".join(f"/{p}" for p in parts)


def _printable(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    out = []
    for char in text:
        if " " <= char <= "~":
            out.append(char)
        else:
            out.extend(f"\\x{b:02X}" for b in char.encode("utf-8"))
    return "".join(out)


def _aware(moment: Any) -> datetime.datetime:
    if not isinstance(moment, datetime.datetime):
        raise _MalformedAC(f"a validity time is not a time: {moment!r}")
    if moment.tzinfo is None:
        return moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def _subject_for_message(certificate: x509.Certificate) -> str:
    try:
        return "/" + "/".join(
            f"{_SHORT_NAMES.get(a.oid.dotted_string, a.oid.dotted_string)}={a.value!s}"
            for a in certificate.subject)
    except ValueError:
        return "a proxy certificate"


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else "no detail"
