"""``pilotid testca``: test credentials from a throwaway CA, each file new, paths printed."""

from __future__ import annotations

import stat

from pilotid import cli
from pilotid.commands.testca import DEFAULT_PILOT_DN, DEFAULT_USER
from pilotid.identity.proxy import parse_proxy

BOB_DN = "/DC=org/DC=example/OU=People/CN=Bob O'Builder (Test)"


def test_testca_writes_a_proxy_for_each_user_and_the_pilot_and_prints_where(tmp_path, capsys):
    kit = tmp_path / "proxies"
    assert cli.main(["-q", "testca", str(kit), "--user", "bob", BOB_DN, "--hours", "2"]) == 0
    out = capsys.readouterr().out
    for name, dn in (("bob", BOB_DN), ("pilot", DEFAULT_PILOT_DN)):
        proxy = kit / f"x509up_{name}"
        assert stat.S_IMODE(proxy.stat().st_mode) == 0o600
        info = parse_proxy(proxy.read_bytes())
        assert info.identity == dn
        assert 1.9 * 3600 < info.time_left().total_seconds() <= 2 * 3600
        assert f"{name}: {proxy}" in out
    assert stat.S_IMODE((kit / "bob.key").stat().st_mode) == 0o600
    assert list((kit / "certificates").glob("*.0"))
    assert stat.S_IMODE(kit.stat().st_mode) == 0o700


def test_testca_without_users_makes_alices(tmp_path, capsys):
    assert cli.main(["-q", "testca", str(tmp_path / "kit")]) == 0
    proxy = tmp_path / "kit" / f"x509up_{DEFAULT_USER[0]}"
    assert parse_proxy(proxy.read_bytes()).identity == DEFAULT_USER[1]


def test_testca_never_overwrites_and_writes_nothing_then(tmp_path, capsys):
    kit = tmp_path / "kit"
    kit.mkdir()
    (kit / "x509up_pilot").write_text("mine")
    assert cli.main(["-q", "testca", str(kit)]) == 30
    assert "x509up_pilot exists already" in capsys.readouterr().err
    assert sorted(p.name for p in kit.iterdir()) == ["x509up_pilot"]
    assert (kit / "x509up_pilot").read_text() == "mine"


def test_testca_in_a_directory_it_cannot_make_is_one_line(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert cli.main(["-q", "testca", str(tmp_path / "a-file" / "kit")]) == 30
    assert "cannot make" in capsys.readouterr().err
