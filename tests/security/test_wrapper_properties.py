"""Properties of the wrapper's deny-list: one compiled pattern decides exactly as the
documented rule (each entry an ``fnmatch`` pattern against the whole name), for names
near the entries as much as for random ones."""

from __future__ import annotations

import fnmatch
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pilotid.payloads.wrapper import DENIED_VARIABLES, filter_environment, is_denied

EXAMPLES = int(os.environ.get("PILOTID_FUZZ_EXAMPLES", "150"))
_stems = [p.rstrip("*") for p in DENIED_VARIABLES]
_near = st.builds(lambda stem, pre, post: pre + stem + post, st.sampled_from(_stems),
                  st.sampled_from(["", "_", "X", "MY_", "x"]),
                  st.sampled_from(["", "_", "X", "_TOKEN", "%%", "1", "*", "?", "["]))
names = st.one_of(_near, st.text(max_size=12), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}",
                                                             fullmatch=True))
extra = st.lists(st.one_of(st.sampled_from(["SITE_*", "X?Z", "[AB]C", "*_SECRET"]),
                           st.text("ABCXYZ_*?[]!", max_size=6)), max_size=3)


def reference(name, extra_deny):
    return any(fnmatch.fnmatchcase(name, p) for p in (*DENIED_VARIABLES, *extra_deny))


@settings(max_examples=EXAMPLES * 4, deadline=None)
@given(names, extra)
def test_deny_list_decides_as_fnmatch_on_the_whole_name(name, extra_deny):
    assert is_denied(name, extra_deny) == reference(name, extra_deny)


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.dictionaries(names, st.one_of(st.text(max_size=8), st.sampled_from(
    ["() { :; }", " (){ x; }", "()  {", "( ) {"])), max_size=12), extra)
def test_filtered_environment_keeps_exactly_the_identifiers_not_denied(env, extra_deny):
    kept = filter_environment(env, extra_deny)
    for name, value in env.items():
        expected = (name.isidentifier() and name.isascii() and not reference(name, extra_deny)
                    and "\0" not in value and not re.match(r"\s*\(\)\s*\{", value))
        assert (name in kept) == expected, name
