"""MyProxy's trusted-retrieval policy matching, reimplemented for the tests.

Written from myproxy 6.x ``myproxy_server_config.c`` (``myproxy_server_check_policy_ext`` and
``regex_compare``), not from ``pilotid.identity.policy``, so that the policy builder is checked
against the server's semantics and not against itself:

- a policy starting with ``FQAN:`` (any case) is matched against each FQAN of the client and
  matches if one does; ``SUBJECT:`` (any case) is dropped; anything else is matched against
  the client's identity DN;
- the pattern is translated character by character (``*`` -> ``.*``, ``?`` -> ``.``, ``.`` ->
  ``\\.``, ``\\`` escapes the next character: ``\\*`` -> ``*``, ``\\?`` -> ``?``, ``\\.`` -> ``.``,
  ``\\\\`` -> ``\\``, ``\\c`` -> ``\\c``), wrapped as ``^(...)$`` and compiled as a POSIX extended
  regular expression (``regcomp(..., REG_EXTENDED)``, case-sensitive); a pattern that does not
  compile matches nothing.

The ERE is run by the C library's own ``regcomp``/``regexec`` (glibc, as in the server).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Sequence

REG_EXTENDED = 1
_libc = ctypes.CDLL(ctypes.util.find_library("c"))
_libc.regcomp.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
_libc.regexec.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                          ctypes.c_int]
_libc.regfree.argtypes = [ctypes.c_void_p]


def translate(policy: str) -> str:
    """The ERE the server builds from ``policy`` (``regex_compare``'s first loop)."""
    out = ["^("]
    escaped = False
    for char in policy:
        if char == "*":
            out.append("*" if escaped else ".*")
            escaped = False
        elif char == "?":
            out.append("?" if escaped else ".")
            escaped = False
        elif char == "\\":
            if escaped:
                out.append("\\")
                escaped = False
            else:
                escaped = True
        elif char == ".":
            out.append("." if escaped else "\\.")
            escaped = False
        else:
            out.append("\\" + char if escaped else char)
            escaped = False
    out.append(")$")
    return "".join(out)


def posix_ere_matches(ere: str, text: str) -> bool:
    """``regexec`` of ``ere`` (compiled with ``REG_EXTENDED``) on ``text``; False if no compile."""
    preg = ctypes.create_string_buffer(256)  # regex_t is 64 bytes on glibc/x86_64
    if _libc.regcomp(preg, ere.encode("utf-8"), REG_EXTENDED) != 0:
        return False
    try:
        return _libc.regexec(preg, text.encode("utf-8"), 0, None, 0) == 0
    finally:
        _libc.regfree(preg)


def server_matches(policy: str, dn: str, fqans: Sequence[str] = ()) -> bool:
    """Whether a client with identity ``dn`` and VOMS ``fqans`` passes ``policy``."""
    if policy[:5].upper() == "FQAN:":
        return any(posix_ere_matches(translate(policy[5:]), fqan) for fqan in fqans)
    if policy[:8].upper() == "SUBJECT:":
        policy = policy[8:]
    return posix_ere_matches(translate(policy), dn)
