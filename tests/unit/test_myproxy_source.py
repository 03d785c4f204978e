"""MyProxySource and its node-local cache, against the scripted server."""

from __future__ import annotations

import logging
import threading

import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import ConfigurationError, CredentialError, CredentialRefusedError
from pilotid.identity.credential import CredentialRequest
from pilotid.identity.myproxy import ClientCredential, MyProxyClient, new_key
from pilotid.identity.sources import CredentialCache, MyProxySource
from pilotid.identity.testca import make_proxy
from pilotid.interfaces import ICredentialSource
from pilotid.queue import QueueSettings
from tests.conftest import ALICE_DN, BOB_DN
from tests.unit.fake_myproxy import FakeMyProxyServer, signing_handler


@pytest.fixture(scope="module")
def lab(users, tmp_path_factory):
    trust = users.ca.write_trust_dir(tmp_path_factory.mktemp("certs"))
    return {
        "trust": trust,
        "host": users.ca.issue("/CN=localhost", server_name="localhost"),
        "pilot": ClientCredential.from_pem(make_proxy(users.pilot)),
        "alice": ClientCredential.from_pem(make_proxy(users.alice)),
        "alice_1h": ClientCredential.from_pem(make_proxy(users.alice, hours=1)),
        "key": new_key(2048),
    }


@pytest.fixture
def fake(lab):
    servers = []

    def start(signer="alice"):
        server = FakeMyProxyServer(lab["host"], signing_handler(lab[signer]))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def make_source(lab, server=None, tmp_path=None, **kw):
    settings = QueueSettings(name="ANALY_TEST", credential_source="myproxy", options={
        "myproxy_server": f"localhost:{server.port}" if server else None})
    made = []

    def factory(spec, port):
        made.append(spec)
        client = MyProxyClient(spec, port, credential=lab["pilot"], ca_dir=lab["trust"],
                               retries=0, environ={})
        original = client.get
        client.get = lambda *a, **k: original(*a, key=lab["key"], **k)  # type: ignore
        return client

    if tmp_path is not None and "cache" not in kw and kw.get("use_cache", True):
        kw["cache"] = CredentialCache(tmp_path / "cache")
    source = MyProxySource(settings, client_factory=factory, **kw)
    source.made = made  # type: ignore[attr-defined]
    return source


def request(tmp_path, **kw):
    job = tmp_path / "job"
    job.mkdir(exist_ok=True)
    kw.setdefault("owner_dn", ALICE_DN)
    kw.setdefault("credname", "pilotcred")
    return CredentialRequest(directory=job, **kw)


def test_provides_the_credential_source_interface(lab, tmp_path):
    verifyClass(ICredentialSource, MyProxySource)
    verifyObject(ICredentialSource, make_source(lab, tmp_path=tmp_path))
    assert MyProxySource.name == "myproxy"


def test_fetch_writes_a_checked_0600_copy_for_the_job(lab, fake, tmp_path):
    server = fake()
    credential = make_source(lab, server, tmp_path).fetch(request(tmp_path, lifetime=3600))
    assert credential.source == "myproxy" and credential.identity == ALICE_DN
    assert credential.path.parent == tmp_path / "job"
    assert credential.path.stat().st_mode & 0o777 == 0o600
    assert credential.proxy.path == credential.path
    session = server.sessions[0].request
    assert session["USERNAME"] == ALICE_DN and session["CRED_NAME"] == "pilotcred"
    assert int(session["LIFETIME"]) >= 12 * 3600


def test_username_from_the_request_wins_over_the_dn(lab, fake, tmp_path):
    server = fake()
    make_source(lab, server, tmp_path).fetch(request(tmp_path, username="alice"))
    assert server.sessions[0].request["USERNAME"] == "alice"


def test_job_server_overrides_the_queue_server(lab, fake, tmp_path):
    queue_server, job_server = fake(), fake()
    source = make_source(lab, queue_server, tmp_path)
    source.fetch(request(tmp_path, server=f"localhost:{job_server.port}"))
    assert queue_server.sessions == [] and len(job_server.sessions) == 1


def test_no_server_anywhere_is_the_operators_error(lab, tmp_path):
    with pytest.raises(ConfigurationError, match="myproxy_server"):
        make_source(lab, None, tmp_path).fetch(request(tmp_path))


def test_no_owner_nor_username_is_refused(lab, fake, tmp_path):
    with pytest.raises(CredentialError, match="prodUserID"):
        make_source(lab, fake(), tmp_path).fetch(request(tmp_path, owner_dn=None))


def test_proxy_of_someone_else_is_refused_and_nothing_is_left(lab, fake, tmp_path):
    with pytest.raises(CredentialRefusedError, match="not to the job's owner"):
        make_source(lab, fake(), tmp_path).fetch(request(tmp_path, owner_dn=BOB_DN))
    assert list((tmp_path / "job").iterdir()) == []


def test_proxy_shorter_than_the_job_needs_is_refused(lab, fake, tmp_path):
    source = make_source(lab, fake("alice_1h"), use_cache=False)
    with pytest.raises(CredentialError, match="store a new one"):
        source.fetch(request(tmp_path, lifetime=2 * 3600))
    assert list((tmp_path / "job").iterdir()) == []


def test_second_fetch_for_the_same_credential_uses_the_cache(lab, fake, tmp_path):
    server = fake()
    source = make_source(lab, server, tmp_path)
    first = source.fetch(request(tmp_path, lifetime=600))
    second = source.fetch(request(tmp_path, lifetime=600))
    assert len(server.sessions) == 1
    assert first.path != second.path
    assert first.path.read_bytes() == second.path.read_bytes()


def test_cache_is_a_0700_directory_with_0600_entries(lab, fake, tmp_path):
    make_source(lab, fake(), tmp_path).fetch(request(tmp_path))
    cache = tmp_path / "cache"
    assert cache.stat().st_mode & 0o777 == 0o700
    entries = list(cache.glob("*.pem"))
    assert len(entries) == 1 and entries[0].stat().st_mode & 0o777 == 0o600


def test_other_credential_names_and_owners_are_separate_entries(lab, fake, tmp_path):
    server = fake()
    source = make_source(lab, server, tmp_path)
    source.fetch(request(tmp_path, credname="a"))
    source.fetch(request(tmp_path, credname="b"))
    source.fetch(request(tmp_path, credname="a", username="alice"))
    assert len(server.sessions) == 3


def test_nearly_expired_entry_is_fetched_again(lab, fake, tmp_path):
    server = fake("alice_1h")
    source = make_source(lab, server, tmp_path)
    source.fetch(request(tmp_path, lifetime=0))
    source.fetch(request(tmp_path, lifetime=50 * 60))  # needs 50 min + margin > 1 h left
    assert len(server.sessions) == 2


def test_cache_not_owned_or_too_open_is_bypassed_with_a_warning(lab, fake, tmp_path, caplog):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    server = fake()
    source = make_source(lab, server, tmp_path)
    with caplog.at_level(logging.WARNING, logger="pilotid"):
        source.fetch(request(tmp_path))
        source.fetch(request(tmp_path))
    assert len(server.sessions) == 2
    assert "not caching" in caplog.text
    assert list(cache.iterdir()) == []


def test_corrupt_entry_is_replaced(lab, fake, tmp_path):
    server = fake()
    source = make_source(lab, server, tmp_path)
    source.fetch(request(tmp_path))
    (entry,) = (tmp_path / "cache").glob("*.pem")
    entry.write_bytes(b"garbage")
    source.fetch(request(tmp_path))
    assert len(server.sessions) == 2
    assert b"BEGIN CERTIFICATE" in entry.read_bytes()


def test_concurrent_fetches_ask_the_server_once(lab, fake, tmp_path):
    server = fake()
    source = make_source(lab, server, tmp_path)
    results, errors = [], []

    def fetch():
        try:
            results.append(source.fetch(request(tmp_path)))
        except Exception as error:  # pragma: no cover - shown by the assertion
            errors.append(error)

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and len(results) == 4
    assert len(server.sessions) == 1
    assert len({r.path.read_bytes() for r in results}) == 1


def test_purge_removes_expired_entries_only(lab, fake, tmp_path):
    source = make_source(lab, fake(), tmp_path)
    source.fetch(request(tmp_path))
    stale = tmp_path / "cache" / "0123.pem"
    stale.write_bytes(b"not a proxy")
    stale.chmod(0o600)
    assert source.cache.purge_expired() == 1
    assert len(list((tmp_path / "cache").glob("*.pem"))) == 1
