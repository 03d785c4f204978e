"""The one exception tree of pilotid.

Every class says whose fault it is (``fault``) and carries a stable pilot error code
(``code``).  The codes are part of pilotid's interface: the CLI exits with them, the JSON
result and the accounting record carry them, and ``docs/errors.rst`` lists them.  They are
below 126 so that each is its own exit status and none looks like a shell's 126/127 or a
death by signal (128 + n).  Never renumber a code; add new ones.
"""

from __future__ import annotations

from typing import Dict, Type

OPERATOR = "operator"
USER = "user"
CREDENTIAL_SERVER = "credential server"
DISPATCHER = "dispatcher"
SITE = "site"
PAYLOAD = "payload"
PILOT = "pilot"


class PilotidError(Exception):
    """Base of every error pilotid raises on purpose.

    ``str(error)`` is one line meant for the person who has to act: what went wrong, and
    where known, how to fix it.
    """

    code = 1
    fault = PILOT


class ConfigurationError(PilotidError):
    """The queue settings or the plugin set-up are wrong. This is the operator's fault."""

    code = 10
    fault = OPERATOR


class UnknownQueueError(ConfigurationError):
    """The queue asked for is not in the queue settings file. The operator's fault."""

    code = 11


class PluginError(ConfigurationError):
    """A strategy plugin could not be loaded or does not provide its interface.

    This is the fault of whoever installed the plugin (the operator).
    """

    code = 12


class AgentSocketError(ConfigurationError):
    """``pilotid agent`` will not listen where it was told: the socket's directory is
    another account's, open to others, or not a directory, or an agent already listens
    there.  The fault of whoever started the agent (the pilot's operator)."""

    code = 18


class JobDescriptionError(PilotidError):
    """The job description from the dispatcher is malformed or misses a field.

    The dispatcher's (or the submitting user's) fault.
    """

    code = 20
    fault = DISPATCHER


class TransformationNotFoundError(JobDescriptionError):
    """No payload adapter accepts the job, or its transformation cannot be found."""

    code = 21


class WorkdirError(PilotidError):
    """The work directory does not exist or the pilot cannot write to it. The site's fault."""

    code = 22
    fault = SITE


class WorkdirLeftoversError(WorkdirError):
    """The work directory holds another job's pilotid files (its scratch files, a proxy
    handover directory, an older pilotid's ``.pilotid``), or a running job's grant journal
    names it (or a directory holding it, or inside it): a job still running there, or one
    that did not end cleanly.  The site's (or the pilot's) fault: use a fresh directory."""

    code = 26


class CredentialError(PilotidError):
    """The user's credential is missing, unusable or could not be obtained.

    The user's fault (expired or malformed proxy) or the credential server's (see the
    subclasses).
    """

    code = 30
    fault = USER


class ProxyFileError(CredentialError):
    """A proxy file cannot be read, or is not a PEM proxy at all. The user's fault."""

    code = 31


class ProxyExpiredError(CredentialError):
    """The proxy has expired, or has less time left than the job needs. The user's fault."""

    code = 32


class ProxyKeyError(CredentialError):
    """The proxy file has no private key, or one that does not match its certificate."""

    code = 33


class CredentialServerError(CredentialError):
    """The credential server could not be reached or answered nonsense. Its fault."""

    code = 35
    fault = CREDENTIAL_SERVER


class CredentialRefusedError(CredentialError):
    """The credential server refused to hand out the credential (policy, unknown name).

    Usually the user's fault: the credential was not delegated, or with a retrieval policy
    that does not name this pilot.
    """

    code = 36


class TokenError(CredentialError):
    """A bearer token cannot be used: its file is unsafe or unreadable (a ``bt_u`` file of
    another account, a symlink, not a regular file).  The user's fault; each refusal of the
    token itself is a subclass with its own code."""

    code = 90


class TokenMalformedError(TokenError):
    """The bearer token is no signed JWT at all: bad base64 or JSON, a JWE, too large."""

    code = 91


class TokenAlgorithmError(TokenError):
    """The token is signed with an algorithm pilotid refuses (only RS256 and ES256 pass:
    never ``none``, never a shared-secret HS256)."""

    code = 92


class TokenSignatureError(TokenError):
    """The token's signature does not verify with any of its issuer's keys, or it names a
    key (``kid``) the queue's key set does not hold."""

    code = 93


class TokenIssuerError(TokenError):
    """The token's issuer (``iss``) is not among those the queue trusts (``token_issuers``)."""

    code = 94


class TokenExpiredError(TokenError):
    """The token has expired (``exp``), or has less time left than the job needs."""

    code = 95


class TokenNotYetValidError(TokenError):
    """The token is not valid yet (``nbf`` beyond the allowed clock skew)."""

    code = 96


class TokenClaimError(TokenError):
    """A claim the WLCG profile requires (``sub``, ``exp``, ``iss``, ``wlcg.ver``) is missing,
    or a claim has the wrong type (``wlcg.groups`` not a list of strings, say)."""

    code = 97


class TokenAudienceError(TokenError):
    """The token is not meant for this queue: its ``aud`` is missing, or names none of the
    audiences the queue accepts (``token_audiences``)."""

    code = 98


class AccountMappingError(PilotidError):
    """The user's identity maps to no local account on this node. The site's fault."""

    code = 40
    fault = SITE


class SwitchError(PilotidError):
    """The identity switch failed before the payload ran. The site's fault."""

    code = 50
    fault = SITE


class SwitchUnavailableError(SwitchError):
    """The switch program (gLExec, sudo) is missing or cannot be executed."""

    code = 51


class SwitchNotPermittedError(SwitchError):
    """The switch refused: sudo has no rule, gLExec's authorisation (LCAS/Argus) said no."""

    code = 52


class SwitchClientError(SwitchError):
    """The switch refused the pilot's call (gLExec 201: bad proxy, permissions, command)."""

    code = 53


class SwitchSystemError(SwitchError):
    """The switch is misconfigured on this node (gLExec 202: configuration, LCMAPS)."""

    code = 54


class SwitchExecError(SwitchError):
    """The switch worked but the wrapper could not be executed as the target (126)."""

    code = 55


class RescheduleRequest(SwitchError):
    """The probe failed and the queue asks to hand the job back rather than fail it."""

    code = 56


class IsolationError(SwitchError):
    """The isolation runtime (bubblewrap) failed before it started the wrapper: it refused
    its options or died.  The site's fault, never the payload's."""

    code = 57


class IsolationUnavailableError(IsolationError):
    """The isolation runtime is missing or cannot be executed (``bwrap_path``)."""

    code = 58


class IsolationNamespaceError(IsolationError):
    """The kernel refused the isolation's namespaces: unprivileged user namespaces are off
    (``user.max_user_namespaces``, ``kernel.unprivileged_userns_clone``, AppArmor)."""

    code = 59


class IsolationBindError(IsolationError):
    """A directory the isolation must bind into the container (``bwrap_binds``, a
    transformation directory, the work directory) is missing on this node."""

    code = 62


class SandboxError(PilotidError):
    """The work directory could not be opened up to the target account. The site's fault."""

    code = 60
    fault = SITE


class AclUnsupportedError(SandboxError):
    """The queue asks for POSIX ACLs (``sandbox: "acl"``) and the work directory's file
    system has none. The site's fault: put the work directory on a file system with ACLs,
    or accept world mode for the queue (``sandbox: "acl-or-world"``)."""

    code = 61


class WorkRootUnreachableError(SandboxError):
    """The target account cannot traverse a directory above the queue's ``work_root`` (or
    above the work directory, where the queue declares none), which pilotid never changes.
    The site's fault: make the work root traversable for the job accounts (``chmod o+x``
    on the directories above it, or a group of the job accounts), or declare a
    ``work_root`` of the pilot's own above the work directory."""

    code = 66


class PayloadFailedError(PilotidError):
    """The payload ran as the target and exited non-zero. The payload's fault."""

    code = 70
    fault = PAYLOAD


class PayloadTerminatedError(PilotidError):
    """The payload was killed by a signal. The payload's fault, unless the pilot sent it."""

    code = 71
    fault = PAYLOAD


class PayloadTimeoutError(PilotidError):
    """The payload ran longer than the queue's or job's time limit and was stopped."""

    code = 72
    fault = PAYLOAD


class PilotInterruptedError(PilotidError):
    """The pilot itself was told to stop (SIGTERM, SIGINT) and stopped the payload."""

    code = 73
    fault = PILOT


class AgentUnreachableError(PilotidError):
    """``pilotid run`` was to hand its job to an agent (``PILOTID_AGENT``) that is not
    there, refused the connection, or whose process for the job ended without an exit
    status.  The pilot's fault: its agent is not running, or runs as another account."""

    code = 78
    fault = PILOT


class InternalError(PilotidError):
    """An unexpected exception inside pilotid or a strategy plugin ended the job.

    This is pilotid's (or the plugin's) fault, never the user's: a bug, or a failure
    nothing expected (a ``PermissionError``, ``Too many open files``).  The job still has
    its result and accounting record, its processes were stopped and the work directory
    given back; the pilot's log has the traceback to report.
    """

    code = 80
    fault = PILOT


def error_codes() -> Dict[int, Type[PilotidError]]:
    """Return every error class by its code; the docs' error table is checked against it."""
    found: Dict[int, Type[PilotidError]] = {}
    pending = [PilotidError]
    while pending:
        cls = pending.pop()
        found[cls.code] = cls
        pending.extend(cls.__subclasses__())
    return dict(sorted(found.items()))


def exit_status(code: int) -> int:
    """Clip a pilot error code to a valid process exit status (0 for success, at most 255)."""
    return max(0, min(int(code), 255))
