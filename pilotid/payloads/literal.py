"""``parse_literal``: read a Python literal from jobPars without evaluating anything.

runAthena and runGen take several options as Python literals (``-o "{'hist': 'x.root'}"``,
``-i "['a.root', 'b.root']"``) and read them with ``ast.literal_eval`` (``exec`` before
2020).  The text comes from the dispatcher, that is from the user: pilotid reads it with a
parser of its own that knows only literals (strings, numbers, ``True``/``False``/``None``,
lists, tuples, dicts and sets), with a bound on the text's length, the nesting depth and the
digits of a number, so that no input can make it recurse, allocate or compute without
limit.  Everything else is a ``JobDescriptionError`` (code 20: the dispatcher's, that is
the user's, fault).
"""

from __future__ import annotations

import re
from typing import Any, List, Tuple

from pilotid.errors import JobDescriptionError

#: Longer than any real jobPars option (20 input files with long names are a few kB).
MAX_LENGTH = 1 << 20
#: runAthena's deepest shape is a dict of lists of tuples: depth 3.
MAX_DEPTH = 32
#: Digits in one number: a file count or a seed, never a big number.
MAX_DIGITS = 64

_SPACE = re.compile(r"(?:[ \t\r\n\f]|\\\n)*")
_NUMBER = re.compile(
    r"(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+"
    r"|(?:[0-9][0-9_]*)?\.?[0-9][0-9_]*(?:[eE][+-]?[0-9]+)?)[jJ]?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX = re.compile(r"(?i)(r|u|b|br|rb|f|fr|rf)?(['\"])")
_CONSTANTS = {"True": True, "False": False, "None": None}
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n",
            "r": "\r", "t": "\t", "v": "\v", "\n": ""}


def parse_literal(text: str, what: str = "value", max_length: int = MAX_LENGTH,
                  max_depth: int = MAX_DEPTH) -> Any:
    """Return the Python value the literal ``text`` denotes; evaluate nothing.

    Accepted: ``'...'``/``"..."`` strings (``r``/``u`` prefixes, triple quotes, escapes,
    adjacent strings joined), integers and floats (a leading ``-`` or ``+`` too), ``True``,
    ``False``, ``None``, lists, tuples, dicts and sets.  Refused with a ``JobDescriptionError``
    naming ``what``: names, calls, operators, bytes, f-strings, complex numbers, text longer
    than ``max_length``, nesting deeper than ``max_depth``, numbers of more than
    ``MAX_DIGITS`` digits.
    """
    if not isinstance(text, str):
        raise JobDescriptionError(f"{what} must be text, not {type(text).__name__}")
    if len(text) > max_length:
        raise JobDescriptionError(f"{what} is {len(text)} characters long; at most {max_length} "
                           "are read")
    parser = _Parser(text, what, max_depth)
    value = parser.value(0)
    parser.skip_space()
    if parser.pos != len(text):
        raise parser.error("unexpected text after the value")
    return value


class _Parser:
    """A recursive-descent reader over ``text``; recursion is bounded by ``max_depth``."""

    def __init__(self, text: str, what: str, max_depth: int) -> None:
        self.text = text
        self.what = what
        self.max_depth = max_depth
        self.pos = 0

    def error(self, problem: str) -> JobDescriptionError:
        near = self.text[self.pos:self.pos + 20]
        return JobDescriptionError(f"{self.what} is not a Python literal: {problem} at character "
                            f"{self.pos} (near {near!r})")

    def skip_space(self) -> None:
        match = _SPACE.match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()

    def peek(self) -> str:
        return self.text[self.pos:self.pos + 1]

    def value(self, depth: int) -> Any:
        self.skip_space()
        char = self.peek()
        if char in ("[", "(", "{"):
            if depth >= self.max_depth:
                raise self.error(f"nested deeper than {self.max_depth} levels")
            return self.container(char, depth + 1)
        if char in ("-", "+"):
            self.pos += 1
            self.skip_space()
            number = self.number()
            return -number if char == "-" else number
        if char[:1].isdigit() or (char == "." and self.text[self.pos + 1:self.pos + 2].isdigit()):
            return self.number()
        if _PREFIX.match(self.text, self.pos):
            return self.strings()
        name = _NAME.match(self.text, self.pos)
        if name and name.group() in _CONSTANTS:
            self.pos = name.end()
            return _CONSTANTS[name.group()]
        if name:
            raise self.error(f"a name ({name.group()!r}) is not a literal")
        raise self.error("expected a value" if char else "the text ends where a value was "
                         "expected")

    def number(self) -> Any:
        match = _NUMBER.match(self.text, self.pos)
        if not match or not match.group():
            raise self.error("expected a number")
        word = match.group()
        if word[-1] in "jJ":
            raise self.error("complex numbers are not accepted")
        if sum(c.isdigit() for c in word) > MAX_DIGITS:
            raise self.error(f"a number of more than {MAX_DIGITS} digits")
        if _NAME.match(self.text, match.end()):
            raise self.error("a number runs into a name")
        self.pos = match.end()
        if re.fullmatch(r"0[0-9_]*[1-9][0-9_]*", word):
            raise self.error(f"{word!r}: leading zeros are not allowed in Python 3 integers")
        try:
            if re.fullmatch(r"[0-9_]+|0[xXoObB][0-9a-fA-F_]+", word):
                return int(word, 0) if word.strip("0_") else 0
            return float(word)
        except ValueError:
            raise self.error(f"{word!r} is not a number") from None

    def strings(self) -> str:
        parts = []
        while True:
            match = _PREFIX.match(self.text, self.pos)
            if not match:
                break
            prefix = (match.group(1) or "").lower()
            if "b" in prefix:
                raise self.error("bytes are not accepted, only text")
            if "f" in prefix:
                raise self.error("f-strings are not literals")
            self.pos = match.end(1) if match.group(1) else self.pos
            parts.append(self.string("r" in prefix))
            self.skip_space()
        return "".join(parts)

    def string(self, raw: bool) -> str:
        quote = self.text[self.pos]
        triple = self.text.startswith(quote * 3, self.pos)
        end = quote * 3 if triple else quote
        self.pos += len(end)
        out: List[str] = []
        while True:
            if self.pos >= len(self.text):
                raise self.error("a string is not closed")
            if self.text.startswith(end, self.pos):
                self.pos += len(end)
                return "".join(out)
            char = self.text[self.pos]
            if char == "\n" and not triple:
                raise self.error("a line break inside a one-line string")
            if char == "\\":
                out.append(self.escape(raw))
                continue
            out.append(char)
            self.pos += 1

    def escape(self, raw: bool) -> str:
        nxt = self.text[self.pos + 1:self.pos + 2]
        if not nxt:
            raise self.error("a string ends with a backslash")
        if raw:
            self.pos += 2
            return "\\" + nxt
        if nxt in _ESCAPES:
            self.pos += 2
            return _ESCAPES[nxt]
        widths = {"x": 2, "u": 4, "U": 8}
        if nxt in widths:
            digits = self.text[self.pos + 2:self.pos + 2 + widths[nxt]]
            if len(digits) != widths[nxt] or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                raise self.error(f"a bad \\{nxt} escape")
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise self.error("an escape beyond Unicode")
            self.pos += 2 + widths[nxt]
            return chr(code)
        octal = re.match(r"[0-7]{1,3}", self.text[self.pos + 1:self.pos + 4])
        if octal:
            self.pos += 1 + octal.end()
            return chr(int(octal.group(), 8))
        if nxt == "N":
            raise self.error("named escapes (\\N{...}) are not accepted")
        self.pos += 2
        return "\\" + nxt

    def container(self, opening: str, depth: int) -> Any:
        closing = {"[": "]", "(": ")", "{": "}"}[opening]
        self.pos += 1
        items: List[Any] = []
        pairs: List[Tuple[Any, Any]] = []
        is_dict = None
        trailing_comma = False
        while True:
            self.skip_space()
            if self.peek() == closing:
                self.pos += 1
                break
            key = self.value(depth)
            self.skip_space()
            if opening == "{":
                colon = self.peek() == ":"
                if is_dict is None:
                    is_dict = colon
                elif is_dict != colon:
                    raise self.error("a dict and a set mixed in one pair of braces")
                if colon:
                    self.pos += 1
                    pairs.append((key, self.value(depth)))
                    self.skip_space()
                else:
                    items.append(key)
            else:
                items.append(key)
            char = self.peek()
            if char == ",":
                self.pos += 1
                trailing_comma = True
                continue
            trailing_comma = False
            if char != closing:
                raise self.error(f"expected ',' or {closing!r}")
        if opening == "[":
            return items
        if opening == "(":
            if len(items) == 1 and not trailing_comma:
                return items[0]
            return tuple(items)
        if not is_dict and is_dict is not None:
            try:
                return set(items)
            except TypeError:
                raise self.error("a set of unhashable items") from None
        try:
            return dict(pairs)
        except TypeError:
            raise self.error("a dict with an unhashable key") from None

