"""Where a queue sends its node log lines: the syslog address and facility it may name.

The queue settings validate ``syslog_address`` and ``syslog_facility`` with what is here,
and ``pilotid.nodelog`` sends its lines there; both need it, and the queue settings stand
below the node log (which reads a job's result and its queue's settings).
"""

from __future__ import annotations

from typing import Tuple, Union

#: Where the lines go unless the queue says otherwise: the node's syslog socket.
DEFAULT_ADDRESS = "/dev/log"
#: The facility unless the queue says otherwise: the one sudo and gLExec log to.
DEFAULT_FACILITY = "authpriv"
#: The facilities a queue may name (those of ``SysLogHandler.facility_names`` a site uses).
FACILITIES = ("auth", "authpriv", "daemon", "user", "local0", "local1", "local2", "local3",
              "local4", "local5", "local6", "local7")

#: A parsed address: a socket path, or ``(host, port)`` for UDP.
Address = Union[str, Tuple[str, int]]


def parse_address(text: str) -> Address:
    """``/path`` for a local socket, ``host:port`` for UDP; ``ValueError`` otherwise."""
    if text.startswith("/"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be an absolute socket path or host:port, not {text!r}")
    return (host.strip("[]"), int(port))
