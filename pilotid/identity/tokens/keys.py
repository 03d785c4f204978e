"""An issuer's signing keys, read from local JWKS files: verification never goes online.

A queue names, for each issuer it trusts, a JWKS file (the issuer's ``jwks_uri`` document,
fetched and kept by the site) or a directory of such files (``*.json``, ``*.jwks``: the old
and the new key set while an issuer rotates its keys).  Only the keys of that issuer ever
verify that issuer's tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import jwt

from pilotid.errors import ConfigurationError

#: The signature algorithms the WLCG profile allows, by the key type each needs.
KEY_TYPES: Dict[str, str] = {"RS256": "RSA", "ES256": "EC"}

_JWKS_SUFFIXES = (".json", ".jwks")


@dataclass(frozen=True)
class IssuerKey:
    """One public key of an issuer: its ``kid`` (if the set names one), its key type, the
    key object for PyJWT."""

    key_id: Optional[str]
    key_type: str
    key: Any


def _jwks_files(location: Path) -> List[Path]:
    if location.is_dir():
        return sorted(p for p in location.iterdir()
                      if p.suffix in _JWKS_SUFFIXES and p.is_file())
    return [location]


def _read_jwks(path: Path) -> List[IssuerKey]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        found = jwt.PyJWKSet.from_dict(document)
    except OSError as error:
        raise ConfigurationError(f"token key file {path} cannot be read: "
                                 f"{error.strerror}") from None
    except (ValueError, jwt.PyJWTError) as error:
        raise ConfigurationError(f"token key file {path} is no usable JWKS document: "
                                 f"{error}") from None
    return [IssuerKey(k.key_id, str(k.key_type), k.key) for k in found.keys
            if k.key_type in KEY_TYPES.values()]


def load_issuer_keys(issuer: str, location: Path) -> Tuple[IssuerKey, ...]:
    """The RSA and EC keys of ``issuer`` in the JWKS file or directory ``location``.

    Raises ``ConfigurationError`` (the operator's) when nothing there holds such a key.
    """
    keys = [key for path in _jwks_files(Path(location)) for key in _read_jwks(path)]
    if not keys:
        raise ConfigurationError(f"no RSA or EC key for token issuer {issuer} in {location}")
    return tuple(keys)


def keys_for(keys: Tuple[IssuerKey, ...], algorithm: str,
             key_id: Optional[str]) -> Tuple[IssuerKey, ...]:
    """The keys that may have signed a token with ``algorithm`` and ``kid`` ``key_id``: the
    one so named, or (no ``kid``) every key of the algorithm's type."""
    wanted = KEY_TYPES[algorithm]
    return tuple(k for k in keys if k.key_type == wanted
                 and (key_id is None or k.key_id == key_id))
