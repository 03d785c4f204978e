"""Declaring a queue setting: ``Setting``, and the value types queue settings are read with.

A strategy (switcher, credential source or payload adapter, built-in or plugin) owns the
queue settings it reads.  It declares them as a class attribute, a tuple of ``Setting``::

    SETPRIV_PATH = Setting("setpriv_path", optional(absolute_path), None,
                           "The setpriv program; null means /usr/bin/setpriv.")

    @implementer(IIdentitySwitcher)
    class SetprivSwitcher(SwitcherBase):
        name = "setpriv"
        own_settings = (SETPRIV_PATH,)

and reads the checked value with ``settings.option(SETPRIV_PATH)``.  When a queue is
loaded, its keys are checked against the generic fields (``pilotid.queue``) and the
settings its chosen strategies declare; each value goes through its setting's ``parse``.

A value type is a callable ``parse(json_value) -> python_value`` that raises
``InvalidValue`` saying what is wrong; the ones here carry a ``label`` (the JSON type as
``docs/queues.rst`` shows it).  Any callable does: a plain function's setting is shown as
"see the meaning".
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Optional, Tuple, TypeVar

_T = TypeVar("_T")

#: The class attribute a strategy's factory declares its settings in.
OWN_SETTINGS = "own_settings"


class InvalidValue(ValueError):
    """A value that does not fit its setting; the message says why and how to fix it.

    Raised by a setting's ``parse``; the queue loader adds the queue and the field.
    """


class _Required:
    """The default of a setting a queue must give (see ``REQUIRED``)."""

    def __repr__(self) -> str:
        return "REQUIRED"


#: The ``default`` of a setting that has none: a queue using the strategy must give it.
REQUIRED: Any = _Required()


@dataclass(frozen=True)
class ValueType(Generic[_T]):
    """A parser of one JSON value, with the label the reference shows for its type."""

    label: str
    parse: Callable[[Any], _T]

    def __call__(self, value: Any) -> _T:
        """Return ``value`` read into its Python type; ``InvalidValue`` if it does not fit."""
        return self.parse(value)


@dataclass(frozen=True)
class Setting:
    """One queue setting: its key, how its value is read, its default, what it means.

    ``parse`` reads the JSON value (a ``ValueType`` or any callable raising
    ``InvalidValue``).  ``default`` is written as in ``queues.json`` (``"0022"``, ``null``,
    ``["a"]``) and read through ``parse`` (``value_default``); ``REQUIRED`` means a queue
    using the strategy must give it.  ``doc`` is one line for ``docs/queues.rst``.  A
    default that does not pass its own ``parse`` is refused here, when declared.
    """

    name: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"a setting's name is lower_case_with_underscores, "
                             f"not {self.name!r}")
        if not self.required:
            try:
                self.parse(self.default)
            except InvalidValue as problem:
                raise ValueError(f"setting {self.name!r}: its default {self.default!r} "
                                 f"{problem}") from None

    @property
    def required(self) -> bool:
        """True when a queue using the strategy must give this setting."""
        return self.default is REQUIRED

    @property
    def value_default(self) -> Any:
        """The default read into its Python type (``LookupError`` for a required one)."""
        if self.required:
            raise LookupError(f"setting {self.name!r} has no default: a queue must give it")
        return self.parse(self.default)

    @property
    def type_label(self) -> str:
        """The JSON type the reference shows, from ``parse``'s ``label``."""
        return getattr(self.parse, "label", None) or "see the meaning"

    @property
    def default_label(self) -> str:
        """The default as the reference shows it: JSON, or "required"."""
        return "required" if self.required else json.dumps(self.default)


def declared_settings(factory: Any) -> Tuple[Setting, ...]:
    """The settings a strategy's factory declares in ``own_settings`` (none if absent).

    Raises ``TypeError`` when the attribute is not a tuple or list of ``Setting``, or
    names one setting twice.
    """
    declared = getattr(factory, OWN_SETTINGS, ())
    if not isinstance(declared, (tuple, list)) or \
            not all(isinstance(setting, Setting) for setting in declared):
        raise TypeError(f"{OWN_SETTINGS} must be a tuple of pilotid.settings.Setting, "
                        f"not {declared!r}")
    names = [setting.name for setting in declared]
    for name in names:
        if names.count(name) > 1:
            raise TypeError(f"{OWN_SETTINGS} declares {name!r} twice")
    return tuple(declared)


# --- value types -------------------------------------------------------------------------

_JSON_TYPES = ((bool, "boolean"), (int, "number"), (float, "number"), (str, "string"),
               (list, "list"), (tuple, "list"), (dict, "object"), (type(None), "null"))


def show(value: Any) -> str:
    """A JSON value as an error message quotes it: its JSON type, then the value, short."""
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
        raise InvalidValue(f"must be a non-empty string, not {show(value)}")
    return value


#: A non-empty string.
string: ValueType[str] = ValueType("string", _string)


def integer(low: int, high: Optional[int] = None) -> ValueType[int]:
    """A whole number from ``low`` (to ``high``, when given); booleans are refused."""
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidValue(f"must be a whole number, not {show(value)}")
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise InvalidValue(f"must be {bounds}, not {value}")
        return value
    label = f"whole number, {low}..{high}" if high is not None else f"whole number >= {low}"
    return ValueType(label, parse)


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidValue(f"must be a number of seconds, not {show(value)}")
    if not value >= 0 or value == float("inf"):
        raise InvalidValue(f"must be a finite number of seconds >= 0, not {value}")
    return float(value)


#: A finite number of seconds >= 0, read as a float.
seconds: ValueType[float] = ValueType("number of seconds >= 0", _seconds)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidValue(f"must be true or false, not {show(value)}")
    return value


#: A JSON boolean.
flag: ValueType[bool] = ValueType("boolean", _flag)


def choice(*choices: str) -> ValueType[str]:
    """One of the strings ``choices``."""
    def parse(value: Any) -> str:
        if value not in choices:
            raise InvalidValue(f"must be one of {', '.join(repr(c) for c in choices)}, "
                               f"not {show(value)}")
        return value
    return ValueType(" or ".join(f'``"{c}"``' for c in choices), parse)


def _absolute_path(value: Any) -> Path:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"must be an absolute path as a string, not {show(value)}")
    if "\0" in value:
        raise InvalidValue("must not contain a NUL character")
    path = Path(value)
    if not path.is_absolute():
        raise InvalidValue(f"must be an absolute path (it is read on the worker node, "
                           f"whatever the current directory), not the relative path {value!r}")
    return path


#: An absolute path, read as a ``pathlib.Path``.
absolute_path: ValueType[Path] = ValueType("absolute path", _absolute_path)

#: The bits a umask may clear: the permission bits (a umask never sets a mode).
_UMASK_BITS = stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO


def _umask(value: Any) -> int:
    if not isinstance(value, str):
        raise InvalidValue(f"must be an octal string such as \"0022\", not {show(value)}"
                           + (" (a JSON number would be read as decimal)"
                              if isinstance(value, int) and not isinstance(value, bool) else ""))
    if not re.fullmatch(r"0?[0-7]{3}", value):
        raise InvalidValue(f"must be an octal umask from \"0000\" to \"{_UMASK_BITS:04o}\", "
                           f"not {value!r}")
    return int(value, 8)


#: A umask written as three or four octal digits in a string, read as an ``int``.
#: (``"0777"`` in its label is the highest umask a queue may write, not a file mode.)
umask: ValueType[int] = ValueType('octal string, ``"0000"``..``"0777"``', _umask)


def _label(parse: Callable[[Any], Any]) -> str:
    return getattr(parse, "label", None) or "value"


def optional(parse: Callable[[Any], _T]) -> ValueType[Optional[_T]]:
    """``parse``'s type, or null (read as ``None``)."""
    def parse_optional(value: Any) -> Optional[_T]:
        return None if value is None else parse(value)
    return ValueType(f"{_label(parse)} or null", parse_optional)


def list_of(parse: Callable[[Any], _T], what: str,
            non_empty: bool = False) -> ValueType[Tuple[_T, ...]]:
    """A list (read as a tuple) of ``parse``'s type; ``what`` names the items in messages."""
    def parse_list(value: Any) -> Tuple[_T, ...]:
        if not isinstance(value, (list, tuple)):
            raise InvalidValue(f"must be a list of {what}, not {show(value)}")
        if non_empty and not value:
            raise InvalidValue(f"must name at least one of {what}")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(parse(item))
            except InvalidValue as problem:
                raise InvalidValue(f"item {index}: {problem}") from None
        return tuple(items)
    return ValueType(f"list of {what}", parse_list)


__all__ = [
    "OWN_SETTINGS", "REQUIRED", "InvalidValue", "Setting", "ValueType", "absolute_path",
    "choice", "declared_settings", "integer", "list_of", "optional", "seconds", "show",
    "string", "umask",
]
