"""The gLExec stand-in's pure rules (grid-mapfile, environment), without root."""

from __future__ import annotations

import importlib.util
import pwd
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "glexec" / "glexec-standin.py"


@pytest.fixture(scope="module")
def standin():
    spec = importlib.util.spec_from_file_location("glexec_standin", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_mapfile_keeps_quotes_apostrophes_and_the_first_account(standin):
    mapping = standin.parse_grid_mapfile(
        '# comment\n\n"/DC=org/CN=Bob O\'Builder (Test)" bob\n'
        '"/DC=org/CN=Say \\"hi\\"" alice,carol\n')
    assert mapping == {"/DC=org/CN=Bob O'Builder (Test)": "bob",
                       '/DC=org/CN=Say "hi"': "alice"}


def test_malformed_grid_mapfile_is_a_system_error(standin):
    with pytest.raises(standin.Refusal) as raised:
        standin.parse_grid_mapfile("/DC=org/CN=unquoted alice\n")
    assert raised.value.status == 202


def test_environment_keeps_glexec_and_whitelisted_names_only(standin):
    account = pwd.getpwuid(0)
    env = standin.target_environment(
        {"GLEXEC_CLIENT_CERT": "/p", "LANG": "C", "FOO": "1", "LD_PRELOAD": "/x.so",
         "MALLOC_ARENA_MAX": "2", "HOME": "/pilot"},
        ["LANG", "LD_PRELOAD", "MALLOC_ARENA_MAX"], account, "/w/proxy")
    assert env == {"GLEXEC_CLIENT_CERT": "/p", "LANG": "C", "HOME": account.pw_dir,
                   "USER": account.pw_name, "LOGNAME": account.pw_name,
                   "PATH": "/usr/bin:/bin", "X509_USER_PROXY": "/w/proxy"}


def test_expiry_dates_parse_with_single_digit_days(standin):
    stamp = standin.parse_not_after("Dec  1 02:16:56 2026 GMT")
    assert (stamp.year, stamp.month, stamp.day, stamp.hour) == (2026, 12, 1, 2)
