"""LocalFileSource: where it finds the proxy, how it checks it, and how it copies it."""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import stat
from pathlib import Path

import mock
import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import CredentialError, ProxyExpiredError, ProxyFileError
from pilotid.identity import credfile
from pilotid.identity import sources as sources_module
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.proxy import load_proxy
from pilotid.identity.sources import LocalFileSource
from pilotid.identity.testca import make_proxy
from pilotid.interfaces import ICredentialSource
from pilotid.queue import QueueSettings
from tests.conftest import ALICE_DN, BOB_DN

UTC = datetime.timezone.utc


@pytest.fixture(scope="session")
def alice_pem(users) -> bytes:
    return make_proxy(users.alice, bits=1024)


@pytest.fixture
def proxy_file(tmp_path, alice_pem) -> Path:
    path = tmp_path / "x509up_u1000"
    path.write_bytes(alice_pem)
    path.chmod(0o600)
    return path


@pytest.fixture
def jobdir(tmp_path) -> Path:
    path = tmp_path / "job"
    path.mkdir()
    return path


def _source(proxy_file: Path) -> LocalFileSource:
    return LocalFileSource(QueueSettings(name="ANALY_TEST", options={"proxy_file": proxy_file}))


def test_local_file_source_provides_the_credential_source_interface(proxy_file):
    assert verifyClass(ICredentialSource, LocalFileSource)
    assert verifyObject(ICredentialSource, _source(proxy_file))
    assert LocalFileSource.name == "file"


# --- where the proxy comes from -----------------------------------------------------------

def test_the_queue_setting_is_preferred_to_the_environment(proxy_file):
    source = LocalFileSource(QueueSettings(name="Q", options={"proxy_file": proxy_file}),
                             environ={"X509_USER_PROXY": "/elsewhere"})
    assert source.proxy_path(CredentialRequest(proxy_file.parent)) == proxy_file


def test_x509_user_proxy_is_used_when_the_queue_names_no_file(proxy_file, monkeypatch):
    monkeypatch.setenv("X509_USER_PROXY", str(proxy_file))
    request = CredentialRequest(proxy_file.parent)
    assert LocalFileSource(QueueSettings(name="Q")).proxy_path(request) == proxy_file


def test_without_either_the_error_says_what_to_set():
    source = LocalFileSource(QueueSettings(name="ANALY_NONE"), environ={})
    with pytest.raises(CredentialError) as caught:
        source.proxy_path(CredentialRequest(Path("/nonexistent")))
    message = str(caught.value)
    assert "ANALY_NONE" in message and "proxy_file" in message and "X509_USER_PROXY" in message


def test_building_the_source_never_fails_even_without_a_proxy():
    LocalFileSource(QueueSettings(name="Q"), environ={})


# --- the copy -----------------------------------------------------------------------------

def test_fetch_copies_the_checked_proxy_into_the_job_directory(proxy_file, jobdir, alice_pem):
    credential = _source(proxy_file).fetch(CredentialRequest(directory=jobdir))
    assert isinstance(credential, Credential)
    assert credential.path.parent == jobdir
    assert re.fullmatch(r"user-proxy-[0-9a-f]{32}\.pem", credential.path.name)
    assert credential.path.read_bytes() == alice_pem
    assert credential.source == "file"
    assert credential.identity == ALICE_DN
    assert credential.proxy.path == credential.path
    assert credential.time_left().total_seconds() > 11 * 3600


def test_each_fetch_writes_a_new_file(proxy_file, jobdir):
    source = _source(proxy_file)
    first = source.fetch(CredentialRequest(directory=jobdir))
    second = source.fetch(CredentialRequest(directory=jobdir))
    assert first.path != second.path
    assert sorted(p.name for p in jobdir.iterdir()) == sorted([first.path.name, second.path.name])


def test_the_copy_is_created_0600_exclusively_and_never_through_a_symlink(proxy_file, jobdir):
    calls = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        calls.append((Path(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    with mock.patch.object(credfile.os, "open", side_effect=recording_open):
        credential = _source(proxy_file).fetch(CredentialRequest(directory=jobdir))
    (path, flags, mode), = [c for c in calls if c[0] == credential.path]
    required = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_WRONLY
    assert flags & required == required
    assert not flags & os.O_TRUNC
    assert mode == 0o600


def test_the_copy_is_0600_even_under_a_permissive_umask(proxy_file, jobdir):
    old = os.umask(0)
    try:
        credential = _source(proxy_file).fetch(CredentialRequest(directory=jobdir))
    finally:
        os.umask(old)
    info = os.lstat(credential.path)
    assert stat.S_ISREG(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()


def test_a_symlink_planted_at_the_target_path_is_refused(proxy_file, jobdir, tmp_path):
    victim = tmp_path / "victim"
    (jobdir / "user-proxy-fixed.pem").symlink_to(victim)
    with mock.patch.object(sources_module, "_copy_name", return_value="user-proxy-fixed.pem"):
        with pytest.raises(CredentialError, match="something already exists there"):
            _source(proxy_file).fetch(CredentialRequest(directory=jobdir))
    assert not victim.exists()
    assert (jobdir / "user-proxy-fixed.pem").is_symlink()


def test_an_existing_file_at_the_target_path_is_left_alone(proxy_file, jobdir):
    planted = jobdir / "user-proxy-fixed.pem"
    planted.write_bytes(b"planted")
    with mock.patch.object(sources_module, "_copy_name", return_value=planted.name):
        with pytest.raises(CredentialError):
            _source(proxy_file).fetch(CredentialRequest(directory=jobdir))
    assert planted.read_bytes() == b"planted"


def test_the_copy_holds_the_bytes_that_were_checked_not_a_later_swap(proxy_file, jobdir,
                                                                     alice_pem):
    def load_then_swap(path, min_lifetime=0, now=None):
        info = load_proxy(path, min_lifetime, now)
        Path(path).write_bytes(b"swapped after the check")
        return info

    with mock.patch.object(sources_module, "load_proxy", side_effect=load_then_swap):
        credential = _source(proxy_file).fetch(CredentialRequest(directory=jobdir))
    assert credential.path.read_bytes() == alice_pem


def test_a_missing_job_directory_is_a_credential_error(proxy_file, tmp_path):
    with pytest.raises(CredentialError, match="cannot create credential file"):
        _source(proxy_file).fetch(CredentialRequest(directory=tmp_path / "no-such-dir"))


# --- checks before copying ------------------------------------------------------------------

def test_an_expired_proxy_is_refused_and_nothing_is_written(users, tmp_path, jobdir):
    expired = tmp_path / "expired"
    expired.write_bytes(make_proxy(users.alice, bits=1024, not_after=datetime.datetime.now(UTC)
                                   - datetime.timedelta(minutes=1)))
    with pytest.raises(ProxyExpiredError):
        _source(expired).fetch(CredentialRequest(directory=jobdir))
    assert list(jobdir.iterdir()) == []


def test_the_requested_lifetime_is_required(proxy_file, jobdir):
    with pytest.raises(ProxyExpiredError, match="is needed"):
        _source(proxy_file).fetch(CredentialRequest(directory=jobdir, lifetime=24 * 3600))
    assert list(jobdir.iterdir()) == []


def test_a_malformed_proxy_is_refused(tmp_path, jobdir):
    bad = tmp_path / "bad"
    bad.write_bytes(b"not a proxy")
    with pytest.raises(ProxyFileError):
        _source(bad).fetch(CredentialRequest(directory=jobdir))


def test_a_proxy_of_another_user_is_refused_naming_both(proxy_file, jobdir):
    with pytest.raises(CredentialError) as caught:
        _source(proxy_file).fetch(CredentialRequest(directory=jobdir, owner_dn=BOB_DN))
    message = str(caught.value)
    assert ALICE_DN in message and BOB_DN in message
    assert list(jobdir.iterdir()) == []


def test_a_longer_dn_that_merely_starts_with_the_identity_is_refused(proxy_file, jobdir):
    with pytest.raises(CredentialError):
        _source(proxy_file).fetch(CredentialRequest(directory=jobdir,
                                                    owner_dn=ALICE_DN + "/CN=Someone Else"))


@pytest.mark.parametrize("suffix", ["", "/CN=proxy", "/CN=limited proxy/CN=proxy", "subject"])
def test_the_owner_may_be_named_by_identity_or_proxy_subject(proxy_file, jobdir, suffix):
    owner = load_proxy(proxy_file).subject if suffix == "subject" else ALICE_DN + suffix
    credential = _source(proxy_file).fetch(CredentialRequest(directory=jobdir, owner_dn=owner))
    assert credential.identity == ALICE_DN


# --- a per-user proxy file, chosen by a subclass ---------------------------------------------

class PerUserFileSource(LocalFileSource):
    """Reads ``<vault>/<sha256 of the owner's DN>.pem``: a directory of delegated proxies."""

    def __init__(self, settings, vault: Path) -> None:
        super().__init__(settings, environ={})
        self.vault = vault

    def proxy_path(self, request):
        digest = hashlib.sha256((request.owner_dn or "").encode("utf-8")).hexdigest()
        return self.vault / f"{digest}.pem"


def _vault_entry(vault: Path, dn: str, pem: bytes) -> None:
    credfile.write_private(vault / f"{hashlib.sha256(dn.encode('utf-8')).hexdigest()}.pem", pem)


def test_a_subclass_may_choose_the_proxy_file_by_the_jobs_owner(users, tmp_path, jobdir,
                                                                 alice_pem):
    vault = tmp_path / "vault"
    vault.mkdir(mode=0o700)
    _vault_entry(vault, ALICE_DN, alice_pem)
    _vault_entry(vault, BOB_DN, make_proxy(users.bob, bits=1024))
    source = PerUserFileSource(QueueSettings(name="ANALY_VAULT"), vault)
    alice = source.fetch(CredentialRequest(jobdir, owner_dn=ALICE_DN))
    bob = source.fetch(CredentialRequest(jobdir, owner_dn=BOB_DN))
    assert (alice.identity, bob.identity) == (ALICE_DN, BOB_DN)
    assert alice.path.parent == bob.path.parent == jobdir


def test_a_subclass_choosing_a_file_still_gets_the_owner_check(users, tmp_path, jobdir):
    """A vault entry holding somebody else's proxy is refused, as the queue's file would be."""
    vault = tmp_path / "vault"
    vault.mkdir(mode=0o700)
    _vault_entry(vault, ALICE_DN, make_proxy(users.bob, bits=1024))
    source = PerUserFileSource(QueueSettings(name="ANALY_VAULT"), vault)
    with pytest.raises(CredentialError, match="refusing to run one user's job"):
        source.fetch(CredentialRequest(jobdir, owner_dn=ALICE_DN))
    assert list(jobdir.iterdir()) == []
