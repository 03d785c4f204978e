"""``pilotid proxy-info``: grid-proxy-info's layout, JSON, and one-line errors."""

from __future__ import annotations

import datetime
import json

import pytest

from pilotid.cli import main
from pilotid.errors import ProxyExpiredError, ProxyFileError, ProxyKeyError
from pilotid.identity.proxy import RFC3820_PROXY, load_proxy
from pilotid.identity.testca import make_proxy
from tests.conftest import BOB_DN


@pytest.fixture(scope="session")
def bob_pem(users) -> bytes:
    return make_proxy(users.bob, bits=1024)


@pytest.fixture
def bob_proxy(tmp_path, bob_pem):
    path = tmp_path / "x509up_bob"
    path.write_bytes(bob_pem)
    path.chmod(0o600)
    return path


def test_proxy_info_prints_the_lines_grid_proxy_info_prints(bob_proxy, capsys):
    assert main(["proxy-info", str(bob_proxy)]) == 0
    out = capsys.readouterr().out.splitlines()
    info = load_proxy(bob_proxy)
    assert out[:6] == [
        f"subject  : {info.subject}",
        f"issuer   : {BOB_DN}",
        f"identity : {BOB_DN}",
        f"type     : {RFC3820_PROXY}",
        "strength : 1024 bits",
        f"path     : {bob_proxy}",
    ]
    assert out[6].startswith("timeleft : 11:5") or out[6].startswith("timeleft : 12:00")
    assert len(out) == 7


def test_proxy_info_json_is_one_object_with_the_model(bob_proxy, capsys):
    assert main(["proxy-info", "--json", str(bob_proxy)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["identity"] == BOB_DN
    assert shown["type"] == RFC3820_PROXY
    assert shown["path"] == str(bob_proxy)
    assert 11 * 3600 < shown["time_left"] <= 12 * 3600


def test_proxy_info_reads_x509_user_proxy_without_a_file(bob_proxy, capsys, monkeypatch):
    monkeypatch.setenv("X509_USER_PROXY", str(bob_proxy))
    assert main(["proxy-info"]) == 0
    assert f"identity : {BOB_DN}" in capsys.readouterr().out


def test_an_expired_proxy_is_shown_then_refused_with_its_code(users, tmp_path, capsys):
    path = tmp_path / "expired"
    path.write_bytes(make_proxy(users.bob, bits=1024, not_after=datetime.datetime.now(
        datetime.timezone.utc) - datetime.timedelta(minutes=3)))
    assert main(["proxy-info", str(path)]) == ProxyExpiredError.code
    captured = capsys.readouterr()
    assert "timeleft : 0:00:00  (expired)" in captured.out
    assert captured.err.startswith(f"pilotid: error {ProxyExpiredError.code} (user): proxy file")
    assert "expired at" in captured.err and "Traceback" not in captured.err


@pytest.mark.parametrize("content, error", [(None, ProxyFileError), (b"junk", ProxyFileError),
                                            ("cert-only", ProxyKeyError)])
def test_an_unusable_file_is_one_line_and_its_error_code(tmp_path, capsys, users, content, error):
    path = tmp_path / "proxy"
    if content == "cert-only":
        from cryptography.hazmat.primitives import serialization
        path.write_bytes(users.bob.certificate.public_bytes(serialization.Encoding.PEM))
    elif content is not None:
        path.write_bytes(content)
    assert main(["proxy-info", str(path)]) == error.code
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0]
