"""Offline verification of WLCG bearer tokens (the WLCG Common JWT profile) with PyJWT.

``TokenVerifier.verify`` turns a token string into a ``BearerToken`` or refuses it, each
refusal its own error: ``TokenMalformedError`` (no signed JWT: bad base64 or JSON, a JWE,
too large), ``TokenAlgorithmError`` (anything but RS256 and ES256: ``none``, and HS256
signed with an issuer's public key as the shared secret, are refused before any key is
touched), ``TokenIssuerError`` (an issuer the queue does not trust),
``TokenSignatureError`` (no key of that issuer verifies it, or its ``kid`` is unknown),
``TokenExpiredError``, ``TokenNotYetValidError`` (``exp``/``nbf`` beyond the clock skew),
``TokenAudienceError`` (``aud`` missing or naming none of the accepted audiences, as
PyJWT's own audience check finds) and ``TokenClaimError`` (``sub``, ``exp``, ``iss``,
``wlcg.ver`` missing, or a claim of the wrong type).
"""

from __future__ import annotations

import datetime
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import jwt

from pilotid.errors import (
    TokenAlgorithmError,
    TokenAudienceError,
    TokenClaimError,
    TokenExpiredError,
    TokenIssuerError,
    TokenMalformedError,
    TokenNotYetValidError,
    TokenSignatureError,
)
from pilotid.identity.tokens.keys import KEY_TYPES, IssuerKey, keys_for
from pilotid.identity.tokens.token import BearerToken

#: The claims the WLCG profile requires in every token.
REQUIRED_CLAIMS = ("sub", "exp", "iss", "wlcg.ver")
#: A token longer than this is refused unread (WLCG tokens are a few kilobytes).
MAX_TOKEN_LENGTH = 16 * 1024
#: The WLCG profile's audience of a token meant for any service.
ANY_AUDIENCE = "https://wlcg.cern.ch/jwt/v1/any"
#: The audiences a queue accepts when it names none: only tokens meant for any service.
DEFAULT_AUDIENCES = (ANY_AUDIENCE,)
#: The clock skew allowed on ``exp`` and ``nbf`` when the queue names none, in seconds.
DEFAULT_CLOCK_SKEW = 60.0


def _instant(seconds: Any) -> Optional[datetime.datetime]:
    if seconds is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, TypeError, ValueError):
        raise TokenClaimError(f"bearer token time {seconds!r} is out of range") from None


def read_unverified(raw: str) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The header and claims of ``raw``, read without trusting them;
    ``TokenMalformedError`` when it is no signed JWT."""
    if len(raw) > MAX_TOKEN_LENGTH:
        raise TokenMalformedError(f"bearer token is {len(raw)} characters long, more than "
                                  f"the {MAX_TOKEN_LENGTH} a WLCG token may have")
    if raw.count(".") != 2:
        raise TokenMalformedError(
            "bearer token is no signed JWT (a JWS has three dot-separated parts"
            + ("; this looks like an encrypted JWE)" if raw.count(".") == 4 else ")"))
    try:
        header = jwt.get_unverified_header(raw)
        claims = jwt.decode(raw, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, RecursionError) as error:
        raise TokenMalformedError(f"bearer token cannot be decoded: {error}") from None
    return header, claims


def _text_list(claims: Mapping[str, Any], name: str) -> Tuple[str, ...]:
    value = claims.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenClaimError(f"bearer token claim {name} must be a list of strings")
    return tuple(value)


class TokenVerifier:
    """Verifies tokens of the issuers in ``trusted`` (issuer -> its keys) offline, allowing
    ``clock_skew`` seconds on ``exp``, ``nbf`` and ``iat``, and accepting a token whose
    ``aud`` names one of ``audiences`` (exactly these: the any-service value only when
    listed, as it is by default)."""

    def __init__(self, trusted: Mapping[str, Tuple[IssuerKey, ...]],
                 clock_skew: float = DEFAULT_CLOCK_SKEW,
                 audiences: Iterable[str] = DEFAULT_AUDIENCES) -> None:
        self.trusted = dict(trusted)
        self.clock_skew = clock_skew
        self.audiences = tuple(audiences)

    def verify(self, raw: str, min_lifetime: int = 0) -> BearerToken:
        """The ``BearerToken`` ``raw`` holds, valid ``min_lifetime`` seconds more; a
        ``TokenError`` subclass naming the refusal otherwise."""
        raw = raw.strip()
        header, unverified = read_unverified(raw)
        algorithm = header.get("alg")
        if algorithm not in KEY_TYPES:
            raise TokenAlgorithmError(f"bearer token is signed with {algorithm!r}: only "
                                      f"{' and '.join(KEY_TYPES)} are accepted")
        check_required(unverified)
        issuer = unverified["iss"]
        if not isinstance(issuer, str) or issuer not in self.trusted:
            raise TokenIssuerError(f"bearer token issuer {issuer!r} is not trusted by this "
                                   "queue (token_issuers)")
        claims = self._check_signature(raw, issuer, algorithm, header.get("kid"))
        token = token_from_claims(raw, header, claims)
        left = token.time_left().total_seconds()
        if min_lifetime and left < min_lifetime:
            raise TokenExpiredError(f"bearer token of {token.identity} has {int(left)} s left, "
                                    f"the job needs {min_lifetime} s")
        return token

    def _check_signature(self, raw: str, issuer: str, algorithm: str,
                         key_id: Any) -> Dict[str, Any]:
        if key_id is not None and not isinstance(key_id, str):
            raise TokenMalformedError("bearer token header kid is not a string")
        candidates = keys_for(self.trusted[issuer], algorithm, key_id)
        if not candidates:
            raise TokenSignatureError(
                f"no {algorithm} key of issuer {issuer}"
                + (f" has the kid {key_id!r}" if key_id is not None else "")
                + ": the token was not signed by that issuer's known keys")
        for key in candidates:
            try:
                # the audience after the times, as PyJWT would: check_audience below
                claims = jwt.decode(raw, key.key, algorithms=[algorithm],
                                    leeway=self.clock_skew,
                                    options={"require": ["exp", "iss", "sub", "aud"],
                                             "verify_aud": False})
            except jwt.InvalidSignatureError:
                continue
            except jwt.MissingRequiredClaimError as error:
                if error.claim == "aud":
                    raise self._audience_refused(raw) from None
                raise TokenClaimError(f"bearer token: {error}") from None
            except jwt.ExpiredSignatureError:
                raise TokenExpiredError(f"bearer token of issuer {issuer} has expired") \
                    from None
            except jwt.ImmatureSignatureError:
                raise TokenNotYetValidError(
                    f"bearer token of issuer {issuer} is not valid yet (nbf or iat more than "
                    f"{self.clock_skew:g} s ahead)") from None
            except (jwt.PyJWTError, ValueError) as error:
                raise TokenMalformedError(f"bearer token of issuer {issuer} is unusable: "
                                          f"{error}") from None
            self.check_audience(raw)
            return claims
        raise TokenSignatureError(f"bearer token signature does not verify with any key of "
                                  f"issuer {issuer}")

    def check_audience(self, raw: str) -> None:
        """``TokenAudienceError`` unless the ``aud`` of ``raw`` (a string, or a list of
        which one suffices) names one of ``audiences``: PyJWT's own audience check.

        It reads nothing else: ``verify`` runs it once the signature and times are checked;
        ``pilotid token-info`` runs it on a token it only shows."""
        try:
            jwt.decode(raw.strip(), audience=list(self.audiences),
                       options={"verify_signature": False, "verify_aud": True,
                                "require": ["aud"]})
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError):
            raise self._audience_refused(raw) from None
        except (jwt.PyJWTError, ValueError) as error:
            raise TokenMalformedError(f"bearer token cannot be decoded: {error}") from None

    def _audience_refused(self, raw: str) -> TokenAudienceError:
        had = read_unverified(raw)[1].get("aud")
        meant = "has no aud claim" if had is None else f"is meant for {had!r}"
        return TokenAudienceError(f"bearer token {meant}; this queue accepts "
                                  f"{', '.join(self.audiences)} (token_audiences)")


def check_required(claims: Mapping[str, Any]) -> None:
    """``TokenClaimError`` unless ``claims`` has every claim the WLCG profile requires."""
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise TokenClaimError(f"bearer token lacks the claim(s) {', '.join(missing)} "
                              "the WLCG profile requires")


def _audiences(claims: Mapping[str, Any]) -> Tuple[str, ...]:
    value = claims.get("aud")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TokenClaimError("bearer token claim aud must be a string or a list of strings")


def token_from_claims(raw: str, header: Mapping[str, Any],
                      claims: Mapping[str, Any]) -> BearerToken:
    """The ``BearerToken`` of ``claims`` (which have the required claims);
    ``TokenClaimError`` for a claim of the wrong type.  It says what the claims say: only
    ``TokenVerifier.verify`` makes one of checked claims."""
    subject, version, scope = claims.get("sub"), claims.get("wlcg.ver"), claims.get("scope")
    if not isinstance(claims.get("iss"), str):
        raise TokenClaimError("bearer token claim iss must be a string")
    if not isinstance(subject, str) or not subject:
        raise TokenClaimError("bearer token claim sub must be a non-empty string")
    if not isinstance(version, str) or not version:
        raise TokenClaimError("bearer token claim wlcg.ver must be a non-empty string")
    if scope is not None and not isinstance(scope, str):
        raise TokenClaimError("bearer token claim scope must be a string")
    expires = _instant(claims["exp"])
    assert expires is not None  # a required claim
    return BearerToken(
        issuer=claims["iss"], subject=subject, expires=expires, version=version,
        algorithm=header["alg"], groups=_text_list(claims, "wlcg.groups"),
        scopes=tuple((scope or "").split()), audiences=_audiences(claims),
        not_before=_instant(claims.get("nbf")),
        issued_at=_instant(claims.get("iat")), key_id=header.get("kid"), raw=raw)
