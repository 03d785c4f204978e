"""MyProxy retrieval policies (``RETRIEVER_TRUSTED``, ``myproxy-init -x -Z``) that name the pilots.

A user who delegates a proxy to MyProxy for the pilots stores it with a *trusted retrieval
policy*: whoever authenticates with a certificate the policy matches may fetch the proxy
without a passphrase.  The policy is one string, in one of two forms:

- a DN pattern matched against the retriever's identity DN (OpenSSL slash form), built here
  from the list of pilot DNs by ``dn_policy``;
- ``FQAN:<pattern>``, matched against each VOMS FQAN of the retriever's proxy (the server must
  be built with VOMS support, Debian's ``libmyproxy-voms``), built by ``fqan_policy``.

How the server matches (myproxy 6.x, ``myproxy_server_config.c``, ``regex_compare``): the
policy is first translated character by character into a POSIX extended regular expression,
then anchored as ``^(...)$`` and matched case-sensitively with ``regcomp``/``regexec``:

- ``*`` becomes ``.*`` and ``?`` becomes ``.`` (shell-style wildcards);
- ``.`` becomes ``\\.`` (a literal dot);
- ``\\`` escapes the next character: ``\\*`` becomes ``*``, ``\\?`` becomes ``?``, ``\\.``
  becomes ``.``, ``\\\\`` becomes ``\\``, and any other ``\\c`` stays ``\\c``;
- everything else (``( ) [ ] { } | + ^ $``) passes through and keeps its regex meaning, which
  is what makes ``A|B|C`` work and what makes an unescaped DN such as
  ``/CN=pilot (ANALY_*) 1.0`` match other DNs and not itself.

So a literal ``*`` or ``?`` in a DN is written ``[\\*]``/``[\\?]`` (the server turns it into
``[*]``/``[?]``), the other regex specials are backslash-escaped, dots are left alone, and a
list of DNs is joined with ``|`` inside one group.  With ``-Z`` (no ``-x``) ``myproxy-init``
prefixes the string with ``*/CN=`` (common-name matching); pass ``-x`` *before* ``-Z`` so that
the policy is sent as it is.

Servers older than the backslash handling (the 2011 generation) translated only ``*``, ``?``
and ``.`` and anchored as ``^...$`` without the group; the group that ``dn_policy`` adds keeps
a list of DNs anchored there too, but DNs with ``*``, ``?`` or ``\\`` cannot be matched exactly
by such servers.  Some of them also cut ``-Z`` at 255 characters: ``check_length``.
"""

from __future__ import annotations

import logging
import re
import shlex
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from pilotid.errors import ConfigurationError

log = logging.getLogger(__name__)

DN_FORM = "dn"
FQAN_FORM = "fqan"
FQAN_PREFIX = "FQAN:"
# The -Z limit of the MyProxy server at CERN that the 2011 pilots met; 6.2.14 has none.
LEGACY_MAX_LENGTH = 255

# What the server's translation leaves with a regex meaning (backslash-escape them) and what it
# turns into wildcards (write them as a one-character bracket expression).
_ERE_SPECIALS = frozenset("()[]{}|+^$")
_WILDCARDS = {"*": "[\\*]", "?": "[\\?]"}
# The wire format is one "NAME=value" per line: a line break would end the policy early.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_FQAN = re.compile(
    r"^(?P<group>(/[A-Za-z0-9_.\-]+)+?)"
    r"(/Role=(?P<role>[A-Za-z0-9_.\-]+))?"
    r"(/Capability=(?P<capability>[A-Za-z0-9_.\-]+))?$")


@dataclass(frozen=True)
class RetrievalPolicy:
    """A trusted-retrieval policy ready to send: its text and its form (``dn`` or ``fqan``)."""

    text: str
    form: str

    @property
    def length(self) -> int:
        """How many characters the policy is (what a server that cuts ``-Z`` counts)."""
        return len(self.text)

    def fits(self, max_length: Optional[int]) -> bool:
        """True where the policy is no longer than ``max_length`` (None: no limit)."""
        return max_length is None or self.length <= max_length

    def myproxy_init_args(self) -> List[str]:
        """The ``myproxy-init``/``myproxy-store`` options that send this policy unchanged."""
        return ["-x", "-Z", self.text]

    def as_dict(self) -> Dict[str, object]:
        """The policy as JSON-ready values."""
        return {"policy": self.text, "form": self.form, "length": self.length}


def escape_dn(dn: str) -> str:
    """Write ``dn`` so that MyProxy's policy matching matches exactly this DN and nothing else."""
    _check_dn(dn)
    return _escape(dn)


def _escape(text: str) -> str:
    out = []
    for char in text:
        if char in _WILDCARDS:
            out.append(_WILDCARDS[char])
        elif char == "\\":
            out.append("\\\\\\\\")  # two for the translation, two for the regex
        elif char in _ERE_SPECIALS:
            out.append("\\" + char)
        else:
            out.append(char)  # "." included: the server escapes it itself
    return "".join(out)


def dn_policy(dns: Sequence[str]) -> str:
    """The policy that lets exactly the retrievers with one of ``dns`` fetch the credential.

    ``dns`` are identity DNs in OpenSSL slash form, exactly as the server sees them (what
    ``grid-proxy-info -identity`` prints for the pilot).  Duplicates are dropped, order kept.
    Raises ``ConfigurationError`` for an empty list or a string that is not a slash DN.
    """
    if isinstance(dns, str):
        dns = [dns]
    unique = list(dict.fromkeys(dns))
    if not unique:
        raise ConfigurationError("no pilot DN given: name at least one (--pilot-dn) or use --fqan")
    escaped = [escape_dn(dn) for dn in unique]
    if len(escaped) == 1:
        return escaped[0]
    # The group keeps the alternatives anchored on servers that do not add one themselves.
    return "(" + "|".join(escaped) + ")"


def fqan_policy(fqan: str, exact: bool = False) -> str:
    """The policy that lets retrievers whose VOMS proxy carries ``fqan`` fetch the credential.

    VOMS servers write FQANs in the AC in full (``/atlas/Role=pilot/Capability=NULL``,
    ``/atlas/Role=NULL/Capability=NULL`` for a plain group) while people and
    ``voms-proxy-fake`` write them short (``/atlas/Role=pilot``, ``/atlas``).  The server
    compares the whole string, so by default the policy accepts every spelling of the same
    FQAN; with ``exact`` it accepts ``fqan`` as written only.
    """
    _check_fqan(fqan)
    if exact:
        return FQAN_PREFIX + _escape(fqan)
    spellings = fqan_spellings(fqan)
    if len(spellings) == 1:
        return FQAN_PREFIX + _escape(spellings[0])
    return FQAN_PREFIX + "(" + "|".join(_escape(s) for s in spellings) + ")"


def fqan_spellings(fqan: str) -> Tuple[str, ...]:
    """Every way a VOMS AC may spell ``fqan``: short first, then with the NULL parts filled in."""
    match = _check_fqan(fqan)
    group, role, capability = match["group"], match["role"], match["capability"]
    if capability not in (None, "NULL"):
        return (fqan,)
    if role in (None, "NULL"):
        return (group, f"{group}/Role=NULL", f"{group}/Role=NULL/Capability=NULL")
    return (f"{group}/Role={role}", f"{group}/Role={role}/Capability=NULL")


def check_length(policy: RetrievalPolicy, max_length: Optional[int]) -> None:
    """Raise ``ConfigurationError`` if ``policy`` is longer than a server's ``-Z`` limit.

    ``max_length`` None means the server has no limit (myproxy 6.2.14 takes 100k and more);
    old servers cut the policy at ``LEGACY_MAX_LENGTH`` (255) characters, silently, which
    leaves a policy that names nobody, or someone else.
    """
    _check_max_length(max_length)
    if policy.fits(max_length):
        return
    hint = ("use the FQAN form instead (pilotid policy --fqan /<vo>/Role=pilot), which does "
            "not grow with the number of pilots"
            if policy.form == DN_FORM else "shorten the FQAN or use a server without the limit")
    raise ConfigurationError(
        f"the {policy.form.upper()} retrieval policy is {policy.length} characters, too long for "
        f"a MyProxy server that cuts -Z at {max_length} characters: {hint}")


def choose_policy(pilot_dns: Sequence[str], fqan: Optional[str],
                  max_length: Optional[int]) -> RetrievalPolicy:
    """The policy to store for these pilots: the DN list where it fits, else the FQAN form.

    The DN form names exactly the pilots and needs nothing of the server, so it is preferred;
    the FQAN form does not grow with the number of pilots but needs a VOMS-enabled server.
    Raises ``ConfigurationError`` when neither is given or none fits ``max_length``.
    """
    _check_max_length(max_length)
    candidates = policy_candidates(pilot_dns, fqan)
    for candidate in candidates:
        if candidate.fits(max_length):
            if candidate.form == FQAN_FORM and len(candidates) > 1:
                log.info("the DN policy (%d characters) does not fit in %s; using the FQAN form",
                         candidates[0].length, max_length)
            return candidate
    if len(candidates) == 1:
        check_length(candidates[0], max_length)
    raise ConfigurationError(
        f"neither retrieval policy fits in {max_length} characters (DN list: "
        f"{candidates[0].length}, FQAN: {candidates[1].length}): use a MyProxy server without "
        "the -Z limit")


def policy_candidates(pilot_dns: Sequence[str], fqan: Optional[str]) -> List[RetrievalPolicy]:
    """The policies these arguments make, DN form first; ``ConfigurationError`` if none."""
    candidates = []
    if pilot_dns:
        candidates.append(RetrievalPolicy(dn_policy(pilot_dns), DN_FORM))
    if fqan:
        candidates.append(RetrievalPolicy(fqan_policy(fqan), FQAN_FORM))
    if not candidates:
        raise ConfigurationError(
            "a retrieval policy needs pilot DNs (--pilot-dn) or a VOMS FQAN (--fqan)")
    return candidates


def shell_command(policy: RetrievalPolicy, program: str = "myproxy-init") -> str:
    """The options to paste into a shell for ``program``, quoted (``-x`` before ``-Z``)."""
    return " ".join(shlex.quote(part) for part in [program, *policy.myproxy_init_args()])


def _check_max_length(max_length: Optional[int]) -> None:
    if max_length is not None and max_length < 1:
        raise ConfigurationError(f"a -Z length limit must be a positive number, not {max_length}")


def _check_dn(dn: str) -> None:
    if not isinstance(dn, str) or not dn.startswith("/") or "=" not in dn:
        raise ConfigurationError(
            f"{dn!r} is not a DN in slash form: give it as grid-proxy-info -identity prints it "
            "(/DC=org/DC=example/CN=...)")
    if _FORBIDDEN.search(dn):
        raise ConfigurationError(
            f"DN {dn!r} contains a control character (line break?); MyProxy cannot carry it")


def _check_fqan(fqan: str) -> "re.Match[str]":
    match = _FQAN.match(fqan) if isinstance(fqan, str) else None
    if not match:
        raise ConfigurationError(
            f"{fqan!r} is not a VOMS FQAN: write /<vo>[/<group>...][/Role=<role>] "
            "(e.g. /atlas/Role=pilot)")
    return match
