"""pilotid.identity.default_proxy: the one place that names Globus' default proxy file.

That Globus' own tools look for the same file: tests/system/test_proxy_tools.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotid.identity.default_proxy import default_proxy_path, proxy_path_from_environment


def test_default_proxy_is_named_by_the_effective_uid_as_globus_names_it(monkeypatch):
    monkeypatch.setattr("os.getuid", lambda: 0)
    monkeypatch.setattr("os.geteuid", lambda: 1234)
    assert default_proxy_path() == Path("/tmp/x509up_u1234")  # noqa: S108


def test_default_proxy_of_another_uid():
    assert default_proxy_path(42) == Path("/tmp/x509up_u42")  # noqa: S108


def test_x509_user_proxy_names_the_proxy_when_set():
    assert proxy_path_from_environment({"X509_USER_PROXY": "/p/x"}) == Path("/p/x")


@pytest.mark.parametrize("environ", [{}, {"X509_USER_PROXY": ""}])
def test_without_x509_user_proxy_the_default_proxy_is_used(environ):
    assert proxy_path_from_environment(environ) == default_proxy_path()

