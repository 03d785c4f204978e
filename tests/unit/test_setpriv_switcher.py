"""The worked example of docs/strategies.rst (tests/setpriv_switcher.py), without switching."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import AccountMappingError, SwitchExecError, SwitchNotPermittedError
from pilotid.identity.accounts import Account
from pilotid.interfaces import IIdentitySwitcher, ISwitchSession
from pilotid.queue import QueueSettings
from tests.conftest import ALICE_DN
from tests.setpriv_switcher import SetprivSwitcher


class _Credential:
    identity = ALICE_DN
    path = Path("/nonexistent")


def switcher(tmp_path: Path, account: str = "root") -> SetprivSwitcher:
    mapfile = tmp_path / "grid-mapfile"
    mapfile.write_text(f'"{ALICE_DN}" {account}\n')
    return SetprivSwitcher(QueueSettings("ANALY_SETPRIV", options={"grid_mapfile": mapfile}))


def test_setpriv_switcher_provides_the_switcher_interface(tmp_path):
    assert verifyClass(IIdentitySwitcher, SetprivSwitcher)
    assert verifyObject(IIdentitySwitcher, switcher(tmp_path))


def test_setpriv_switcher_refuses_a_pilot_that_is_not_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(SwitchNotPermittedError, match="root"):
        switcher(tmp_path).probe(_Credential())


def test_setpriv_switcher_refuses_a_mapping_to_root(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(AccountMappingError, match="root"):
        switcher(tmp_path, "root").probe(_Credential())


def test_setpriv_session_switches_and_takes_the_proxy_on_stdin(tmp_path):
    target = Account("someone", 54321, 54321)
    session = switcher(tmp_path).open(_Credential(), target, tmp_path)
    assert verifyObject(ISwitchSession, session)
    assert session.switches_identity and session.marker_owner == 54321
    assert session.handover.from_stdin
    assert session.handover.payload_proxy.parent.name.startswith(".pilotid-proxy-54321-")


def test_setpriv_explains_a_missing_marker_with_its_own_message(tmp_path):
    """The base's building blocks: the switch program's stderr after the launch began."""
    the_switcher = switcher(tmp_path)
    log = tmp_path / "stderr"
    log.write_bytes(b"earlier job\n")
    with open(log, "ab") as err:
        the_switcher._latest = (str(log), err.tell())  # what launch records
        err.write(b"setpriv: failed to execute /work/wrapper.sh: Permission denied\n")
    error = the_switcher.explain(126, None).error
    assert isinstance(error, SwitchExecError)
    assert "failed to execute /work/wrapper.sh" in str(error)

