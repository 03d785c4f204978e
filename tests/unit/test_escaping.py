"""``printable``: payload-made names, logged on one line that cannot pass for another."""

from __future__ import annotations

import os
from pathlib import Path

from pilotid.escaping import printable


def test_a_newline_cannot_start_a_line_of_its_own():
    name = "out.root\npilotid: INFO job 1: succeeded"
    assert printable(name) == "out.root\\npilotid: INFO job 1: succeeded"
    assert "\n" not in printable(name)


def test_control_characters_and_separators_are_escaped():
    assert printable("a\rb\tc\x1b[2Jd\u2028e\x85") == "a\\rb\\tc\\x1b[2Jd\\u2028e\\x85"


def test_undecodable_bytes_of_a_file_name_are_shown_as_bytes():
    assert printable(b"caf\xe9") == "caf\\xe9"
    assert printable(Path(os.fsdecode(b"caf\xe9"))) == "caf\\xe9"


def test_a_backslash_is_doubled_so_an_escape_cannot_be_faked():
    assert printable("a\\nb") == "a\\\\nb"


def test_printable_names_are_left_as_they_are():
    assert printable("user.alice/hist-é.root") == "user.alice/hist-é.root"
