"""Token sources: where a job's bearer token comes from, verified and copied for the job.

``BearerTokenSource`` (``bearer``) takes the token the pilot's environment holds by the
discovery order (``discovery``): for a pilot that was handed one user's token.
``TokenFileSource`` (``token-file``) reads the token from the path the queue's
``token_file`` template gives for each job (tokens the pilot obtained per job).  Either
verifies the token offline against the queue's ``token_issuers`` and writes it to a new
0600 file in the job's directory (``bearer-token-<random>``); with ``token_with_proxy`` the
job also gets a proxy, from the ``file`` source, so that one job holds both.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path
from typing import Mapping, Optional

from zope.interface import implementer

from pilotid.errors import CredentialError, TokenError
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.credfile import write_private
from pilotid.identity.dn import is_dn
from pilotid.identity.proxy import format_time_left
from pilotid.identity.sources import PROXY_FILE, LocalFileSource
from pilotid.identity.tokens.discovery import discover_token, read_token_file
from pilotid.identity.tokens.settings import (
    TOKEN_AUDIENCES,
    TOKEN_CLOCK_SKEW,
    TOKEN_FILE,
    TOKEN_ISSUERS,
    TOKEN_LIFETIME_NEEDED,
    TOKEN_REFRESH_THRESHOLD,
    TOKEN_WITH_PROXY,
    build_verifier,
)
from pilotid.identity.tokens.token import BearerToken
from pilotid.identity.tokens.verify import TokenVerifier
from pilotid.interfaces import ICredentialSource
from pilotid.queue import QueueSettings

log = logging.getLogger(__name__)


class _TokenCredentials:
    """What both token sources do with a token string once found (composed, not a base)."""

    def __init__(self, settings: QueueSettings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self._environ = environ
        self._verifier: Optional[TokenVerifier] = None

    def verifier(self) -> TokenVerifier:
        if self._verifier is None:
            self._verifier = build_verifier(self.settings)
        return self._verifier

    def credential(self, raw: str, origin: str, request: CredentialRequest,
                   source: str) -> Credential:
        token = self.verifier().verify(raw, self.settings.option(TOKEN_LIFETIME_NEEDED))
        check_owner(token, request, self.settings.option(TOKEN_WITH_PROXY))
        copy = write_private(Path(request.directory) / f"bearer-token-{secrets.token_hex(16)}",
                             token.raw.encode("ascii") + b"\n")
        log.info("bearer token of %s (%s left, groups %s) copied from %s to %s",
                 token.identity, format_time_left(token.time_left()),
                 " ".join(token.groups) or "none", origin, copy)
        if not self.settings.option(TOKEN_WITH_PROXY):
            return Credential(path=None, proxy=None, source=source, token_path=copy,
                              token=token)
        proxy = LocalFileSource(self.settings, self._environ).fetch(request)
        return Credential(path=proxy.path, proxy=proxy.proxy, source=source,
                          token_path=copy, token=token)


def check_owner(token: BearerToken, request: CredentialRequest, with_proxy: bool) -> None:
    """Refuse ``token`` for a job of another user (``CredentialError``, as a proxy of
    another user is refused): the job's ``owner_id`` must be the token's ``sub`` or
    ``sub@iss``; a job naming its owner by DN needs the proxy beside the token (the file
    source checks that), since a token carries no DN."""
    if request.owner_id is not None and request.owner_id not in (token.subject,
                                                                 token.identity):
        raise CredentialError(
            f"bearer token of {token.identity} is not the token of the job's owner "
            f"{request.owner_id}: refusing to run one user's job with another's token")
    if request.owner_dn is not None and is_dn(request.owner_dn) and not with_proxy:
        raise CredentialError(
            f"the job names its owner by the DN {request.owner_dn}, which a bearer token "
            f"({token.identity}) cannot be checked against: set token_with_proxy, or have "
            "the dispatcher name the token's subject (jobs_without_dn 'token_subject')")


class _TokenSource:
    """What both token sources hold: the queue's settings, the environment they read (the
    process's by default) and the verification that turns a raw token into a credential."""

    def __init__(self, settings: QueueSettings,
                 environ: Optional[Mapping[str, str]] = None) -> None:
        self.settings = settings
        self._environ = os.environ if environ is None else environ
        self._tokens = _TokenCredentials(settings, self._environ)


@implementer(ICredentialSource)
class BearerTokenSource(_TokenSource):
    """The token the pilot's environment holds, found by the WLCG discovery order
    (``BEARER_TOKEN``, ``BEARER_TOKEN_FILE``, ``$XDG_RUNTIME_DIR/bt_u<euid>``,
    ``/tmp/bt_u<euid>``, a ``bt_u`` file only when it is the pilot's own)."""

    name = "bearer"
    own_settings = (TOKEN_ISSUERS, TOKEN_AUDIENCES, TOKEN_CLOCK_SKEW,
                    TOKEN_LIFETIME_NEEDED, TOKEN_REFRESH_THRESHOLD, TOKEN_WITH_PROXY, PROXY_FILE)

    def fetch(self, request: CredentialRequest) -> Credential:
        """A ``Credential`` holding a verified copy of the discovered token in
        ``request.directory``; a ``TokenError`` subclass when none is found or it is
        refused."""
        found = discover_token(self._environ, os.geteuid())
        if found is None:
            raise TokenError("no bearer token found: BEARER_TOKEN, BEARER_TOKEN_FILE, "
                             f"$XDG_RUNTIME_DIR/bt_u{os.geteuid()} and /tmp/bt_u{os.geteuid()} "
                             "are all empty or absent")
        return self._tokens.credential(found.value, found.origin, request, self.name)


@implementer(ICredentialSource)
class TokenFileSource(_TokenSource):
    """The job's token from the file the queue's ``token_file`` template names for it
    (``{panda_id}``, ``{credname}``, ``{uid}``: the pilot's uid)."""

    name = "token-file"
    own_settings = (TOKEN_FILE, TOKEN_ISSUERS, TOKEN_AUDIENCES, TOKEN_CLOCK_SKEW,
                    TOKEN_LIFETIME_NEEDED, TOKEN_REFRESH_THRESHOLD, TOKEN_WITH_PROXY, PROXY_FILE)

    def token_path(self, request: CredentialRequest) -> Path:
        """The token file for ``request``; ``CredentialError`` when a field it names is
        missing, or would not be one plain file name component."""
        fields = {"panda_id": request.job_id, "credname": request.credname,
                  "uid": str(os.geteuid())}
        for name, value in fields.items():
            if value is not None and (not value or "/" in value or value in (".", "..")
                                      or "\0" in value):
                fields[name] = None
        template = str(self.settings.option(TOKEN_FILE))
        try:
            return Path(template.format_map(_Strict(fields)))
        except KeyError as missing:
            raise CredentialError(
                f"queue {self.settings.name}: token_file {template} names {{{missing.args[0]}}}"
                ", which this job does not give as a plain file name") from None

    def fetch(self, request: CredentialRequest) -> Credential:
        """A ``Credential`` holding a verified copy of the job's token file in
        ``request.directory``; a ``TokenError`` subclass when it is absent or refused."""
        path = self.token_path(request)
        raw = read_token_file(path)
        if not raw:
            raise TokenError(f"no bearer token for the job at {path} (absent or empty)")
        return self._tokens.credential(raw, str(path), request, self.name)


class _Strict(dict):
    """``format_map`` fields where a missing (``None``) value is a ``KeyError``."""

    def __getitem__(self, key: str) -> str:
        value = super().get(key)
        if value is None:
            raise KeyError(key)
        return str(value)

