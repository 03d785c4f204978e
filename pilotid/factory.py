"""The factory: compose a queue's strategies, and the launcher that runs its jobs with them.

``build_strategies(settings, registry)`` builds the credential source, the switcher, the
payload adapters and the isolation a queue names, from a ``pilotid.registry.Registry`` (the
names and where each strategy comes from), as a ``Strategies``
(``pilotid.queue_strategies``, below the launcher that is built with it);
``build_launcher`` hands them to a ``PayloadLauncher``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List, Optional

from pilotid.launcher import PayloadLauncher
from pilotid.queue_strategies import Strategies
from pilotid.registry import CREDENTIAL_SOURCE, ISOLATION, PAYLOAD, SWITCHER, Registry
from pilotid.strategies.isolation import NoIsolation

if TYPE_CHECKING:
    from pilotid.queue import QueueSettings


def build_strategies(settings: "QueueSettings",
                     registry: Optional[Registry] = None) -> Strategies:
    """Build and check the credential source, switcher, payload adapters and isolation
    ``settings`` name.

    ``registry`` defaults to ``Registry.default()``.  Raises ``ConfigurationError`` for a
    name the registry does not know and ``PluginError`` for a strategy that cannot be
    loaded or built, or does not provide its interface.
    """
    if registry is None:
        registry = Registry.default()
    source = registry.build(CREDENTIAL_SOURCE, settings.credential_source, settings)
    switcher = registry.build(SWITCHER, settings.switcher, settings)
    payloads: List[Any] = [registry.build(PAYLOAD, name, settings) for name in settings.payloads]
    # "none" needs no registering: a registry made for a test knows it without being told
    isolation = (NoIsolation() if settings.isolation == "none"
                 and "none" not in registry.names(ISOLATION)
                 else registry.build(ISOLATION, settings.isolation, settings))
    return Strategies(source=source, switcher=switcher, payloads=tuple(payloads),
                      isolation=isolation)


def build_launcher(settings: "QueueSettings",
                   registry: Optional[Registry] = None) -> PayloadLauncher:
    """Compose the launcher for a queue: ``PayloadLauncher(settings, build_strategies(...))``.

    ``PayloadLauncher``'s constructor takes exactly ``(settings: QueueSettings,
    strategies: Strategies)``.  Raises what ``build_strategies`` raises.
    """
    return PayloadLauncher(settings, build_strategies(settings, registry))


__all__ = ["build_launcher", "build_strategies"]
