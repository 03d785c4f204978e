"""The MyProxy client against a scripted TLS server: the conversation, and every failure."""

from __future__ import annotations

import datetime
import logging
import socket
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

import pilotid.identity.myproxy as myproxy_module
from pilotid.errors import (
    CredentialError,
    CredentialRefusedError,
    CredentialServerError,
    ProxyExpiredError,
    ProxyFileError,
    ProxyKeyError,
)
from pilotid.identity.myproxy import MyProxyClient
from pilotid.identity.myproxy.channel import ServerAddress, check_server_identity, parse_servers
from pilotid.identity.myproxy.credentials import ClientCredential, is_proxy, new_key, sign_proxy
from pilotid.identity.myproxy.trustroots import TRUSTROOTS_MARKER, write_trustroots
from pilotid.identity.myproxy.wire import Passphrase, encode_chain
from pilotid.identity.proxy import (
    RFC3820_LIMITED_PROXY,
    RFC3820_PROXY,
    _proxy_type,
    parse_proxy,
)
from pilotid.identity.testca import TestCA, make_proxy
from tests.conftest import ALICE_DN, PILOT_DN
from tests.unit.fake_myproxy import (
    FakeMyProxyServer,
    SilentListener,
    error_handler,
    signing_handler,
    truncating_handler,
)


@pytest.fixture(scope="module")
def pki(users, tmp_path_factory):
    """Trust directory, host identity and the credentials of alice and the pilot."""
    trust = users.ca.write_trust_dir(tmp_path_factory.mktemp("certs"))
    host = users.ca.issue("/CN=localhost", server_name="localhost")
    pilot = ClientCredential.from_pem(make_proxy(users.pilot), origin="pilot proxy")
    # what the server hands out: a proxy of alice's stored proxy
    alice = ClientCredential.from_pem(make_proxy(users.alice), origin="alice proxy")
    return {"trust": trust, "host": host, "pilot": pilot, "alice": alice}


@pytest.fixture(scope="module")
def key():
    """One prepared key for every GET here (key generation is not what is tested)."""
    return new_key(2048)


@pytest.fixture
def server(pki):
    servers = []

    def start(handler, **kw):
        fake = FakeMyProxyServer(pki["host"], handler, **kw)
        servers.append(fake)
        return fake

    yield start
    for fake in servers:
        fake.close()


def client_for(pki, port, host="localhost", **kw):
    kw.setdefault("credential", pki["pilot"])
    kw.setdefault("ca_dir", pki["trust"])
    kw.setdefault("read_timeout", 5)
    kw.setdefault("retries", 0)
    return MyProxyClient(host, port, environ={}, **kw)


def test_get_returns_proxy_key_and_chain_in_globus_order(pki, server, key, tmp_path):
    fake = server(signing_handler(pki["alice"]))
    proxy = client_for(pki, fake.port).get("alice", "pilotcred", lifetime=3600, key=key)
    assert proxy.identity == ALICE_DN
    out = proxy.write(tmp_path / "x509up")
    assert out.stat().st_mode & 0o777 == 0o600
    info = parse_proxy(out.read_bytes(), out)
    assert info.identity == ALICE_DN
    assert info.subject == proxy.subject
    assert info.chain_length == 3  # new proxy, alice's stored proxy, alice's certificate
    assert datetime.timedelta(minutes=55) < info.time_left() <= datetime.timedelta(hours=1)


def test_get_sends_cred_name_and_the_whole_client_chain(pki, server, key):
    fake = server(signing_handler(pki["alice"]))
    client_for(pki, fake.port).get("alice", "pilotcred", lifetime=3600, key=key)
    (session,) = fake.sessions
    assert session.request["USERNAME"] == "alice"
    assert session.request["CRED_NAME"] == "pilotcred"
    assert session.request["LIFETIME"] == "3600"
    assert session.request["PASSPHRASE"] == ""
    subjects = [c.subject for c in session.client_chain]
    assert pki["pilot"].certificate.subject in subjects
    assert pki["pilot"].chain[0].subject in subjects  # the pilot's own certificate too


def test_get_works_without_the_stray_nul_of_tls13(pki, server, key):
    fake = server(signing_handler(pki["alice"]), stray_nul=False)
    assert client_for(pki, fake.port).get("alice", lifetime=600, key=key).identity == ALICE_DN


def test_get_makes_a_fresh_key_when_none_is_prepared(pki, server):
    fake = server(signing_handler(pki["alice"]))
    proxy = client_for(pki, fake.port).get("alice", lifetime=600, key_bits=1024)
    assert proxy.key.key_size == 1024


def test_passphrase_goes_to_the_server_and_nowhere_else(pki, server, key, caplog):
    caplog.set_level(logging.DEBUG, logger="pilotid")
    fake = server(signing_handler(pki["alice"]))
    secret = Passphrase("correct horse")
    client = client_for(pki, fake.port)
    client.get("alice", passphrase=secret, lifetime=600, key=key)
    assert fake.sessions[0].request["PASSPHRASE"] == "correct horse"
    assert "correct horse" not in caplog.text
    assert "PASSPHRASE=****" in caplog.text
    assert "correct horse" not in repr(client)


def test_refusal_carries_the_servers_words_and_is_not_retried(pki, server, key):
    fake = server(error_handler("no passphrase", "authentication failed"))
    client = client_for(pki, fake.port, retries=3, backoff=5)
    started = time.monotonic()
    with pytest.raises(CredentialRefusedError,
                       match="refused the retrieval of credential 'pilotcred' of 'alice': "
                             "no passphrase; authentication failed"):
        client.get("alice", "pilotcred", key=key)
    assert len(fake.sessions) == 1
    assert time.monotonic() - started < 4


def test_unknown_credential_is_refused_with_the_servers_message(pki, server, key):
    words = 'No credentials exist with username "alice" and credential name "nosuch".'
    fake = server(error_handler(words))
    with pytest.raises(CredentialRefusedError, match="nosuch") as caught:
        client_for(pki, fake.port).get("alice", "nosuch", key=key)
    assert words in str(caught.value)


def test_refusal_after_the_chain_is_a_refusal_too(pki, server, key):
    fake = server(signing_handler(pki["alice"], final=["ERROR=late veto"]))
    fake.handler = _final_error(pki["alice"])
    with pytest.raises(CredentialRefusedError, match="late veto"):
        client_for(pki, fake.port).get("alice", key=key)


def _final_error(signer):
    def handle(session):
        session.reply(0)
        csr = x509.load_der_x509_csr(session.recv_der())
        proxy = sign_proxy(signer, csr.public_key(), 600)
        session.send(encode_chain([proxy, signer.certificate]))
        session.reply(1, ["ERROR=late veto"])
    return handle


def test_password_challenge_is_answered_with_the_passphrase(pki, server, key):
    answers = []

    def handle(session):
        session.reply(2, ["AUTHORIZATION_DATA=password:"])
        answers.append(session.recv_exact(4 + len("pass phrase") + 1))
        signing_handler(pki["alice"])(session)

    fake = server(handle)
    client_for(pki, fake.port).get("alice", passphrase=Passphrase("pass phrase"), key=key)
    assert answers == [b"\x01\x00\x00\x00pass phrase\0"]


def test_challenge_without_a_passphrase_is_a_clear_refusal(pki, server, key):
    fake = server(lambda session: session.reply(2, ["AUTHORIZATION_DATA=X509_certificate:abc"]))
    with pytest.raises(CredentialRefusedError, match="X509_certificate"):
        client_for(pki, fake.port).get("alice", key=key)


def test_connection_dropped_mid_chain_is_a_server_error(pki, server, key, tmp_path):
    fake = server(truncating_handler(pki["alice"]))
    with pytest.raises(CredentialServerError, match="closed the connection .*truncated"):
        client_for(pki, fake.port).get("alice", key=key)
    assert list(tmp_path.iterdir()) == []


def test_garbage_instead_of_a_reply_is_a_server_error(pki, server, key):
    fake = server(lambda session: session.send(b"HTTP/1.0 400 Bad Request\r\n\r\n\0"))
    with pytest.raises(CredentialServerError, match="is this a MyProxy server"):
        client_for(pki, fake.port).get("alice", key=key)


def test_chain_for_another_key_is_a_server_error(pki, server, key):
    def handle(session):
        session.reply(0)
        session.recv_der()
        other = sign_proxy(pki["alice"], new_key(1024).public_key(), 600)
        session.send(encode_chain([other, pki["alice"].certificate]))
        session.reply(0)

    fake = server(handle)
    with pytest.raises(CredentialServerError, match="another key"):
        client_for(pki, fake.port).get("alice", key=key)


def test_listener_that_never_answers_times_out(pki, key):
    silent = SilentListener()
    try:
        started = time.monotonic()
        with pytest.raises(CredentialServerError, match="did not answer within 0.5 s"):
            client_for(pki, silent.port, read_timeout=0.5).get("alice", key=key)
        assert time.monotonic() - started < 3
    finally:
        silent.close()


def test_server_down_is_retried_with_backoff_then_a_server_error(pki, key, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nobody listens there
    client = client_for(pki, port, host="127.0.0.1", retries=2, backoff=0.05)
    started = time.monotonic()
    with pytest.raises(CredentialServerError, match="gave up after 3 attempts"):
        client.get("alice", key=key)
    assert time.monotonic() - started < 2
    assert caplog.text.count("trying again") == 2


def test_unknown_ca_names_the_ca_directory_and_the_fix(pki, server, key, tmp_path):
    other = TestCA("/DC=org/DC=other/CN=Other CA").write_trust_dir(tmp_path / "other")
    fake = server(signing_handler(pki["alice"]))
    with pytest.raises(CredentialServerError) as caught:
        client_for(pki, fake.port, ca_dir=other).get("alice", key=key)
    message = str(caught.value)
    assert str(other) in message and "X509_CERT_DIR" in message
    assert "unable to get the local issuer certificate" in message
    assert fake.sessions == []


def test_missing_ca_directory_is_reported_before_connecting(pki, key, tmp_path):
    with pytest.raises(CredentialServerError, match="does not exist"):
        client_for(pki, 1, ca_dir=tmp_path / "nowhere").get("alice", key=key)


def test_wrong_pinned_server_dn_is_refused_with_the_dn_to_set(pki, server, key):
    fake = server(signing_handler(pki["alice"]))
    with pytest.raises(CredentialServerError, match='MYPROXY_SERVER_DN="/CN=localhost"'):
        client_for(pki, fake.port, server_dn="/CN=myproxy.example.org").get("alice", key=key)
    assert fake.sessions == []


def test_pinned_server_dn_that_matches_is_accepted(pki, server, key):
    fake = server(signing_handler(pki["alice"]))
    client = client_for(pki, fake.port, host="127.0.0.1", server_dn="/CN=localhost")
    assert client.get("alice", key=key, lifetime=60).identity == ALICE_DN


def test_server_reached_by_another_name_than_its_certificate_is_refused(pki, server, key):
    fake = server(signing_handler(pki["alice"]))
    with pytest.raises(CredentialServerError, match="not /CN=127.0.0.1"):
        client_for(pki, fake.port, host="127.0.0.1").get("alice", key=key)


def test_expired_client_credential_fails_before_connecting(pki, users, key):
    expired = ClientCredential.from_pem(make_proxy(
        users.pilot, not_after=datetime.datetime.now(datetime.timezone.utc)
        - datetime.timedelta(minutes=1)))
    with pytest.raises(ProxyExpiredError, match="renew"):
        client_for(pki, 1, credential=expired).get("alice", key=key)


def test_no_client_credential_at_all_says_what_to_set(pki, key, tmp_path, monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 999_999)  # no /tmp/x509up_u999999
    client = MyProxyClient("localhost", 1, ca_dir=pki["trust"], environ={"HOME": str(tmp_path)})
    with pytest.raises(CredentialError, match="X509_USER_PROXY"):
        client.get("alice", key=key)


# --- the other commands

def test_info_lists_the_credentials(pki, server):
    fake = server(lambda s: s.reply(0, [
        "CRED_NAME=a", "CRED_START_TIME=1700000000", "CRED_END_TIME=1700003600",
        f"CRED_OWNER={ALICE_DN}", f"CRED_RETRIEVER_TRUSTED={PILOT_DN}",
        "CRED_b_START_TIME=1700000000", "CRED_b_END_TIME=1700007200", f"CRED_b_OWNER={ALICE_DN}",
        "ADDL_CREDS=b"]))
    found = client_for(pki, fake.port, credential=pki["alice"]).info("alice")
    assert [(c.name, c.retriever_trusted) for c in found] == [("a", PILOT_DN), ("b", None)]
    assert fake.sessions[0].request["COMMAND"] == "2"


def storing_server(server):
    """A scripted server that takes one stored credential: (the server, what it received)."""
    received: list = []

    def handle(session):
        session.reply(0)
        received.append(session.recv_until_nul())
        session.reply(0)

    return server(handle), received


def test_store_sends_certificate_key_and_chain_then_a_nul(pki, server):
    fake, received = storing_server(server)
    client_for(pki, fake.port, credential=pki["alice"]).store(
        "alice", pki["alice"], credname="c1", description="for pilots",
        retriever_trusted=PILOT_DN, lifetime=7200)
    request = fake.sessions[0].request
    assert request["COMMAND"] == "5" and request["RETRIEVER_TRUSTED"] == PILOT_DN
    assert request["CRED_NAME"] == "c1" and request["CRED_DESC"] == "for pilots"
    assert request["LIFETIME"] == "7200"
    stored = ClientCredential.from_pem(received[0].rstrip(b"\0"))
    assert stored.certificate == pki["alice"].certificate
    assert stored.chain == pki["alice"].chain


def test_store_with_a_passphrase_encrypts_the_key(pki, server):
    fake, received = storing_server(server)
    client_for(pki, fake.port, credential=pki["alice"]).store(
        "alice", pki["alice"], passphrase=Passphrase("stored secret"))
    assert b"ENCRYPTED PRIVATE KEY" in received[0]
    assert b"stored secret" not in received[0]
    key = serialization.load_pem_private_key(
        received[0][received[0].index(b"-----BEGIN ENCRYPTED"):].split(b"-----END")[0]
        + b"-----END ENCRYPTED PRIVATE KEY-----\n", password=b"stored secret")
    assert key.key_size == pki["alice"].key.key_size


def test_put_signs_the_servers_request_with_a_proxy_of_the_client(pki, server):
    got = []

    def handle(session):
        session.reply(0)
        stored_key = new_key(1024)
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(
            stored_key, hashes.SHA256())
        session.send(csr.public_bytes(serialization.Encoding.DER))
        count = session.recv_exact(1)[0]
        got.extend(x509.load_der_x509_certificate(session.recv_der()) for _ in range(count))
        session.reply(0)

    fake = server(handle)
    client_for(pki, fake.port, credential=pki["alice"]).put(
        "alice", credname="d", retriever_trusted=PILOT_DN, stored_lifetime=7200)
    proxy, *rest = got
    assert rest == [pki["alice"].certificate, *pki["alice"].chain]
    assert proxy.issuer == pki["alice"].certificate.subject
    assert is_proxy(proxy)
    proxy.verify_directly_issued_by(pki["alice"].certificate)
    assert proxy.not_valid_after_utc - proxy.not_valid_before_utc <= datetime.timedelta(
        hours=2, minutes=5)


def test_destroy_names_the_credential(pki, server):
    fake = server(lambda s: s.reply(0))
    client_for(pki, fake.port, credential=pki["alice"]).destroy("alice", "c1")
    assert fake.sessions[0].request["COMMAND"] == "3"
    assert fake.sessions[0].request["CRED_NAME"] == "c1"


def test_destroy_of_nothing_is_refused(pki, server):
    fake = server(error_handler("Credentials do not exist."))
    with pytest.raises(CredentialRefusedError, match="do not exist"):
        client_for(pki, fake.port, credential=pki["alice"]).destroy("alice", "c1")


def test_trustroots_can_be_fetched_anonymously(pki, server):
    import base64
    fake = server(lambda s: s.reply(0, [
        "TRUSTED_CERTS=abcd.0", "FILEDATA_abcd.0=" + base64.b64encode(b"CA").decode()]))
    client = MyProxyClient("localhost", fake.port, ca_dir=pki["trust"], retries=0,
                           environ={}, anonymous=True)
    assert client.trustroots() == {"abcd.0": b"CA"}
    assert fake.sessions[0].request["COMMAND"] == "7"
    assert fake.sessions[0].client_chain == []


# --- trust roots on disk

def test_trustroots_written_into_a_new_directory_with_a_marker(tmp_path):
    target = write_trustroots({"abcd.0": b"CA", "abcd.signing_policy": b"P"}, tmp_path / "certs")
    assert sorted(p.name for p in target.iterdir()) == [
        TRUSTROOTS_MARKER, "abcd.0", "abcd.signing_policy"]
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_trustroots_replace_a_directory_pilotid_wrote(tmp_path):
    write_trustroots({"old.0": b"old"}, tmp_path / "certs")
    write_trustroots({"new.0": b"new"}, tmp_path / "certs")
    assert sorted(p.name for p in (tmp_path / "certs").iterdir()) == [TRUSTROOTS_MARKER, "new.0"]
    assert [p.name for p in tmp_path.iterdir()] == ["certs"]


def test_trustroots_refuse_a_directory_pilotid_did_not_write(tmp_path):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "site.0").write_bytes(b"site CA")
    with pytest.raises(CredentialError, match="--force"):
        write_trustroots({"new.0": b"new"}, tmp_path / "certs")
    assert [p.name for p in (tmp_path / "certs").iterdir()] == ["site.0"]
    write_trustroots({"new.0": b"new"}, tmp_path / "certs", force=True)
    assert (tmp_path / "certs" / "new.0").exists()
    assert not (tmp_path / "certs" / "site.0").exists()


def test_trustroots_refuse_a_file_or_symlink(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path)
    for name in ("file", "link"):
        with pytest.raises(CredentialError, match="not a directory"):
            write_trustroots({"a.0": b"x"}, tmp_path / name, force=True)


# --- identities and credentials

def _host_cert(ca, common_name, san=None, dc=False):
    """A host certificate whose CN may hold a slash (``host/<fqdn>``), as real ones do."""
    attributes = [x509.NameAttribute(NameOID.DOMAIN_COMPONENT, v) for v in ("org", "example")]
    name = x509.Name((attributes if dc else [])
                     + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(ca.certificate.subject)
               .public_key(new_key(1024).public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), False)
    return builder.sign(ca.key, hashes.SHA256())


@pytest.fixture(scope="module")
def host_certs(users):
    return {
        "plain": _host_cert(users.ca, "myproxy.example.org"),
        "host": _host_cert(users.ca, "host/myproxy.example.org", dc=True),
        "service": _host_cert(users.ca, "myproxy/myproxy.example.org"),
        "san": _host_cert(users.ca, "Some Service", san="myproxy.example.org"),
        "wild": _host_cert(users.ca, "Wildcard", san="*.example.org"),
    }


@pytest.mark.parametrize("kind", ["plain", "host", "service", "san", "wild"])
def test_server_identity_accepted_by_cn_forms_or_subject_alt_name(host_certs, kind):
    check_server_identity(host_certs[kind], "myproxy.example.org")
    check_server_identity(host_certs[kind], "MyProxy.Example.Org")


@pytest.mark.parametrize("kind", ["plain", "host", "service", "san"])
def test_server_identity_refused_for_another_host(host_certs, kind):
    with pytest.raises(CredentialServerError, match="MYPROXY_SERVER_DN="):
        check_server_identity(host_certs[kind], "evil.example.org")


def test_wildcard_covers_one_label_only(host_certs):
    with pytest.raises(CredentialServerError):
        check_server_identity(host_certs["wild"], "a.b.example.org")


def test_pinned_dn_overrides_the_host_forms(host_certs):
    check_server_identity(host_certs["san"], "anything", server_dn="/CN=Some Service")
    with pytest.raises(CredentialServerError, match="not the expected MYPROXY_SERVER_DN"):
        check_server_identity(host_certs["plain"], "myproxy.example.org", server_dn="/CN=x")


def test_servers_parse_like_myproxy_server():
    assert parse_servers("a.org") == [ServerAddress("a.org", 7512)]
    assert parse_servers("a.org:7513, b.org", 7000) == [ServerAddress("a.org", 7513),
                                                        ServerAddress("b.org", 7000)]
    assert parse_servers("[::1]:99") == [ServerAddress("::1", 99)]
    with pytest.raises(CredentialError):
        parse_servers("a.org:http")
    with pytest.raises(CredentialError):
        parse_servers(" , ")


def test_credential_from_certificate_and_key_files(users, tmp_path):
    cert, key = users.alice.write(tmp_path, "alice")
    credential = ClientCredential.load(cert, key)
    assert credential.identity == ALICE_DN and credential.chain == ()


def test_credential_with_a_foreign_key_is_refused(users, tmp_path):
    cert, _ = users.alice.write(tmp_path, "alice")
    _, key = users.bob.write(tmp_path, "bob")
    with pytest.raises(ProxyKeyError, match="does not belong"):
        ClientCredential.load(cert, key)


def test_credential_with_an_encrypted_key_says_to_make_a_proxy(users):
    pem = users.alice.certificate.public_bytes(serialization.Encoding.PEM) + \
        users.alice.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"pw"))
    with pytest.raises(ProxyKeyError, match="grid-proxy-init"):
        ClientCredential.from_pem(pem)


def test_credential_without_certificate_or_key(users):
    with pytest.raises(ProxyFileError):
        ClientCredential.from_pem(b"nothing here")
    with pytest.raises(ProxyKeyError, match="no private key"):
        ClientCredential.from_pem(users.alice.certificate.public_bytes(serialization.Encoding.PEM))


def test_environment_order_proxy_then_cert_and_key(users, tmp_path):
    proxy = tmp_path / "proxy"
    proxy.write_bytes(make_proxy(users.pilot, bits=1024))
    cert, key = users.alice.write(tmp_path, "alice")
    env = {"X509_USER_PROXY": str(proxy), "X509_USER_CERT": str(cert),
           "X509_USER_KEY": str(key), "HOME": str(tmp_path)}
    assert ClientCredential.from_environment(env).identity == PILOT_DN
    del env["X509_USER_PROXY"]
    assert ClientCredential.from_environment(env).identity == ALICE_DN
    del env["X509_USER_KEY"]
    with pytest.raises(ProxyFileError, match="together"):
        ClientCredential.from_environment(env)
    with pytest.raises(ProxyFileError, match="cannot read"):
        ClientCredential.from_environment({"X509_USER_PROXY": str(tmp_path / "missing")})


def test_proxy_of_a_legacy_proxy_is_legacy_and_of_a_limited_one_limited(users):
    legacy = ClientCredential.from_pem(make_proxy(users.alice, rfc=False, bits=1024))
    limited = ClientCredential.from_pem(make_proxy(users.alice, limited=True, bits=1024))
    key = new_key(1024).public_key()
    assert sign_proxy(legacy, key, 60).subject.rdns[-1].rfc4514_string() == "CN=proxy"
    assert _proxy_type(sign_proxy(limited, key, 60), "x", 0) == RFC3820_LIMITED_PROXY
    rfc = ClientCredential.from_pem(make_proxy(users.alice, bits=1024))
    assert _proxy_type(sign_proxy(rfc, key, 60), "x", 0) == RFC3820_PROXY


def test_delegated_proxy_never_outlives_its_issuer(users):
    short = ClientCredential.from_pem(make_proxy(users.alice, hours=1, bits=1024))
    proxy = sign_proxy(short, new_key(1024).public_key(), 7 * 24 * 3600)
    assert proxy.not_valid_after_utc <= short.not_after


def test_retrieved_proxy_is_never_written_over_an_existing_file(pki, server, key, tmp_path):
    fake = server(signing_handler(pki["alice"]))
    proxy = client_for(pki, fake.port).get("alice", lifetime=600, key=key)
    target = Path(tmp_path / "x509up")
    target.write_text("someone else's")
    with pytest.raises(CredentialError, match="already exists"):
        proxy.write(target)
    assert target.read_text() == "someone else's"


def test_anonymous_client_cannot_retrieve(pki, key):
    client = MyProxyClient("localhost", 1, ca_dir=pki["trust"], environ={}, anonymous=True)
    with pytest.raises(CredentialError, match="anonymous"):
        client.get("alice", key=key)


def test_every_public_name_of_the_split_modules_is_still_importable_from_myproxy():
    """The client module re-exports what callers imported from it before the split."""
    for name in myproxy_module.__all__:
        assert getattr(myproxy_module, name) is not None, name
