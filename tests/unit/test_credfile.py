"""pilotid.identity.credfile: new pilot-owned files, whole or not at all."""

from __future__ import annotations

import errno
import os
import stat

import mock
import pytest

from pilotid.errors import CredentialError
from pilotid.identity.credfile import write_private
from pilotid.signals import PilotSignal


def test_credential_is_written_0600_from_creation(tmp_path):
    path = write_private(tmp_path / "proxy.pem", b"PEM")
    assert path.read_bytes() == b"PEM"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_leaves_no_partial_credential(tmp_path):
    with mock.patch("os.fchmod", side_effect=OSError(errno.EIO, "Input/output error")):
        with pytest.raises(CredentialError, match="cannot write credential file"):
            write_private(tmp_path / "proxy.pem", b"PEM")
    assert os.listdir(tmp_path) == []


def test_a_signal_to_the_pilot_during_the_write_leaves_no_partial_credential(tmp_path):
    """The launcher's handler raises ``PilotSignal`` wherever the fetch is; the file it
    interrupted is removed, and the signal goes on up."""
    with mock.patch("os.fchmod", side_effect=PilotSignal(15)):
        with pytest.raises(PilotSignal):
            write_private(tmp_path / "proxy.pem", b"PEM")
    assert os.listdir(tmp_path) == []
