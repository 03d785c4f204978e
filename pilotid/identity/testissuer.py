"""A throwaway token issuer for demos and tests: its own RSA or EC key, its JWKS file, and
WLCG tokens with whatever claims a test needs (including wrong ones).

Never use it for anything but a demonstration or a test: its key lives in memory.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Union

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pilotid.errors import ConfigurationError
from pilotid.identity.credfile import write_new

PrivateKey = Union[rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey]


def _new_key(algorithm: str) -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"a test issuer signs with RS256 or ES256, not {algorithm!r}")


class TestIssuer:
    """An issuer at ``url`` signing with a new ``algorithm`` key (RS256 or ES256) named
    ``key_id``."""

    __test__ = False  # not a pytest test class

    def __init__(self, url: str = "https://tokens.example.org/", algorithm: str = "RS256",
                 key_id: Optional[str] = None) -> None:
        self.url = url
        self.algorithm = algorithm
        self.key_id = key_id if key_id is not None else secrets.token_hex(4)
        self.private_key = _new_key(algorithm)

    def jwk(self) -> Dict[str, Any]:
        """The issuer's public key as a JWK (with its ``kid`` and ``alg``)."""
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            found = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            found = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
        return {**found, "kid": self.key_id, "alg": self.algorithm, "use": "sig"}

    def jwks(self) -> Dict[str, Any]:
        """The issuer's JWKS document (its ``jwks_uri`` contents)."""
        return {"keys": [self.jwk()]}

    def write_jwks(self, path: Union[str, Path]) -> Path:
        """Write the JWKS document to a new file at ``path`` (0644); return the path."""
        data = json.dumps(self.jwks(), indent=1).encode("utf-8")
        return write_new(Path(path), data, 0o644, ConfigurationError, "JWKS file")

    def claims(self, subject: str = "alice", lifetime: float = 3600,
               groups: Iterable[str] = ("/atlas",), scope: str = "compute.create",
               not_before: Optional[float] = None, **extra: Any) -> Dict[str, Any]:
        """A WLCG profile claim set: ``extra`` adds or replaces claims (``wlcg_ver`` and
        ``wlcg_groups`` stand for the dotted names); a value of ``None`` removes one."""
        now = int(time.time())
        claims: Dict[str, Any] = {
            "iss": self.url, "sub": subject, "exp": int(now + lifetime), "iat": now,
            "nbf": int(not_before) if not_before is not None else now,
            "jti": secrets.token_hex(8), "wlcg.ver": "1.0", "wlcg.groups": list(groups),
            "scope": scope, "aud": "https://wlcg.cern.ch/jwt/v1/any"}
        for name, value in extra.items():
            name = name.replace("wlcg_", "wlcg.")
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: Mapping[str, Any], headers: Optional[Mapping[str, Any]] = None,
             key: Any = None, algorithm: Optional[str] = None) -> str:
        """``claims`` signed with this issuer's key (or ``key`` with ``algorithm``)."""
        header = {"kid": self.key_id, **(headers or {})}
        return jwt.encode(dict(claims), key if key is not None else self.private_key,
                          algorithm=algorithm or self.algorithm, headers=header)

    def token(self, subject: str = "alice", lifetime: float = 3600, **extra: Any) -> str:
        """A signed WLCG token for ``subject`` valid ``lifetime`` seconds (see ``claims``)."""
        return self.sign(self.claims(subject, lifetime, **extra))
