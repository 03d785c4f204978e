"""Offline verification of WLCG tokens: what passes, and each refusal with its own error."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotid.errors import (
    ConfigurationError,
    TokenAlgorithmError,
    TokenClaimError,
    TokenError,
    TokenExpiredError,
    TokenIssuerError,
    TokenMalformedError,
    TokenNotYetValidError,
    TokenSignatureError,
)
from pilotid.identity.testissuer import TestIssuer
from pilotid.identity.tokens import IssuerKey, TokenVerifier, load_issuer_keys

ISSUER = TestIssuer("https://atlas-auth.example.org/", "RS256", key_id="rsa1")
EC_ISSUER = TestIssuer("https://cms-auth.example.org/", "ES256", key_id="ec1")
STRANGER = TestIssuer(ISSUER.url, "RS256", key_id="rsa1")  # same name, other key


@pytest.fixture(scope="module")
def verifier(tmp_path_factory):
    keys = tmp_path_factory.mktemp("keys")
    return TokenVerifier({
        ISSUER.url: load_issuer_keys(ISSUER.url, ISSUER.write_jwks(keys / "atlas.jwks")),
        EC_ISSUER.url: load_issuer_keys(EC_ISSUER.url, EC_ISSUER.write_jwks(keys / "cms.json")),
    }, clock_skew=30)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(claims) -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(claims).encode())}."


@pytest.mark.parametrize("issuer", [ISSUER, EC_ISSUER], ids=["RS256", "ES256"])
def test_a_profile_token_verifies_with_its_claims(verifier, issuer):
    raw = issuer.token("alice", groups=["/atlas", "/atlas/production"],
                       scope="compute.create storage.read:/atlas")
    token = verifier.verify("  " + raw + "\n")
    assert (token.issuer, token.subject, token.version) == (issuer.url, "alice", "1.0")
    assert token.groups == ("/atlas", "/atlas/production")
    assert token.scopes == ("compute.create", "storage.read:/atlas")
    assert token.algorithm == issuer.algorithm and token.raw == raw
    assert 3500 < token.time_left().total_seconds() <= 3600


def test_the_token_itself_never_shows_in_repr(verifier):
    raw = ISSUER.token()
    assert raw not in repr(verifier.verify(raw))


def test_alg_none_is_refused(verifier):
    with pytest.raises(TokenAlgorithmError):
        verifier.verify(_unsigned(ISSUER.claims()))


def test_hs256_with_the_public_key_as_secret_is_refused(verifier):
    """The classic confusion: the issuer's public key (which anyone has) used as an HMAC
    secret.  PyJWT would refuse a PEM key as HMAC secret itself; sign by hand."""
    public = ISSUER.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}).encode())
    body = _b64(json.dumps(ISSUER.claims()).encode())
    mac = hmac.new(public, f"{header}.{body}".encode(), hashlib.sha256).digest()
    with pytest.raises(TokenAlgorithmError):
        verifier.verify(f"{header}.{body}.{_b64(mac)}")


@pytest.mark.parametrize("algorithm", ["RS512", "PS256", "ES384", "EdDSA", "HS512"])
def test_other_algorithms_are_refused(verifier, algorithm):
    header = _b64(json.dumps({"alg": algorithm}).encode())
    with pytest.raises(TokenAlgorithmError):
        verifier.verify(f"{header}.{_b64(json.dumps(ISSUER.claims()).encode())}.c2ln")


def test_an_expired_token_is_refused(verifier):
    with pytest.raises(TokenExpiredError):
        verifier.verify(ISSUER.token(lifetime=-120))


def test_expiry_within_the_clock_skew_passes(verifier):
    assert verifier.verify(ISSUER.token(lifetime=-5)).subject == "alice"


def test_a_token_ending_before_the_job_needs_is_refused(verifier):
    with pytest.raises(TokenExpiredError, match="needs 7200 s"):
        verifier.verify(ISSUER.token(lifetime=3600), min_lifetime=7200)


def test_a_token_not_yet_valid_is_refused(verifier):
    with pytest.raises(TokenNotYetValidError):
        verifier.verify(ISSUER.token(not_before=time.time() + 600))


def test_an_untrusted_issuer_is_refused(verifier):
    other = TestIssuer("https://evil.example.org/")
    with pytest.raises(TokenIssuerError):
        verifier.verify(other.token())


def test_a_trusted_issuer_name_signed_by_another_issuers_key_is_refused(verifier):
    """The EC issuer's key never verifies a token that says it is the RSA issuer's."""
    forged = EC_ISSUER.sign(EC_ISSUER.claims(iss=ISSUER.url), headers={"kid": "ec1"})
    with pytest.raises(TokenSignatureError):
        verifier.verify(forged)


def test_a_token_signed_by_a_wrong_key_is_refused(verifier):
    with pytest.raises(TokenSignatureError, match="does not verify"):
        verifier.verify(STRANGER.token())


def test_a_kid_not_in_the_keys_is_refused(verifier):
    with pytest.raises(TokenSignatureError, match="kid"):
        verifier.verify(ISSUER.sign(ISSUER.claims(), headers={"kid": "rotated-away"}))


def test_a_token_without_kid_tries_the_issuers_keys(verifier):
    raw = jwt.encode(ISSUER.claims(), ISSUER.private_key, algorithm="RS256")
    assert verifier.verify(raw).key_id is None


@pytest.mark.parametrize("claim", ["sub", "exp", "iss", "wlcg_ver"])
def test_a_missing_required_claim_is_refused(verifier, claim):
    with pytest.raises(TokenClaimError):
        verifier.verify(ISSUER.token(**{claim: None}))


@pytest.mark.parametrize("claims", [{"wlcg_groups": "/atlas"}, {"wlcg_groups": ["/a", 3]},
                                    {"scope": ["compute.create"]}, {"sub": ""},
                                    {"wlcg_ver": 1}])
def test_a_claim_of_the_wrong_type_is_refused(verifier, claims):
    with pytest.raises(TokenClaimError):
        verifier.verify(ISSUER.token(**claims))


@pytest.mark.parametrize("raw", ["", "abc", "a.b.c", "!!!.???.***", "a.b.c.d.e",
                                 ISSUER.token()[:-30] + "." + "x" * 10,
                                 "x" * 20000])
def test_malformed_tokens_are_refused(verifier, raw):
    with pytest.raises(TokenError):
        verifier.verify(raw)


def test_a_jwe_is_refused_as_malformed(verifier):
    with pytest.raises(TokenMalformedError, match="JWE"):
        verifier.verify("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d")


def test_deeply_nested_claims_are_refused(verifier):
    header = _b64(json.dumps({"alg": "RS256"}).encode())
    body = _b64(b'{"a":' * 5000 + b"1" + b"}" * 5000)
    with pytest.raises(TokenMalformedError):
        verifier.verify(f"{header}.{body}.c2ln")


def test_a_jwks_without_usable_keys_is_the_operators_error(tmp_path):
    path = tmp_path / "empty.jwks"
    path.write_text('{"keys": []}')
    with pytest.raises(ConfigurationError):
        load_issuer_keys("https://x/", path)


def test_a_key_directory_holds_an_issuers_old_and_new_keys(tmp_path):
    old, new = TestIssuer(ISSUER.url, key_id="old"), TestIssuer(ISSUER.url, key_id="new")
    old.write_jwks(tmp_path / "old.jwks")
    new.write_jwks(tmp_path / "new.json")
    verifier = TokenVerifier({ISSUER.url: load_issuer_keys(ISSUER.url, tmp_path)})
    assert verifier.verify(old.token()).key_id == "old"
    assert verifier.verify(new.token()).key_id == "new"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300) | st.builds(
    lambda a, b, c: f"{a}.{b}.{c}", st.text(max_size=80), st.text(max_size=80),
    st.text(max_size=80)))
def test_the_verifier_raises_nothing_but_its_own_errors(raw):
    verifier = TokenVerifier(
        {ISSUER.url: (IssuerKey("rsa1", "RSA", ISSUER.private_key.public_key()),)})
    try:
        verifier.verify(raw)
    except TokenError:
        pass
