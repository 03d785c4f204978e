"""The audience (``aud``) a token names against the audiences the queue accepts
(``token_audiences``): the WLCG profile requires ``aud`` in access tokens, with
``https://wlcg.cern.ch/jwt/v1/any`` for a token meant for any service."""

from __future__ import annotations

import pytest

from pilotid.errors import TokenAudienceError, TokenError
from pilotid.identity.testissuer import TestIssuer
from pilotid.identity.tokens import ANY_AUDIENCE, TokenVerifier, load_issuer_keys

ISSUER = TestIssuer("https://atlas-auth.example.org/", "RS256", key_id="rsa1")
CE = "https://ce.example.org:9619"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = ISSUER.write_jwks(tmp_path_factory.mktemp("keys") / "atlas.jwks")
    return {ISSUER.url: load_issuer_keys(ISSUER.url, path)}


def test_by_default_the_any_audience_is_accepted(keys):
    token = TokenVerifier(keys).verify(ISSUER.token(aud=ANY_AUDIENCE))
    assert token.subject == "alice"


def test_by_default_a_token_for_one_service_is_refused(keys):
    with pytest.raises(TokenAudienceError) as refused:
        TokenVerifier(keys).verify(ISSUER.token(aud=CE))
    assert ANY_AUDIENCE in str(refused.value) and CE in str(refused.value)


def test_a_token_without_aud_is_refused_naming_what_was_expected(keys):
    with pytest.raises(TokenAudienceError) as refused:
        TokenVerifier(keys, audiences=(CE,)).verify(ISSUER.token(aud=None))
    assert CE in str(refused.value) and "no aud claim" in str(refused.value)


def test_a_token_for_another_service_is_refused_naming_both(keys):
    other = "https://storage.example.net"
    with pytest.raises(TokenAudienceError) as refused:
        TokenVerifier(keys, audiences=(CE,)).verify(ISSUER.token(aud=other))
    assert CE in str(refused.value) and other in str(refused.value)


def test_a_list_aud_holding_one_accepted_audience_passes(keys):
    raw = ISSUER.token(aud=["https://storage.example.net", CE])
    assert TokenVerifier(keys, audiences=(CE,)).verify(raw).subject == "alice"


def test_a_queue_naming_its_own_audiences_accepts_the_any_value_only_if_it_names_it(keys):
    raw = ISSUER.token(aud=ANY_AUDIENCE)
    with pytest.raises(TokenAudienceError):
        TokenVerifier(keys, audiences=(CE,)).verify(raw)
    assert TokenVerifier(keys, audiences=(CE, ANY_AUDIENCE)).verify(raw).subject == "alice"


def test_an_aud_of_the_wrong_type_is_an_audience_refusal(keys):
    with pytest.raises(TokenAudienceError):
        TokenVerifier(keys, audiences=(CE,)).verify(ISSUER.token(aud=[CE, 7]))


def test_the_audience_refusal_is_a_token_error_with_its_own_code():
    assert issubclass(TokenAudienceError, TokenError)
    assert TokenAudienceError.code == 98
