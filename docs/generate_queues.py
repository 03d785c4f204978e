"""Regenerate the field tables in docs/queues.rst from the settings' declarations.

The generic fields come from ``pilotid.queue.GENERIC_SETTINGS``, each built-in strategy's
own settings from its ``own_settings``.  Run ``python docs/generate_queues.py`` from the
repository root after declaring or changing a setting; ``tests/unit/test_docs.py`` fails
while the page and the declarations disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, List

BEGIN = ".. queue-fields-begin"
END = ".. queue-fields-end"
PAGE = Path(__file__).with_name("queues.rst")

_GLEXEC_ROW = ("glexec", "PanDA value (see below)", "absent",
               "PanDA's schedconfig field, accepted for compatibility instead of ``switcher``.")


def _table(rows: Iterable[tuple]) -> List[str]:
    lines = [
        ".. list-table::",
        "   :header-rows: 1",
        "   :widths: 18 20 14 48",
        "",
        "   * - Field",
        "     - JSON type",
        "     - Default",
        "     - Meaning",
    ]
    for name, kind, default, meaning in rows:
        lines += [f"   * - ``{name}``", f"     - {kind}", f"     - {default}",
                  f"     - {meaning}"]
    return lines


def _rows(settings: Iterable) -> List[tuple]:
    return [(s.name, s.type_label,
             s.default_label if s.required else f"``{s.default_label}``", s.doc)
            for s in settings]


def queue_tables() -> str:
    """The reStructuredText of the generic fields and of each built-in strategy's own."""
    from pilotid.queue import GENERIC_SETTINGS
    from pilotid.registry import BUILTINS, Registry, label

    registry = Registry.with_builtins()
    lines = ["Generic fields", "--------------", "",
             "Every queue may have these, whatever its strategies.", ""]
    lines += _table(_rows(GENERIC_SETTINGS) + [_GLEXEC_ROW])
    lines += ["", "Settings of the built-in strategies", "-----------------------------------",
              "", "A queue accepts these only where it uses the strategy that declares them.",
              ""]
    for kind, name, _ in BUILTINS:
        declared = registry.settings_of(kind, name)
        title = f"The ``{name}`` {label(kind)}"
        lines += [title, "~" * len(title), ""]
        if declared:
            lines += _table(_rows(declared))
        else:
            lines += ["No settings of its own."]
        lines += [""]
    return "\n".join(lines).rstrip("\n") + "\n"


def tables_in_page(text: str) -> str:
    """The part of ``text`` between the markers."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[start:text.index(END)].strip("\n") + "\n"


def main() -> int:
    """Rewrite the tables in docs/queues.rst in place."""
    sys.path.insert(0, str(PAGE.parents[1]))
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END)
    PAGE.write_text(text[:start] + "\n\n" + queue_tables() + "\n" + text[end:],
                    encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
