"""The names ``pilotid`` promises resolve, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pilotid


@pytest.mark.parametrize("name", pilotid.__all__)
def test_every_public_name_resolves(name):
    assert getattr(pilotid, name) is not None


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        pilotid.Nope  # noqa: B018


def test_import_pilotid_loads_no_strategy_nor_crypto():
    code = ("import sys, pilotid; print(sorted(m for m in sys.modules if m.startswith("
            "('cryptography', 'OpenSSL', 'pilotid.'))))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"
