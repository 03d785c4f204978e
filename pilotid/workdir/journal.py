"""The grant journal: what one job's grant changed, written down before each change.

A pilot killed in the middle of a job cannot reclaim its work directory; its journal lets
``pilotid cleanup`` (or the next ``pilotid run`` on the node) do it.  One file a job,
``<state_dir>/journals/<host>-<pid>-<random>.jsonl``, 0600, created with ``O_EXCL |
O_NOFOLLOW`` in a 0700 directory of the pilot's own; JSON lines, each written (one
``write``) before the change it describes:

* the header: this host, its boot, the pilotid process (pid and start time), the work
  directory, its work root, the target account, the pilot's uid and the sandbox mode;
* ``parent``: a parent directory the job relies on (``u:<target>:x``), with the entry it
  had before the first job of that target needed it (``previous``, ``had_acl``);
* ``object``: one object of the work directory as it was (device, inode, mode, raw ACLs);
* ``released``: a parent the job no longer relies on;
* ``removed``: an object of the grant the pilot removed for good (its scratch files,
  ``pilotid.workdir.removed``), not to be looked for.

The journal is removed when the job's reclaim is complete.  Which jobs rely on a parent
is also kept as one small file a job and parent in ``<state_dir>/holds``
(``<device>-<inode>-<uid>.<journal>``), read under the parent's lock (``parents``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import secrets
import socket
import stat
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from pilotid.errors import ConfigurationError, SandboxError
from pilotid.identity.accounts import Account
from pilotid.workdir.changes import ParentChange, PathChange, SandboxGrant

log = logging.getLogger(__name__)

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_APPEND
_APPEND = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_APPEND
_SUFFIX = ".jsonl"


class GrantJournal:
    """One job's journal, open to append to.  Build it with ``create`` (a new job) or
    ``reopen`` (a dead job's, to finish its reclaim)."""

    def __init__(self, state_dir: Path, path: Path, fd: int) -> None:
        self.state_dir = state_dir
        self.path = path
        self._fd = fd

    @property
    def name(self) -> str:
        """The journal's name without its suffix: what its hold files end with."""
        return self.path.name[: -len(_SUFFIX)]

    @classmethod
    def create(cls, state_dir: Path, workdir: Path, account: Account, mode: str,
               pilot_uid: int, work_root: Optional[Path]) -> "GrantJournal":
        """A new journal in ``state_dir`` (made 0700 if missing) with its header written.

        ``ConfigurationError`` where ``state_dir`` is not a private directory of the
        pilot's; ``SandboxError`` where the journal cannot be written.
        """
        journals = private_directory(state_dir) / "journals"
        private_directory(journals)
        pid = os.getpid()
        path = journals / f"{socket.gethostname()}-{pid}-{secrets.token_hex(6)}{_SUFFIX}"
        # written under another name, then renamed: a journal is never seen without header
        fresh = path.with_suffix(".new")
        try:
            fd = os.open(fresh, _NEW, 0o600)
        except OSError as error:
            raise SandboxError(f"cannot create the grant journal {path}: {error.strerror}"
                               ) from None
        journal = cls(state_dir, fresh, fd)
        journal._write({"host": socket.gethostname(), "boot": boot_id(), "pid": pid,
                        "start": process_start(pid), "workdir": str(workdir),
                        "work_root": None if work_root is None else str(work_root),
                        "account": [account.name, account.uid, account.gid],
                        "pilot_uid": pilot_uid, "mode": mode})
        os.rename(fresh, path)
        journal.path = path
        return journal

    @classmethod
    def reopen(cls, state_dir: Path, path: Path) -> "GrantJournal":
        """The existing journal ``path`` of ``state_dir``, to append to."""
        return cls(state_dir, path, os.open(path, _APPEND))

    @property
    def closed(self) -> bool:
        """Whether the journal is closed (removed after a complete reclaim, or left)."""
        return self._fd < 0

    def fileno(self) -> int:
        """The journal's descriptor (to lock it while a dead job's grant is undone)."""
        return self._fd

    def record_parent(self, change: ParentChange) -> None:
        """Write down that this job relies on the target's entry on a parent."""
        self._write({"parent": str(change.path), "device": change.device,
                     "inode": change.inode, "previous": change.previous,
                     "had_acl": change.had_acl})

    def record_released(self, change: ParentChange) -> None:
        """Write down that this job no longer relies on a parent."""
        self._write({"released": str(change.path)})

    def record_object(self, change: PathChange) -> None:
        """Write down one object of the work directory as it was before the grant."""
        # one line a changed object (100,000 on a big tree): formatted here, not by json
        self._write_line(
            f'{{"object":{json.dumps(change.path)},"device":{change.device:d},'
            f'"inode":{change.inode:d},"mode":{change.mode:d},'
            f'"access":{_encoded(change.access_acl)},'
            f'"default":{_encoded(change.default_acl)}}}\n'.encode())

    def record_removed(self, device: int, inode: int) -> None:
        """Write down that the pilot removed one object of the grant for good."""
        self._write({"removed": [device, inode]})

    def remove(self) -> None:
        """The job's reclaim is complete: close and remove the journal."""
        self.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def close(self) -> None:
        """Close the journal, leaving it in place (its reclaim is not complete)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _write(self, entry: Dict[str, Any]) -> None:
        self._write_line(json.dumps(entry, separators=(",", ":")).encode() + b"\n")

    def _write_line(self, line: bytes) -> None:
        try:
            if os.write(self._fd, line) != len(line):
                raise OSError(0, "short write")
        except OSError as error:
            raise SandboxError(f"cannot write the grant journal {self.path}: "
                               f"{error.strerror}; nothing more is changed") from None


def private_directory(path: Path) -> Path:
    """``path``, made 0700 (with its missing parents) if missing, checked to be a real
    directory of the pilot's that no one else may enter; ``ConfigurationError`` if not."""
    with contextlib.suppress(FileExistsError):
        os.makedirs(path, mode=0o700)
    info = os.lstat(path)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & 0o077):
        raise ConfigurationError(
            f"{path} (pilotid's state directory) must be a directory of the pilot's own, "
            f"mode 0700, not a symlink: it is uid {info.st_uid}, mode "
            f"{stat.filemode(info.st_mode)}; fix it or set the queue's state_dir elsewhere")
    return path


def read_journal(path: Path) -> Tuple[SandboxGrant, Dict[str, Any]]:
    """The grant a journal describes (objects not removed, and the parents not released)
    and its header.  ``ValueError`` for a journal that is not one."""
    with open(path, "rb") as stream:
        lines = stream.read().splitlines()
    if not lines:
        raise ValueError("an empty journal")
    header = json.loads(lines[0])
    changes: List[PathChange] = []
    parents: Dict[str, ParentChange] = {}
    removed: Set[Tuple[int, int]] = set()
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except ValueError:
            break  # the last line of a pilot killed while writing it
        if "object" in entry:
            changes.append(PathChange(entry["object"], entry["device"], entry["inode"],
                                      entry["mode"], _decoded(entry["access"]),
                                      _decoded(entry["default"])))
        elif "parent" in entry:
            parents[entry["parent"]] = ParentChange(
                Path(entry["parent"]), entry["previous"], entry["had_acl"], entry["device"],
                entry["inode"])
        elif "released" in entry:
            parents.pop(entry["released"], None)
        elif "removed" in entry:
            removed.add((entry["removed"][0], entry["removed"][1]))
    name, uid, gid = header["account"]
    grant = SandboxGrant(Path(header["workdir"]), Account(name, uid, gid), header["mode"],
                         header["pilot_uid"], tuple(changes), tuple(parents.values()),
                         None if header["work_root"] is None else Path(header["work_root"]))
    return grant.without(removed), header


def dead_journals(state_dir: Path) -> List[Path]:
    """The journals in ``state_dir`` of this host whose pilotid process is gone (another
    boot, no such pid, or a pid reused by a later process).  ``ConfigurationError`` as
    ``private_directory``: a journal someone else could write is never trusted."""
    journals = private_directory(private_directory(state_dir) / "journals")
    host, boot = socket.gethostname(), boot_id()
    dead = []
    for path in named_with_suffix(journals, _SUFFIX):
        try:
            with open(path, "rb") as stream:
                header = json.loads(stream.readline())
        except (OSError, ValueError):
            log.warning("%s is not a grant journal pilotid can read: left alone", path)
            continue
        if _gone(header, host, boot):
            dead.append(path)
    return dead


def running_journals(state_dir: Path) -> List[Tuple[Path, Dict[str, Any]]]:
    """The journals in ``state_dir`` of this host whose pilotid process still runs, with
    their headers; none where ``state_dir`` has no journals yet (nothing is made)."""
    if not (state_dir / "journals").is_dir():
        return []
    journals = private_directory(private_directory(state_dir) / "journals")
    host, boot = socket.gethostname(), boot_id()
    running = []
    for path in named_with_suffix(journals, _SUFFIX):
        try:
            with open(path, "rb") as stream:
                header = json.loads(stream.readline())
        except (OSError, ValueError):
            continue
        if header.get("host") == host and not _gone(header, host, boot):
            running.append((path, header))
    return running


def remove_unfinished_journals(state_dir: Path) -> None:
    """Remove the journals of this host that a pilot killed while creating them left under
    their ``.new`` name (its header at most: nothing was granted yet), and the empty ones
    (the header lost in a node's crash: nothing to undo), once their process is gone."""
    journals = private_directory(private_directory(state_dir) / "journals")
    for path in named_with_suffix(journals, ".new") + named_with_suffix(journals, _SUFFIX):
        if (path.suffix == ".new" or _empty(path)) and left_by_dead_process(path):
            log.warning("removing %s, left by a pilot that died while creating it", path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _empty(path: Path) -> bool:
    try:
        return os.lstat(path).st_size == 0
    except FileNotFoundError:
        return False


def named_with_suffix(directory: Path, suffix: str) -> List[Path]:
    """The entries of ``directory`` whose name ends in ``suffix``, in name order (what
    ``sorted(directory.glob("*" + suffix))`` gives, without compiling a pattern in every
    run: the start of each ``pilotid run`` lists these)."""
    with os.scandir(directory) as entries:
        return sorted(Path(entry.path) for entry in entries if entry.name.endswith(suffix))


def left_by_dead_process(path: Path) -> bool:
    """Whether ``path``, named ``<host>-<pid>-<random>.<suffix>`` and holding a header
    (host, boot, pid, start) on its first line, was left by a process of this host that is
    gone.  Without a complete header (killed before writing it), the pid of the name
    decides: gone only if no process has it now."""
    host, boot = socket.gethostname(), boot_id()
    try:
        with open(path, "rb") as stream:
            header = json.loads(stream.readline())
        if isinstance(header, dict):
            return _gone(header, host, boot)
    except ValueError:
        pass
    except OSError:
        return False
    named_host, _, rest = path.name.rpartition("-")[0].rpartition("-")
    return named_host == host and rest.isdigit() and process_start(int(rest)) is None


def _gone(header: Dict[str, Any], host: str, boot: str) -> bool:
    """Whether the process ``header`` names ran on this host and is gone (another boot, no
    such pid, or a pid reused by a later process); another host's is never gone here: a
    state directory shared with other nodes is theirs to clean."""
    if header.get("host") != host:
        return False
    return header.get("boot") != boot or process_start(header.get("pid", 0)) != header.get(
        "start")


def process_start(pid: int) -> Optional[int]:
    """The start time (clock ticks after boot) of process ``pid``, or None if none runs."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as stream:
            fields = stream.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError, ValueError):
        return None
    return int(fields[19])  # field 22 of proc(5), counted after the command's ")"


def boot_id() -> str:
    """This boot's id (empty where the kernel gives none)."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _encoded(blob: Optional[bytes]) -> str:
    """``blob`` as a JSON value: its base64 in quotes, or ``null``."""
    return "null" if blob is None else f'"{base64.b64encode(blob).decode()}"'


def _decoded(text: Optional[str]) -> Optional[bytes]:
    return None if text is None else base64.b64decode(text)
