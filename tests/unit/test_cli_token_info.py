"""``pilotid token-info``: who a token is for, JSON, --verify, one-line errors."""

from __future__ import annotations

import json

import pytest

from pilotid.cli import main
from pilotid.errors import (
    ConfigurationError,
    TokenAudienceError,
    TokenClaimError,
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
    assert out[:6] == ["subject  : alice", f"issuer   : {ISSUER.url}",
                       "groups   : /atlas /atlas/higgs",
                       "scopes   : compute.create storage.read:/atlas",
                       "audience : https://wlcg.cern.ch/jwt/v1/any",
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


ANY = "https://wlcg.cern.ch/jwt/v1/any"
CE = "https://ce.example.org:9619"


def write_token(tmp_path, **claims):
    path = tmp_path / "bt-aud"
    path.write_text(ISSUER.token("alice", **claims))
    return path


def ce_queues(tmp_path, audiences):
    jwks = ISSUER.write_jwks(tmp_path / "ce.jwks")
    path = tmp_path / "ce-queues.json"
    path.write_text(json.dumps({"queues": {"ANALY_CE": {
        "credential_source": "bearer", "token_issuers": {ISSUER.url: str(jwks)},
        "token_audiences": audiences}}}))
    return path


def shown(capsys, label):
    lines = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith(f"{label:<9}: ")]
    assert len(lines) == 1, lines
    return lines[0].split(": ", 1)[1]


@pytest.mark.parametrize("aud, printed", [(ANY, ANY), ([CE, ANY], f"{CE} {ANY}"),
                                          (None, "-")])
def test_token_info_prints_the_audience(tmp_path, capsys, aud, printed):
    """``aud`` is a string or a list in a JWT; a token without one shows ``-``."""
    assert main(["token-info", str(write_token(tmp_path, aud=aud))]) == 0
    assert shown(capsys, "audience") == printed


def test_token_info_json_lists_the_audience(tmp_path, capsys):
    assert main(["token-info", str(write_token(tmp_path, aud=CE)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["audience"], out["queue"], out["audience_accepted"]) == ([CE], None, None)


def test_token_info_says_the_queue_accepts_the_any_audience_by_default(token_file, queues,
                                                                       capsys):
    """A queue that names no token_audiences accepts the WLCG any-service audience."""
    assert main(["token-info", str(token_file), "--queues", str(queues),
                 "--queue", "ANALY_TOKENS"]) == 0
    assert shown(capsys, "queue") == f"ANALY_TOKENS accepts this audience ({ANY})"


def test_token_info_says_the_queue_refuses_the_audience_and_exits_98(tmp_path, capsys):
    """Without --verify everything is shown first, then the refusal the job would get."""
    status = main(["token-info", str(write_token(tmp_path)), "--queues",
                   str(ce_queues(tmp_path, [CE])), "--queue", "ANALY_CE"])
    assert status == TokenAudienceError.code
    out, err = capsys.readouterr()
    assert f"audience : {ANY}" in out.splitlines()
    assert f"queue    : ANALY_CE does not accept this audience (it accepts {CE})" in \
        out.splitlines()
    assert len(err.strip().splitlines()) == 1 and CE in err


def test_token_info_json_says_whether_the_queue_accepts_the_audience(tmp_path, capsys):
    status = main(["token-info", str(write_token(tmp_path, aud=[CE, "https://se.example"])),
                   "--json", "--queues", str(ce_queues(tmp_path, [ANY, CE])),
                   "--queue", "ANALY_CE"])
    assert status == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["audience"], out["queue"], out["audience_accepted"]) == (
        [CE, "https://se.example"], "ANALY_CE", True)


def test_a_token_without_aud_is_refused_by_any_queue(tmp_path, queues, capsys):
    status = main(["token-info", str(write_token(tmp_path, aud=None)), "--queues",
                   str(queues), "--queue", "ANALY_TOKENS"])
    assert status == TokenAudienceError.code
    assert "has no aud claim" in capsys.readouterr().err


def test_token_info_with_verify_shows_that_the_queue_accepts_the_audience(token_file, queues,
                                                                          capsys):
    assert main(["token-info", str(token_file), "--verify", "--queues", str(queues),
                 "--queue", "ANALY_TOKENS"]) == 0
    assert shown(capsys, "queue") == f"ANALY_TOKENS accepts this audience ({ANY})"


def test_token_info_needs_both_queues_and_queue(token_file, queues):
    assert main(["token-info", str(token_file), "--queues", str(queues)]) == \
        ConfigurationError.code


def test_an_audience_of_the_wrong_type_is_a_claim_error(tmp_path):
    assert main(["token-info", str(write_token(tmp_path, aud=5))]) == TokenClaimError.code


def test_token_info_escapes_what_the_token_says(tmp_path, capsys):
    """A token's claims are the issuer's (or a forger's) text: a newline or an escape
    sequence in them is shown escaped, never written to the terminal."""
    path = tmp_path / "odd"
    path.write_text(ISSUER.token("ali\nce", aud=["https://ce\x1b[2J"], wlcg_groups=["/a\rb"]))
    assert main(["token-info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out
    assert "subject  : ali\\nce" in out.splitlines()
    assert "audience : https://ce\\x1b[2J" in out.splitlines()
    assert "groups   : /a\\rb" in out.splitlines()
