"""The wrapper: a generated bash script that runs one payload as the account it starts as.

After an identity switch the payload's environment is gone (gLExec wipes it, ``sudo``
resets it), so the pilot writes a wrapper that rebuilds it and then runs the payload.  In
this order, the wrapper

1. creates the marker (a new file: an existing one makes it stop) with ``uid=<euid>``, the
   proof that the switch happened and the wrapper ran; in world mode
   (``target_directory``) in a new directory of its own, as the proxy copy;
2. where the switcher hands the proxy over on standard input, stores it as a new 0600 file
   at ``handover.payload_proxy`` (in the directory the launcher made for it with
   ``pilotid.workdir.make_handover_directory``), notes its device and inode in the marker
   (bash's loadable ``stat`` where the node has it, else the program) and reconnects
   standard input to ``/dev/null``;
3. exports what the allow-list passes of the pilot's environment (``filter_environment``:
   ``DEFAULT_PASSED`` and the queue's ``env_pass``, never ``DENIED_VARIABLES``, ``PATH``
   without relative or empty entries), then the command's own additions, then
   ``X509_USER_PROXY`` pointing at the user's proxy;
4. enters the work directory and sets the umask;
5. makes ``PYTHON_EGG_CACHE`` a fresh directory ``<egg_cache_base>/pilotid-egg-<32 hex>``
   whose name comes from ``/dev/urandom`` when the wrapper runs, with ``mkdir -m 700`` (no
   ``-p``): an existing directory is never reused, the wrapper stops instead (bash's
   loadable ``mkdir`` and ``rm`` builtins make and remove it where the node has them,
   ``bash_loadables``: two program starts less per job); its digits go in the marker
   (``egg=``) before it is made, for the pilot to have it removed if the wrapper is killed
   outright, even while it makes it;
6. runs the site's setup lines (trusted queue configuration, each through ``eval``), then
   re-asserts the work directory, umask, ``X509_USER_PROXY``, ``PYTHON_EGG_CACHE``, its
   shell options and its traps, which a setup script may have changed;
7. runs the payload's argv as a child in its own process group, with standard input from
   ``/dev/null``, forwards TERM, INT and HUP to that group, and waits for it;
8. kills (SIGKILL) whatever the payload left running in its process group, appends the
   payload's status to the marker, kills what it left elsewhere (with ``reaper_pid``: the
   pilot's adopted children of this account), removes the egg cache (on every other exit
   path too, through an EXIT trap) and exits with the payload's status.

What the marker holds and how the pilot reads it back is ``pilotid.payloads.marker``'s.
bash reports a payload killed by signal ``s`` as ``128+s`` and cannot tell it from a
payload that called ``exit(128+s)``; the wrapper follows the shell's convention.  Its own
failures exit with ``WRAPPER_FAILURE_STATUS`` (125) and leave ``error=...`` in the marker.

The script's text is the template ``wrapper.sh`` beside this module (package data, and
shellcheck'd as it stands): ``render_wrapper`` keeps the parts the job needs and fills its
``__NAME__`` placeholders in one pass.  Every value in the script is quoted by
``bash_quote``: ``shlex.quote`` where the value is printable ASCII, else bash's ``$'...'``
with ``\\xHH`` escapes, so the script stays ASCII (parsed the same under any locale) and
non-UTF-8 bytes reach the payload unchanged.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import re
import shlex
import signal
import stat
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

from pilotid.errors import ConfigurationError, JobDescriptionError, WorkdirError
from pilotid.identity.credfile import write_new
from pilotid.payloads.job import PayloadCommand
from pilotid.values import ProxyHandover

log = logging.getLogger(__name__)

WRAPPER_FAILURE_STATUS = 125
"""Exit status of the wrapper when it fails itself (marker line ``error=<reason>``)."""

LEFTOVER_ROUNDS = 100
"""How many times the wrapper looks for, and kills, processes the payload left behind
(each round kills the pilot's adopted children of the wrapper's account; their children
are adopted when they die, for the next round)."""

EGG_CACHE_PREFIX = "pilotid-egg-"
"""Name prefix of the egg cache directories the wrapper creates under its base."""

LOADABLE_DIRS = (Path("/usr/lib/bash"), Path("/usr/lib64/bash"))
"""Where distributions install bash's loadable builtins (Debian: package bash-builtins)."""

LOADABLE_BUILTINS = ("mkdir", "rm", "stat")
"""The loadable builtins the wrapper uses, where the node has them: ``mkdir`` and ``rm`` for
its egg cache, ``stat`` (as ``stat -L``: lstat) for the device and inode of the copies it
stores from standard input."""

DEFAULT_PASSED = (
    "PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM",
    "X509_CERT_DIR", "X509_VOMS_DIR", "VO_*_SW_DIR",
)
"""The pilot variables every payload gets (shell-style patterns against the whole name):
what sites expect to reach a job and holds no secret.  ``PATH`` (cleaned: ``clean_path``),
the locale and time zone (``LANG``, ``LANGUAGE``, ``LC_*``, ``TZ``), ``TERM``, the trust
anchors (``X509_CERT_DIR``, ``X509_VOMS_DIR``: public CA and VOMS files, not credentials)
and the EGI software areas ``VO_<VO>_SW_DIR``.  Anything else a queue passes by name in
``env_pass``; docs/wrapper.rst says why each entry is here."""

# glibc's own list of variables it drops for set-uid programs (UNSECURE_ENVVARS), minus
# LD_LIBRARY_PATH and TMPDIR, which a queue may pass with env_pass.
LOADER_VARIABLES = (
    "LD_PRELOAD", "LD_AUDIT", "LD_DEBUG*", "LD_PROFILE*", "LD_ORIGIN_PATH",
    "LD_USE_LOAD_BIAS", "LD_DYNAMIC_WEAK", "LD_SHOW_AUXV", "LD_HWCAP_MASK", "GCONV_PATH",
    "GETCONF_DIR", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "MALLOC_TRACE",
    "NIS_PATH", "NLSPATH", "RESOLV_HOST_CONF", "RES_OPTIONS", "TZDIR",
)
"""Names (and patterns) of loader-injection variables the payload never gets."""

IDENTITY_VARIABLES = (
    "HOME", "USER", "LOGNAME", "USERNAME", "MAIL", "SHELL", "XDG_RUNTIME_DIR", "KRB5CCNAME",
    "SUDO_*",
)
"""The pilot's identity: the switch sets the target's own (or leaves them unset)."""

CREDENTIAL_VARIABLES = (
    "X509_USER_PROXY", "X509_USER_CERT", "X509_USER_KEY", "BEARER_TOKEN", "BEARER_TOKEN_*",
    "PANDA_AUTH_*", "OIDC_*", "GLEXEC_*", "SSH_AUTH_SOCK", "SSH_AGENT_PID",
    "PYTHON_EGG_CACHE",
)
"""The pilot's credentials and tokens (and what the wrapper sets itself)."""

SHELL_VARIABLES = (
    "BASH", "BASH_*", "BASHOPTS", "BASHPID", "SHELLOPTS", "ENV", "CDPATH", "GLOBIGNORE",
    "GLOBSORT", "IFS", "PS0", "PS1", "PS2", "PS3", "PS4", "PROMPT_COMMAND", "PROMPT_DIRTRIM",
    "PWD", "OLDPWD", "SHLVL", "_", "HISTCMD", "HISTCONTROL", "HISTFILE", "HISTFILESIZE",
    "HISTIGNORE", "HISTSIZE", "HISTTIMEFORMAT", "CHILD_MAX", "COMP_CWORD", "COMP_KEY",
    "COMP_LINE", "COMP_POINT", "COMP_TYPE", "COMP_WORDBREAKS", "COMP_WORDS", "EPOCHREALTIME",
    "EPOCHSECONDS", "EUID", "UID", "PPID", "GROUPS", "EXECIGNORE", "FCEDIT", "FIGNORE",
    "FUNCNAME", "FUNCNEST", "HOSTFILE", "IGNOREEOF", "INPUTRC", "LINENO", "MAILCHECK",
    "MAILPATH", "OPTARG", "OPTERR", "OPTIND", "PIPESTATUS", "POSIXLY_CORRECT", "RANDOM",
    "SRANDOM", "SECONDS", "TIMEFORMAT", "TMOUT", "_pilotid_*",
)
"""bash's own variables (assigning them changes how the wrapper itself behaves), exported
functions (``BASH_FUNC_*``) and the wrapper's internal names (``_pilotid_*``)."""

DENIED_VARIABLES = LOADER_VARIABLES + IDENTITY_VARIABLES + CREDENTIAL_VARIABLES + SHELL_VARIABLES
"""What never passes, whatever the allow-list or the job says: shell-style patterns matched
against the whole name (a queue's ``env_pass: ["*"]`` still drops these)."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION_VALUE = re.compile(r"\s*\(\)\s*\{")
_MAX_ENV_STRING = 128 * 1024  # Linux's MAX_ARG_STRLEN: execve refuses a longer NAME=value


@dataclass(frozen=True)
class WrapperSpec:
    """Everything the wrapper needs.

    ``environment`` is the pilot's environment as it is (``os.environ.items()``):
    ``render_wrapper`` keeps what ``filter_environment`` passes with ``extra_pass`` (the
    queue's ``env_pass``) and ``extra_deny`` (the queue's ``env_deny``).  ``umask`` is the
    payload's; the launcher passes ``SandboxGrant.payload_umask(queue umask)``, 0 in the
    sandbox's world mode.  The marker must not exist yet and must be in a directory the
    target may write (the work directory); the wrapper refuses to run otherwise.

    ``reaper_pid`` is the pilot's PID where the pilot switched identity and made itself
    a child subreaper (``PR_SET_CHILD_SUBREAPER``): whatever the payload left running
    (a ``nohup`` child, a double-forked daemon in a session of its own) is then the
    pilot's child once its parent has gone, and the wrapper, after the payload, kills
    every child of that PID running as its own account (see ``LEFTOVER_ROUNDS``).
    ``None``: no switch (the wrapper runs as the pilot), nothing of the kind.

    ``strip_leftover_modes``: True where the wrapper runs as another account than the
    pilot's.  Its cleanup then takes setuid, setgid and world-write from the files the
    payload left in the work directory (one ``find``; only the target may chmod them).
    Without a switch they are the pilot's own files, no door into another account:
    reclaim reports what is world-writable, and no job pays for a walk of its tree.

    ``target_directory``: set in world mode, where every account may create names in the
    work directory.  A path prefix in the work directory: the wrapper's first step is then
    a new directory of its own, ``<prefix><32 random hex digits>`` (mode 0755: writable by
    the target alone), which holds the marker (``marker``, in place of ``marker``) and a
    proxy from standard input (``x509up``, in place of ``handover.payload_proxy``); see
    ``pilotid.payloads.targetdir``.
    """

    command: PayloadCommand
    workdir: Path
    handover: ProxyHandover
    marker: Path
    environment: Tuple[Tuple[str, str], ...]
    umask: int = 0o022
    egg_cache_base: Path = Path("/tmp")  # noqa: S108 - fixed base by design, never $TMPDIR
    extra_deny: Tuple[str, ...] = ()
    extra_pass: Tuple[str, ...] = ()
    reaper_pid: Optional[int] = None
    strip_leftover_modes: bool = False
    target_directory: Optional[Path] = None


def is_denied(name: str, extra_deny: Iterable[str] = ()) -> bool:
    """True where ``name`` matches the deny-list or one of ``extra_deny``.

    Every entry is a shell-style pattern (``fnmatch``, case-sensitive) matched against the
    whole name: ``USER`` denies ``USER`` only, never ``ATLAS_USER_AREA``; ``OIDC_*`` denies
    ``OIDC_TOKEN`` but not ``MY_OIDC``.
    """
    return bool(_deny_pattern(tuple(extra_deny)).fullmatch(name))


@functools.lru_cache(maxsize=32)
def _deny_pattern(extra_deny: Tuple[str, ...]) -> "re.Pattern[str]":
    """The deny-list and ``extra_deny`` as one compiled pattern: one match per name instead
    of one ``fnmatch`` per entry (a hundred entries, for every variable of every job)."""
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})"
                               for p in (*DENIED_VARIABLES, *extra_deny)))


@functools.lru_cache(maxsize=32)
def _pass_pattern(extra_pass: Tuple[str, ...]) -> "re.Pattern[str]":
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})"
                               for p in (*DEFAULT_PASSED, *extra_pass)))


def is_passed(name: str, extra_pass: Iterable[str] = ()) -> bool:
    """True where ``name`` matches ``DEFAULT_PASSED`` or one of ``extra_pass`` (whole-name
    ``fnmatch`` patterns, as ``is_denied``).  The deny-list still wins: see
    ``filter_environment``."""
    return bool(_pass_pattern(tuple(extra_pass)).fullmatch(name))


def clean_path(value: str) -> str:
    """``value`` (a ``PATH``) without its relative entries: ``.``, empty ones (which mean
    ``.``) and any other not starting with ``/`` would search the directory the payload
    happens to be in, its own work directory."""
    return ":".join(entry for entry in value.split(":") if entry.startswith("/"))


def passable(name: str, value: str) -> bool:
    """True where ``name=value`` can reach a payload at all: ``name`` a shell identifier,
    ``value`` neither an exported bash function (``() {``) nor holding a NUL byte."""
    return bool(_IDENTIFIER.fullmatch(name)) and "\0" not in value and \
        not _FUNCTION_VALUE.match(value)


def filter_environment(env: Mapping[str, str], extra_deny: Iterable[str] = (),
                       extra_pass: Iterable[str] = ()) -> Dict[str, str]:
    """Return what of the pilot's ``env`` the payload gets, in the same order.

    Kept: names matching ``DEFAULT_PASSED`` or ``extra_pass`` (the queue's ``env_pass``),
    unless they match ``DENIED_VARIABLES`` or ``extra_deny`` (whole-name patterns, see
    ``is_denied``), are not shell identifiers, are exported bash functions (values
    starting ``() {``) or hold a NUL byte.  ``PATH`` is cleaned (``clean_path``) and left
    out when nothing is left of it.  Names are logged at debug level, values never (they
    may be secrets).
    """
    denied = _deny_pattern(tuple(extra_deny))
    passed = _pass_pattern(tuple(extra_pass))
    kept: Dict[str, str] = {}
    dropped: List[str] = []
    for name, value in env.items():
        if name == "PATH":
            value = clean_path(value)
        if (not passed.fullmatch(name) or not passable(name, value)
                or denied.fullmatch(name) or (name == "PATH" and not value)):
            dropped.append(name)
        else:
            kept[name] = value
    if dropped:
        log.debug("environment variables not passed to the payload: %s", " ".join(dropped))
    return kept


def bash_quote(text: str) -> str:
    """Quote ``text`` as one bash word that expands to exactly its bytes.

    ``text`` is encoded as the file system encodes names (UTF-8, surrogate escapes for
    bytes that are not), so values decoded from ``os.environ`` come out byte for byte.
    Printable ASCII goes through ``shlex.quote``; anything else becomes ``$'...'`` with
    ``\\xHH`` escapes, so the word is plain ASCII.  A NUL cannot be passed: ``ValueError``.
    """
    if "\0" in text:
        raise ValueError("a NUL byte cannot be passed through a shell script")
    data = os.fsencode(text)
    if all(0x20 <= byte < 0x7F for byte in data):
        return shlex.quote(text)
    out = []
    for byte in data:
        if byte in (0x27, 0x5C):  # ' and \ are the only specials inside $'...'
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "$'" + "".join(out) + "'"


def bash_loadables() -> Tuple[str, ...]:
    """The loadable builtins (``LOADABLE_BUILTINS``) the wrapper may load: absolute paths.

    For each name, the first file of that name in ``LOADABLE_DIRS`` that is a regular file
    of root's, in a directory of root's, neither writable by anyone else: the shared
    object runs inside the wrapper, as the target.  A name with no such file is left out:
    the wrapper then starts the program of that name, as without loadables.
    """
    found = []
    for name in LOADABLE_BUILTINS:
        for directory in LOADABLE_DIRS:
            if _root_only(directory, stat.S_ISDIR) and _root_only(directory / name,
                                                                  stat.S_ISREG):
                found.append(str(directory / name))
                break
    return tuple(found)


def _root_only(path: Path, is_type: "Callable[[int], bool]") -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return is_type(info.st_mode) and info.st_uid == 0 and not info.st_mode & 0o022


#: The bits a umask may clear (it never sets a mode itself).
_PERMISSION_BITS = stat.S_IRWXU | stat.S_IRWXG | stat.S_IRWXO


def credential_exports(handover: ProxyHandover) -> str:
    """The assignments the wrapper exports to point the payload at its credential copies
    (the paths the template holds, in world mode in the target's own directory):
    ``X509_USER_PROXY`` (unless the job has only a token) and ``BEARER_TOKEN_FILE`` (when it
    has a token), never a token's value."""
    exports = []
    if handover.carries_proxy or handover.payload_token is None:
        exports.append('X509_USER_PROXY="$_pilotid_proxy"')
    if handover.payload_token is not None:
        exports.append('BEARER_TOKEN_FILE="$_pilotid_token"')
    return " ".join(exports)


def render_wrapper(spec: WrapperSpec) -> str:
    """Return the wrapper script for ``spec`` (see the module docstring for what it does).

    Raises ``JobDescriptionError`` for an empty argv or one holding a NUL byte,
    ``ConfigurationError`` for an impossible umask or a relative egg cache base, and
    ``ValueError`` for relative paths in ``spec`` and for a proxy from standard input stored
    directly in the work directory.
    """
    command = spec.command
    if not command.argv:
        raise JobDescriptionError("the payload command is empty: nothing to run")
    for index, arg in enumerate(command.argv):
        if "\0" in arg:
            raise JobDescriptionError(f"payload argument {index} contains a NUL byte, "
                                      "which no program can receive")
    if spec.umask < 0 or spec.umask & ~_PERMISSION_BITS:
        raise ConfigurationError(f"umask {spec.umask:o} is not a permission mask "
                                 f"(octal 0000 to {_PERMISSION_BITS:04o})")
    if not spec.egg_cache_base.is_absolute():
        raise ConfigurationError(f"egg_cache_base {spec.egg_cache_base} must be an absolute path")
    for label, path in (("workdir", spec.workdir), ("marker", spec.marker),
                        ("payload_proxy", spec.handover.payload_proxy),
                        ("target_directory", spec.target_directory or spec.workdir)):
        if not Path(path).is_absolute():
            raise ValueError(f"WrapperSpec.{label} must be an absolute path, not {path}")
    token = spec.handover.payload_token
    if token is not None and not Path(token).is_absolute():
        raise ValueError(f"WrapperSpec.payload_token must be an absolute path, not {token}")
    if spec.handover.from_stdin and spec.target_directory is None and \
            Path(spec.handover.stdin_place).parent == spec.workdir:
        # The work directory's default ACL would name the pilot on the proxy copy.
        raise ValueError("a proxy stored from standard input goes in a handover directory "
                         "of its own (make_handover_directory), not in the work directory")

    environment = list(filter_environment(dict(spec.environment), spec.extra_deny,
                                          spec.extra_pass).items())
    for name, value in command.environment:
        if not _IDENTIFIER.fullmatch(name):
            raise JobDescriptionError(f"payload environment variable name {name!r} is not a "
                                      "shell identifier")
        if "\0" in value:
            raise JobDescriptionError(f"payload environment variable {name} contains a NUL byte")
        if is_denied(name, spec.extra_deny):
            log.warning("payload environment variable %s is on the deny-list: not passed", name)
            continue
        environment.append((name, value))
    for name, value in environment:
        if len(os.fsencode(name)) + 1 + len(os.fsencode(value)) >= _MAX_ENV_STRING:
            log.warning("environment variable %s is longer than the kernel passes to a "
                        "program (128 KiB): the payload will fail to start", name)

    proxy = bash_quote(str(spec.handover.payload_proxy))
    umask = f"{spec.umask:04o}"
    if spec.reaper_pid is not None and not (isinstance(spec.reaper_pid, int)
                                            and spec.reaper_pid > 1):
        raise ValueError(f"WrapperSpec.reaper_pid must be a PID above 1, not {spec.reaper_pid}")
    # \builtin: an alias an earlier setup line defined never applies to it
    setup = tuple(f"\\builtin eval {bash_quote(line)} || \\_pilotid_fail setup "
                  f"\"site setup line {number} failed with status $?\""
                  for number, line in enumerate(command.setup, 1))
    values: Dict[str, _Value] = {
        "MARKER": bash_quote(str(spec.marker)),
        "TARGETDIR": bash_quote(str(spec.target_directory or "")),
        "REAPER": "" if spec.reaper_pid is None else str(spec.reaper_pid),
        "LOADABLES": " ".join(bash_quote(p) for p in bash_loadables()),
        "LEFTOVER_ROUNDS": str(LEFTOVER_ROUNDS),
        "FAILURE_STATUS": str(WRAPPER_FAILURE_STATUS),
        "SIGTERM": str(int(signal.SIGTERM)),
        "SIGINT": str(int(signal.SIGINT)),
        "SIGHUP": str(int(signal.SIGHUP)),
        "PROXY": proxy,
        "TOKEN": bash_quote(str(spec.handover.payload_token or "")),
        "CREDENTIAL_VARS": credential_exports(spec.handover),
        "ENVIRONMENT": tuple(f"builtin export {name}={bash_quote(value)}"
                             for name, value in environment),
        "WORKDIR": bash_quote(str(spec.workdir)),
        "UMASK": umask,
        "EGGBASE": bash_quote(str(spec.egg_cache_base)),
        "EGGPREFIX": EGG_CACHE_PREFIX,
        "SETUP": setup,
        "ARGV": " ".join(bash_quote(arg) for arg in command.argv),
        "MAXSIGNAL": str(128 + _max_signal()),
    }
    sections: Set[str] = set()
    if spec.handover.from_stdin:
        sections.add("from_stdin")
        if spec.handover.carries_proxy and not spec.handover.proxy_by_switch:
            sections.add("proxy_from_stdin")
        if spec.handover.payload_token is not None:
            sections.add("token_from_stdin")
    if spec.strip_leftover_modes:
        sections.add("strip_modes")
    if spec.target_directory is not None:
        sections.add("target_directory")
        if "proxy_from_stdin" in sections:
            sections.add("own_proxy")
    if setup:
        sections.add("setup")
    return _fill(_template(), sections, values)


def write_wrapper(spec: WrapperSpec, path: Path) -> Path:
    """Write the wrapper for ``spec`` to a new file at ``path``, mode 0700; return ``path``.

    The file is created with ``O_EXCL | O_NOFOLLOW``: an existing file or a symlink there
    is a ``WorkdirError``.  The sandbox later gives the target read and execute on it.
    """
    data = render_wrapper(spec).encode("ascii")  # bash_quote keeps the script ASCII
    return write_new(path, data, 0o700, WorkdirError, "the wrapper")


def rewrite_wrapper(spec: WrapperSpec, path: Path) -> Path:
    """Write the wrapper for ``spec`` over the pilot's own wrapper at ``path``, in place.

    For a value known only after the grant (the umask of a grant that fell back to world
    mode by itself, ``SandboxGrant.payload_umask``): the file keeps its inode, and so the
    access the grant gave the target.  ``O_NOFOLLOW``, and a file that is not a regular
    file of the pilot's is a ``WorkdirError``.
    """
    data = render_wrapper(spec).encode("ascii")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise WorkdirError(f"cannot rewrite the wrapper {path}: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise WorkdirError(f"the wrapper {path} is no longer the pilot's own file")
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError as error:
        raise WorkdirError(f"cannot rewrite the wrapper {path}: {error.strerror}") from None
    finally:
        os.close(fd)
    return path


def _max_signal() -> int:
    return int(getattr(signal, "SIGRTMAX", 64))


# The script itself is wrapper.sh, beside this module (package data), checked by shellcheck
# in `make lint`; render_wrapper fills it.
_PLACEHOLDER = re.compile(r"__([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*)__")
_LINE_PLACEHOLDER = re.compile(_PLACEHOLDER.pattern + r"\n")

#: A placeholder's value: a string within a line, or lines standing for a line of their own.
_Value = Union[str, Tuple[str, ...]]


def load_template() -> None:
    """Read and parse the wrapper template now (``pilotid agent``, before its children
    fork: they find it parsed)."""
    _template()


@functools.lru_cache(maxsize=None)
def _template() -> Tuple[Tuple[Optional[str], str], ...]:
    """``wrapper.sh`` as (section or None, text) parts, without its ``#@`` lines.

    The template's own syntax: a line starting ``#@`` is never written out;
    ``#@section NAME`` ... ``#@end`` encloses what is written only where the job needs it;
    ``__NAME__`` is a placeholder, a shell identifier so that shellcheck parses the
    template as it stands.
    """
    text = (resources.files("pilotid.payloads") / "wrapper.sh").read_text("ascii")
    parts: List[Tuple[Optional[str], str]] = []
    section: Optional[str] = None
    kept: List[str] = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#@"):
            kept.append(line)
            continue
        words = line[2:].split()
        if words[:1] == ["section"] or words[:1] == ["end"]:
            parts.append((section, "".join(kept)))
            kept = []
            section = words[1] if words[0] == "section" else None
    parts.append((section, "".join(kept)))
    return tuple(parts)


def _fill(parts: Iterable[Tuple[Optional[str], str]], sections: Set[str],
          values: Mapping[str, _Value]) -> str:
    """Join the parts of the sections wanted and replace every placeholder in one pass
    (a value is never searched for placeholders): a string where it stands, lines where
    the placeholder is a line of its own (none at all for no lines)."""
    text = "".join(part for section, part in parts if section is None or section in sections)

    def word(match: "re.Match[str]") -> str:
        value = values[match.group(1)]
        if not isinstance(value, str):
            raise ValueError(f"placeholder {match.group(0)} stands for lines: "
                             "it must be a line of its own in the template")
        return value

    out: List[str] = []
    for line in text.splitlines(keepends=True):
        whole = _LINE_PLACEHOLDER.fullmatch(line)
        value = values[whole.group(1)] if whole else None
        if isinstance(value, tuple):
            out.extend(entry + "\n" for entry in value)
        else:
            out.append(_PLACEHOLDER.sub(word, line))
    return "".join(out)
