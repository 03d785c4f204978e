"""Per-queue configuration: ``QueueSettings``, validated when loaded.

One JSON file holds the settings of several queues::

    {"queues": {"ANALY_DEMO": {"switcher": "noop", "credential_source": "file",
                               "proxy_file": "/path/to/x509up"}, ...}}

A queue's keys are the field names of ``QueueSettings`` (``name`` excepted: it is the
queue's key), plus PanDA's ``glexec`` field, understood for compatibility.  Everything is
checked when loaded: unknown keys, types, values, strategy names (against a ``Registry``)
and contradictions.  Each failure is a ``ConfigurationError`` naming the queue and the field
(and the file, when loaded from one).  ``docs/queues.rst`` is the reference.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Dict,
    Iterable,
    List,
    Mapping,
    Optional,
    Tuple,
    TypeVar,
    Union,
)

from pilotid.errors import ConfigurationError, UnknownQueueError
from pilotid.nodelog import DEFAULT_ADDRESS, DEFAULT_FACILITY, FACILITIES, parse_address

if TYPE_CHECKING:
    from pilotid.factory import Registry

log = logging.getLogger(__name__)

PathArg = Union[str, "os.PathLike[str]"]

#: PanDA's schedconfig field, accepted in place of ``switcher`` (see ``panda_glexec``).
GLEXEC_FIELD = "glexec"
ON_PROBE_FAILURE = ("fail", "reschedule")
SANDBOX_MODES = ("acl", "world")
GLEXEC_MODES = ("uid", "test")


@dataclass(frozen=True)
class QueueSettings:
    """One queue's settings, as validated from the queue settings file.

    ``switcher``, ``credential_source`` and ``payloads`` are registry names; the rest
    configure them.  ``glexec_mode`` keeps what PanDA's ``glexec`` field asked for
    (``'uid'``, ``'test'`` or ``None``).  Build one with ``from_mapping`` (or
    ``load_queue``) to have it checked; the constructor itself checks nothing.
    """

    name: str
    switcher: str = "noop"
    credential_source: str = "file"
    payloads: Tuple[str, ...] = ("buildJob", "runAthena")
    proxy_file: Optional[Path] = None
    grid_mapfile: Optional[Path] = None
    glexec_path: Optional[Path] = None
    sudo_path: Optional[Path] = None
    glexec_mode: Optional[str] = None
    on_probe_failure: str = "fail"
    probe_cache_lifetime: Optional[int] = None
    myproxy_server: Optional[str] = None
    myproxy_port: int = 7512
    sandbox: str = "acl"
    umask: int = 0o022
    egg_cache_base: Path = Path("/tmp")  # noqa: S108 - a fixed base by design (DESIGN.md)
    setup: Tuple[str, ...] = ()
    env_deny: Tuple[str, ...] = ()
    timeout: Optional[int] = None
    grace_period: int = 30
    accounting_file: Optional[Path] = None
    transformation_dirs: Tuple[Path, ...] = field(default=())
    switch_retries: int = 3
    switch_retry_delay: float = 5.0
    proxy_refresh_threshold: int = 3 * 3600
    proxy_refresh_interval: int = 3600
    syslog_facility: str = DEFAULT_FACILITY
    syslog_address: Optional[str] = DEFAULT_ADDRESS

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
                     registry: Optional["Registry"] = None) -> "QueueSettings":
        """Validate one queue's ``mapping`` (as read from JSON) and return its settings.

        ``registry`` says which strategy names exist (``Registry.default()`` when None).
        Raises ``ConfigurationError`` naming the queue and the field for an unknown key, a
        wrong type or value, an unknown strategy name or a contradiction.
        """
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"queue names must be non-empty strings, not {_show(name)}")
        if not isinstance(mapping, Mapping):
            raise ConfigurationError(
                f"queue {name!r}: its settings must be a JSON object of fields, "
                f"not {_show(mapping)}")
        values: Dict[str, Any] = {}
        for key, raw in mapping.items():
            if key == GLEXEC_FIELD:
                continue
            parse = _PARSERS.get(key) if isinstance(key, str) else None
            if parse is None:
                raise _error(name, str(key), _unknown_field(str(key)))
            try:
                values[key] = parse(raw)
            except _Invalid as problem:
                raise _error(name, key, str(problem)) from None
        if GLEXEC_FIELD in mapping:
            for rival in ("switcher", "glexec_mode"):
                if rival in mapping:
                    raise _error(name, GLEXEC_FIELD,
                                 f"PanDA's 'glexec' field and {rival!r} both say which switch "
                                 f"to use; keep one (write 'switcher' in new settings)")
            try:
                values["switcher"], values["glexec_mode"] = panda_glexec(mapping[GLEXEC_FIELD])
            except _Invalid as problem:
                raise _error(name, GLEXEC_FIELD, str(problem)) from None
        settings = cls(name=name, **values)
        if registry is None:
            from pilotid.factory import Registry

            registry = Registry.default()
        _check_strategy_names(settings, mapping, registry)
        _check_contradictions(settings, mapping, registry)
        return settings


def load_queues(path: PathArg, registry: Optional["Registry"] = None) -> Dict[str, QueueSettings]:
    """Load and validate every queue in the settings file at ``path``, in file order.

    Raises ``ConfigurationError`` naming the file for an unreadable file or invalid JSON
    (with its line), and naming the file, queue and field for an invalid queue.
    """
    queues = _queue_table(path)
    if registry is None:
        from pilotid.factory import Registry

        registry = Registry.default()
    return {name: _settings_in_file(path, name, mapping, registry)
            for name, mapping in queues.items()}


def load_queue(path: PathArg, name: str, registry: Optional["Registry"] = None) -> QueueSettings:
    """Load and validate the queue ``name`` from the settings file at ``path``.

    Only that queue is validated, so that one broken queue in a shared file does not stop
    the others.  Raises ``UnknownQueueError`` naming the queue, the file and the queues it
    has; otherwise as ``load_queues``.
    """
    queues = _queue_table(path)
    if name not in queues:
        known = ", ".join(queues) or "none"
        raise UnknownQueueError(
            f"queue {name!r} is not in {path}{_did_you_mean(name, queues)}; it has: {known}; "
            "check the queue name or add the queue to the file")
    return _settings_in_file(path, name, queues[name], registry)


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
    raise _Invalid(f"{_show(value)} is not a PanDA glexec value; use 'uid' (or 'True'), "
                   "'test', or 'False' (or '' or null) for no switch")


# --- reading the file --------------------------------------------------------------------


class _DuplicateKey(Exception):
    pass


def _reject_duplicates(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    result: Dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _read_document(path: PathArg) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ConfigurationError(
            f"queue settings file {path} is not UTF-8 text ({error.reason} at byte "
            f"{error.start})") from None
    except OSError as error:
        raise ConfigurationError(
            f"cannot read queue settings file {path}: {error.strerror or error}") from None
    try:
        return json.loads(text, object_pairs_hook=_reject_duplicates)
    except json.JSONDecodeError as error:
        raise ConfigurationError(
            f"queue settings file {path}, line {error.lineno} column {error.colno}: "
            f"invalid JSON: {error.msg}") from None
    except _DuplicateKey as error:
        raise ConfigurationError(
            f"queue settings file {path}: key {error.args[0]!r} is given twice in the same "
            "object; keep one") from None


def _queue_table(path: PathArg) -> Dict[str, Any]:
    document = _read_document(path)
    if not isinstance(document, dict) or "queues" not in document:
        raise ConfigurationError(
            f"queue settings file {path}: the top level must be an object with a 'queues' "
            'object, as in {"queues": {"MY_QUEUE": {"switcher": "noop"}}}')
    for key in document:
        if key != "queues":
            raise ConfigurationError(
                f"queue settings file {path}: unknown top-level key {key!r}"
                f"{_did_you_mean(key, ['queues'])}; only 'queues' is allowed there")
    queues = document["queues"]
    if not isinstance(queues, dict):
        raise ConfigurationError(
            f"queue settings file {path}: 'queues' must be an object of queue names to "
            f"settings, not {_show(queues)}")
    return queues


def _settings_in_file(path: PathArg, name: str, mapping: Any,
                      registry: Optional["Registry"]) -> QueueSettings:
    try:
        return QueueSettings.from_mapping(name, mapping, registry)
    except ConfigurationError as error:
        raise type(error)(f"{path}: {error}") from None


# --- fields ------------------------------------------------------------------------------


class _Invalid(Exception):
    """A value that does not fit its field; the message says why and how to fix it."""


_JSON_TYPES = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"),
               (list, "list"), (tuple, "list"), (dict, "object"), (type(None), "null"))


def _show(value: Any) -> str:
    kind = next((label for cls, label in _JSON_TYPES if isinstance(value, cls)),
                type(value).__name__)
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return text if kind == "null" else f"{kind} {text}"


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Invalid(f"must be a non-empty string, not {_show(value)}")
    return value


def _integer(low: int, high: Optional[int] = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid(f"must be a whole number, not {_show(value)}")
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise _Invalid(f"must be {bounds}, not {value}")
        return value
    return parse


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"must be a number of seconds, not {_show(value)}")
    if not value >= 0 or value == float("inf"):
        raise _Invalid(f"must be a finite number of seconds >= 0, not {value}")
    return float(value)


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise _Invalid(f"must be one of {', '.join(repr(c) for c in choices)}, "
                           f"not {_show(value)}")
        return value
    return parse


def _absolute_path(value: Any) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise _Invalid(f"must be an absolute path as a string, not {_show(value)}")
    if "\0" in value:
        raise _Invalid("must not contain a NUL character")
    path = Path(value)
    if not path.is_absolute():
        raise _Invalid(f"must be an absolute path (it is read on the worker node, whatever "
                       f"the current directory), not the relative path {value!r}")
    return path


#: The bits a umask may clear: the permission bits (a umask never sets a mode).
_UMASK_BITS = stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO


def _umask(value: Any) -> int:
    if not isinstance(value, str):
        raise _Invalid(f"must be an octal string such as \"0022\", not {_show(value)}"
                       + (" (a JSON number would be read as decimal)"
                          if isinstance(value, int) and not isinstance(value, bool) else ""))
    if not re.fullmatch(r"0?[0-7]{3}", value):
        raise _Invalid(f"must be an octal umask from \"0000\" to \"{_UMASK_BITS:04o}\", "
                       f"not {value!r}")
    return int(value, 8)


def _syslog_address(value: Any) -> str:
    try:
        parse_address(_string(value))
    except ValueError as problem:
        raise _Invalid(str(problem)) from None
    return value


_T = TypeVar("_T")


def _optional(parse: Callable[[Any], _T]) -> Callable[[Any], Optional[_T]]:
    def parse_optional(value: Any) -> Optional[_T]:
        return None if value is None else parse(value)
    return parse_optional


def _list_of(parse: Callable[[Any], _T], what: str,
             non_empty: bool = False) -> Callable[[Any], Tuple[_T, ...]]:
    def parse_list(value: Any) -> Tuple[_T, ...]:
        if not isinstance(value, (list, tuple)):
            raise _Invalid(f"must be a list of {what}, not {_show(value)}")
        if non_empty and not value:
            raise _Invalid(f"must name at least one of {what}")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(parse(item))
            except _Invalid as problem:
                raise _Invalid(f"item {index}: {problem}") from None
        return tuple(items)
    return parse_list


def _names(value: Any) -> Tuple[str, ...]:
    names = _list_of(_string, "payload adapter names", non_empty=True)(value)
    for name in names:
        if names.count(name) > 1:
            raise _Invalid(f"names {name!r} twice; list each payload adapter once")
    return names


_PARSERS: Dict[str, Callable[[Any], Any]] = {
    "switcher": _string,
    "credential_source": _string,
    "payloads": _names,
    "proxy_file": _optional(_absolute_path),
    "grid_mapfile": _optional(_absolute_path),
    "glexec_path": _optional(_absolute_path),
    "sudo_path": _optional(_absolute_path),
    "glexec_mode": _optional(_choice(*GLEXEC_MODES)),
    "on_probe_failure": _choice(*ON_PROBE_FAILURE),
    "probe_cache_lifetime": _optional(_integer(0)),
    "myproxy_server": _optional(_string),
    "myproxy_port": _integer(1, 65535),
    "sandbox": _choice(*SANDBOX_MODES),
    "umask": _umask,
    "egg_cache_base": _absolute_path,
    "setup": _list_of(_string, "setup lines (strings)"),
    "env_deny": _list_of(_string, "variable names or patterns (strings)"),
    "timeout": _optional(_integer(1)),
    "grace_period": _integer(0),
    "accounting_file": _optional(_absolute_path),
    "transformation_dirs": _list_of(_absolute_path, "absolute paths"),
    "switch_retries": _integer(1, 100),
    "switch_retry_delay": _seconds,
    "proxy_refresh_threshold": _integer(0),
    "proxy_refresh_interval": _integer(1),
    "syslog_facility": _choice(*FACILITIES),
    "syslog_address": _optional(_syslog_address),
}


def field_names() -> Tuple[str, ...]:
    """Every key a queue's settings may have: the fields of ``QueueSettings`` and ``glexec``."""
    return tuple(f.name for f in fields(QueueSettings) if f.name != "name") + (GLEXEC_FIELD,)


# --- checks across fields ----------------------------------------------------------------


def _error(queue: str, key: str, problem: str) -> ConfigurationError:
    return ConfigurationError(f"queue {queue!r}, field {key!r}: {problem}")


def _did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _unknown_field(key: str) -> str:
    if key == "name":
        return "a queue's name is its key under 'queues', not a field; remove 'name'"
    hint = _did_you_mean(key, field_names())
    if hint:
        return f"unknown field{hint}"
    return f"unknown field; the known fields are {', '.join(sorted(field_names()))}"


def _check_strategy_names(settings: QueueSettings, mapping: Mapping[str, Any],
                          registry: "Registry") -> None:
    from pilotid.factory import CREDENTIAL_SOURCE, PAYLOAD, SWITCHER, label

    switcher_key = GLEXEC_FIELD if GLEXEC_FIELD in mapping else "switcher"
    wanted = [(switcher_key, SWITCHER, settings.switcher),
              ("credential_source", CREDENTIAL_SOURCE, settings.credential_source)]
    wanted += [("payloads", PAYLOAD, name) for name in settings.payloads]
    for key, kind, name in wanted:
        known = registry.names(kind)
        if name not in known:
            raise _error(settings.name, key,
                         f"unknown {label(kind)} {name!r}{_did_you_mean(name, known)}; "
                         f"the known {label(kind)}s are {', '.join(known) or 'none'} "
                         "(a plugin's must be installed to be known)")


def _check_contradictions(settings: QueueSettings, mapping: Mapping[str, Any],
                          registry: "Registry") -> None:
    from pilotid.factory import SWITCHER

    switcher = registry.canonical(SWITCHER, settings.switcher)
    if switcher == "glexec" and "credential_source" not in mapping:
        raise _error(settings.name, "credential_source",
                     "the glexec switcher needs the user's proxy but no credential source is "
                     "configured; set credential_source ('myproxy' for the user's delegated "
                     "proxy, 'file' for a local one)")
    if switcher == "sudo" and settings.grid_mapfile is None:
        raise _error(settings.name, "grid_mapfile",
                     f"the {settings.switcher} switcher maps the user's DN to a local account "
                     "through a grid-mapfile; set grid_mapfile to its absolute path")
    if settings.glexec_mode is not None and switcher != "glexec":
        raise _error(settings.name, "glexec_mode",
                     f"only the glexec switcher has a mode, but the switcher is "
                     f"{settings.switcher!r}; remove glexec_mode or use switcher 'glexec'")
