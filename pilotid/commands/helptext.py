"""What every ``pilotid`` help screen ends with: examples and the exit-status table.

The table is made from ``pilotid.errors.error_codes()``, the same source as the table in
``docs/errors.rst`` (``docs/generate_errors.py``), so that the help and the page cannot
disagree.
"""

from __future__ import annotations

import argparse
import textwrap
from typing import Dict, List, Sequence

#: How wide the help's own lines are (argparse wraps its option lists to the terminal).
WIDTH = 78

#: Exit statuses that are not pilot error codes.
OTHER_STATUSES = (
    ("0", "success (run: the payload succeeded)"),
    ("2", "the command line itself is wrong (usage error)"),
    ("130", "interrupted (Ctrl-C)"),
)


def exit_status_table() -> str:
    """The exit statuses of ``pilotid``: the pilot error codes by whose fault they are."""
    from pilotid.errors import error_codes

    by_fault: Dict[str, List[str]] = {}
    for code, cls in error_codes().items():
        by_fault.setdefault(cls.fault, []).append(f"{code} {cls.__name__}")
    lines = ["exit status (docs/errors.rst lists what each code means):"]
    for status, meaning in OTHER_STATUSES:
        lines.append(f"  {status:<18} {meaning}")
    for fault, codes in by_fault.items():
        line = f"  {fault:<18}"
        for number, entry in enumerate(codes):
            entry += "," if number < len(codes) - 1 else ""
            if len(line) + 1 + len(entry) > WIDTH and not line.endswith(" " * 18):
                lines.append(line)
                line = " " * 20
            line += " " + entry
        lines.append(line)
    return "\n".join(lines)


def paragraphs(text: str) -> str:
    """``text`` refilled to ``WIDTH``, its blank-line separated paragraphs kept apart."""
    return "\n\n".join(textwrap.fill(" ".join(paragraph.split()), WIDTH)
                       for paragraph in text.split("\n\n"))


def epilog(examples: Sequence[str]) -> str:
    """The text after a command's options: its ``examples``, then the exit statuses."""
    lines = ["examples:"] + [f"  {example}" for example in examples]
    return "\n".join(lines) + "\n\n" + exit_status_table()


def command_parser(sub: "argparse._SubParsersAction", name: str, summary: str,
                   description: str, examples: Sequence[str],
                   **kwargs) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``sub``: ``summary`` in the list of commands, then its
    ``description``, ``examples`` and the exit statuses in its own ``--help``."""
    return sub.add_parser(name, help=summary, description=paragraphs(description),
                          epilog=epilog(examples),
                          formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
