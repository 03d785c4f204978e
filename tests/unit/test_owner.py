"""Whose proxy a job runs with: every real form of prodUserID, and the queue's policy."""

from __future__ import annotations

import pytest

from pilotid.errors import ConfigurationError, CredentialError
from pilotid.identity.dn import is_dn, without_proxy_cns
from pilotid.identity.owner import owner_dn
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.sources import _owner_matches
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.queue import QueueSettings

JANE = "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=614260/CN=Jane Doe"


@pytest.mark.parametrize("form", [
    JANE, JANE + "/CN=proxy", JANE + "/CN=limited proxy", JANE + "/CN=113797372",
    JANE + "/CN=113797372/CN=proxy", JANE + "/CN=proxy/CN=proxy",
])
def test_every_proxy_form_of_a_dn_comes_back_to_the_users_dn(form):
    assert without_proxy_cns(form)[-1] == JANE
    assert without_proxy_cns(form)[0] == form


@pytest.fixture(scope="module")
def jane_proxy():
    return parse_proxy(make_proxy(TestCA(bits=1024).issue(JANE, bits=1024), bits=1024))


@pytest.mark.parametrize("form", [JANE + "/CN=2075422820", JANE + "/CN=proxy", JANE])
def test_the_owners_proxy_matches_every_form(form, jane_proxy):
    assert _owner_matches(form, jane_proxy)


@pytest.mark.parametrize("other", [
    "/DC=ch/DC=cern/OU=Organic Units/OU=Users/CN=jdoe/CN=614260",
    JANE + "x/CN=proxy", JANE + "/CN=Someone", "/DC=ch/DC=cern/CN=Jane Doe/CN=12345",
])
def test_someone_elses_dn_never_matches(other, jane_proxy):
    assert not _owner_matches(other, jane_proxy)


def test_a_user_whose_own_dn_ends_in_a_number_is_matched_as_it_is():
    numbered = "/DC=org/DC=example/CN=Operator/CN=42"
    proxy = parse_proxy(make_proxy(TestCA(bits=1024).issue(numbered, bits=1024), bits=1024))
    assert _owner_matches(numbered, proxy)
    assert not _owner_matches("/DC=org/DC=example/CN=Operator", proxy)


@pytest.mark.parametrize("text, expected", [
    (JANE, True), ("/C=UK/O=eScience/OU=Oxford/CN=j doe", True), ("jdoe@cern.ch", False),
    ("gingrich", False), ("no_one", False), ("None", False), ("", False), ("/", False),
])
def test_is_dn(text, expected):
    assert is_dn(text) is expected


def test_a_dn_is_the_owner_whatever_the_policy():
    assert owner_dn(JANE + "/CN=proxy", "refuse") == JANE + "/CN=proxy"
    assert owner_dn(JANE, "queue_proxy") == JANE


@pytest.mark.parametrize("prod_user_id", [None, "", "None", "no_one", "NULL"])
def test_a_job_with_no_user_is_refused_by_default(prod_user_id):
    with pytest.raises(CredentialError, match="names no user.*jobs_without_dn"):
        owner_dn(prod_user_id, "refuse")


@pytest.mark.parametrize("prod_user_id", ["jdoe@cern.ch", "gingrich", "Wen Guan"])
def test_a_user_named_by_something_else_than_a_dn_is_refused_by_default(prod_user_id):
    with pytest.raises(CredentialError, match="not by a DN"):
        owner_dn(prod_user_id, "refuse")


@pytest.mark.parametrize("prod_user_id", [None, "no_one", "jdoe@cern.ch", "gingrich"])
def test_queue_proxy_runs_such_jobs_with_no_owner_to_check(prod_user_id):
    assert owner_dn(prod_user_id, "queue_proxy") is None


def test_queue_proxy_needs_the_queues_own_proxy_file():
    with pytest.raises(ConfigurationError, match="jobs_without_dn"):
        QueueSettings.from_mapping("Q", {"jobs_without_dn": "queue_proxy"})
    with pytest.raises(ConfigurationError, match="jobs_without_dn"):
        QueueSettings.from_mapping("Q", {"jobs_without_dn": "queue_proxy",
                                         "credential_source": "myproxy"})
    settings = QueueSettings.from_mapping("Q", {"jobs_without_dn": "queue_proxy",
                                                "proxy_file": "/p/x509up"})
    assert settings.jobs_without_dn == "queue_proxy"
