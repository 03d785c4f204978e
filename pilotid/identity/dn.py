"""Distinguished names as text: OpenSSL's slash form, and comparing DNs written differently.

``slash_dn`` prints a certificate's name as ``grid-proxy-info`` does; ``normalise_dn``
brings a DN typed or received as text to that form; ``without_proxy_cns`` gives the forms a
proxy's DN may be matched under, and ``is_dn`` tells a DN from the other things PanDA puts
where an owner goes.  The proxy model (``pilotid.identity.proxy``) names its certificates
with ``slash_dn``.
"""

from __future__ import annotations

import functools
import re
from typing import Tuple

from asn1crypto import x509 as asn1_x509
from cryptography import x509

# OpenSSL's short names, as X509_NAME_oneline (and so grid-proxy-info) prints them.
_SHORT_NAMES = {
    "2.5.4.3": "CN", "2.5.4.4": "SN", "2.5.4.5": "serialNumber", "2.5.4.6": "C",
    "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "street", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.12": "title", "2.5.4.13": "description", "2.5.4.15": "businessCategory",
    "2.5.4.17": "postalCode", "2.5.4.41": "name", "2.5.4.42": "GN", "2.5.4.43": "initials",
    "2.5.4.44": "generationQualifier", "2.5.4.46": "dnQualifier", "2.5.4.65": "pseudonym",
    "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
    "1.2.840.113549.1.9.1": "emailAddress",
    "1.3.6.1.4.1.311.60.2.1.1": "jurisdictionL", "1.3.6.1.4.1.311.60.2.1.2": "jurisdictionST",
    "1.3.6.1.4.1.311.60.2.1.3": "jurisdictionC",
}


def _escape_value(raw: bytes) -> str:
    """Escape like OpenSSL 3's X509_NAME_oneline: \\xHH outside printable ASCII, \\/ and \\+."""
    out = []
    for byte in raw:
        if byte < 0x20 or byte > 0x7E:
            out.append("\\x%02X" % byte)
        elif byte in b"/+":
            out.append("\\" + chr(byte))
        else:
            out.append(chr(byte))
    return "".join(out)


def slash_dn(name: x509.Name) -> str:
    """Return ``name`` in OpenSSL's slash form: ``/DC=org/DC=example/CN=Alice Analyst``.

    The same text ``grid-proxy-info`` and ``openssl x509 -subject -nameopt compat`` print:
    OpenSSL short names (dotted OIDs for unknown ones), the value's bytes as encoded in the
    certificate, ``\\xHH`` for bytes outside printable ASCII, ``\\/`` and ``\\+`` for a slash
    or plus inside a value, ``+`` between the parts of a multi-valued RDN.
    """
    return _slash_dn(name.public_bytes())


@functools.lru_cache(maxsize=256)
def _slash_dn(der: bytes) -> str:
    """``slash_dn`` of a DER-encoded name: the same few names (user, CAs) come back for
    every job and every certificate of a chain, and asn1crypto's parse is not cheap."""
    parsed = asn1_x509.Name.load(der)
    parts = []
    for rdn in parsed.chosen:
        entries = []
        for attribute in rdn:
            oid = attribute["type"].dotted
            value = _escape_value(attribute["value"].contents)
            entries.append(f"{_SHORT_NAMES.get(oid, oid)}={value}")
        parts.append("/" + "+".join(entries))
    return "".join(parts)


def normalise_dn(dn: str) -> str:
    """Return ``dn`` (slash form) with every character outside printable ASCII as ``\\xHH``.

    A DN typed or received as text (``José``) then compares equal to the form
    ``slash_dn`` gives (``Jos\\xC3\\xA9``); a DN already in that form is returned unchanged.
    """
    raw = dn.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x20 <= b <= 0x7E else "\\x%02X" % b for b in raw)


#: The CNs a proxy adds to its issuer's subject: legacy (``proxy``, ``limited proxy``) and
#: RFC 3820 (a number).  PanDA's server strips the same ones to find the user's DN.
_PROXY_CN = re.compile(r"/CN=(?:proxy|limited proxy|[0-9]+)$")
#: The start of a DN in slash form: ``/`` and an attribute type.
_SLASH_DN = re.compile(r"/[A-Za-z][A-Za-z0-9.]*=")


def without_proxy_cns(dn: str) -> Tuple[str, ...]:
    """``dn`` then each form with one more trailing proxy CN removed, longest first.

    ``/DC=org/CN=Jane Doe/CN=113797372/CN=proxy`` gives itself,
    ``/DC=org/CN=Jane Doe/CN=113797372`` and ``/DC=org/CN=Jane Doe``: the user's DN is one
    of them.  A DN is compared against them one by one, never only against the shortest, so
    that a user whose own DN ends in a number is still matched as it is.
    """
    forms = [dn]
    while True:
        shorter = _PROXY_CN.sub("", forms[-1])
        if shorter == forms[-1] or not shorter:
            return tuple(forms)
        forms.append(shorter)


def is_dn(text: str) -> bool:
    """True where ``text`` is an X.509 DN in slash form (``/DC=org/CN=...``), not an
    e-mail address, a nickname or PanDA's ``no_one``."""
    return bool(_SLASH_DN.match(text.strip()))
