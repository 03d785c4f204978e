"""The suite's guard against egg caches left behind (issue 16, item 8).

The docs promise a job's egg cache is gone after the job, on every path.  ``EggGuard``
notes the ``pilotid-egg-*`` directories that appear under the base (``/tmp``) during each
test and belong to one of the watched accounts (the test accounts and whoever runs the
tests, root included: no-op jobs run as that account); at the end of the run, those still
there fail the run, named with the test during which they appeared.  Other engineers'
runs with the same accounts make egg caches too, but theirs go with their jobs: a
directory is counted only if it outlives the run (after ``GRACE`` seconds more for the
last ones to go).  A concurrent run that itself leaves one
during a test of this run is blamed on that test: the name says which test to rerun alone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Dict, FrozenSet, Iterable, Set

from pilotid.payloads.wrapper import EGG_CACHE_PREFIX

#: How long a directory noted during a test may take to go once the run ends (seconds).
GRACE = 10.0


class EggGuard:
    """Egg caches under ``base`` owned by one of ``uids``, by the test they appeared in."""

    def __init__(self, base: Path, uids: Iterable[int]) -> None:
        self.base = base
        self.uids: FrozenSet[int] = frozenset(uids)
        self.appeared: Dict[str, str] = {}

    def names(self) -> Set[str]:
        """The egg cache names under the base now."""
        try:
            return {name for name in os.listdir(self.base) if name.startswith(EGG_CACHE_PREFIX)}
        except OSError:
            return set()

    def note(self, before: Set[str], test: str) -> None:
        """Note the watched accounts' egg caches made since ``before`` as ``test``'s."""
        for name in self.names() - before:
            if name not in self.appeared and self._watched(name):
                self.appeared[name] = test

    def left(self, grace: float = GRACE) -> Dict[str, str]:
        """``{path: test}`` of the noted egg caches still there ``grace`` seconds from now
        at the latest (at once when none is)."""
        deadline = time.monotonic() + grace
        while True:
            found = {str(self.base / name): test for name, test in self.appeared.items()
                     if self._watched(name)}
            if not found or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)

    def _watched(self, name: str) -> bool:
        try:
            return os.lstat(self.base / name).st_uid in self.uids
        except OSError:
            return False
