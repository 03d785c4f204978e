"""The token map: issuer+subject or issuer+group to a local account."""

from __future__ import annotations

import datetime
import pwd

import pytest

from pilotid.errors import AccountMappingError, ConfigurationError
from pilotid.identity.tokens import BearerToken
from pilotid.identity.tokens.tokenmap import TokenMap, map_token_account

ATLAS = "https://atlas-auth.example.org/"
CMS = "https://cms-auth.example.org/"
MAP = f"""\
# kind issuer subject-or-group account
sub    {ATLAS}  alice-0001         alice
group  {ATLAS}  /atlas/production  atlasprd
group  {ATLAS}  /atlas             atlasusr
sub    {ATLAS}  alice-0001         somebody-else
sub    {CMS}    alice-0001         cmsalice
this line is malformed
group  {ATLAS}  atlas-without-slash x
"""


def _token(subject="nobody", issuer=ATLAS, groups=()):
    return BearerToken(issuer=issuer, subject=subject, version="1.0", algorithm="RS256",
                       expires=datetime.datetime.now(datetime.timezone.utc), groups=groups)


@pytest.fixture(scope="module")
def token_map():
    return TokenMap.parse(MAP, "test map")


def test_a_subject_rule_wins_over_groups(token_map):
    assert token_map.lookup(_token("alice-0001", groups=("/atlas",))) == "alice"


def test_the_first_line_for_a_key_wins(token_map):
    assert token_map.find(_token("alice-0001")).line == 2


def test_the_issuer_is_part_of_the_key(token_map):
    assert token_map.lookup(_token("alice-0001", issuer=CMS)) == "cmsalice"
    with pytest.raises(AccountMappingError):
        token_map.lookup(_token("alice-0001", issuer="https://other.example/"))


def test_groups_map_in_the_tokens_own_order(token_map):
    assert token_map.lookup(_token(groups=("/atlas/production", "/atlas"))) == "atlasprd"
    assert token_map.lookup(_token(groups=("/atlas", "/atlas/production"))) == "atlasusr"


def test_a_subgroup_does_not_map_by_its_parents_rule(token_map):
    with pytest.raises(AccountMappingError, match="/atlas/higgs"):
        token_map.lookup(_token(groups=("/atlas/higgs",)))


def test_malformed_lines_are_skipped_and_named_in_a_failed_lookup(token_map):
    assert [number for number, _ in token_map.skipped] == [7, 8]
    with pytest.raises(AccountMappingError, match="malformed"):
        token_map.lookup(_token())


def test_a_missing_map_is_the_operators_error(tmp_path):
    with pytest.raises(ConfigurationError, match="token map"):
        TokenMap.load(tmp_path / "absent")


def test_map_token_account_gives_the_nodes_account(tmp_path):
    account = pwd.getpwuid(0).pw_name
    (tmp_path / "map").write_text(f"sub {ATLAS} alice-0001 {account}\n")
    assert map_token_account(_token("alice-0001"), tmp_path / "map").uid == 0


@pytest.mark.parametrize("name", [".pool", "-rf", "no-such-account-here"])
def test_map_token_account_refuses_pools_bad_names_and_unknown_accounts(tmp_path, name):
    (tmp_path / "map").write_text(f"sub {ATLAS} alice-0001 {name}\n")
    with pytest.raises(AccountMappingError):
        map_token_account(_token("alice-0001"), tmp_path / "map")
