"""Grid-mapfile parsing and DN -> local account mapping."""

from __future__ import annotations

import contextlib
import os
import pwd
from pathlib import Path

import mock
import pytest

from pilotid.errors import AccountMappingError, ConfigurationError
from pilotid.identity.accounts import Account, GridMapfile, map_account
from tests.conftest import ALICE_DN, BOB_DN, EVE_DN

ME = pwd.getpwuid(os.geteuid()).pw_name

MAPFILE = r'''# grid-mapfile for the test site
   # an indented comment

"/DC=org/DC=example/OU=People/CN=Alice Analyst 1234" pilotid-alice,alice2,alice3
"/DC=org/DC=example/OU=People/CN=Bob O'Builder (Test)"   pilotid-bob   # trailing words ignored
/DC=org/DC=example/OU=Robots/CN=robot-99 pilotid-pilot
"/DC=org/DC=example/CN=Say \"Hi\" to \\back\\slash" quoter
"/DC=org/DC=example/CN=Jos\xC3\xA9 M\xc3\xbcller" jose
"/DC=org/DC=example/CN=Zoë Literal" zoe
"/DC=org/DC=example/CN=Alice Analyst 1234" second-line-loses
"/DC=ch/DC=cern/OU=computers/CN=host/pilot.example.org" hostpilot
"/DC=org/CN=two/CN=rdns" tworDNs
"/DC=org/CN=escaped\\/slash" escaped
'''


@pytest.fixture
def mapfile() -> GridMapfile:
    return GridMapfile.parse(MAPFILE, "test-mapfile")


def test_quoted_dn_with_spaces_maps_to_the_first_account_of_its_line(mapfile):
    assert mapfile.lookup(ALICE_DN) == "pilotid-alice"
    assert mapfile.find(ALICE_DN).accounts == ("pilotid-alice", "alice2", "alice3")


def test_quotes_and_parentheses_in_a_dn_need_no_escape(mapfile):
    assert mapfile.lookup(BOB_DN) == "pilotid-bob"


def test_unquoted_dn_without_spaces_is_read_up_to_the_first_blank(mapfile):
    assert mapfile.lookup("/DC=org/DC=example/OU=Robots/CN=robot-99") == "pilotid-pilot"


def test_escaped_quote_and_backslash_inside_a_quoted_dn(mapfile):
    assert mapfile.lookup('/DC=org/DC=example/CN=Say "Hi" to \\back\\slash') == "quoter"


def test_hex_escapes_match_both_the_openssl_form_and_the_text(mapfile):
    assert mapfile.lookup(r"/DC=org/DC=example/CN=Jos\xC3\xA9 M\xC3\xBCller") == "jose"
    assert mapfile.lookup("/DC=org/DC=example/CN=José Müller") == "jose"


def test_utf8_written_literally_matches_the_openssl_form(mapfile):
    assert mapfile.lookup(r"/DC=org/DC=example/CN=Zo\xC3\xAB Literal") == "zoe"


def test_the_first_line_naming_a_dn_wins(mapfile):
    assert mapfile.lookup(ALICE_DN) == "pilotid-alice"


def test_comments_and_blank_lines_are_not_entries(mapfile):
    assert len(mapfile) == 10
    assert [entry.line for entry in mapfile.entries][:2] == [4, 5]


def test_a_slash_in_a_value_matches_a_mapfile_written_before_openssl_3(mapfile):
    assert mapfile.lookup(r"/DC=ch/DC=cern/OU=computers/CN=host\/pilot.example.org") == "hostpilot"


def test_an_escaped_slash_written_with_a_doubled_backslash_matches_exactly(mapfile):
    assert mapfile.lookup(r"/DC=org/CN=escaped\/slash") == "escaped"


def test_a_slash_that_would_read_as_another_rdn_never_matches_loosely(mapfile):
    with pytest.raises(AccountMappingError):
        mapfile.lookup(r"/DC=org/CN=two\/CN=rdns")
    assert mapfile.lookup("/DC=org/CN=two/CN=rdns") == "tworDNs"


def test_an_unknown_dn_names_the_dn_and_the_file(mapfile):
    with pytest.raises(AccountMappingError) as caught:
        mapfile.lookup(EVE_DN)
    assert EVE_DN in str(caught.value) and "test-mapfile" in str(caught.value)


def test_matching_is_exact_not_a_prefix_or_case_insensitive(mapfile):
    for near in (ALICE_DN + "/CN=proxy", ALICE_DN.lower(), ALICE_DN[:-1]):
        with pytest.raises(AccountMappingError):
            mapfile.lookup(near)


def test_crlf_line_ends_and_tabs_are_blanks():
    parsed = GridMapfile.parse('"/CN=A B"\talice\r\n/CN=C\tcarol,c2\r\n', "dos")
    assert parsed.lookup("/CN=A B") == "alice"
    assert parsed.lookup("/CN=C") == "carol"


def test_malformed_lines_are_skipped_and_mentioned_when_a_lookup_fails():
    parsed = GridMapfile.parse('"/CN=Unclosed alice\n/CN=NoAccount\n"/CN=Ok" ok\n', "bad")
    assert parsed.lookup("/CN=Ok") == "ok"
    assert parsed.skipped == ((1, "a closing quote is missing"), (2, "no account follows the DN"))
    with pytest.raises(AccountMappingError) as caught:
        parsed.lookup("/CN=Unclosed alice")
    assert "2 malformed line(s) were skipped, the first line 1: a closing quote is missing" \
        in str(caught.value)


# --- files and accounts -------------------------------------------------------------------

def _mapfile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid-mapfile"
    path.write_text(text, encoding="utf-8")
    return path


def test_load_reads_the_file_and_names_it(tmp_path):
    path = _mapfile(tmp_path, MAPFILE)
    loaded = GridMapfile.load(path)
    assert loaded.source == str(path)
    assert loaded.lookup(BOB_DN) == "pilotid-bob"


def test_load_accepts_latin1_bytes_and_matches_them_as_hex(tmp_path):
    path = tmp_path / "grid-mapfile"
    path.write_bytes(b'"/CN=Jos\xe9" latin\n')
    assert GridMapfile.load(path).lookup(r"/CN=Jos\xE9") == "latin"


@pytest.mark.parametrize("problem", ["missing", "directory", "unreadable"])
def test_an_unusable_mapfile_is_a_configuration_error_naming_it(tmp_path, problem):
    path = tmp_path / "grid-mapfile"
    if problem == "directory":
        path.mkdir()
    elif problem == "unreadable":
        path.write_text(MAPFILE)
    denied = PermissionError(13, "Permission denied")
    with mock.patch.object(Path, "read_bytes", side_effect=denied) if problem == "unreadable" \
            else contextlib.nullcontext():
        with pytest.raises(ConfigurationError) as caught:
            GridMapfile.load(path)
    assert str(path) in str(caught.value)
    assert {"missing": "does not exist", "directory": "is a directory",
            "unreadable": "permission denied"}[problem] in str(caught.value)


def test_map_account_returns_the_local_account(tmp_path):
    path = _mapfile(tmp_path, f'"{ALICE_DN}" {ME},other\n')
    assert map_account(ALICE_DN, path) == Account.by_name(ME)


def test_map_account_of_an_unmapped_dn_names_dn_and_file(tmp_path):
    path = _mapfile(tmp_path, f'"{ALICE_DN}" {ME}\n')
    with pytest.raises(AccountMappingError) as caught:
        map_account(EVE_DN, path)
    assert EVE_DN in str(caught.value) and str(path) in str(caught.value)


def test_map_account_to_an_account_this_node_lacks_is_a_mapping_error(tmp_path):
    path = _mapfile(tmp_path, f'"{ALICE_DN}" no-such-user-pilotid\n')
    with pytest.raises(AccountMappingError) as caught:
        map_account(ALICE_DN, path)
    message = str(caught.value)
    assert "no-such-user-pilotid" in message and ALICE_DN in message and str(path) in message


@pytest.mark.parametrize("name, words", [(".atlas", "pool accounts"),
                                         ("-oProxyCommand", "not a valid account name")])
def test_map_account_refuses_pool_and_option_like_names(tmp_path, name, words):
    path = _mapfile(tmp_path, f'"{ALICE_DN}" {name}\n')
    with pytest.raises(AccountMappingError, match=words):
        map_account(ALICE_DN, path)


def test_map_account_with_a_missing_mapfile_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="grid-mapfile .*/nowhere does not exist"):
        map_account(ALICE_DN, tmp_path / "nowhere")
