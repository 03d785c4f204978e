"""The wrapper's marker: the file that proves the switch happened, and how the pilot reads it.

The wrapper (``pilotid.payloads.wrapper``) creates the marker as soon as it runs as the
target and appends to it as the payload ends; the pilot reads it back with ``read_marker``
into a ``pilotid.values.WrapperMarker``, and so tells a switch failure from a payload
failure without guessing from the exit status.

The marker, one ``key=value`` per line::

    uid=<effective uid>        always, first, as soon as the wrapper runs
    status=<n>                 the payload's exit status; 128+s for a death by signal s
    signal=<s>                 with status, when 128 < status <= 128+SIGRTMAX
    error=<reason>             the wrapper itself failed (or was stopped) before the
                               payload ended; reason is one of WRAPPER_ERRORS (the wrapper then
                               exits with its WRAPPER_FAILURE_STATUS, 125)

bash reports a payload killed by signal ``s`` as ``128+s`` and cannot tell it from a
payload that called ``exit(128+s)``; the wrapper follows the shell's convention and writes
``signal=s`` for any status in that range.  A marker the pilot cannot trust (not a regular
file, too long, malformed) reads as no marker at all.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from pathlib import Path
from typing import Dict, Optional

from pilotid.values import WrapperMarker

log = logging.getLogger(__name__)

WRAPPER_ERRORS = ("marker", "proxy", "workdir", "egg-cache", "setup", "interrupted")
"""The reasons an ``error=`` marker line can give: which step of the wrapper failed, or
``interrupted`` when TERM/INT/HUP arrived before the payload started (``signal=`` says
which)."""


def read_marker(path: Path) -> Optional[WrapperMarker]:
    """Return what the wrapper recorded at ``path``, or ``None`` if it never ran.

    ``None`` also for a marker that is not a regular file or does not parse (logged as a
    warning): the pilot cannot trust it.  ``payload_status`` is 128+s for a death by
    signal s (``signal`` is then s), ``None`` when the payload did not finish.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as error:
        log.warning("wrapper marker %s cannot be read (%s): ignoring it", path, error.strerror)
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.warning("wrapper marker %s is not a regular file: ignoring it", path)
            return None
        data = os.read(fd, 4097)
    finally:
        os.close(fd)
    marker = _parse_marker(data)
    if marker is None:
        log.warning("wrapper marker %s is malformed: ignoring it", path)
    return marker


def _parse_marker(data: bytes) -> Optional[WrapperMarker]:
    if len(data) > 4096 or not data.endswith(b"\n"):
        return None
    try:
        lines = data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None
    fields: Dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or key in fields or key not in ("uid", "status", "signal", "error"):
            return None
        fields[key] = value
    if not lines or not lines[0].startswith("uid="):
        return None
    numbers: Dict[str, Optional[int]] = {}
    for key in ("uid", "status", "signal"):
        text = fields.get(key)
        if text is not None and not re.fullmatch(r"[0-9]{1,10}", text):
            return None
        numbers[key] = None if text is None else int(text)
    error = fields.get("error")
    if error is not None and error not in WRAPPER_ERRORS:
        return None
    uid = numbers["uid"]
    assert uid is not None
    return WrapperMarker(uid=uid, payload_status=numbers["status"], signal=numbers["signal"],
                         error=error)
