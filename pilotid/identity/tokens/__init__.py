"""WLCG bearer tokens: finding them (``discovery``), the issuers' keys (``keys``), offline
verification (``verify``), the verified value (``token``), the token map to local accounts
(``tokenmap``), and the credential sources (``sources``) with their queue settings
(``settings``), which import the queue settings and so are not re-exported here."""

from pilotid.identity.tokens.discovery import (
    FoundToken,
    discover_token,
    read_owned_token_file,
    read_token_file,
)
from pilotid.identity.tokens.keys import IssuerKey, load_issuer_keys
from pilotid.identity.tokens.token import BearerToken
from pilotid.identity.tokens.verify import ANY_AUDIENCE, REQUIRED_CLAIMS, TokenVerifier

__all__ = [
    "ANY_AUDIENCE", "REQUIRED_CLAIMS", "BearerToken", "FoundToken", "IssuerKey", "TokenVerifier",
    "discover_token", "load_issuer_keys", "read_owned_token_file", "read_token_file",
]
