"""The sudo switcher maps a token-only job through the queue's token map, a proxy through
the grid-mapfile; never to root or the pilot."""

from __future__ import annotations

import datetime
import os
import pwd
from pathlib import Path

import pytest

from pilotid.errors import AccountMappingError
from pilotid.identity.credential import Credential
from pilotid.identity.tokens import BearerToken
from pilotid.queue import QueueSettings
from pilotid.strategies.probecache import ProbeCache
from pilotid.strategies.sudo import SudoSwitcher

ATLAS = "https://atlas-auth.example.org/"


def _token_credential(subject="alice-0001", groups=()):
    token = BearerToken(issuer=ATLAS, subject=subject, version="1.0", algorithm="RS256",
                        expires=datetime.datetime.now(datetime.timezone.utc)
                        + datetime.timedelta(hours=1), groups=groups)
    return Credential(path=None, proxy=None, source="bearer", token_path=Path("/x/bt"),
                      token=token)


def _switcher(tmp_path, token_map_text=None):
    options = {"grid_mapfile": tmp_path / "grid-mapfile", "token_mapfile": None}
    if token_map_text is not None:
        (tmp_path / "token-map").write_text(token_map_text)
        options["token_mapfile"] = tmp_path / "token-map"
    settings = QueueSettings("ANALY_SUDO", switcher="sudo", options=options)
    return SudoSwitcher(settings, sudo="/bin/false", probe_cache=ProbeCache())


def _some_account():
    for entry in pwd.getpwall():
        if entry.pw_uid not in (0, os.geteuid()):
            return entry.pw_name
    pytest.skip("no account besides root and the pilot")


def test_a_token_only_job_maps_through_the_token_map(tmp_path):
    name = _some_account()
    switcher = _switcher(tmp_path, f"sub {ATLAS} alice-0001 {name}\n")
    assert switcher.map_identity(_token_credential()).name == name


def test_a_token_only_job_maps_by_its_group(tmp_path):
    name = _some_account()
    switcher = _switcher(tmp_path, f"group {ATLAS} /atlas/production {name}\n")
    assert switcher.map_identity(
        _token_credential("someone", groups=("/atlas/production",))).name == name


def test_a_token_only_job_without_a_token_map_is_refused(tmp_path):
    with pytest.raises(AccountMappingError, match="token_mapfile"):
        _switcher(tmp_path).map_identity(_token_credential())


def test_a_token_mapped_to_root_is_refused(tmp_path):
    switcher = _switcher(tmp_path, f"sub {ATLAS} alice-0001 root\n")
    with pytest.raises(AccountMappingError, match="root"):
        switcher.map_identity(_token_credential())


def test_an_unmapped_token_is_refused(tmp_path):
    switcher = _switcher(tmp_path, f"sub {ATLAS} somebody-else root\n")
    with pytest.raises(AccountMappingError, match="alice-0001"):
        switcher.map_identity(_token_credential())
