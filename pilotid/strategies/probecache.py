"""``ProbeCache``: a switcher's successful probes, remembered for later jobs of the pilot.

A probe is a whole identity switch (gLExec running ``id``, ``sudo`` running ``/bin/true``)
made before each job only to learn, before anything is set up, whether the real one will
work.  Its answer rarely changes while a pilot lives (gLExec pool leases are sticky, a
sudoers rule is site configuration), so a switcher keeps a successful answer for the queue's
``probe_cache_lifetime`` and switches once per job instead of twice.  Failures are never
kept.  When a launch is refused after all, the switcher forgets the answer (``forget``):
that job fails with the exact switch error, and the next job probes again.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Generic, Hashable, Optional, Tuple, TypeVar

from pilotid.settings import Setting, integer, optional

_T = TypeVar("_T")

#: The queue setting of every switcher that keeps its probes here (sudo, gLExec): one
#: declaration, shared, so that it means the same whichever switcher a queue uses.
PROBE_CACHE_LIFETIME = Setting(
    "probe_cache_lifetime", optional(integer(0)), None,
    "How long a successful probe is kept for later jobs of this pilot process, or of one "
    "``pilotid agent`` (sudo: that the switch to an account is allowed; gLExec: which "
    "account a DN maps to, within the pilot process only); null: the pilot's lifetime, "
    "``0``: probe before every job.  Failures are never kept.")


class ProbeCache(Generic[_T]):
    """Successful probe answers by key, each with the time it was learnt.

    ``clock`` (default ``time.monotonic``) is in seconds; an answer older than the
    ``max_age`` given to ``get`` is not returned (and is dropped).  ``observer``, if set, is
    told of each change: ``(key, (learnt, answer))`` on ``put``, ``(key, None)`` on
    ``forget`` (an agent's child reports them to the agent, ``pilotid.agent.probes``).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._answers: Dict[Hashable, Tuple[float, _T]] = {}
        self.observer: Optional[Callable[[Hashable, Optional[Tuple[float, _T]]], None]] = None

    def get(self, key: Hashable, max_age: Optional[float] = None) -> Optional[_T]:
        """The answer kept for ``key`` if it is at most ``max_age`` seconds old (``None``:
        any age), else ``None``.  ``max_age`` 0 never returns an answer."""
        found = self._answers.get(key)
        if found is None:
            return None
        learnt, answer = found
        if max_age is not None and self._clock() - learnt >= max_age:
            del self._answers[key]
            return None
        return answer

    def put(self, key: Hashable, answer: _T) -> None:
        """Remember ``answer`` for ``key``, learnt now."""
        self.keep(key, answer, self._clock())
        if self.observer is not None:
            self.observer(key, self._answers[key])

    def keep(self, key: Hashable, answer: _T, learnt: float) -> None:
        """Remember ``answer`` for ``key``, learnt at ``learnt`` (this cache's clock) by
        another process; the observer is not told."""
        self._answers[key] = (learnt, answer)

    def forget(self, key: Hashable) -> None:
        """Drop the answer for ``key``, if any (a launch refused after a successful probe)."""
        self._answers.pop(key, None)
        if self.observer is not None:
            self.observer(key, None)

    def clear(self) -> None:
        """Forget every answer."""
        self._answers.clear()


#: The cache every switcher of this pilot process shares unless given its own.
PILOT_PROBE_CACHE: "ProbeCache[object]" = ProbeCache()
