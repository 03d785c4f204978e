"""``Strategies``: the checked strategies one queue runs its jobs with.

The factory (``pilotid.factory.build_strategies``) builds it from a ``Registry``; the
launcher is built with it.  It stands below both, so that the launcher can name it without
importing the factory that composes the launcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Tuple

from pilotid.errors import TransformationNotFoundError
from pilotid.strategies.isolation import NoIsolation

if TYPE_CHECKING:
    from pilotid.payloads.job import JobSpec


@dataclass(frozen=True)
class Strategies:
    """The strategies one queue runs its jobs with, each already checked.

    ``source`` provides ``ICredentialSource``, ``switcher`` ``IIdentitySwitcher``, every
    one of ``payloads`` ``IPayload``, in the queue's order, and ``isolation``
    ``IIsolation`` (``NoIsolation`` unless given).
    """

    source: Any
    switcher: Any
    payloads: Tuple[Any, ...]
    isolation: Any = field(default_factory=NoIsolation)

    def payload_for(self, job: "JobSpec") -> Any:
        """The first payload adapter that accepts ``job``.

        Raises ``TransformationNotFoundError`` naming the transformation and the adapters
        tried when none does.
        """
        for payload in self.payloads:
            if payload.accepts(job):
                return payload
        tried = ", ".join(payload.name for payload in self.payloads) or "none"
        raise TransformationNotFoundError(
            f"no payload adapter of this queue runs transformation {job.transformation!r} "
            f"(tried: {tried}); add the adapter to the queue's payloads")
