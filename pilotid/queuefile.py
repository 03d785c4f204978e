"""The queue settings file: one JSON document holding the settings of several queues.

::

    {"queues": {"ANALY_DEMO": {"switcher": "noop", "credential_source": "file",
                               "proxy_file": "/path/to/x509up"}, ...}}

``load_queues`` and ``load_queue`` read it, refuse what is not a well-formed document (not
UTF-8, invalid JSON with its line, a key given twice in one object, an unknown top-level
key), and hand each queue's object to ``QueueSettings.from_mapping``, whose
``ConfigurationError`` then names the file as well as the queue and the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from pilotid.errors import ConfigurationError, UnknownQueueError
from pilotid.queue import QueueSettings, did_you_mean
from pilotid.registry import Registry
from pilotid.settings import show

PathArg = Union[str, "os.PathLike[str]"]


def load_queues(path: PathArg, registry: Optional[Registry] = None) -> Dict[str, QueueSettings]:
    """Load and validate every queue in the settings file at ``path``, in file order.

    Raises ``ConfigurationError`` naming the file for an unreadable file or invalid JSON
    (with its line), and naming the file, queue and field for an invalid queue.
    """
    queues = _queue_table(path)
    if registry is None:
        registry = Registry.default()
    return {name: _settings_in_file(path, name, mapping, registry)
            for name, mapping in queues.items()}


def load_queue(path: PathArg, name: str, registry: Optional[Registry] = None) -> QueueSettings:
    """Load and validate the queue ``name`` from the settings file at ``path``.

    Only that queue is validated, so that one broken queue in a shared file does not stop
    the others.  Raises ``UnknownQueueError`` naming the queue, the file and the queues it
    has; otherwise as ``load_queues``.
    """
    queues = _queue_table(path)
    if name not in queues:
        known = ", ".join(queues) or "none"
        raise UnknownQueueError(
            f"queue {name!r} is not in {path}{did_you_mean(name, queues)}; it has: {known}; "
            "check the queue name or add the queue to the file")
    return _settings_in_file(path, name, queues[name], registry)


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
                f"{did_you_mean(key, ['queues'])}; only 'queues' is allowed there")
    queues = document["queues"]
    if not isinstance(queues, dict):
        raise ConfigurationError(
            f"queue settings file {path}: 'queues' must be an object of queue names to "
            f"settings, not {show(queues)}")
    return queues


def _settings_in_file(path: PathArg, name: str, mapping: Any,
                      registry: Optional[Registry]) -> QueueSettings:
    try:
        return QueueSettings.from_mapping(name, mapping, registry)
    except ConfigurationError as error:
        raise type(error)(f"{path}: {error}") from None
