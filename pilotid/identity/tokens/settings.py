"""The queue settings the token sources own: which issuers a queue trusts and where their
keys are, the audiences it accepts, the clock skew, a per-job token path, and whether a
proxy comes with the token."""

from __future__ import annotations

import re
from pathlib import Path
from string import Formatter
from typing import Any, Dict, Mapping, Tuple

from pilotid.errors import ConfigurationError
from pilotid.identity.tokens.keys import IssuerKey, load_issuer_keys
from pilotid.identity.tokens.verify import (
    DEFAULT_AUDIENCES,
    DEFAULT_CLOCK_SKEW,
    TokenVerifier,
)
from pilotid.queue import QueueSettings
from pilotid.settings import (
    REQUIRED,
    InvalidValue,
    Setting,
    ValueType,
    absolute_path,
    flag,
    integer,
    list_of,
    seconds,
    show,
    string,
)

#: The fields a ``token_file`` template may name (``TokenFileSource.fields``).
TEMPLATE_FIELDS = ("panda_id", "credname", "uid")


def _issuer_keys(value: Any) -> Dict[str, Path]:
    if not isinstance(value, dict) or not value:
        raise InvalidValue("must be an object mapping each trusted issuer to its JWKS file "
                           f"or key directory, not {show(value)}")
    found: Dict[str, Path] = {}
    for issuer, location in value.items():
        if not re.fullmatch(r"https://[^\s]+", issuer):
            raise InvalidValue(f"issuer {issuer!r} must be an https URL (the tokens' iss)")
        try:
            found[issuer] = absolute_path(location)
        except InvalidValue as problem:
            raise InvalidValue(f"issuer {issuer}: {problem}") from None
    return found


def _template(value: Any) -> Path:
    path = absolute_path(value)
    try:
        names = {name for _, name, _spec, _conversion in Formatter().parse(str(path))
                 if name is not None}
    except ValueError as problem:
        raise InvalidValue(f"is no valid template: {problem}") from None
    unknown = names - set(TEMPLATE_FIELDS)
    if unknown:
        raise InvalidValue(f"names {', '.join(sorted(unknown))}: a token_file template may "
                           f"name only {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}")
    return path


TOKEN_ISSUERS = Setting(
    "token_issuers", ValueType("object: issuer URL -> absolute path", _issuer_keys), REQUIRED,
    "The token issuers the queue trusts, each with its JWKS file or directory of JWKS files; "
    "a token of any other issuer is refused.")
TOKEN_AUDIENCES = Setting(
    "token_audiences", list_of(string, "audiences (strings)", non_empty=True),
    list(DEFAULT_AUDIENCES),
    "The audiences the queue accepts in a token's aud (the site's CE or storage URL, say); "
    "a token naming none of them, or without aud, is refused.  By default only the WLCG "
    "any-service value https://wlcg.cern.ch/jwt/v1/any; a queue naming its own accepts that "
    "value only if it lists it too.")
TOKEN_CLOCK_SKEW = Setting(
    "token_clock_skew", seconds, DEFAULT_CLOCK_SKEW,
    "Seconds of clock difference allowed on a token's exp, nbf and iat.")
TOKEN_FILE = Setting(
    "token_file", ValueType("absolute path template", _template), REQUIRED,
    "The ``token-file`` source's per-job token path: a template naming {panda_id}, "
    "{credname} or {uid}.")
TOKEN_LIFETIME_NEEDED = Setting(
    "token_lifetime_needed", integer(0), 300,
    "Seconds a job's bearer token must still be valid when it is fetched (tokens live 15 min "
    "to 6 h: they are not held to the proxy's proxy_lifetime_needed).")
TOKEN_REFRESH_THRESHOLD = Setting(
    "token_refresh_threshold", integer(0), 600,
    "While the payload runs, once its token copy has less than this many seconds left, the "
    "pilot asks the source for a newer token every proxy_refresh_interval and renames it "
    "over the copy.")
TOKEN_WITH_PROXY = Setting(
    "token_with_proxy", flag, False,
    "A token source also gives the job a proxy, read as the ``file`` source reads it "
    "(``proxy_file`` or X509_USER_PROXY).")


def build_verifier(settings: QueueSettings) -> TokenVerifier:
    """The ``TokenVerifier`` of a queue's ``token_issuers``, ``token_clock_skew`` and
    ``token_audiences``.

    Raises ``ConfigurationError`` when an issuer's keys cannot be read."""
    issuers: Mapping[str, Path] = settings.option(TOKEN_ISSUERS)
    trusted: Dict[str, Tuple[IssuerKey, ...]] = {}
    for issuer, location in issuers.items():
        try:
            trusted[issuer] = load_issuer_keys(issuer, location)
        except ConfigurationError as error:
            raise ConfigurationError(f"queue {settings.name}: {error}") from None
    return TokenVerifier(trusted, settings.option(TOKEN_CLOCK_SKEW),
                         settings.option(TOKEN_AUDIENCES))
