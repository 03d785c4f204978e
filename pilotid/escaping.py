"""Names the payload made, made safe to log: one line, nothing that reads as another.

A payload chooses the names of what it leaves in the work directory; a name with a newline
and ``pilotid: INFO job 1: succeeded`` after it would put a line of its own into the
pilot's log.  Every payload-controlled value pilotid logs (or puts in an error message)
goes through ``printable`` first.
"""

from __future__ import annotations

import os
from pathlib import PurePath
from typing import Union


def printable(value: Union[str, bytes, PurePath]) -> str:
    """``value`` with every character that is not printable (newlines, other control
    characters, the undecodable bytes of a file name, line and paragraph separators)
    written as a Python-style escape (``\\n``, ``\\x1b``, ``\\u2028``), and backslashes
    doubled: always one line, and the escapes of one name cannot be mistaken for another's.
    """
    text = os.fsdecode(value) if isinstance(value, (bytes, PurePath)) else value
    return "".join(_escaped(char) for char in text)


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name (surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
