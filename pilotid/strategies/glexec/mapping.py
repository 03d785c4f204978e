"""Which account gLExec maps a proxy to: ``id`` run through gLExec, and its answer read.

The switcher's ``probe`` (with retries and a cache) and ``diagnose`` ask through here.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from typing import Callable, Mapping, Sequence, Tuple

from pilotid.errors import SwitchError
from pilotid.identity.accounts import Account
from pilotid.strategies.base import signal_label
from pilotid.strategies.glexec.binary import glexec_environment
from pilotid.strategies.glexec.exitcodes import (
    CLIENT_ERROR,
    EXIT_ERRORS,
    _cert_hint,
    _last_line,
    _switch_error,
)

#: ``id`` in the C locale, so that its output parses whatever the site whitelists.
PROBE_COMMAND = ("/usr/bin/env", "LC_ALL=C", "/usr/bin/id")
_ID_OUTPUT = re.compile(r"\buid=(\d+)(?:\(([^)]*)\))?\s+gid=(\d+)")

#: How the switcher calls gLExec: ``(argv, environment, what)`` -> (status, stdout, stderr).
GlexecCall = Callable[[Sequence[str], Mapping[str, str], str], Tuple[int, str, str]]


def parse_id_output(text: str) -> Account:
    """The ``Account`` in the output of ``id`` (``uid=1002(alice) gid=1002(alice) ...``).

    Raises ``SwitchError`` when the output is not ``id``'s.
    """
    found = _ID_OUTPUT.search(text)
    if not found:
        raise SwitchError(f"cannot read the probe's answer {text.strip()[:200]!r}: expected the "
                          "output of id (uid=N(name) gid=N(name) ...)")
    uid, name, gid = int(found.group(1)), found.group(2), int(found.group(3))
    if not name:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
    return Account(name, uid, gid)


def probe_mapping(call: GlexecCall, environ: Mapping[str, str], cert: Path) -> Account:
    """The account gLExec maps ``cert`` (as ``GLEXEC_CLIENT_CERT``) to: one ``id`` through
    ``call``, no retry.  Raises the ``SwitchError`` of gLExec's status (with a hint on the
    certificate for 201), or ``SwitchError`` for any other failure or answer."""
    env = glexec_environment(environ, cert)
    argv = [os.path.realpath(PROBE_COMMAND[0]), *PROBE_COMMAND[1:]]
    status, stdout, stderr = call(argv, env, "probing the target account")
    if status == 0:
        return parse_id_output(stdout)
    if status < 0:
        raise SwitchError(f"gLExec was killed by {signal_label(-status)} while probing")
    if status in EXIT_ERRORS:
        hint = _cert_hint(cert) if status == CLIENT_ERROR else ""
        raise _switch_error(status, "to probe the target account", stderr, hint)
    raise SwitchError(f"the gLExec probe ({' '.join(argv)}) exited {status}: "
                      f"{_last_line(stderr) or 'no message'}")
