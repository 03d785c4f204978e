"""Properties of the wrapper's allow-list and deny-list: each compiled pattern decides exactly
as the documented rule (each entry an ``fnmatch`` pattern against the whole name), for names
near the entries as much as for random ones; a name passes only where allowed and not denied."""

from __future__ import annotations

import fnmatch
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pilotid.payloads.wrapper import (
    DEFAULT_PASSED,
    DENIED_VARIABLES,
    clean_path,
    filter_environment,
    is_denied,
    is_passed,
)

EXAMPLES = int(os.environ.get("PILOTID_FUZZ_EXAMPLES", "150"))
_stems = [p.rstrip("*") for p in (*DENIED_VARIABLES, *DEFAULT_PASSED)]
_near = st.builds(lambda stem, pre, post: pre + stem + post, st.sampled_from(_stems),
                  st.sampled_from(["", "_", "X", "MY_", "x"]),
                  st.sampled_from(["", "_", "X", "_TOKEN", "%%", "1", "*", "?", "["]))
names = st.one_of(_near, st.text(max_size=12), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}",
                                                             fullmatch=True))
extra = st.lists(st.one_of(st.sampled_from(["SITE_*", "X?Z", "[AB]C", "*_SECRET"]),
                           st.text("ABCXYZ_*?[]!", max_size=6)), max_size=3)


def reference(name, extra_deny):
    return any(fnmatch.fnmatchcase(name, p) for p in (*DENIED_VARIABLES, *extra_deny))


def reference_passed(name, extra_pass):
    return any(fnmatch.fnmatchcase(name, p) for p in (*DEFAULT_PASSED, *extra_pass))


@settings(max_examples=EXAMPLES * 4, deadline=None)
@given(names, extra)
def test_deny_list_decides_as_fnmatch_on_the_whole_name(name, extra_deny):
    assert is_denied(name, extra_deny) == reference(name, extra_deny)


@settings(max_examples=EXAMPLES * 4, deadline=None)
@given(names, extra)
def test_allow_list_decides_as_fnmatch_on_the_whole_name(name, extra_pass):
    assert is_passed(name, extra_pass) == reference_passed(name, extra_pass)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.dictionaries(names, st.one_of(st.text(max_size=8), st.sampled_from(
    ["() { :; }", " (){ x; }", "()  {", "( ) {"])), max_size=12), extra, extra)
def test_filtered_environment_keeps_exactly_the_allowed_identifiers_not_denied(
        env, extra_deny, extra_pass):
    kept = filter_environment(env, extra_deny, extra_pass)
    for name, value in env.items():
        if name == "PATH":
            value = clean_path(value)
        expected = (name.isidentifier() and name.isascii() and not reference(name, extra_deny)
                    and reference_passed(name, extra_pass)
                    and "\0" not in value and not re.match(r"\s*\(\)\s*\{", value)
                    and (name != "PATH" or value != ""))
        assert (name in kept) == expected, name


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(st.sampled_from(["", ".", "..", "bin", "/bin", "/usr/bin", "./x", "/a:b"]),
                max_size=6))
def test_a_cleaned_path_holds_only_absolute_entries(entries):
    cleaned = clean_path(":".join(entries))
    assert all(entry.startswith("/") for entry in cleaned.split(":")) or cleaned == ""
