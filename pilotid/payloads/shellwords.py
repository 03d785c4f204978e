"""``shell_words``: split a POSIX shell string into words exactly as bash would, running nothing.

PanDA's ``jobPars`` is shell text: the real pilot runs ``./<trf> <jobPars>`` through bash
(pilot3, ``pilot/user/atlas/common.py``).  pilotid never hands it to a shell; it splits it
here with bash's quoting rules (single quotes, double quotes with bash's backslash escapes,
backslashes, line continuations, a trailing ``#`` comment) and passes the words as an argv.
A plain ``$NAME`` or ``${NAME}`` is expanded from the variables given (the job's own; unset
ones are empty), as bash would in a shell holding only those.  Whatever else would make
bash's result depend on the node rather than on the text (command substitution, other
parameter forms, ``$'...'``, brace and tilde expansion) or would make bash run something
else (``;``, ``&``, ``|``, a line break, redirections, sub-shells) is refused with a
``JobDescriptionError``: pilotid cannot reproduce it and will not guess.  Glob characters
are kept as written: bash leaves a pattern that matches nothing as it is, and the work
directory holds nothing the job did not bring.
"""

from __future__ import annotations

import re
from typing import List, Mapping, Optional, Tuple

from pilotid.errors import JobDescriptionError

_BLANKS = " \t\n"
_OPERATORS = "|&;()<>"
#: What ``$`` may be followed by for bash to expand it.
_EXPANDS = re.compile(r"[A-Za-z0-9_{(\[@*#?$!'\"-]")
_DQ_ESCAPES = '$`"\\'
#: ``$NAME`` and ``${NAME}``: the only expansions read (where an environment is given).
_PARAMETER = re.compile(r"\$(?:([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\})")


def _parameter(text: str, index: int,
               environment: Optional[Mapping[str, str]]) -> Optional[Tuple[str, int]]:
    """(value, end) of a plain ``$NAME``/``${NAME}`` at ``index``, where an environment is
    given and the value has no blank (bash would split it); None otherwise."""
    match = _PARAMETER.match(text, index)
    if environment is None or not match:
        return None
    value = environment.get(match.group(1) or match.group(2), "")
    if any(blank in value for blank in _BLANKS):
        return None
    return value, match.end()


def shell_words(text: str, field: str = "jobPars",
                environment: Optional[Mapping[str, str]] = None) -> List[str]:
    """The words bash makes of ``text`` (see the module docstring).

    With an ``environment``, the plain parameters ``$NAME`` and ``${NAME}`` are expanded as
    bash expands them in a shell holding exactly those variables (an unset one is empty,
    and an unquoted word made only of empty expansions disappears); without one, and for
    every other expansion, ``text`` is refused.  Raises ``JobDescriptionError`` naming
    ``field`` for unbalanced quotes and for anything else that bash would expand or run.
    """
    words: List[str] = []
    current: Optional[List[str]] = None
    brace_open = False
    brace_list = False
    index = 0
    length = len(text)

    def refuse(problem: str) -> JobDescriptionError:
        return JobDescriptionError(
            f"field {field!r}: {problem} at character {index} (near "
            f"{text[max(0, index - 10):index + 10]!r}); pilotid runs no shell, so jobPars "
            "must be plain words (quote the character to pass it through)")

    while index < length:
        char = text[index]
        if char == "\n" and text[index:].strip(_BLANKS):
            raise refuse("an unquoted line break (bash starts a new command there)")
        if char in _BLANKS:
            if current is not None:
                words.append("".join(current))
                current = None
                brace_open = brace_list = False
            index += 1
            continue
        if char == "$":
            expanded = _parameter(text, index, environment)
            if expanded is not None:
                if expanded[0]:
                    current = (current or []) + [expanded[0]]
                index = expanded[1]
                continue
        if char == "#" and current is None:
            newline = text.find("\n", index)
            index = length if newline < 0 else newline
            continue
        if current is None:
            current = []
            if char == "~":
                raise refuse("an unquoted '~' (tilde expansion)")
        if char == "\\":
            if index + 1 >= length:
                current.append("\\")
                index += 1
            elif text[index + 1] == "\n":
                index += 2
                if not current:
                    current = None
            else:
                current.append(text[index + 1])
                index += 2
            continue
        if char == "'":
            end = text.find("'", index + 1)
            if end < 0:
                raise refuse("a single quote is not closed")
            current.append(text[index + 1:end])
            index = end + 1
            continue
        if char == '"':
            index += 1
            while True:
                if index >= length:
                    raise refuse("a double quote is not closed")
                char = text[index]
                if char == '"':
                    index += 1
                    break
                if char == "\\" and index + 1 < length and text[index + 1] in _DQ_ESCAPES:
                    current.append(text[index + 1])
                    index += 2
                    continue
                if char == "\\" and text[index + 1:index + 2] == "\n":
                    index += 2
                    continue
                expanded = _parameter(text, index, environment) if char == "$" else None
                if expanded is not None:
                    current.append(expanded[0])
                    index = expanded[1]
                    continue
                if char == "`" or (char == "$" and _EXPANDS.match(text, index + 1)
                                   and text[index + 1] not in "'\""):
                    raise refuse(f"a {char!r} inside double quotes (an expansion)")
                current.append(char)
                index += 1
            continue
        if char == "`" or (char == "$" and _EXPANDS.match(text, index + 1)):
            raise refuse(f"an unquoted {char!r} (an expansion)")
        if char in _OPERATORS:
            raise refuse(f"an unquoted {char!r} (a shell operator)")
        if char == "{":
            brace_open = True
        elif char == "," and brace_open:
            brace_list = True
        elif char == "." and brace_open and text[index + 1:index + 2] == ".":
            brace_list = True
        elif char == "}" and brace_list:
            raise refuse("an unquoted '{...,...}' (brace expansion)")
        current.append(char)
        index += 1
    if current is not None:
        words.append("".join(current))
    return words
