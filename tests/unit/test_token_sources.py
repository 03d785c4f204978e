"""The token sources: discovery or a per-job path, verification, the job's 0600 copy."""

from __future__ import annotations

import os
import stat

import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import (
    ConfigurationError,
    CredentialError,
    TokenError,
    TokenExpiredError,
    TokenIssuerError,
)
from pilotid.identity.credential import CredentialRequest
from pilotid.identity.testca import make_proxy
from pilotid.identity.testissuer import TestIssuer
from pilotid.identity.tokens.sources import BearerTokenSource, TokenFileSource
from pilotid.interfaces import ICredentialSource
from pilotid.queue import QueueSettings
from pilotid.registry import CREDENTIAL_SOURCE, Registry

ISSUER = TestIssuer("https://atlas-auth.example.org/", key_id="k1")


@pytest.fixture
def jwks(tmp_path):
    return ISSUER.write_jwks(tmp_path / "atlas.jwks")


def _queue(source, jwks, **extra):
    return QueueSettings.from_mapping("tokens", {
        "credential_source": source, "token_issuers": {ISSUER.url: str(jwks)}, **extra})


@pytest.fixture
def job_dir(tmp_path):
    directory = tmp_path / "job"
    directory.mkdir(mode=0o700)
    return directory


@pytest.mark.parametrize("cls", [BearerTokenSource, TokenFileSource])
def test_token_sources_provide_the_interface(cls, jwks, tmp_path):
    assert verifyClass(ICredentialSource, cls)
    settings = _queue(cls.name, jwks, **({"token_file": str(tmp_path / "{panda_id}")}
                                         if cls is TokenFileSource else {}))
    assert verifyObject(ICredentialSource, cls(settings, environ={}))


@pytest.mark.parametrize("name", ["bearer", "token-file"])
def test_the_registry_knows_the_token_sources(name):
    assert name in Registry.with_builtins().names(CREDENTIAL_SOURCE)


def test_a_queue_must_name_the_issuers_it_trusts():
    with pytest.raises(ConfigurationError, match="token_issuers"):
        QueueSettings.from_mapping("tokens", {"credential_source": "bearer"})


@pytest.mark.parametrize("issuers", [{"http://plain.example/": "/k.jwks"},
                                     {"https://a.example/": "relative.jwks"}, {}, ["x"]])
def test_bad_token_issuers_are_refused(issuers):
    with pytest.raises(ConfigurationError):
        QueueSettings.from_mapping("tokens", {"credential_source": "bearer",
                                              "token_issuers": issuers})


def test_a_token_file_template_names_only_known_fields(jwks):
    with pytest.raises(ConfigurationError, match="home"):
        _queue("token-file", jwks, token_file="/tokens/{home}/bt")


def test_the_discovered_token_is_verified_and_copied_0600(jwks, job_dir):
    raw = ISSUER.token("alice", groups=["/atlas"])
    source = BearerTokenSource(_queue("bearer", jwks), environ={"BEARER_TOKEN": raw})
    credential = source.fetch(CredentialRequest(directory=job_dir, lifetime=600))
    assert credential.proxy is None and credential.path is None
    assert credential.token.subject == "alice" and credential.identity.startswith("alice@")
    assert credential.token_path.parent == job_dir
    assert credential.token_path.read_text().strip() == raw
    info = os.lstat(credential.token_path)
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert credential.files == (credential.token_path,)


def test_each_fetch_writes_a_new_copy(jwks, job_dir):
    source = BearerTokenSource(_queue("bearer", jwks), environ={"BEARER_TOKEN": ISSUER.token()})
    first = source.fetch(CredentialRequest(directory=job_dir))
    second = source.fetch(CredentialRequest(directory=job_dir))
    assert first.token_path != second.token_path


def test_no_token_anywhere_is_a_token_error(jwks, job_dir, tmp_path):
    source = BearerTokenSource(_queue("bearer", jwks),
                               environ={"XDG_RUNTIME_DIR": str(tmp_path / "none")})
    if os.path.exists(f"/tmp/bt_u{os.geteuid()}"):
        pytest.skip("this account has a /tmp/bt_u file")
    with pytest.raises(TokenError, match="no bearer token"):
        source.fetch(CredentialRequest(directory=job_dir))


def test_an_invalid_first_token_stops_discovery(jwks, job_dir, tmp_path):
    """BEARER_TOKEN holds a refused token: the good BEARER_TOKEN_FILE is not tried."""
    good = tmp_path / "good"
    good.write_text(ISSUER.token())
    source = BearerTokenSource(_queue("bearer", jwks), environ={
        "BEARER_TOKEN": TestIssuer("https://other.example/").token(),
        "BEARER_TOKEN_FILE": str(good)})
    with pytest.raises(TokenIssuerError):
        source.fetch(CredentialRequest(directory=job_dir))
    assert list(job_dir.iterdir()) == []


def test_a_token_shorter_than_token_lifetime_needed_is_refused(jwks, job_dir):
    source = BearerTokenSource(_queue("bearer", jwks, token_lifetime_needed=900),
                               environ={"BEARER_TOKEN": ISSUER.token(lifetime=600)})
    with pytest.raises(TokenExpiredError, match="needs 900 s"):
        source.fetch(CredentialRequest(directory=job_dir))


def test_a_token_is_not_held_to_the_proxys_lifetime(jwks, job_dir):
    source = BearerTokenSource(_queue("bearer", jwks),
                               environ={"BEARER_TOKEN": ISSUER.token(lifetime=3600)})
    assert source.fetch(CredentialRequest(directory=job_dir, lifetime=10800)).token


def test_unreadable_issuer_keys_are_the_operators_error(tmp_path, job_dir):
    source = BearerTokenSource(_queue("bearer", tmp_path / "missing.jwks"),
                               environ={"BEARER_TOKEN": ISSUER.token()})
    with pytest.raises(ConfigurationError, match="missing.jwks"):
        source.fetch(CredentialRequest(directory=job_dir))


def test_the_token_file_source_reads_the_jobs_path(jwks, job_dir, tmp_path):
    (tmp_path / "tokens").mkdir()
    (tmp_path / "tokens" / "4711.token").write_text(ISSUER.token("bob") + "\n")
    source = TokenFileSource(_queue("token-file", jwks,
                                    token_file=str(tmp_path / "tokens" / "{panda_id}.token")))
    credential = source.fetch(CredentialRequest(directory=job_dir, job_id="4711"))
    assert credential.token.subject == "bob" and credential.source == "token-file"


@pytest.mark.parametrize("credname", ["../escape", "", None, ".."])
def test_a_template_field_that_is_no_plain_name_is_refused(jwks, job_dir, tmp_path, credname):
    source = TokenFileSource(_queue("token-file", jwks,
                                    token_file=str(tmp_path / "{credname}.token")))
    with pytest.raises(CredentialError, match="credname"):
        source.fetch(CredentialRequest(directory=job_dir, credname=credname))


def test_an_absent_job_token_is_a_token_error(jwks, job_dir, tmp_path):
    source = TokenFileSource(_queue("token-file", jwks,
                                    token_file=str(tmp_path / "{panda_id}.token")))
    with pytest.raises(TokenError, match="no bearer token"):
        source.fetch(CredentialRequest(directory=job_dir, job_id="1"))


def test_token_with_proxy_gives_the_job_both(jwks, job_dir, tmp_path, users):
    proxy_file = tmp_path / "x509up"
    proxy_file.write_bytes(make_proxy(users.alice))
    proxy_file.chmod(0o600)
    source = BearerTokenSource(_queue("bearer", jwks, token_with_proxy=True,
                                      proxy_file=str(proxy_file)),
                               environ={"BEARER_TOKEN": ISSUER.token()})
    credential = source.fetch(CredentialRequest(directory=job_dir))
    assert credential.proxy is not None and credential.token is not None
    assert credential.identity == credential.proxy.identity
    assert set(credential.files) == {credential.path, credential.token_path}


def test_a_token_of_another_user_than_the_jobs_owner_is_refused(jwks, job_dir):
    source = BearerTokenSource(_queue("bearer", jwks),
                               environ={"BEARER_TOKEN": ISSUER.token("alice")})
    with pytest.raises(CredentialError, match="another's token"):
        source.fetch(CredentialRequest(directory=job_dir, owner_id="bob"))
    assert list(job_dir.iterdir()) == []


@pytest.mark.parametrize("owner", ["alice", f"alice@{ISSUER.url}"])
def test_the_owner_may_name_the_subject_or_subject_at_issuer(jwks, job_dir, owner):
    source = BearerTokenSource(_queue("bearer", jwks),
                               environ={"BEARER_TOKEN": ISSUER.token("alice")})
    assert source.fetch(CredentialRequest(directory=job_dir, owner_id=owner)).token


def test_a_job_naming_a_dn_needs_the_proxy_beside_the_token(jwks, job_dir):
    source = BearerTokenSource(_queue("bearer", jwks),
                               environ={"BEARER_TOKEN": ISSUER.token("alice")})
    with pytest.raises(CredentialError, match="token_with_proxy"):
        source.fetch(CredentialRequest(directory=job_dir, owner_dn="/DC=org/CN=Alice"))


def test_token_subject_needs_a_token_source():
    with pytest.raises(ConfigurationError, match="token source"):
        QueueSettings.from_mapping("tokens", {"jobs_without_dn": "token_subject"})


def test_glexec_refuses_a_token_only_job_before_anything_runs(jwks, job_dir):
    from pilotid.strategies.glexec import GlexecSwitcher

    credential = BearerTokenSource(_queue("bearer", jwks), environ={
        "BEARER_TOKEN": ISSUER.token()}).fetch(CredentialRequest(directory=job_dir))
    switcher = GlexecSwitcher(QueueSettings("ANALY_GLEXEC", switcher="glexec",
                                            options={"glexec_mode": "uid"}))
    with pytest.raises(CredentialError, match="gLExec needs an X.509 proxy"):
        switcher.client_cert(credential)


def test_a_probe_for_a_job_naming_a_token_subject_asks_for_that_subject(tmp_path):
    from pilotid.payloads.job import JobSpec
    from pilotid.probe import probe_request

    request = probe_request(tmp_path, JobSpec(panda_id=1, transformation="t",
                                              prod_user_id="alice"))
    assert (request.owner_id, request.job_id) == ("alice", "1")
