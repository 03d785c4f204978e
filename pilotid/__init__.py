"""pilotid: run a grid pilot's payload under the end user's own Unix identity.

The public API is reachable from here: the three interfaces, the values that flow between
them, the launcher's factory and the error tree.  Names are imported on first use, so that
``import pilotid`` stays cheap (a pilot imports it before it knows which strategies its
queue needs).  Strategies live in ``pilotid.strategies`` (how), ``pilotid.identity`` (who)
and ``pilotid.payloads`` (what); fakes for plugin authors in ``pilotid.testing``.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing: ``import pilotid`` is on the path of every
# ``pilotid run`` (the agent's client too), and typing costs it about 7 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "pilotid.errors": ("PilotidError", "ConfigurationError", "CredentialError", "SwitchError"),
    "pilotid.factory": ("build_launcher", "build_strategies"),
    "pilotid.identity.accounts": ("Account",),
    "pilotid.identity.credential": ("Credential", "CredentialRequest"),
    "pilotid.interfaces": ("ICredentialSource", "IIdentitySwitcher", "IPayload"),
    "pilotid.launcher": ("PayloadLauncher", "PayloadResult"),
    "pilotid.payloads.job": ("JobSpec", "PayloadCommand", "load_job"),
    "pilotid.queue": ("QueueSettings",),
    "pilotid.queue_strategies": ("Strategies",),
    "pilotid.queuefile": ("load_queue", "load_queues"),
    "pilotid.registry": ("Registry",),
    "pilotid.values": ("Outcome", "ProxyHandover", "WrapperMarker"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    import importlib  # here: not on the path of every ``pilotid run`` (0.3 ms)

    try:
        module = _MODULE_OF[name]
    except KeyError:
        raise AttributeError(f"module 'pilotid' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
