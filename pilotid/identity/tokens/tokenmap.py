"""The token map: which local account a token's issuer and subject, or issuer and group,
maps to, the grid-mapfile's part for bearer tokens.

One rule a line, blank-separated, ``#`` starting a comment line::

    # kind   issuer                            subject or group     account
    sub      https://atlas-auth.example.org/   7d1c0a5e-...         atlas001
    group    https://atlas-auth.example.org/   /atlas/production    atlasprd

A token maps by its subject first; else by its groups, in the token's own order (the first
of ``wlcg.groups`` is its primary group, as the first VOMS FQAN is): the first group with
a rule wins.  A group rule names one group exactly: membership of ``/atlas/production``
maps by that rule, never by one for ``/atlas`` (the profile: a subgroup does not imply its
parent).  Malformed lines are skipped with a warning, as the grid-mapfile's are; the first
line for a key wins.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

from pilotid.errors import AccountMappingError, ConfigurationError
from pilotid.identity.accounts import Account, local_account
from pilotid.identity.tokens.token import BearerToken

log = logging.getLogger(__name__)

SUBJECT = "sub"
GROUP = "group"


@dataclass(frozen=True)
class TokenMapRule:
    """One line of the token map: ``kind`` (``sub`` or ``group``), issuer, the subject or
    group, and the account."""

    kind: str
    issuer: str
    value: str
    account: str
    line: int


def _parse_line(text: str, number: int) -> Tuple[Optional[TokenMapRule], Optional[str]]:
    words = text.split()
    if not words or words[0].startswith("#"):
        return None, None
    if len(words) != 4:
        return None, f"has {len(words)} fields, not 4 (kind issuer subject-or-group account)"
    kind, issuer, value, account = words
    if kind not in (SUBJECT, GROUP):
        return None, f"kind {kind!r} is neither {SUBJECT!r} nor {GROUP!r}"
    if not issuer.startswith("https://"):
        return None, f"issuer {issuer!r} is no https URL"
    if kind == GROUP and not value.startswith("/"):
        return None, f"group {value!r} does not start with /"
    return TokenMapRule(kind, issuer, value, account, number), None


class TokenMap:
    """A parsed token map; ``lookup`` gives the account a ``BearerToken`` maps to."""

    def __init__(self, rules: Sequence[TokenMapRule], source: str = "token map",
                 skipped: Sequence[Tuple[int, str]] = ()) -> None:
        self.rules = tuple(rules)
        self.source = source
        self.skipped = tuple(skipped)
        self._by_key: Dict[Tuple[str, str, str], TokenMapRule] = {}
        for rule in self.rules:
            self._by_key.setdefault((rule.kind, rule.issuer, rule.value), rule)

    @classmethod
    def parse(cls, text: str, source: str = "token map") -> "TokenMap":
        """Parse the text of a token map; ``source`` names it in messages."""
        rules, skipped = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            rule, problem = _parse_line(line, number)
            if problem:
                log.warning("%s line %d skipped: %s", source, number, problem)
                skipped.append((number, problem))
            elif rule is not None:
                rules.append(rule)
        return cls(rules, source, skipped)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "TokenMap":
        """Read and parse the token map at ``path``; ``ConfigurationError`` naming it when
        it cannot be read (the operator's to provide)."""
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise ConfigurationError(f"token map {path} cannot be read by uid {os.geteuid()}: "
                                     f"{error.strerror}") from None
        return cls.parse(data.decode("utf-8", "surrogateescape"), str(path))

    def find(self, token: BearerToken) -> Optional[TokenMapRule]:
        """The rule ``token`` maps by (its subject's, else its first mapped group's), or
        None."""
        rule = self._by_key.get((SUBJECT, token.issuer, token.subject))
        for group in token.groups:
            if rule is not None:
                break
            rule = self._by_key.get((GROUP, token.issuer, group))
        return rule

    def lookup(self, token: BearerToken) -> str:
        """The account name ``token`` maps to; ``AccountMappingError`` if none."""
        rule = self.find(token)
        if rule is None:
            note = (f" ({len(self.skipped)} malformed line(s) were skipped, the first line "
                    f"{self.skipped[0][0]}: {self.skipped[0][1]})" if self.skipped else "")
            raise AccountMappingError(
                f"token of {token.subject} from {token.issuer} (groups "
                f"{' '.join(token.groups) or 'none'}) maps to no account in the token map "
                f"{self.source}: the site has not mapped this user or group{note}")
        return rule.account


def map_token_account(token: BearerToken, path: Union[str, Path]) -> Account:
    """The local ``Account`` the token map at ``path`` gives ``token``.

    Raises ``AccountMappingError`` when nothing maps it or the account is not one this node
    has, ``ConfigurationError`` when the map cannot be read.
    """
    name = TokenMap.load(path).lookup(token)
    return local_account(name, f"token map {path} maps {token.identity}")
