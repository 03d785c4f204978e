"""Agreement with scitokens on which tokens verify (signature, algorithm, exp, nbf).

scitokens is no dependency of pilotid, only of its tests (the ``test`` extra): the peer that
sites use, checked against pilotid's verifier.  The tokens differ only
where both libraries judge them (all WLCG claims present, the issuer trusted, times away
from pilotid's clock skew, which scitokens does not allow); pilotid's own stricter rules
(the ``kid``, the profile's claims, the trusted issuers) have their tests elsewhere.
"""

from __future__ import annotations

import time

import scitokens
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotid.errors import TokenError
from pilotid.identity.testissuer import TestIssuer
from pilotid.identity.tokens import IssuerKey, TokenVerifier

RSA = TestIssuer("https://atlas-auth.example.org/", "RS256", key_id="rsa")
EC = TestIssuer("https://atlas-auth.example.org/", "ES256", key_id="ec")
OTHER = TestIssuer("https://atlas-auth.example.org/", "RS256", key_id="rsa")
SKEW = 60


def _public(issuer: TestIssuer):
    return issuer.private_key.public_key()


def _pem(issuer: TestIssuer) -> bytes:
    return _public(issuer).public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)


def _pilotid_accepts(raw: str, issuer: TestIssuer) -> bool:
    kind = "RSA" if issuer.algorithm == "RS256" else "EC"
    verifier = TokenVerifier({issuer.url: (IssuerKey(issuer.key_id, kind, _public(issuer)),)},
                             clock_skew=SKEW)
    try:
        verifier.verify(raw)
    except TokenError:
        return False
    return True


def _scitokens_accepts(raw: str, issuer: TestIssuer) -> bool:
    try:
        scitokens.SciToken.deserialize(raw, public_key=_pem(issuer))
    except Exception:  # noqa: BLE001 - scitokens raises PyJWT's and its own errors
        return False
    return True


OUTSIDE_SKEW = st.one_of(st.integers(-7200, -2 * SKEW), st.integers(2 * SKEW, 7200))


@settings(max_examples=60, deadline=None)
@given(signer=st.sampled_from([RSA, EC, OTHER]), checker=st.sampled_from([RSA, EC]),
       lifetime=OUTSIDE_SKEW, not_before=st.one_of(st.none(), OUTSIDE_SKEW))
def test_pilotid_and_scitokens_agree_on_which_tokens_verify(signer, checker, lifetime,
                                                            not_before):
    start = None if not_before is None else time.time() + not_before
    raw = signer.sign(signer.claims("alice", lifetime, not_before=start),
                      headers={"kid": checker.key_id})
    assert _pilotid_accepts(raw, checker) == _scitokens_accepts(raw, checker)


def test_both_refuse_alg_none_and_the_hmac_confusion():
    import base64
    import hashlib
    import hmac
    import json

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    body = b64(json.dumps(RSA.claims()).encode())
    none = f"{b64(json.dumps({'alg': 'none'}).encode())}.{body}."
    header = b64(json.dumps({"alg": "HS256", "kid": "rsa"}).encode())
    mac = hmac.new(_pem(RSA), f"{header}.{body}".encode(), hashlib.sha256).digest()
    confused = f"{header}.{body}.{b64(mac)}"
    for raw in (none, confused):
        assert (_pilotid_accepts(raw, RSA), _scitokens_accepts(raw, RSA)) == (False, False)
