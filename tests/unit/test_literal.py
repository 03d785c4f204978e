"""The bounded Python-literal parser: what runAthena and runGen read, and nothing more."""

from __future__ import annotations

import ast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pilotid.errors import JobDescriptionError, PilotidError
from pilotid.payloads.literal import MAX_DEPTH, MAX_DIGITS, parse_literal


@pytest.mark.parametrize("text", [
    "{'hist': 'user.a.1._00001.hist.root'}",
    "{'IROOT': [('out.root', 'user.a.1._00001.out.root')], 'THIST': [('s1', 'u.h.root')]}",
    "{'AANT': [('a', 's', 'u.aan.root')], 'UserData': ['u.d.root']}",
    "['a.root', \"b.root\",]", "('x',)", "()", "{}", "{'a', 'b'}", "None", "True",
    "[-1, +2, 3.5, 1e3, 0x1F, 0o17, 0b11, 1_000]", "'a' 'b'", "r'\\d+' u'\\xe9'",
    "'''tri\nple'''", "'\\n\\t\\\\\\'\\x41\\u00e9\\101'", "{'regex|.*\\\\.root': 'out.tgz'}",
])
def test_reads_what_literal_eval_reads(text):
    assert parse_literal(text) == ast.literal_eval(text)


@pytest.mark.parametrize("text", [
    "__import__('os').system('id')", "lambda: 0", "f'{x}'", "(x := 1)", "b'bytes'",
    "open('/etc/passwd')", "1 + 2", "[x for x in 'ab']", "{**{}}", "a", "1j", "012",
    "'unclosed", "[1, 2", "{'a': 1, 'b'}", "1 2", "", "...", "not True", "'\\N{BULLET}'",
])
def test_refuses_anything_but_a_literal(text):
    with pytest.raises(JobDescriptionError, match="option -o"):
        parse_literal(text, "option -o")


def test_refuses_nesting_deeper_than_the_bound():
    parse_literal("[" * MAX_DEPTH + "]" * MAX_DEPTH)
    with pytest.raises(JobDescriptionError, match="nested deeper"):
        parse_literal("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))


def test_deep_nesting_that_would_crash_literal_eval_is_a_clean_refusal():
    with pytest.raises(JobDescriptionError):
        parse_literal("(" * 100_000)


def test_refuses_huge_numbers_before_computing_them():
    with pytest.raises(JobDescriptionError, match="digits"):
        parse_literal("9" * (MAX_DIGITS + 1))


def test_refuses_text_longer_than_the_bound():
    with pytest.raises(JobDescriptionError, match="characters long"):
        parse_literal("'" + "a" * 100 + "'", max_length=50)


hostile = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="[](){},:'\"-+.0123456789eEjxob_ \\\nrubfTNa=*", max_size=200),
    st.sampled_from(["__import__('os')", "lambda: 1", "f'{1}'", "(a:=1)", "b''", "9" * 5000,
                     "[" * 5000, "{" * 5000, "(" * 5000, "1e999999", "-" * 1000 + "1"]),
    st.recursive(st.sampled_from(["1", "'s'", "None", "x", "()", "1j"]),
                 lambda inner: st.builds(lambda items, shape: shape.format(",".join(items)),
                                         st.lists(inner, max_size=4),
                                         st.sampled_from(["[{}]", "({})", "{{{}}}"])),
                 max_leaves=60),
)


@settings(max_examples=400, deadline=None)
@given(hostile)
def test_hostile_text_gives_a_value_or_pilotids_own_error(text):
    try:
        parse_literal(text)
    except PilotidError:
        pass


literals = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(literals)
def test_reads_back_what_repr_writes(value):
    assert parse_literal(repr(value)) == value
