"""``pilotid token-info``: who a token is for, JSON, --verify, one-line errors."""

from __future__ import annotations

import json

import pytest

from pilotid.cli import main
from pilotid.errors import (
    TokenAudienceError,
    TokenExpiredError,
    TokenIssuerError,
    TokenSignatureError,
)
from pilotid.identity.testissuer import TestIssuer

ISSUER = TestIssuer("https://atlas-auth.example.org/", key_id="k1")


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "bt"
    path.write_text(ISSUER.token("alice", groups=["/atlas", "/atlas/higgs"],
                                 scope="compute.create storage.read:/atlas") + "\n")
    return path


@pytest.fixture
def queues(tmp_path):
    jwks = ISSUER.write_jwks(tmp_path / "atlas.jwks")
    path = tmp_path / "queues.json"
    path.write_text(json.dumps({"queues": {"ANALY_TOKENS": {
        "credential_source": "bearer", "token_issuers": {ISSUER.url: str(jwks)}}}}))
    return path


def test_token_info_prints_subject_issuer_groups_scopes(token_file, capsys):
    assert main(["token-info", str(token_file)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:5] == ["subject  : alice", f"issuer   : {ISSUER.url}",
                       "groups   : /atlas /atlas/higgs",
                       "scopes   : compute.create storage.read:/atlas",
                       "algorithm: RS256 (kid k1)"]
    assert "verified : no (use --verify)" in out


def test_token_info_json(token_file, capsys):
    assert main(["token-info", str(token_file), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["subject"], shown["groups"], shown["verified"]) == (
        "alice", ["/atlas", "/atlas/higgs"], False)
    assert 3500 < shown["timeleft"] <= 3600


def test_token_info_finds_the_token_by_discovery(token_file, capsys, monkeypatch):
    monkeypatch.setenv("BEARER_TOKEN_FILE", str(token_file))
    monkeypatch.delenv("BEARER_TOKEN", raising=False)
    assert main(["token-info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["path"] == str(token_file)


def test_token_info_verify_against_the_queues_keys(token_file, queues, capsys):
    assert main(["token-info", str(token_file), "--verify", "--queues", str(queues),
                 "--queue", "ANALY_TOKENS"]) == 0
    assert "verified : yes" in capsys.readouterr().out


@pytest.mark.parametrize("issuer, error", [
    (TestIssuer(ISSUER.url, key_id="k1"), TokenSignatureError),
    (TestIssuer("https://evil.example.org/"), TokenIssuerError)])
def test_token_info_verify_refuses_with_the_tokens_code(tmp_path, queues, capsys, issuer,
                                                        error):
    path = tmp_path / "forged"
    path.write_text(issuer.token())
    status = main(["token-info", str(path), "--verify", "--queues", str(queues),
                   "--queue", "ANALY_TOKENS"])
    assert status == error.code
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_token_info_verify_checks_the_queues_audiences(token_file, tmp_path, capsys):
    ce = "https://ce.example.org:9619"
    jwks = ISSUER.write_jwks(tmp_path / "ce.jwks")
    queues = tmp_path / "ce-queues.json"
    queues.write_text(json.dumps({"queues": {"ANALY_CE": {
        "credential_source": "bearer", "token_issuers": {ISSUER.url: str(jwks)},
        "token_audiences": [ce]}}}))
    status = main(["token-info", str(token_file), "--verify", "--queues", str(queues),
                   "--queue", "ANALY_CE"])
    assert status == TokenAudienceError.code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and ce in err and "wlcg.cern.ch/jwt/v1/any" in err


def test_an_expired_token_exits_with_its_code(tmp_path, capsys):
    path = tmp_path / "old"
    path.write_text(ISSUER.token(lifetime=-60))
    assert main(["token-info", str(path)]) == TokenExpiredError.code
    assert "(expired)" in capsys.readouterr().out
