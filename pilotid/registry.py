"""The strategy ``Registry``: which strategy names exist, and where each one comes from.

A registry maps names, as queue settings use them, to *factories*: callables
``factory(settings: QueueSettings) -> provider`` (a strategy class is one: it is built as
``cls(settings)``).  There are four kinds: switchers (``IIdentitySwitcher``), credential
sources (``ICredentialSource``), payload adapters (``IPayload``) and isolations
(``IIsolation``).

Nothing registers itself at import time.  ``Registry.with_builtins()`` knows pilotid's own
strategies by import path (``BUILTINS``) and imports one only when a queue asks for it;
``Registry.default()`` adds the strategies other distributions declare in the entry-point
groups ``pilotid.switchers``, ``pilotid.credential_sources``, ``pilotid.payloads`` and
``pilotid.isolations``.
Whatever is loaded is checked against its interface (``verifyClass`` for a class, then
``verifyObject`` on what the factory builds); a broken plugin is a ``PluginError`` naming
where it came from.

A factory declares the queue settings its strategy reads in its ``own_settings`` attribute
(a tuple of ``pilotid.settings.Setting``; a class attribute for a strategy class, an
attribute of the function for a factory function); ``settings_of`` reads them, and queue
validation accepts exactly those keys besides the generic fields.

The registry stands below the queue settings (``pilotid.queue`` validates names and
settings against it): it hands a queue's settings to a factory unread, so it names their
type nowhere.  Composing a queue's strategies is ``pilotid.factory``'s.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from zope.interface.exceptions import Invalid
from zope.interface.interface import InterfaceClass
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import ConfigurationError, PilotidError, PluginError
from pilotid.interfaces import ICredentialSource, IIdentitySwitcher, IIsolation, IPayload
from pilotid.settings import OWN_SETTINGS, Setting, declared_settings

log = logging.getLogger(__name__)

SWITCHER = "switcher"
CREDENTIAL_SOURCE = "credential_source"
PAYLOAD = "payload"
ISOLATION = "isolation"

#: Builds a provider from a queue's settings (a ``QueueSettings``, passed on unread).
Factory = Callable[[Any], Any]


@dataclass(frozen=True)
class Kind:
    """One kind of strategy: its interface, its entry-point group, what messages call it."""

    interface: InterfaceClass
    group: str
    label: str


#: The four kinds of strategy, by the name ``Registry.names`` and ``Registry.build`` take.
KINDS: Dict[str, Kind] = {
    SWITCHER: Kind(IIdentitySwitcher, "pilotid.switchers", "switcher"),
    CREDENTIAL_SOURCE: Kind(ICredentialSource, "pilotid.credential_sources", "credential source"),
    PAYLOAD: Kind(IPayload, "pilotid.payloads", "payload adapter"),
    ISOLATION: Kind(IIsolation, "pilotid.isolations", "isolation"),
}

#: pilotid's own strategies: (kind, name, "module:attribute"), imported on first use.
BUILTINS: Tuple[Tuple[str, str, str], ...] = (
    (SWITCHER, "noop", "pilotid.strategies.noop:NoopSwitcher"),
    (SWITCHER, "sudo", "pilotid.strategies.sudo:SudoSwitcher"),
    (SWITCHER, "glexec", "pilotid.strategies.glexec:GlexecSwitcher"),
    (CREDENTIAL_SOURCE, "file", "pilotid.identity.sources:LocalFileSource"),
    (CREDENTIAL_SOURCE, "myproxy", "pilotid.identity.sources:MyProxySource"),
    (CREDENTIAL_SOURCE, "bearer", "pilotid.identity.tokens.sources:BearerTokenSource"),
    (CREDENTIAL_SOURCE, "token-file", "pilotid.identity.tokens.sources:TokenFileSource"),
    (PAYLOAD, "buildJob", "pilotid.payloads.buildjob:BuildJobPayload"),
    (PAYLOAD, "runAthena", "pilotid.payloads.runathena:RunAthenaPayload"),
    (PAYLOAD, "buildGen", "pilotid.payloads.buildjob:BuildGenPayload"),
    (PAYLOAD, "runGen", "pilotid.payloads.rungen:RunGenPayload"),
    (PAYLOAD, "production", "pilotid.payloads.production:ProductionPayload"),
    (ISOLATION, "none", "pilotid.strategies.isolation:NoIsolation"),
    (ISOLATION, "bwrap", "pilotid.strategies.bubblewrap:BubblewrapIsolation"),
)

#: Other names accepted for built-ins: (kind, alias, name).
BUILTIN_ALIASES: Tuple[Tuple[str, str, str], ...] = (
    (SWITCHER, "sudo-mock", "sudo"),
)


def label(kind: str) -> str:
    """What messages call ``kind``: 'switcher', 'credential source', 'payload adapter'."""
    return _kind(kind).label


def _kind(kind: str) -> Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown strategy kind {kind!r}; use one of {', '.join(KINDS)}") \
            from None


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def entry_points_in(group: str) -> Tuple[metadata.EntryPoint, ...]:
    """The entry points installed in ``group``, each ``(name, value)`` once.

    Works with the ``importlib.metadata`` of Python 3.9 (a dict of groups) and of 3.10+
    (``select``).  A distribution seen twice on ``sys.path`` declares its entry points twice:
    identical ones are kept once.
    """
    found: Any = metadata.entry_points()
    selected = found.select(group=group) if hasattr(found, "select") else found.get(group, ())
    unique: Dict[Tuple[str, str], metadata.EntryPoint] = {}
    for entry_point in selected:
        unique.setdefault((entry_point.name, entry_point.value), entry_point)
    return tuple(unique.values())


class _Entry:
    """One registered name: where its factory comes from, and the factory once loaded."""

    def __init__(self, kind: str, name: str, origin: str,
                 load: Callable[[], Any], conflict: Optional[str] = None,
                 plugin: bool = False) -> None:
        self.kind = kind
        self.name = name
        self.origin = origin
        self.conflict = conflict
        self.plugin = plugin
        self._load = load
        self._factory: Optional[Factory] = None

    def factory(self) -> Factory:
        if self.conflict:
            raise PluginError(self.conflict)
        if self._factory is None:
            try:
                loaded = self._load()
            except Exception as error:  # a plugin may fail any way at all; name the plugin
                raise PluginError(f"{self.origin} cannot be loaded: "
                                  f"{type(error).__name__}: {_one_line(error)}") from error
            self._factory = self._verified(loaded)
            log.debug("loaded %s", self.origin)
        return self._factory

    def _verified(self, loaded: Any) -> Factory:
        interface = _kind(self.kind).interface
        if isinstance(loaded, type):
            try:
                verifyClass(interface, loaded)
            except Invalid as error:
                raise PluginError(f"{self.origin} does not provide {interface.__name__}: "
                                  f"{_one_line(error)}") from None
            declared = getattr(loaded, "name", None)
            if isinstance(declared, str) and declared != self.name:
                raise PluginError(self.wrong_name(declared))
        elif not callable(loaded):
            raise PluginError(f"{self.origin} is neither a class nor a callable factory "
                              f"but {type(loaded).__name__}")
        return loaded

    def wrong_name(self, declared: Any) -> str:
        return (f"{self.origin} is registered as {self.name!r} but its name attribute is "
                f"{declared!r}; the two must agree")


def _import_path(path: str) -> Callable[[], Any]:
    def load() -> Any:
        module_name, _, attribute = path.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            target = getattr(target, part)
        return target
    return load


class Registry:
    """Strategy names and their factories, for switchers, credential sources and payloads.

    A plain object handed to whoever needs it (``QueueSettings.from_mapping``,
    ``build_strategies``); there is no global registry.  Start from ``Registry()`` (empty),
    ``Registry.with_builtins()`` or ``Registry.default()`` and register more.
    """

    def __init__(self) -> None:
        self._entries: Dict[str, Dict[str, _Entry]] = {kind: {} for kind in KINDS}
        self._aliases: Dict[str, Dict[str, str]] = {kind: {} for kind in KINDS}

    @classmethod
    def with_builtins(cls) -> "Registry":
        """A registry of pilotid's own strategies (``BUILTINS``), imported when first used."""
        registry = cls()
        for kind, name, path in BUILTINS:
            registry.register(kind, name, path)
        for kind, alias, name in BUILTIN_ALIASES:
            registry.register_alias(kind, alias, name)
        return registry

    @classmethod
    def default(cls) -> "Registry":
        """The built-ins plus every strategy installed through pilotid's entry-point groups.

        Plugins are listed now and imported when a queue uses them.  A plugin whose name
        clashes with another strategy is refused (``PluginError``) when that name is used.
        """
        registry = cls.with_builtins()
        for kind, spec in KINDS.items():
            for entry_point in entry_points_in(spec.group):
                registry.register_entry_point(kind, entry_point)
        return registry

    # --- registering ------------------------------------------------------------------

    def register(self, kind: str, name: str, factory: Union[Factory, str],
                 replace: bool = False) -> None:
        """Register ``factory`` for ``name`` of ``kind``.

        ``factory`` is a callable ``factory(settings) -> provider`` (a strategy class, say)
        or an import path ``"package.module:Attribute"`` imported on first use.  Registering
        a name again raises ``PluginError`` unless ``replace`` is True.
        """
        _kind(kind)
        if not isinstance(name, str) or not name:
            raise PluginError(f"a {label(kind)} needs a non-empty string name, not {name!r}")
        if isinstance(factory, str):
            origin = f"{label(kind)} {name!r} ({factory})"
            load = _import_path(factory)
        elif callable(factory):
            origin = f"{label(kind)} {name!r} ({_describe(factory)})"
            load = _constant(factory)
        else:
            raise PluginError(f"{label(kind)} {name!r}: a factory must be callable or an "
                              f"import path string, not {type(factory).__name__}")
        if not replace:
            self._refuse_taken(kind, name, origin)
        self._aliases[kind].pop(name, None)
        self._entries[kind][name] = _Entry(kind, name, origin, load)

    def register_switcher(self, name: str, factory: Union[Factory, str],
                          replace: bool = False) -> None:
        """Register an identity switcher factory (see ``register``)."""
        self.register(SWITCHER, name, factory, replace)

    def register_credential_source(self, name: str, factory: Union[Factory, str],
                                   replace: bool = False) -> None:
        """Register a credential source factory (see ``register``)."""
        self.register(CREDENTIAL_SOURCE, name, factory, replace)

    def register_payload(self, name: str, factory: Union[Factory, str],
                         replace: bool = False) -> None:
        """Register a payload adapter factory (see ``register``)."""
        self.register(PAYLOAD, name, factory, replace)

    def register_alias(self, kind: str, alias: str, name: str) -> None:
        """Accept ``alias`` wherever ``name`` of ``kind`` is meant (``sudo-mock`` -> ``sudo``)."""
        _kind(kind)
        if name not in self._entries[kind]:
            raise PluginError(f"cannot alias {alias!r} to the unknown {label(kind)} {name!r}")
        self._refuse_taken(kind, alias, f"alias {alias!r} of {label(kind)} {name!r}")
        self._aliases[kind][alias] = name

    def register_entry_point(self, kind: str, entry_point: metadata.EntryPoint) -> None:
        """Register a plugin declared as ``entry_point``, loaded when first used.

        A name that is already taken (by a built-in, an alias or another plugin) is kept
        as a conflict: using it raises ``PluginError`` naming both, other names still work.
        """
        group = _kind(kind).group
        origin = f"entry point '{entry_point.name} = {entry_point.value}' in group '{group}'"
        name = entry_point.name
        taken = self._entries[kind].get(name)
        if name in self._aliases[kind]:
            taken_by = f"the alias {name!r} of {label(kind)} {self._aliases[kind][name]!r}"
        elif taken is not None:
            taken_by = taken.origin
        else:
            self._entries[kind][name] = _Entry(kind, name, origin, entry_point.load,
                                               plugin=True)
            return
        conflict = (f"{origin} clashes with {taken_by}; uninstall one of them or rename the "
                    "plugin's entry point")
        log.warning("%s", conflict)
        self._aliases[kind].pop(name, None)
        self._entries[kind][name] = _Entry(kind, name, origin, entry_point.load, conflict,
                                           plugin=True)

    def _refuse_taken(self, kind: str, name: str, origin: str) -> None:
        if name in self._entries[kind]:
            raise PluginError(f"{origin}: the name is already taken by "
                              f"{self._entries[kind][name].origin}")
        if name in self._aliases[kind]:
            raise PluginError(f"{origin}: the name is already an alias of {label(kind)} "
                              f"{self._aliases[kind][name]!r}")

    # --- looking up -------------------------------------------------------------------

    def names(self, kind: str) -> Tuple[str, ...]:
        """Every name of ``kind`` a queue may use, aliases included, sorted."""
        _kind(kind)
        return tuple(sorted(set(self._entries[kind]) | set(self._aliases[kind])))

    def canonical(self, kind: str, name: str) -> str:
        """The registered name ``name`` stands for (itself unless it is an alias)."""
        _kind(kind)
        return self._aliases[kind].get(name, name)

    def origin(self, kind: str, name: str) -> str:
        """Where the strategy ``name`` of ``kind`` comes from, as messages say it."""
        return self._entry(kind, name).origin

    def factory(self, kind: str, name: str) -> Factory:
        """Return the factory of ``name`` (or of what the alias ``name`` stands for).

        Loads it on first use and checks it: a class must pass ``verifyClass`` against the
        kind's interface and, where it declares ``name``, declare the registered name.
        Raises ``ConfigurationError`` for an unknown name, ``PluginError`` for a plugin
        that cannot be loaded or does not provide the interface.
        """
        return self._entry(kind, name).factory()

    def switcher(self, name: str) -> Factory:
        """The identity switcher factory registered as ``name`` (see ``factory``)."""
        return self.factory(SWITCHER, name)

    def credential_source(self, name: str) -> Factory:
        """The credential source factory registered as ``name`` (see ``factory``)."""
        return self.factory(CREDENTIAL_SOURCE, name)

    def payload(self, name: str) -> Factory:
        """The payload adapter factory registered as ``name`` (see ``factory``)."""
        return self.factory(PAYLOAD, name)

    def settings_of(self, kind: str, name: str) -> Tuple[Setting, ...]:
        """The queue settings the strategy ``name`` of ``kind`` declares (``own_settings``).

        Loads the strategy as ``factory`` does (and raises what it raises); a declaration
        that is not a tuple of distinct ``Setting`` is a ``PluginError`` naming its origin.
        """
        entry = self._entry(kind, name)
        try:
            return declared_settings(entry.factory())
        except TypeError as error:
            raise PluginError(f"{entry.origin}: {error}") from None

    def owners_of(self, setting: str) -> List[Tuple[str, str, Optional[str]]]:
        """Which registered strategies declare a setting named ``setting``, for messages.

        Returns ``(kind, name, plugin origin or None)`` for each, built-ins first.  Strategies
        that cannot be loaded are passed over: they would accept nothing.
        """
        owners = []
        for kind, entries in self._entries.items():
            for name, entry in sorted(entries.items()):
                try:
                    declared = declared_settings(entry.factory())
                except (PilotidError, TypeError):
                    continue
                if any(candidate.name == setting for candidate in declared):
                    owners.append((kind, name, entry.origin if entry.plugin else None))
        return sorted(owners, key=lambda owner: owner[2] is not None)

    def build(self, kind: str, name: str, settings: Any) -> Any:
        """Build the provider ``name`` of ``kind`` for ``settings``, checked.

        The result must pass ``verifyObject`` against the kind's interface and carry the
        registered name as its ``name``; otherwise ``PluginError`` naming the strategy's
        origin.  A ``PilotidError`` the factory raises passes through (a strategy may
        refuse settings it cannot work with); any other exception becomes a
        ``PluginError``.
        """
        entry = self._entry(kind, name)
        factory = entry.factory()
        try:
            provider = factory(settings)
        except PilotidError:
            raise
        except Exception as error:  # foreign code: say whose it is
            raise PluginError(f"{entry.origin} failed to build for queue {settings.name!r}: "
                              f"{type(error).__name__}: {_one_line(error)}") from error
        interface = _kind(kind).interface
        try:
            verifyObject(interface, provider)
        except Invalid as error:
            raise PluginError(f"{entry.origin} built {type(provider).__name__}, which does "
                              f"not provide {interface.__name__}: {_one_line(error)}") from None
        if getattr(provider, "name", None) != entry.name:
            raise PluginError(entry.wrong_name(getattr(provider, "name", None)))
        return provider

    def _entry(self, kind: str, name: str) -> _Entry:
        canonical = self.canonical(kind, name)
        entry = self._entries[kind].get(canonical)
        if entry is None:
            known = self.names(kind)
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigurationError(
                f"unknown {label(kind)} {name!r}{hint}; the known {label(kind)}s are "
                f"{', '.join(known) or 'none'}")
        return entry


def _constant(factory: Factory) -> Callable[[], Factory]:
    return lambda: factory


def _describe(factory: Any) -> str:
    module = getattr(factory, "__module__", None)
    qualname = getattr(factory, "__qualname__", None)
    return f"{module}:{qualname}" if module and qualname else repr(factory)

__all__ = [
    "BUILTINS", "BUILTIN_ALIASES", "CREDENTIAL_SOURCE", "ISOLATION", "KINDS", "OWN_SETTINGS",
    "PAYLOAD",
    "SWITCHER",
    "Factory", "Kind", "Registry", "entry_points_in", "label",
]
