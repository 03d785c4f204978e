"""The retrieval-policy builder, checked against MyProxy's own matching semantics."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pilotid import cli
from pilotid.errors import ConfigurationError
from pilotid.identity.policy import (
    DN_FORM,
    FQAN_FORM,
    LEGACY_MAX_LENGTH,
    RetrievalPolicy,
    check_length,
    choose_policy,
    dn_policy,
    escape_dn,
    fqan_policy,
    fqan_spellings,
    shell_command,
)
from tests.myproxy_matching import posix_ere_matches, server_matches, translate

PILOT = "/DC=org/DC=example/OU=Robots/CN=Pilot Robot 99"
SPECIAL = "/DC=org/DC=example/OU=Robots/CN=pilot (ANALY_*) v1.0?"
BRACKETED = "/DC=ch/DC=cern/OU=Robots/CN=pilot [glexec]|queue.b+{2}^$"
BACKSLASH = "/DC=org/DC=example/CN=back\\slash"


# ---------------------------------------------------------------- the test's matcher itself

def test_matcher_translates_as_the_server_source_comment_says():
    """regex_compare's comment: *.domain.com becomes ^.*\\.domain\\.com$ (plus the group)."""
    assert translate("*.domain.com") == "^(.*\\.domain\\.com)$"


def test_matcher_backslash_turns_wildcards_into_regex_operators():
    assert translate("a\\*") == "^(a*)$"
    assert translate("a\\?") == "^(a?)$"
    assert translate("a\\.b") == "^(a.b)$"
    assert translate("a\\\\b") == "^(a\\b)$"
    assert translate("a\\(b") == "^(a\\(b)$"


def test_matcher_runs_the_c_library_regex():
    assert posix_ere_matches("^(a|b)$", "b")
    assert not posix_ere_matches("^(a|b)$", "ab")
    assert not posix_ere_matches("^(a[)$", "a[")  # does not compile: matches nothing


# ---------------------------------------------------------------- DN policies

def test_plain_dn_policy_is_the_dn_itself():
    assert dn_policy([PILOT]) == PILOT
    assert server_matches(dn_policy([PILOT]), PILOT)


def test_dots_are_left_to_the_server_to_escape():
    policy = dn_policy(["/DC=ch/DC=cern/CN=pilot.cern.ch"])
    assert policy == "/DC=ch/DC=cern/CN=pilot.cern.ch"
    assert not server_matches(policy, "/DC=ch/DC=cern/CN=pilotXcernXch")


def test_wildcards_in_a_dn_are_written_as_brackets():
    assert escape_dn("/CN=a*b?c") == "/CN=a[\\*]b[\\?]c"


def test_dn_with_parentheses_star_and_question_mark_matches_only_itself():
    policy = dn_policy([SPECIAL])
    assert server_matches(policy, SPECIAL)
    assert not server_matches(policy, "/DC=org/DC=example/OU=Robots/CN=pilot ANALY_EVIL v1.0X")
    assert not server_matches(policy, "/DC=org/DC=example/OU=Robots/CN=pilot (ANALY_x) v1.0?")


def test_naive_unescaped_policy_refuses_the_pilot_and_admits_an_intruder():
    """Why escaping matters: the DN as-is is a regex that matches other DNs, not itself."""
    intruder = "/DC=org/DC=example/OU=Robots/CN=pilot ANALY_EVIL v1.0X"
    assert not server_matches(SPECIAL, SPECIAL)
    assert server_matches(SPECIAL, intruder)
    assert not server_matches(dn_policy([SPECIAL]), intruder)


def test_brackets_bars_and_other_regex_operators_match_literally():
    policy = dn_policy([BRACKETED])
    assert server_matches(policy, BRACKETED)
    assert not server_matches(policy, "/DC=ch/DC=cern/OU=Robots/CN=pilot g")
    assert not server_matches(policy, "queue.b+{2}^$")


def test_backslash_in_a_dn_matches_itself():
    assert server_matches(dn_policy([BACKSLASH]), BACKSLASH)
    assert not server_matches(dn_policy([BACKSLASH]), "/DC=org/DC=example/CN=backslash")


def test_several_dns_are_one_anchored_group():
    policy = dn_policy([PILOT, SPECIAL, BRACKETED])
    assert policy.startswith("(") and policy.endswith(")")
    for dn in (PILOT, SPECIAL, BRACKETED):
        assert server_matches(policy, dn)
    assert not server_matches(policy, PILOT + "/CN=extra")
    assert not server_matches(policy, "/DC=evil" + PILOT)


def test_group_keeps_alternatives_anchored_on_servers_that_do_not_group():
    """Old servers built ^A|B$ (A at the start OR B at the end); the group keeps ^(A|B)$."""
    policy = dn_policy([PILOT, "/DC=org/CN=second"])
    old_server_ere = "^" + policy.replace(".", "\\.") + "$"
    assert not posix_ere_matches(old_server_ere, PILOT + "/CN=extra")
    assert posix_ere_matches(old_server_ere, PILOT)


def test_duplicate_dns_are_dropped_in_order():
    assert dn_policy([PILOT, "/DC=org/CN=b", PILOT]) == f"({PILOT}|/DC=org/CN=b)"


def test_policy_is_case_sensitive_like_the_server():
    assert not server_matches(dn_policy([PILOT]), PILOT.lower())


@pytest.mark.parametrize("bad", ["", "CN=Pilot", "pilot robot",
                                 "/DC=org/CN=a\nRETRIEVER_TRUSTED=*"])
def test_not_a_slash_dn_is_refused_with_the_reason(bad):
    with pytest.raises(ConfigurationError, match="DN"):
        dn_policy([bad])


def test_no_dn_at_all_is_refused():
    with pytest.raises(ConfigurationError, match="--pilot-dn"):
        dn_policy([])


# ---------------------------------------------------------------- property: escaping is exact

_DN_CHARS = st.sampled_from(list("abcXYZ019 -_,'/=:@.()*?[]{}|+^$\\"))
_value = st.text(_DN_CHARS, min_size=1, max_size=24)
_dn = st.builds(lambda ou, cn: f"/DC=org/DC=example/OU={ou}/CN={cn}", _value, _value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dns=st.lists(_dn, min_size=1, max_size=5), others=st.lists(_dn, max_size=5))
def test_dn_policy_matches_exactly_the_given_dns(dns, others):
    policy = dn_policy(dns)
    for dn in dns:
        assert server_matches(policy, dn), (policy, dn)
    for other in others:
        if other not in dns:
            assert not server_matches(policy, other), (policy, other)


@settings(max_examples=200, deadline=None)
@given(dns=st.lists(_dn, min_size=1, max_size=3), data=st.data())
def test_dn_policy_refuses_every_dn_one_character_away(dns, data):
    target = data.draw(st.sampled_from(dns))
    where = data.draw(st.integers(0, len(target)))
    char = data.draw(_DN_CHARS)
    for near in (target[:where] + char + target[where:], target[:where] + target[where + 1:],
                 target[:where] + char + target[where + 1:]):
        if near not in dns:
            assert not server_matches(dn_policy(dns), near), (dn_policy(dns), near)


# ---------------------------------------------------------------- FQAN policies

def test_fqan_policy_accepts_short_and_full_spellings():
    policy = fqan_policy("/atlas/Role=pilot")
    assert policy == "FQAN:(/atlas/Role=pilot|/atlas/Role=pilot/Capability=NULL)"
    assert server_matches(policy, PILOT, ["/atlas/Role=pilot"])
    assert server_matches(policy, PILOT, ["/atlas/Role=NULL/Capability=NULL",
                                          "/atlas/Role=pilot/Capability=NULL"])


def test_fqan_policy_refuses_other_roles_and_groups():
    policy = fqan_policy("/atlas/Role=pilot")
    for fqans in (["/atlas"], ["/atlas/Role=pilotX"], ["/atlas/usatlas/Role=pilot"],
                  ["/cms/Role=pilot"], ["/atlas/Role=production/Capability=NULL"], []):
        assert not server_matches(policy, PILOT, fqans), fqans


def test_fqan_policy_never_matches_the_dn():
    assert not server_matches(fqan_policy("/atlas/Role=pilot"), "/atlas/Role=pilot")


def test_exact_fqan_policy_is_as_written():
    policy = fqan_policy("/atlas/Role=pilot", exact=True)
    assert policy == "FQAN:/atlas/Role=pilot"
    assert not server_matches(policy, PILOT, ["/atlas/Role=pilot/Capability=NULL"])


def test_group_fqan_spellings_fill_in_null_role_and_capability():
    assert fqan_spellings("/atlas/usatlas") == (
        "/atlas/usatlas", "/atlas/usatlas/Role=NULL", "/atlas/usatlas/Role=NULL/Capability=NULL")
    assert fqan_spellings("/atlas/Role=NULL/Capability=NULL")[0] == "/atlas"


def test_fqan_with_a_real_capability_is_kept_as_it_is():
    assert fqan_spellings("/atlas/Role=pilot/Capability=x") == ("/atlas/Role=pilot/Capability=x",)


@pytest.mark.parametrize("bad", ["atlas", "/", "/atlas/Role=", "/atlas role", "FQAN:/atlas"])
def test_not_an_fqan_is_refused(bad):
    with pytest.raises(ConfigurationError, match="FQAN"):
        fqan_policy(bad)


@settings(max_examples=100, deadline=None)
@given(groups=st.lists(st.text("abcz09_-.", min_size=1, max_size=8), min_size=1, max_size=3),
       role=st.one_of(st.none(), st.text("abcRNUL09_", min_size=1, max_size=8)))
def test_fqan_policy_matches_every_spelling_of_its_fqan(groups, role):
    fqan = "/" + "/".join(groups) + (f"/Role={role}" if role else "")
    policy = fqan_policy(fqan)
    for spelling in fqan_spellings(fqan):
        assert server_matches(policy, PILOT, [spelling])
    assert not server_matches(policy, PILOT, [fqan + "x"])
    assert not server_matches(policy, PILOT, ["/other" + fqan])


# ---------------------------------------------------------------- length limits and the choice

def _many_dns(n):
    return [f"/DC=org/DC=example/OU=Robots/CN=pilot {i:04d}.queue.example.org" for i in range(n)]


def test_policy_within_the_limit_passes():
    check_length(RetrievalPolicy(dn_policy([PILOT]), DN_FORM), LEGACY_MAX_LENGTH)


def test_too_long_dn_policy_says_the_limit_and_suggests_fqan():
    policy = RetrievalPolicy(dn_policy(_many_dns(6)), DN_FORM)
    with pytest.raises(ConfigurationError) as raised:
        check_length(policy, LEGACY_MAX_LENGTH)
    message = str(raised.value)
    assert f"{policy.length} characters" in message
    assert "cuts -Z at 255" in message
    assert "--fqan" in message


def test_no_limit_takes_a_thousand_dns():
    policy = RetrievalPolicy(dn_policy(_many_dns(1000)), DN_FORM)
    assert policy.length > 50000
    check_length(policy, None)


def test_exactly_the_limit_fits():
    policy = RetrievalPolicy("/" + "x=" * 127, DN_FORM)
    assert policy.length == 255 and policy.fits(255) and not policy.fits(254)


def test_nonsense_limit_is_refused():
    with pytest.raises(ConfigurationError, match="positive"):
        check_length(RetrievalPolicy(PILOT, DN_FORM), 0)


def test_choice_prefers_the_dn_list_when_it_fits():
    chosen = choose_policy([PILOT, SPECIAL], "/atlas/Role=pilot", LEGACY_MAX_LENGTH)
    assert chosen.form == DN_FORM
    assert chosen.text == dn_policy([PILOT, SPECIAL])


def test_choice_falls_back_to_fqan_when_the_dn_list_is_too_long():
    chosen = choose_policy(_many_dns(10), "/atlas/Role=pilot", LEGACY_MAX_LENGTH)
    assert chosen.form == FQAN_FORM
    assert chosen.text == fqan_policy("/atlas/Role=pilot")


def test_choice_without_fqan_and_too_many_dns_says_to_use_fqan():
    with pytest.raises(ConfigurationError, match="FQAN form"):
        choose_policy(_many_dns(10), None, LEGACY_MAX_LENGTH)


def test_choice_with_only_an_fqan_is_the_fqan_form():
    assert choose_policy([], "/atlas/Role=pilot", None).form == FQAN_FORM


def test_choice_when_nothing_fits_names_both_lengths():
    with pytest.raises(ConfigurationError, match=r"DN list: \d+, FQAN: \d+"):
        choose_policy(_many_dns(3), "/atlas/Role=pilot", 20)


def test_choice_needs_dns_or_an_fqan():
    with pytest.raises(ConfigurationError, match="--pilot-dn"):
        choose_policy([], None, None)


def test_myproxy_init_gets_x_before_z_so_the_policy_is_not_prefixed():
    """Without -x before it, myproxy-init sends -Z's value as '*/CN=<value>'."""
    policy = RetrievalPolicy(dn_policy([SPECIAL]), DN_FORM)
    assert policy.myproxy_init_args() == ["-x", "-Z", policy.text]
    assert shell_command(policy) == ("myproxy-init -x -Z "
                                     "'/DC=org/DC=example/OU=Robots/CN=pilot \\(ANALY_[\\*]\\) "
                                     "v1.0[\\?]'")


# ---------------------------------------------------------------- the command line

def test_cli_prints_the_policy_alone_on_stdout(capsys):
    assert cli.main(["policy", "--pilot-dn", SPECIAL, "--pilot-dn", PILOT]) == 0
    out, err = capsys.readouterr()
    assert out == dn_policy([SPECIAL, PILOT]) + "\n"
    assert "DN form" in err and "myproxy-init -x -Z" in err and "pilotid myproxy store" in err


def test_cli_json_says_form_length_and_options(capsys):
    assert cli.main(["policy", "--pilot-dn", PILOT, "--fqan", "/atlas/Role=pilot",
                     "--max-length", "255", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == PILOT and result["form"] == "dn"
    assert result["length"] == len(PILOT) and result["max_length"] == 255
    assert result["myproxy_init_args"] == ["-x", "-Z", PILOT]
    assert [c["form"] for c in result["candidates"]] == ["dn", "fqan"]
    assert all(c["fits"] for c in result["candidates"])


def test_cli_falls_back_to_fqan_under_the_legacy_limit(capsys):
    argv = ["policy", "--fqan", "/atlas/Role=pilot", "--max-length", "255", "--json"]
    for dn in _many_dns(10):
        argv += ["--pilot-dn", dn]
    assert cli.main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["form"] == "fqan"
    assert [c["fits"] for c in result["candidates"]] == [False, True]


def test_cli_too_long_exits_with_the_configuration_error_code(capsys):
    argv = ["policy", "--max-length", "255"]
    for dn in _many_dns(10):
        argv += ["--pilot-dn", dn]
    assert cli.main(argv) == ConfigurationError.code
    assert "too long" in capsys.readouterr().err
