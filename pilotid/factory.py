"""The factory: compose a queue's strategies, and the launcher that runs its jobs with them.

``build_strategies(settings, registry)`` builds the credential source, the switcher and the
payload adapters a queue names, from a ``pilotid.registry.Registry`` (the names and where
each strategy comes from); ``build_launcher`` hands them to a ``PayloadLauncher``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from pilotid.errors import TransformationNotFoundError
from pilotid.registry import CREDENTIAL_SOURCE, PAYLOAD, SWITCHER, Registry

if TYPE_CHECKING:
    from pilotid.launcher import PayloadLauncher
    from pilotid.payloads.job import JobSpec
    from pilotid.queue import QueueSettings


@dataclass(frozen=True)
class Strategies:
    """The strategies one queue runs its jobs with, each already checked.

    ``source`` provides ``ICredentialSource``, ``switcher`` ``IIdentitySwitcher`` and every
    one of ``payloads`` ``IPayload``, in the queue's order.
    """

    source: Any
    switcher: Any
    payloads: Tuple[Any, ...]

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


def build_strategies(settings: "QueueSettings",
                     registry: Optional[Registry] = None) -> Strategies:
    """Build and check the credential source, switcher and payload adapters ``settings`` name.

    ``registry`` defaults to ``Registry.default()``.  Raises ``ConfigurationError`` for a
    name the registry does not know and ``PluginError`` for a strategy that cannot be
    loaded or built, or does not provide its interface.
    """
    if registry is None:
        registry = Registry.default()
    source = registry.build(CREDENTIAL_SOURCE, settings.credential_source, settings)
    switcher = registry.build(SWITCHER, settings.switcher, settings)
    payloads: List[Any] = [registry.build(PAYLOAD, name, settings) for name in settings.payloads]
    return Strategies(source=source, switcher=switcher, payloads=tuple(payloads))


def build_launcher(settings: "QueueSettings",
                   registry: Optional[Registry] = None) -> "PayloadLauncher":
    """Compose the launcher for a queue: ``PayloadLauncher(settings, build_strategies(...))``.

    ``pilotid.launcher.PayloadLauncher`` is imported here, when first needed; its
    constructor takes exactly ``(settings: QueueSettings, strategies: Strategies)``.
    Raises what ``build_strategies`` raises.
    """
    from pilotid.launcher import PayloadLauncher

    return PayloadLauncher(settings, build_strategies(settings, registry))


__all__ = ["Strategies", "build_launcher", "build_strategies"]
