"""``pilotid myproxy ...`` against the scripted server: options, output, exit codes."""

from __future__ import annotations

import base64
import io
import json

import pytest

from pilotid.cli import main
from pilotid.errors import CredentialRefusedError, CredentialServerError
from pilotid.identity.myproxy import TRUSTROOTS_MARKER, ClientCredential
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import make_proxy
from tests.conftest import ALICE_DN
from tests.unit.fake_myproxy import FakeMyProxyServer, error_handler, signing_handler


@pytest.fixture(scope="module")
def lab(users, tmp_path_factory):
    base = tmp_path_factory.mktemp("cli")
    trust = users.ca.write_trust_dir(base / "certs")
    pilot_proxy = base / "pilot.proxy"
    pilot_proxy.write_bytes(make_proxy(users.pilot))
    pilot_proxy.chmod(0o600)
    return {"trust": trust, "host": users.ca.issue("/CN=localhost", server_name="localhost"),
            "pilot_proxy": pilot_proxy,
            "alice": ClientCredential.from_pem(make_proxy(users.alice))}


@pytest.fixture
def env(lab, monkeypatch):
    for name in ("MYPROXY_SERVER", "MYPROXY_SERVER_PORT", "MYPROXY_SERVER_DN",
                 "X509_USER_CERT", "X509_USER_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("X509_CERT_DIR", str(lab["trust"]))
    monkeypatch.setenv("X509_USER_PROXY", str(lab["pilot_proxy"]))


@pytest.fixture
def fake(lab):
    servers = []

    def start(handler):
        server = FakeMyProxyServer(lab["host"], handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def test_get_writes_the_proxy_and_prints_json(lab, env, fake, tmp_path, capsys):
    server = fake(signing_handler(lab["alice"]))
    out = tmp_path / "user.proxy"
    status = main(["myproxy", "get", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                   "-k", "pilotcred", "-t", "2", "-o", str(out), "--json"])
    assert status == 0
    result = json.loads(capsys.readouterr().out)
    assert result["identity"] == ALICE_DN and result["path"] == str(out)
    assert 7000 < result["time_left"] <= 7200
    assert server.sessions[0].request["LIFETIME"] == "7200"
    assert server.sessions[0].request["CRED_NAME"] == "pilotcred"
    assert out.stat().st_mode & 0o777 == 0o600
    assert parse_proxy(out.read_bytes()).identity == ALICE_DN


def test_get_replaces_an_earlier_proxy_of_ours(lab, env, fake, tmp_path):
    server = fake(signing_handler(lab["alice"]))
    out = tmp_path / "user.proxy"
    out.write_text("old")
    assert main(["myproxy", "get", "-s", f"localhost:{server.port}", "-l", "alice",
                 "-o", str(out)]) == 0
    assert parse_proxy(out.read_bytes()).identity == ALICE_DN
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user.proxy"]


def test_get_refuses_a_device_before_asking_the_server(lab, env, fake, tmp_path, capsys):
    server = fake(signing_handler(lab["alice"]))
    status = main(["myproxy", "get", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                   "-o", "/dev/null"])
    assert status == 30
    assert "not a regular file" in capsys.readouterr().err
    assert server.sessions == []


def test_get_refuses_to_overwrite_the_credential_it_authenticates_with(lab, env, fake, capsys):
    server = fake(signing_handler(lab["alice"]))
    status = main(["myproxy", "get", "-s", "localhost", "-p", str(server.port), "-l", "alice"])
    assert status == 30
    assert "authenticates with" in capsys.readouterr().err
    assert b"BEGIN" in lab["pilot_proxy"].read_bytes()


def test_get_to_stdout(lab, env, fake, capsysbinary):
    server = fake(signing_handler(lab["alice"]))
    assert main(["myproxy", "get", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                 "-o", "-"]) == 0
    assert parse_proxy(capsysbinary.readouterr().out).identity == ALICE_DN


def test_get_reads_the_passphrase_from_stdin(lab, env, fake, tmp_path, monkeypatch):
    server = fake(signing_handler(lab["alice"]))
    monkeypatch.setattr("sys.stdin", io.StringIO("my pass phrase\n"))
    assert main(["myproxy", "get", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                 "-S", "-o", str(tmp_path / "p")]) == 0
    assert server.sessions[0].request["PASSPHRASE"] == "my pass phrase"


def test_refusal_exits_with_its_error_code_and_the_servers_words(lab, env, fake, capsys):
    server = fake(error_handler("no passphrase", "authentication failed"))
    status = main(["myproxy", "get", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                   "-o", "/tmp/never-written"])
    assert status == CredentialRefusedError.code
    assert "no passphrase; authentication failed" in capsys.readouterr().err


def test_server_down_exits_with_the_server_error_code(env, capsys):
    status = main(["myproxy", "info", "-s", "127.0.0.1:1", "-l", "alice", "--retries", "0"])
    assert status == CredentialServerError.code
    assert "cannot connect" in capsys.readouterr().err


def test_no_server_says_how_to_name_one(env, capsys):
    assert main(["myproxy", "info", "-l", "alice"]) == 30
    assert "MYPROXY_SERVER" in capsys.readouterr().err


def test_info_prints_json(lab, env, fake, capsys):
    server = fake(lambda s: s.reply(0, [
        "CRED_NAME=c", "CRED_START_TIME=1700000000", "CRED_END_TIME=4000000000",
        f"CRED_OWNER={ALICE_DN}", "CRED_RETRIEVER_TRUSTED=FQAN:/atlas/Role=pilot"]))
    assert main(["myproxy", "info", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                 "--json"]) == 0
    (cred,) = json.loads(capsys.readouterr().out)["credentials"]
    assert cred["name"] == "c" and cred["retriever_trusted"] == "FQAN:/atlas/Role=pilot"


def test_store_delegates_with_policy_and_cn_only_matching(lab, env, fake, capsys):
    def handle(session):
        session.reply(0)
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization

        from pilotid.identity.myproxy import new_key
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
            new_key(1024), hashes.SHA256())
        session.send(csr.public_bytes(serialization.Encoding.DER))
        count = session.recv_exact(1)[0]
        for _ in range(count):
            session.recv_der()
        session.reply(0)

    server = fake(handle)
    assert main(["myproxy", "store", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                 "-k", "c", "-K", "for pilots", "-X", "-Z", "Pilot Robot 99", "-t", "1",
                 "-c", "24"]) == 0
    request = server.sessions[0].request
    assert request["COMMAND"] == "1"
    assert request["RETRIEVER_TRUSTED"] == "*/CN=Pilot Robot 99"
    assert request["CRED_DESC"] == "for pilots" and request["LIFETIME"] == "3600"
    assert "delegated" in capsys.readouterr().out


def test_store_as_is_sends_store(lab, env, fake):
    def handle(session):
        session.reply(0)
        session.recv_until_nul()
        session.reply(0)

    server = fake(handle)
    assert main(["myproxy", "store", "--as-is", "-s", "localhost", "-p", str(server.port),
                 "-d", "-Z", "FQAN:/atlas/Role=pilot"]) == 0
    request = server.sessions[0].request
    assert request["COMMAND"] == "5"
    assert request["USERNAME"].endswith("CN=Pilot Robot 99")
    assert request["RETRIEVER_TRUSTED"] == "FQAN:/atlas/Role=pilot"


def test_destroy(lab, env, fake, capsys):
    server = fake(lambda s: s.reply(0))
    assert main(["myproxy", "destroy", "-s", "localhost", "-p", str(server.port), "-l", "alice",
                 "-k", "c"]) == 0
    assert server.sessions[0].request["COMMAND"] == "3"


def test_trustroots_writes_a_directory_and_refuses_a_foreign_one(lab, env, fake, tmp_path,
                                                                   capsys):
    payload = base64.b64encode(b"CA").decode()
    server = fake(lambda s: s.reply(0, ["TRUSTED_CERTS=abcd.0", f"FILEDATA_abcd.0={payload}"]))
    target = tmp_path / "certs"
    args = ["myproxy", "trustroots", "-s", "localhost", "-p", str(server.port), "-o", str(target)]
    assert main(args) == 0
    assert (target / "abcd.0").read_bytes() == b"CA" and (target / TRUSTROOTS_MARKER).exists()
    assert main(args + ["--json"]) == 0  # ours: refreshed
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    args[-1] = str(foreign)
    assert main(args) == 30
    assert "--force" in capsys.readouterr().err
    assert main(args + ["--force"]) == 0
