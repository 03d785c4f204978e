"""What happened to one job: ``PayloadResult``, and the outcome of a job that failed
before (or instead of) running its payload.

The fields of ``pilotid run --json`` and of the accounting record (DESIGN.md, "Files and
output that other programs rely on"); ``pilotid.launcher`` builds them.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional

from pilotid import values
from pilotid.errors import (
    AccountMappingError,
    CredentialError,
    InternalError,
    PilotidError,
    PilotInterruptedError,
    RescheduleRequest,
    SwitchError,
)
from pilotid.identity.accounts import Account
from pilotid.values import Outcome


def now() -> datetime.datetime:
    """The current time, in UTC: when a job started and ended."""
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass(frozen=True)
class PayloadResult:
    """What happened to one job: the fields of ``pilotid run --json`` and of the accounting
    record (which adds ``user_dn`` and ``token``: the issuer, subject and groups of the job's
    bearer token, or null)."""

    panda_id: int
    outcome: str
    exit_code: Optional[int]
    signal: Optional[int]
    error_code: int
    error: Optional[str]
    account: Optional[Account]
    switcher: str
    sandbox_mode: Optional[str]
    workdir: Path
    stdout: Optional[Path]
    stderr: Optional[Path]
    started: datetime.datetime
    ended: datetime.datetime
    user_dn: Optional[str] = None
    token: Optional[Dict[str, Any]] = None

    def as_dict(self) -> Dict[str, Any]:
        """The result as JSON-ready data (without ``user_dn``, which only accounting keeps)."""
        return {
            "panda_id": self.panda_id,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "error_code": self.error_code,
            "error": self.error,
            "account": self.account.as_dict() if self.account else None,
            "switcher": self.switcher,
            "sandbox_mode": self.sandbox_mode,
            "workdir": str(self.workdir),
            "stdout": str(self.stdout) if self.stdout else None,
            "stderr": str(self.stderr) if self.stderr else None,
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat(),
        }

    def accounting_record(self) -> Dict[str, Any]:
        """The accounting record: the result plus the user's DN (a token-only job's
        ``subject@issuer``) and its token's ``issuer``, ``subject`` and ``groups``."""
        return dict(self.as_dict(), user_dn=self.user_dn, token=self.token)


def outcome_for_error(error: PilotidError) -> Outcome:
    """The outcome of a job that failed before (or instead of) running its payload."""
    if isinstance(error, RescheduleRequest):
        kind = values.RESCHEDULED
    elif isinstance(error, PilotInterruptedError):
        kind = values.INTERRUPTED
    elif isinstance(error, CredentialError):
        kind = values.CREDENTIAL_FAILED
    elif isinstance(error, (SwitchError, AccountMappingError)):
        kind = values.SWITCH_FAILED
    elif isinstance(error, InternalError):
        kind = values.INTERNAL_ERROR
    else:
        kind = values.SETUP_FAILED
    return Outcome(kind, error=error)


def internal_error(error: BaseException, during: str) -> Outcome:
    """The outcome of a job ended by an unexpected exception ``error`` (not a
    ``PilotidError``) raised while ``during``."""
    return Outcome(values.INTERNAL_ERROR, error=InternalError(
        f"internal error while {during}: {type(error).__name__}: {error}; the pilot's log "
        "has the traceback (report it to pilotid or to the plugin's authors)"))
