"""``BearerToken``: a WLCG bearer token that has been verified, and what it says."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Optional, Tuple


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class BearerToken:
    """A verified WLCG token: whose it is (``issuer`` and ``subject``), its ordered
    ``groups`` (``wlcg.groups``, which play the part of VOMS FQANs), its ``scopes``, the
    ``audiences`` it is meant for (``aud``), and when it ends.

    Every credential source makes one with ``TokenVerifier.verify``, so a job's token had
    its signature, issuer, times and required claims checked; only ``pilotid token-info``
    without ``--verify`` shows one of unchecked claims.
    ``raw`` is the token itself: it never appears in ``repr`` (nor in logs).
    """

    issuer: str
    subject: str
    expires: datetime.datetime
    version: str
    algorithm: str
    groups: Tuple[str, ...] = ()
    scopes: Tuple[str, ...] = ()
    audiences: Tuple[str, ...] = ()
    not_before: Optional[datetime.datetime] = None
    issued_at: Optional[datetime.datetime] = None
    key_id: Optional[str] = None
    raw: str = field(default="", repr=False, compare=False)

    @property
    def identity(self) -> str:
        """Who the token is for, in one string: ``subject@issuer``."""
        return f"{self.subject}@{self.issuer}"

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        """How long the token is still valid (negative once it has expired)."""
        return self.expires - (now or _utcnow())

    def newer_than(self, other: "BearerToken") -> bool:
        """True when this token ends later than ``other``."""
        return self.expires > other.expires
