"""The values a credential source takes and gives: ``CredentialRequest`` and ``Credential``."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Tuple

from pilotid.errors import CredentialError

if TYPE_CHECKING:
    from pilotid.identity.proxy import ProxyInfo
    from pilotid.identity.tokens import BearerToken


@dataclass(frozen=True)
class CredentialRequest:
    """What the launcher asks a credential source for, for one job.

    ``owner_dn`` and ``credname``/``server`` come from the job (PanDA's ``prodUserID``,
    ``credname``, ``myproxy``) or the queue; ``lifetime`` is how many seconds the proxy (and
    the token) must still be valid; the copies are written into ``directory``; ``job_id`` is
    the job's PanDA id (a token path template may name it); ``owner_id`` the token identity
    the job names (a ``prodUserID`` that is no DN), which a token's subject must match.
    """

    directory: Path
    lifetime: int = 0
    owner_dn: Optional[str] = None
    credname: Optional[str] = None
    server: Optional[str] = None
    username: Optional[str] = None
    job_id: Optional[str] = None
    owner_id: Optional[str] = None


@dataclass(frozen=True)
class Credential:
    """The user's credential for one job: a proxy, a bearer token, or both, each a 0600
    file owned by the pilot, already checked.

    ``path`` and ``proxy`` are the proxy's copy and its parsed model (``None`` for a
    token-only job); ``token_path`` and ``token`` the token's copy and its verified value
    (``None`` for a proxy-only job), so that nothing later has to read either again.
    """

    path: Optional[Path]
    proxy: Optional["ProxyInfo"]
    source: str
    token_path: Optional[Path] = None
    token: Optional["BearerToken"] = None

    @property
    def identity(self) -> str:
        """The user's identity: the proxy's DN in slash form (the first non-proxy subject),
        else the token's ``subject@issuer``."""
        if self.proxy is not None:
            return self.proxy.identity
        if self.token is None:
            raise ValueError(f"the credential from {self.source} holds neither proxy nor token")
        return self.token.identity

    @property
    def files(self) -> Tuple[Path, ...]:
        """The copies this credential holds (the proxy's, the token's), for removal."""
        return tuple(path for path in (self.path, self.token_path) if path is not None)

    def proxy_file(self, needed_by: str) -> Path:
        """The proxy's copy; ``CredentialError`` saying that ``needed_by`` (gLExec, say)
        needs a proxy when this credential holds only a token."""
        if self.path is None:
            raise CredentialError(f"{needed_by} needs an X.509 proxy, and the job's credential "
                                  f"({self.identity}, from {self.source}) holds only a bearer "
                                  "token (token_with_proxy gives it both)")
        return self.path

    def time_left(self, now: Optional[datetime.datetime] = None) -> datetime.timedelta:
        """How long the proxy is still valid, the token for a token-only job (negative once
        it has expired).  A job's token is short-lived by design: its source holds it to
        ``token_lifetime_needed``, not to the proxy's lifetime."""
        held = self.proxy if self.proxy is not None else self.token
        if held is None:
            raise ValueError(f"the credential from {self.source} holds neither proxy nor token")
        return held.time_left(now)
