"""Regenerate the error-code table in docs/errors.rst from pilotid.errors.

Run ``python docs/generate_errors.py`` from the repository root after adding an error
class; ``tests/unit/test_docs.py`` fails while the table and the code disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

BEGIN = ".. error-table-begin"
END = ".. error-table-end"
PAGE = Path(__file__).with_name("errors.rst")


def _meaning(cls: type) -> str:
    paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def error_table() -> str:
    """The reStructuredText list-table of every pilot error code, in code order."""
    from pilotid.errors import error_codes

    lines = [
        ".. list-table:: Pilot error codes",
        "   :header-rows: 1",
        "   :widths: 7 27 14 52",
        "",
        "   * - Code",
        "     - Class",
        "     - Whose fault",
        "     - Meaning",
    ]
    for code, cls in error_codes().items():
        lines += [
            f"   * - {code}",
            f"     - ``{cls.__name__}``",
            f"     - {cls.fault}",
            f"     - {_meaning(cls)}",
        ]
    return "\n".join(lines) + "\n"


def table_in_page(text: str) -> str:
    """The part of ``text`` between the table markers."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[start:text.index(END)].strip("\n") + "\n"


def main() -> int:
    """Rewrite the table in docs/errors.rst in place."""
    sys.path.insert(0, str(PAGE.parents[1]))
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    PAGE.write_text(text[:start] + "\n\n" + error_table() + "\n" + text[end:], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
