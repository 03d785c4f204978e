"""``NoIsolation``: the payload runs wherever its switch puts it, in no namespace of its own.

The isolation of a queue that names none (``isolation: "none"``, the default), and of
every switch that isolates by itself (gLExec's ``glexec`` + ``none``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List

from zope.interface import implementer

from pilotid.interfaces import IIsolation
from pilotid.probe import OK, Check


@implementer(IIsolation)
class NoIsolation:
    """No isolation: ``wrap`` hands the switcher's session back unchanged."""

    name = "none"
    own_settings = ()

    def __init__(self, settings: Any = None) -> None:
        self.settings = settings

    def wrap(self, session: Any, workdir: Path) -> Any:
        """Return ``session`` itself."""
        return session

    def node_checks(self) -> List[Check]:
        """Say that payloads share the node's namespaces, by the queue's choice."""
        return [Check("isolation", OK, "none: payloads share the node's namespaces "
                                       "(the queue's isolation setting)")]
