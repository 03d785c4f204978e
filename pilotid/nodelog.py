"""The node's own log of every identity switch: one syslog line a switch, refusal and end.

gLExec logged each switch through LCMAPS, and sudo logs each use, to the node's syslog
(``authpriv``), where a site's security team starts an incident response; pilotid's
accounting record lives where the pilot, and maybe the payload, can change it.  So each job
also sends the node's syslog, in sudo's convention (``KEY=value`` pairs joined by `` ; ``)::

    pilotid[4242]: pilot : EVENT=switch ; QUEUE=ANALY_SUDO ; PANDAID=6000001 ; ...

one ``EVENT=switch`` line when the payload is launched through the switcher, and one line
when the job ends: ``EVENT=refused`` where the switch was refused (outcome
``switch_failed``, or ``rescheduled`` after a refused probe), ``EVENT=end`` otherwise.
Every value is escaped (``escape``): a DN or an error message with a newline or a ``;`` in
it cannot forge a line or a field.  Lines go through the standard library's
``SysLogHandler`` to the queue's ``syslog_address`` (``/dev/log``, another socket path, or
``host:port`` over UDP) with its ``syslog_facility`` (``authpriv``).  A line that cannot be
sent is logged on the pilot's log, never raised: the job's result stands.
"""

from __future__ import annotations

import logging
import os
import pwd
import sys
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple

from pilotid.syslog_target import DEFAULT_ADDRESS, DEFAULT_FACILITY, parse_address

if TYPE_CHECKING:
    from logging.handlers import SysLogHandler

    from pilotid.identity.accounts import Account
    from pilotid.identity.credential import Credential
    from pilotid.queue import QueueSettings
    from pilotid.result import PayloadResult

log = logging.getLogger(__name__)

#: The program name the lines carry (``pilotid[pid]:``), as ``sudo:`` does.
IDENT = "pilotid"
#: Outcomes that end with a refused switch rather than a job that ran.
REFUSED_OUTCOMES = ("switch_failed", "rescheduled")
#: Longest value a line carries (an error message can be long; a datagram should not be).
MAX_VALUE = 400

def escape(value: Any) -> str:
    """``value`` as text fit for one field of one line.

    Printable ASCII and the space stay as they are, except ``\\`` (``\\\\``) and ``;``
    (``\\x3b``, the field separator); every other character is ``\\xHH`` per UTF-8 byte, so
    no value can end the line or start a field.  ``None`` is ``-``.  Longer than
    ``MAX_VALUE`` characters, the value is cut and ends in ``...``.
    """
    if value is None:
        return "-"
    text = str(value)
    if len(text) > MAX_VALUE:
        text = text[:MAX_VALUE] + "..."
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\")
        elif char == ";" or not " " <= char <= "~":
            out.append("".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", "replace")))
        else:
            out.append(char)
    return "".join(out)


def format_line(pilot: str, fields: Sequence[Tuple[str, Any]]) -> str:
    """The message after the ``pilotid[pid]:`` tag: ``pilot : KEY=value ; KEY=value``."""
    return f"{escape(pilot)} : " + " ; ".join(f"{key}={escape(value)}" for key, value in fields)


def pilot_name() -> str:
    """The pilot account's name (its uid where the user database has none)."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


class NodeLog:
    """Sends one queue's switch, refusal and end lines to the node's syslog.

    Built once per launcher (``from_settings``); the socket is opened at the first line
    and kept.  ``address`` None sends nothing (the queue set ``syslog_address`` to null).
    """

    def __init__(self, queue: str, facility: str = DEFAULT_FACILITY,
                 address: Optional[str] = DEFAULT_ADDRESS) -> None:
        self.queue = queue
        self.facility = facility
        self.address = address
        self._handler: Optional["SysLogHandler"] = None
        self._warned = False

    @classmethod
    def from_settings(cls, settings: "QueueSettings") -> "NodeLog":
        """The node log ``settings`` ask for (``syslog_facility``, ``syslog_address``)."""
        return cls(settings.name, getattr(settings, "syslog_facility", DEFAULT_FACILITY),
                   getattr(settings, "syslog_address", DEFAULT_ADDRESS))

    def switched(self, panda_id: int, credential: "Credential", account: "Account",
                 switcher: str, workdir: Any, command: Any, pid: int) -> None:
        """Log the launch of ``command`` as ``account`` through ``switcher`` (child ``pid``)."""
        if self.address is None:  # the queue asked for no lines: nothing to build either
            return
        fields = [("EVENT", "switch"), ("QUEUE", self.queue), ("PANDAID", panda_id),
                  ("SWITCHER", switcher), *identity_fields(credential, credential.identity),
                  ("USER", account.name), ("UID", account.uid), ("GID", account.gid),
                  ("PID", pid), ("PWD", workdir), ("COMMAND", command)]
        self.send("notice", fields)

    def ended(self, result: "PayloadResult", credential: Optional["Credential"]) -> None:
        """Log how the job of ``result`` ended: ``EVENT=refused`` or ``EVENT=end``."""
        if self.address is None:
            return
        refused = result.outcome in REFUSED_OUTCOMES
        account = result.account
        fields = [("EVENT", "refused" if refused else "end"), ("QUEUE", self.queue),
                  ("PANDAID", result.panda_id), ("SWITCHER", result.switcher),
                  *identity_fields(credential, result.user_dn),
                  ("USER", account.name if account else None),
                  ("UID", account.uid if account else None),
                  ("OUTCOME", result.outcome), ("EXIT", result.exit_code),
                  ("SIGNAL", result.signal), ("ERROR_CODE", result.error_code),
                  ("ERROR", result.error)]
        self.send("warning" if refused else "info", fields)

    def send(self, priority: str, fields: Sequence[Tuple[str, Any]]) -> None:
        """Send one line at syslog ``priority`` (``notice``, ``info``, ``warning``).

        A failure is an error on the pilot's log the first time, a debug line after; the
        next line tries again."""
        if self.address is None:
            return
        record = logging.LogRecord(__name__, logging.INFO, __file__, 0,
                                   format_line(pilot_name(), fields), None, None)
        record.levelname = priority.upper()  # what SysLogHandler.mapPriority reads
        try:
            handler = self._open()
            handler.ident = f"{IDENT}[{os.getpid()}]: "
            handler.emit(record)
        except OSError as error:
            self.close()
            if self._warned:
                log.debug("queue %s: node syslog at %s: %s", self.queue, self.address, error)
                return
            self._warned = True
            log.error("queue %s: cannot send the switch lines to the node's syslog at %s: %s; "
                      "the node's log keeps no trace of this pilot's jobs",
                      self.queue, self.address, error.strerror or error)

    def _open(self) -> "SysLogHandler":
        if self._handler is None:
            from logging.handlers import SysLogHandler

            assert self.address is not None
            handler = SysLogHandler(parse_address(self.address), self.facility)
            handler.priority_map = dict(handler.priority_map, NOTICE="notice")  # type: ignore[misc]
            handler.handleError = _raise_current  # type: ignore[method-assign]
            self._handler = handler
        return self._handler

    def close(self) -> None:
        """Close the socket (the next line opens it again)."""
        if self._handler is not None:
            self._handler.close()
            self._handler = None


def _raise_current(record: logging.LogRecord) -> None:
    # SysLogHandler.emit reports a failure on stderr by itself; send() wants it raised
    raise sys.exc_info()[1]  # type: ignore[misc]


def identity_fields(credential: Optional["Credential"],
                    dn: Optional[str]) -> List[Tuple[str, Any]]:
    """``DN``, ``ISSUER`` (the CA of the user's certificate) and ``FQANS`` (comma-separated,
    primary first) of ``credential``; without one, the DN the job named.  A credential with
    a bearer token adds ``TOKEN_ISSUER``, ``TOKEN_SUBJECT`` and ``TOKEN_GROUPS``."""
    if credential is None:
        return [("DN", dn), ("ISSUER", None), ("FQANS", None)]
    fields = [("DN", credential.identity), ("ISSUER", _user_issuer(credential)),
              ("FQANS", _fqans(credential))]
    if credential.token is not None:
        fields += [("TOKEN_ISSUER", credential.token.issuer),
                   ("TOKEN_SUBJECT", credential.token.subject),
                   ("TOKEN_GROUPS", ",".join(credential.token.groups) or None)]
    return fields


def _user_issuer(credential: "Credential") -> Optional[str]:
    from pilotid.identity.dn import slash_dn

    if credential.proxy is None:
        return None
    for certificate in credential.proxy.certificates:
        if slash_dn(certificate.subject) == credential.identity:
            return slash_dn(certificate.issuer)
    return None


#: ``pilotid.identity.voms.VOMS_AC_EXTENSION_OID``, looked for before that module (and the
#: ASN.1 parser it brings) is imported: most pilots' proxies for a plain switch carry none.
_VOMS_OID = "1.3.6.1.4.1.8005.100.100.5"


def _fqans(credential: "Credential") -> Optional[str]:
    if credential.proxy is None:
        return None
    certificates = credential.proxy.certificates
    if not _has_voms_extension(certificates):
        return None
    from pilotid.errors import ProxyFileError
    from pilotid.identity.voms import voms_attributes

    try:
        found = voms_attributes(certificates)
    except ProxyFileError:
        return "unreadable"
    return ",".join(fqan for attributes in found for fqan in attributes.fqans) or None



def _has_voms_extension(certificates: Any) -> bool:
    for certificate in certificates:
        try:
            if any(extension.oid.dotted_string == _VOMS_OID
                   for extension in certificate.extensions):
                return True
        except ValueError:  # unreadable extensions: voms_attributes tells what they are
            return True
    return False
