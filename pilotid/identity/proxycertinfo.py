"""The ProxyCertInfo extension (RFC 3820, and the GSI-3 draft before it): which policy
language a proxy certificate declares, read with a minimal DER reader.

The language's OID is what tells an impersonation proxy from a limited, independent or
restricted one; ``pilotid.identity.proxy`` turns it into the proxy's type.
"""

from __future__ import annotations

from typing import List, Tuple


def _der_items(data: bytes) -> List[Tuple[int, bytes]]:
    """The (tag, content) items of DER ``data`` (a minimal reader for ProxyCertInfo)."""
    items = []
    i = 0
    while i < len(data):
        if i + 2 > len(data):
            raise ValueError("short DER item")
        tag, length = data[i], data[i + 1]
        i += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or i + count > len(data):
                raise ValueError("bad DER length")
            length = int.from_bytes(data[i:i + count], "big")
            i += count
        if i + length > len(data):
            raise ValueError("DER item overruns its container")
        items.append((tag, data[i:i + length]))
        i += length
    return items


def _decode_oid(content: bytes) -> str:
    if not content:
        raise ValueError("empty OID")
    numbers: List[int] = []
    value = 0
    for byte in content:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            numbers.append(value)
            value = 0
    first = min(numbers[0] // 40, 2)
    return ".".join(str(n) for n in [first, numbers[0] - 40 * first] + numbers[1:])


def policy_language(der: bytes) -> str:
    """The policy language OID of a ProxyCertInfo value (RFC 3820 or GSI-3 draft order)."""
    (tag, body), = _der_items(der)
    if tag != 0x30:
        raise ValueError("ProxyCertInfo is not a SEQUENCE")
    for tag, content in _der_items(body):
        if tag == 0x30:  # ProxyPolicy; the path length is an INTEGER (RFC) or [1] (draft)
            inner = _der_items(content)
            if inner and inner[0][0] == 0x06:
                return _decode_oid(inner[0][1])
    raise ValueError("ProxyCertInfo has no ProxyPolicy")
