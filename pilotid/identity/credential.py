"""The values a credential source takes and gives: ``CredentialRequest`` and ``Credential``."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from pilotid.identity.proxy import ProxyInfo


@dataclass(frozen=True)
class CredentialRequest:
    """What the launcher asks a credential source for, for one job.

    ``owner_dn`` and ``credname``/``server`` come from the job (PanDA's ``prodUserID``,
    ``credname``, ``myproxy``) or the queue; ``lifetime`` is how many seconds the proxy must
    still be valid; the proxy is written into ``directory``.
    """

    directory: Path
    lifetime: int = 0
    owner_dn: Optional[str] = None
    credname: Optional[str] = None
    server: Optional[str] = None
    username: Optional[str] = None


@dataclass(frozen=True)
class Credential:
    """The user's proxy for one job: a 0600 file owned by the pilot, already checked.

    ``proxy`` is the parsed model of the file, so that nothing later has to read it again.
    """

    path: Path
    proxy: "ProxyInfo"
    source: str

    @property
    def identity(self) -> str:
        """The user's identity DN in slash form (the first non-proxy subject)."""
        return self.proxy.identity

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        """How long the proxy is still valid (negative once it has expired)."""
        return self.proxy.time_left(now)
