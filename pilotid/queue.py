"""Per-queue configuration: ``QueueSettings``, validated when loaded.

One JSON file holds the settings of several queues::

    {"queues": {"ANALY_DEMO": {"switcher": "noop", "credential_source": "file",
                               "proxy_file": "/path/to/x509up"}, ...}}

A queue's keys are the generic fields (``GENERIC_SETTINGS``: which strategies, the sandbox,
the wrapper, time limits), PanDA's ``glexec`` field, understood for compatibility, and the
settings its chosen strategies declare (``own_settings``, see ``pilotid.settings``): a
``sudo_path`` only where the switcher is sudo.  Everything is checked when loaded: unknown
keys (naming the strategy a key belongs to), types, values, strategy names (against a
``Registry``) and contradictions.  Each failure is a ``ConfigurationError`` naming the
queue and the field (and the file, when loaded from one).  ``docs/queues.rst`` is the
reference, generated from the declarations by ``docs/generate_queues.py``.  Reading the
settings file is ``pilotid.queuefile``'s (``load_queues``, ``load_queue``).
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union

from pilotid.errors import ConfigurationError, PluginError
from pilotid.registry import CREDENTIAL_SOURCE, ISOLATION, PAYLOAD, SWITCHER, Registry, label
from pilotid.settings import (
    InvalidValue,
    Setting,
    ValueType,
    absolute_path,
    choice,
    flag,
    integer,
    list_of,
    optional,
    show,
    string,
    umask,
)
from pilotid.syslog_target import DEFAULT_ADDRESS, DEFAULT_FACILITY, FACILITIES, parse_address

log = logging.getLogger(__name__)

#: PanDA's schedconfig field, accepted in place of ``switcher`` (see ``panda_glexec``).
GLEXEC_FIELD = "glexec"
#: A strategy's class attribute: the generic fields a queue using it must state (their
#: defaults would be wrong for it), each with why, as ``{field: reason}``.
REQUIRED_FIELDS = "required_fields"
#: What PanDA's ``glexec`` field sets besides the switcher: the gLExec switcher's setting.
GLEXEC_MODE_FIELD = "glexec_mode"
ON_PROBE_FAILURE = ("fail", "reschedule")
SANDBOX_MODES = ("acl", "acl-or-world", "world")
#: What a job does when its isolation cannot run (see docs/isolation.rst).
ISOLATION_POLICIES = ("required", "preferred", "optional")
#: What a queue does with a job whose prodUserID names no DN (see docs/credentials.rst).
JOBS_WITHOUT_DN = ("refuse", "queue_proxy", "token_subject")
#: The built-in token sources, the only ones ``token_subject`` may go with.
TOKEN_SOURCES = ("bearer", "token-file")


@dataclass(frozen=True)
class QueueSettings:
    """One queue's settings, as validated from the queue settings file.

    The generic fields are attributes: ``switcher``, ``credential_source`` and
    ``payloads`` are registry names; the rest configure the launcher, the sandbox and the
    wrapper.  ``options`` holds the values of the settings the queue's strategies declare
    (``sudo_path``, ``myproxy_server``, a plugin's own...), checked and with their
    defaults filled in; a strategy reads them with ``option``.  Build one with
    ``from_mapping`` (or ``load_queue``) to have it checked; the constructor itself checks
    nothing.
    """

    name: str
    switcher: str = "noop"
    credential_source: str = "file"
    payloads: Tuple[str, ...] = ("buildJob", "runAthena", "buildGen", "runGen")
    on_probe_failure: str = "fail"
    sandbox: str = "acl"
    umask: int = 0o022
    egg_cache_base: Path = Path("/tmp")  # noqa: S108 - a fixed base by design (DESIGN.md)
    setup: Tuple[str, ...] = ()
    env_deny: Tuple[str, ...] = ()
    env_pass: Tuple[str, ...] = ()
    timeout: Optional[int] = None
    grace_period: int = 30
    accounting_file: Optional[Path] = None
    work_root: Optional[Path] = None
    state_dir: Optional[Path] = None
    transformation_dirs: Tuple[Path, ...] = field(default=())
    standin_transformations: bool = False
    jobs_without_dn: str = "refuse"
    proxy_refresh_threshold: int = 3 * 3600
    proxy_refresh_interval: int = 3600
    syslog_facility: str = DEFAULT_FACILITY
    syslog_address: Optional[str] = DEFAULT_ADDRESS
    isolation: str = "none"
    isolation_policy: str = "required"
    options: Mapping[str, Any] = field(default_factory=dict)

    def option(self, setting: Union[Setting, str]) -> Any:
        """The value of a strategy's ``setting`` for this queue (a ``Setting`` or its name).

        The queue's value when it gave one, else the setting's default.  A required
        setting the queue lacks is a ``ConfigurationError`` naming the queue and the
        setting (only settings built without ``from_mapping`` can lack one); a name with
        no value here and no declaration to take a default from is a ``KeyError``.
        """
        key = setting if isinstance(setting, str) else setting.name
        if key in self.options:
            return self.options[key]
        if isinstance(setting, str):
            raise KeyError(f"queue {self.name} has no setting {key!r}: read it with its "
                           "Setting, or declare it in the strategy's own_settings")
        if setting.required:
            raise ConfigurationError(f"queue {self.name}: {key} is not set: {setting.doc}")
        return setting.value_default

    def proxy_lifetime_needed(self) -> int:
        """Seconds the user's proxy must still be valid when a payload is launched.

        The job's time limit (``timeout``), capped by ``proxy_refresh_threshold``: a longer
        job gets its proxy refreshed while it runs.  With no time limit, the threshold.
        """
        if self.timeout is None:
            return self.proxy_refresh_threshold
        return min(self.timeout, self.proxy_refresh_threshold)

    @classmethod
    def from_mapping(cls, name: str, mapping: Mapping[str, Any],
                     registry: Optional[Registry] = None) -> "QueueSettings":
        """Validate one queue's ``mapping`` (as read from JSON) and return its settings.

        ``registry`` says which strategy names exist and which settings each declares
        (``Registry.default()`` when None).  Raises ``ConfigurationError`` naming the queue
        and the field for an unknown key (saying which strategy it belongs to, if any), a
        wrong type or value, a missing required setting, an unknown strategy name or a
        contradiction; ``PluginError`` for a chosen strategy that cannot be loaded or
        declares its settings wrongly.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"queue names must be non-empty strings, not {show(name)}")
        if not isinstance(mapping, Mapping):
            raise ConfigurationError(
                f"queue {name!r}: its settings must be a JSON object of fields, "
                f"not {show(mapping)}")
        values: Dict[str, Any] = {}
        raw_options: Dict[str, Any] = {}
        for key, raw in mapping.items():
            if not isinstance(key, str):
                raise _error(name, str(key), "unknown field; field names are strings")
            if key == GLEXEC_FIELD:
                continue
            setting = _GENERIC.get(key)
            if setting is None:
                raw_options[key] = raw
                continue
            values[key] = _parsed(name, setting, raw)
        if GLEXEC_FIELD in mapping:
            for rival in ("switcher", GLEXEC_MODE_FIELD):
                if rival in mapping:
                    raise _error(name, GLEXEC_FIELD,
                                 f"PanDA's 'glexec' field and {rival!r} both say which switch "
                                 f"to use; keep one (write 'switcher' in new settings)")
            try:
                values["switcher"], mode = panda_glexec(mapping[GLEXEC_FIELD])
            except InvalidValue as problem:
                raise _error(name, GLEXEC_FIELD, str(problem)) from None
            if mode is not None:
                raw_options[GLEXEC_MODE_FIELD] = mode
        generic = cls(name=name, **values)
        if registry is None:
            registry = Registry.default()
        _check_strategy_names(generic, mapping, registry)
        _check_required_fields(generic, mapping, registry)
        options = _strategy_options(generic, raw_options, registry)
        _check_jobs_without_dn(generic, options)
        return cls(name=name, **values, options=MappingProxyType(options))


def panda_glexec(value: Any) -> Tuple[str, Optional[str]]:
    """Map PanDA's ``glexec`` field to ``(switcher, glexec_mode)``.

    ``True``, ``'True'`` and ``'uid'`` switch to the end user with gLExec
    (``('glexec', 'uid')``); ``'test'`` uses gLExec with the pilot's own proxy
    (``('glexec', 'test')``); ``False``, ``'False'``, ``''`` and ``None`` mean no switch
    (``('noop', None)``).  Strings are matched case-insensitively.  Anything else is
    refused: the old pilot read it as "no gLExec", and silently running a payload as the
    pilot is what pilotid never does.
    """
    if value is True:
        return "glexec", "uid"
    if value is False or value is None:
        return "noop", None
    if isinstance(value, str):
        word = value.lower()
        if word in ("true", "uid"):
            return "glexec", "uid"
        if word == "test":
            return "glexec", "test"
        if word in ("false", ""):
            return "noop", None
    raise InvalidValue(f"{show(value)} is not a PanDA glexec value; use 'uid' (or 'True'), "
                   "'test', or 'False' (or '' or null) for no switch")


# --- the generic fields ------------------------------------------------------------------


def _syslog_address(value: Any) -> str:
    try:
        parse_address(string.parse(value))
    except ValueError as problem:  # InvalidValue included
        raise InvalidValue(str(problem)) from None
    return value



def _names(value: Any) -> Tuple[str, ...]:
    names = list_of(string, "payload adapter names", non_empty=True)(value)
    for name in names:
        if names.count(name) > 1:
            raise InvalidValue(f"names {name!r} twice; list each payload adapter once")
    return names


#: The fields every queue has, whatever its strategies: ``QueueSettings``' attributes.
GENERIC_SETTINGS: Tuple[Setting, ...] = (
    Setting("switcher", ValueType("string (registry name)", string), "noop",
            "How the payload becomes the end user: ``noop`` (no switch: runs as the pilot), "
            "``sudo`` (alias ``sudo-mock``), ``glexec``, or a plugin switcher's name; see "
            ":doc:`strategies`."),
    Setting("credential_source", ValueType("string (registry name)", string), "file",
            "Where the user's proxy comes from: ``file``, ``myproxy``, or a plugin's name."),
    Setting("payloads", ValueType("list of strings (registry names)", _names),
            ["buildJob", "runAthena", "buildGen", "runGen"],
            "The payload adapters this queue runs, tried in this order; the first that "
            "accepts a job's transformation runs it.  At least one; each once.  "
            "``production`` (the generic adapter for the production transformations "
            "installed in ``transformation_dirs``) is never a default: list it, last.  See "
            ":doc:`payloads`."),
    Setting("on_probe_failure", choice(*ON_PROBE_FAILURE), "fail",
            "When the switch's probe fails: fail the job, or hand it back to be rescheduled "
            "(outcome ``rescheduled``).  Never falls back to running as the pilot."),
    Setting("sandbox", choice(*SANDBOX_MODES), "acl",
            "How the work directory is opened to the target account: ``acl``, POSIX ACLs "
            "only (a work directory on a file system without ACLs fails the job, code 61); "
            "``acl-or-world``, ACLs where supported, else the seed's world-writable mode "
            "(logged); ``world``, the world-writable mode from the start.  World mode "
            "trusts every local account on the node: accept it explicitly, or not at all."),
    Setting("umask", umask, "0022",
            "The payload's umask, three or four octal digits in a string (``\"027\"``); a "
            "JSON number is refused: ``22`` would be decimal."),
    Setting("egg_cache_base", absolute_path, "/tmp",  # noqa: S108 - fixed base (DESIGN.md)
            "Where the wrapper creates the payload's fresh ``PYTHON_EGG_CACHE`` (``mkdir -m "
            "700``, random name, removed on exit).  Never ``$TMPDIR``."),
    Setting("setup", list_of(string, "setup lines (strings)"), [],
            "Shell lines the wrapper runs before the payload (``source .../atlasLocalSetup"
            ".sh``): the site's own commands, run as written."),
    Setting("env_pass", list_of(string, "variable names or patterns (strings)"), [],
            "The pilot's environment variables the payload also gets, beyond the wrapper's "
            "small default (:doc:`wrapper`): names (exact) or whole-name patterns "
            "(``ATLAS_*``).  Nothing else of the pilot's environment passes; the built-in "
            "deny-list (loader, identity, credential and bash variables) wins over it."),
    Setting("env_deny", list_of(string, "variable names or patterns (strings)"), [],
            "Names (exact) or whole-name patterns (``SECRET_*``) the wrapper removes even "
            "where ``env_pass`` or the payload adapter names them, on top of its built-in "
            "deny-list."),
    Setting("timeout", optional(integer(1)), None,
            "Wall-clock limit of the payload in seconds; null means no limit from the "
            "queue."),
    Setting("grace_period", integer(0), 30,
            "Seconds the payload gets to exit after SIGTERM before it is killed, when it "
            "has to be stopped."),
    Setting("accounting_file", optional(absolute_path), None,
            "A per-queue JSON-lines accounting file, in addition to ``accounting.jsonl`` in "
            "the work directory."),
    Setting("work_root", optional(absolute_path), None,
            "The directory the pilot makes its work directories in.  The grant may give the "
            "job's account ``x`` (an ACL entry, never ``o+x``) on the directories from it "
            "down to the work directory, and changes nothing above it; a work directory "
            "outside it is refused (code 22), and a job account that cannot traverse the "
            "directories above it is told to the site (code 66: make the work root "
            "reachable, ``chmod o+x`` or a group).  null (the default): no directory outside "
            "the work directory is ever changed, so the site makes the path to the work "
            "directories traversable itself.  Never the pilot's home: ``x`` there lets the "
            "payload read every file of the pilot's whose name it knows.  See "
            ":doc:`sandbox`."),
    Setting("state_dir", optional(absolute_path), None,
            "Where pilotid keeps its grant journals and the holds of shared parents (made "
            "0700; refused unless the pilot's own and private).  null: "
            "``$XDG_STATE_HOME/pilotid``, else ``~/.local/state/pilotid`` in the pilot "
            "account's home.  Every queue a pilot "
            "account runs on a node should share one, so that concurrent jobs count each "
            "other's holds and ``pilotid cleanup`` finds every journal."),
    Setting("transformation_dirs", list_of(absolute_path, "absolute paths"), [],
            "Where payload adapters look for a transformation given by name.  Nothing else "
            "is searched unless ``standin_transformations`` is true: a transformation missing "
            "from these directories is a code-21 failure naming where pilotid looked."),
    Setting("standin_transformations", flag, False,
            "Also search pilotid's stand-in transformations (``buildJob``, ``buildGen``, "
            "``runAthena``, ``runGen``), after ``transformation_dirs``.  For the demo and the "
            "tests only: a stand-in writes made-up outputs and reports success."),
    Setting("jobs_without_dn", choice(*JOBS_WITHOUT_DN), "refuse",
            "What to do with a job whose ``prodUserID`` names no user's DN: a production job "
            "(``NULL``, ``None``, ``no_one``, empty) or a user known by an e-mail address or "
            "a nickname.  ``refuse`` fails it (code 30) before anything runs; ``queue_proxy`` "
            "runs it with the queue's own ``proxy_file``, with no owner check, under the "
            "account that proxy maps to; it needs ``credential_source`` ``\"file\"`` and "
            "``proxy_file``.  ``token_subject`` (with a token source) runs it with a token "
            "whose subject (``sub`` or ``sub@iss``) is the ``prodUserID``, a production job "
            "with the source's token.  See :doc:`credentials` and :doc:`tokens`."),
    Setting("proxy_refresh_threshold", integer(0), 3 * 3600,
            "While a payload runs, a proxy with less than this many seconds left is renewed "
            "from the credential source (DIRAC's 3 hours); at launch the proxy must be "
            "valid for ``timeout`` seconds, or this many if shorter.  See :doc:`launcher`."),
    Setting("proxy_refresh_interval", integer(1), 3600,
            "How often (seconds) the launcher checks the proxy of a running payload."),
    Setting("syslog_facility", choice(*FACILITIES), DEFAULT_FACILITY,
            "Facility of the node's syslog lines, one a switch, refusal and job end (sudo's "
            "and gLExec's is ``authpriv``).  See the security notes (``docs/security.md``)."),
    Setting("syslog_address", optional(ValueType(
                "absolute socket path or ``host:port`` (UDP)", _syslog_address)),
            DEFAULT_ADDRESS, "Where those lines go; null sends none."),
    Setting("isolation", ValueType("string (registry name)", string), "none",
            "What the payload runs in around the switch: ``none``, ``bwrap`` (bubblewrap "
            "namespaces), or a plugin isolation's name; see docs/isolation.rst."),
    Setting("isolation_policy", choice(*ISOLATION_POLICIES), "required",
            "When the isolation cannot run: ``required`` fails the job (site's fault), "
            "``preferred`` runs it without when the test container fails before the job, "
            "``optional`` also when the runtime fails at launch; both with a WARNING."),
)

_GENERIC: Dict[str, Setting] = {setting.name: setting for setting in GENERIC_SETTINGS}


def field_names() -> Tuple[str, ...]:
    """The keys every queue may have: the generic fields and PanDA's ``glexec``.

    A queue also accepts the settings its strategies declare (``Registry.settings_of``).
    """
    return tuple(_GENERIC) + (GLEXEC_FIELD,)


def _parsed(queue: str, setting: Setting, raw: Any) -> Any:
    try:
        return setting.parse(raw)
    except InvalidValue as problem:
        raise _error(queue, setting.name, str(problem)) from None
    except ValueError as problem:  # a plugin's check may raise a plain ValueError
        raise _error(queue, setting.name, str(problem) or "invalid value") from None


# --- checks across fields ----------------------------------------------------------------


def _error(queue: str, key: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"queue {queue!r}, field {key!r}: {problem}")


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """A hint for a message: `` (did you mean 'X'?)`` naming the closest of ``known`` to
    ``word``, or '' when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_strategy_names(settings: QueueSettings, mapping: Mapping[str, Any],
                          registry: Registry) -> None:
    switcher_key = GLEXEC_FIELD if GLEXEC_FIELD in mapping else "switcher"
    wanted = [(switcher_key, SWITCHER, settings.switcher),
              ("credential_source", CREDENTIAL_SOURCE, settings.credential_source)]
    wanted += [("payloads", PAYLOAD, name) for name in settings.payloads]
    if settings.isolation != "none":  # known to every registry (build_strategies)
        wanted.append(("isolation", ISOLATION, settings.isolation))
    for key, kind, name in wanted:
        known = registry.names(kind)
        if name not in known:
            raise _error(settings.name, key,
                         f"unknown {label(kind)} {name!r}{did_you_mean(name, known)}; "
                         f"the known {label(kind)}s are {', '.join(known) or 'none'} "
                         "(a plugin's must be installed to be known)")


def _check_required_fields(settings: QueueSettings, mapping: Mapping[str, Any],
                          registry: Registry) -> None:
    """A generic field a chosen strategy needs stated (``REQUIRED_FIELDS``) but left out."""
    for kind, name in _chosen(settings):
        needed = getattr(registry.factory(kind, name), REQUIRED_FIELDS, None) or {}
        for key, why in needed.items():
            if key not in mapping:
                raise _error(settings.name, key, f"the {name} {label(kind)} needs this field "
                                                 f"given: {why}")


def _check_jobs_without_dn(settings: QueueSettings, options: Mapping[str, Any]) -> None:
    """``queue_proxy`` hands jobs naming no DN the queue's own proxy: only a proxy the site
    chose in the file source's ``proxy_file`` qualifies (a MyProxy fetch by a name that is
    not a DN could not be checked against its owner)."""
    if settings.jobs_without_dn == "queue_proxy" and (
            settings.credential_source != "file" or options.get("proxy_file") is None):
        raise _error(settings.name, "jobs_without_dn",
                     "'queue_proxy' runs jobs that name no user's DN with the queue's own "
                     "proxy, so it needs credential_source 'file' and a proxy_file (a proxy "
                     "the site chose); set both or leave jobs_without_dn 'refuse'")
    if settings.jobs_without_dn == "token_subject" and \
            settings.credential_source not in TOKEN_SOURCES:
        raise _error(settings.name, "jobs_without_dn",
                     "'token_subject' checks a job's prodUserID against its bearer token's "
                     f"subject, so it needs a token source ({' or '.join(TOKEN_SOURCES)})")


# --- the strategies' own settings --------------------------------------------------------


def _chosen(settings: QueueSettings) -> List[Tuple[str, str]]:
    return ([(SWITCHER, settings.switcher), (CREDENTIAL_SOURCE, settings.credential_source)]
            + [(PAYLOAD, name) for name in settings.payloads]
            + ([(ISOLATION, settings.isolation)] if settings.isolation != "none" else []))


def _accepted(settings: QueueSettings, registry: Registry) -> Dict[str, Tuple[Setting, str]]:
    """The settings the queue's strategies declare: name -> (setting, who declares it)."""
    accepted: Dict[str, Tuple[Setting, str]] = {}
    for kind, name in _chosen(settings):
        owner = f"the {name} {label(kind)}"
        for setting in registry.settings_of(kind, name):
            if setting.name in _GENERIC or setting.name == GLEXEC_FIELD:
                raise PluginError(f"{registry.origin(kind, name)} declares the setting "
                                  f"{setting.name!r}, which is a generic queue field; "
                                  "rename the strategy's setting")
            known = accepted.get(setting.name)
            if known is not None and known[0] != setting:
                raise PluginError(
                    f"{owner} and {known[1]} both declare a setting {setting.name!r}, "
                    "differently; share one Setting declaration or rename one of them")
            accepted.setdefault(setting.name, (setting, owner))
    return accepted


def _strategy_options(settings: QueueSettings, raw: Mapping[str, Any],
                      registry: Registry) -> Dict[str, Any]:
    accepted = _accepted(settings, registry)
    options: Dict[str, Any] = {}
    for key, value in raw.items():
        if key not in accepted:
            raise _error(settings.name, key, _unknown_field(key, settings, accepted, registry))
        options[key] = _parsed(settings.name, accepted[key][0], value)
    for key, (setting, owner) in accepted.items():
        if key in options:
            continue
        if setting.required:
            raise _error(settings.name, key,
                         f"{owner} needs this setting and the queue does not give it: "
                         f"{setting.doc}")
        options[key] = setting.value_default
    return options


def _unknown_field(key: str, settings: QueueSettings, accepted: Mapping[str, Any],
                   registry: Registry) -> str:
    if key == "name":
        return "a queue's name is its key under 'queues', not a field; remove 'name'"
    owners = registry.owners_of(key)
    if owners:
        kind = owners[0][0]
        whose = " and ".join(f"the {name} {label(k)}{'' if origin is None else f' ({origin})'}"
                             for k, name, origin in owners)
        if kind == PAYLOAD:
            used = f"its payload adapters are {', '.join(settings.payloads)}"
        else:
            used = f"it uses the {getattr(settings, kind)} {label(kind)}"
        return (f"belongs to {whose}, which this queue does not use ({used}); remove it, or "
                f"choose that {label(kind)}")
    known = sorted(field_names()) + sorted(accepted)
    hint = did_you_mean(key, known)
    if hint:
        return f"unknown field{hint}"
    return f"unknown field; this queue's fields are {', '.join(known)}"
