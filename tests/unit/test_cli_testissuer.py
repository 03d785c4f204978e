"""``pilotid testissuer``: test tokens from a throwaway issuer, each file new, paths printed,
and the tokens verify against the keys it wrote."""

from __future__ import annotations

import stat

from pilotid import cli
from pilotid.commands.testissuer import DEFAULT_ISSUER
from pilotid.identity.tokens import ANY_AUDIENCE, TokenVerifier, load_issuer_keys

CE = "https://ce.example.org:9619"


def test_testissuer_writes_a_token_per_user_that_verifies_with_its_keys(tmp_path, capsys):
    kit = tmp_path / "tokens"
    argv = ["-q", "testissuer", str(kit), "--user", "alice", "--user", "bob",
            "--group", "/atlas", "--group", "/atlas/production", "--audience", CE,
            "--hours", "2"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    verifier = TokenVerifier({DEFAULT_ISSUER: load_issuer_keys(DEFAULT_ISSUER,
                                                               kit / "issuer.jwks")},
                             audiences=(CE,))
    for name in ("alice", "bob"):
        path = kit / f"token_{name}"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        token = verifier.verify(path.read_text())
        assert (token.subject, token.groups) == (name, ("/atlas", "/atlas/production"))
        assert 1.9 * 3600 < token.time_left().total_seconds() <= 2 * 3600
        assert f"{name}: {path}" in out
    assert stat.S_IMODE(kit.stat().st_mode) == 0o700


def test_testissuer_by_default_makes_alices_token_for_any_audience(tmp_path, capsys):
    assert cli.main(["-q", "testissuer", str(tmp_path / "kit")]) == 0
    keys = load_issuer_keys(DEFAULT_ISSUER, tmp_path / "kit" / "issuer.jwks")
    raw = (tmp_path / "kit" / "token_alice").read_text()
    assert TokenVerifier({DEFAULT_ISSUER: keys}).verify(raw).subject == "alice"
    assert ANY_AUDIENCE in capsys.readouterr().out


def test_testissuer_never_overwrites_and_writes_nothing_then(tmp_path, capsys):
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "token_alice").write_text("mine")
    assert cli.main(["-q", "testissuer", str(kit)]) == 30
    assert not (kit / "issuer.jwks").exists()
    assert (kit / "token_alice").read_text() == "mine"


def test_testissuer_refuses_a_lifetime_beyond_the_profiles(tmp_path, capsys):
    assert cli.main(["-q", "testissuer", str(tmp_path / "kit"), "--hours", "7"]) == 10
    assert not (tmp_path / "kit").exists()
