"""Opening the work directory to the target account, and taking it back afterwards.

``grant_target_access`` lets the account a payload runs as work in the pilot's work
directory; ``reclaim`` undoes exactly what it changed.  Two modes:

``acl`` (the default, least privilege)
    Every directory of the tree gets the access entry ``u:<target>:rwx`` and the default
    entries ``d:u::rwx, d:u:<target>:rwx, d:u:<pilot>:rwx, d:g::---, d:m::rwx, d:o::---``:
    whatever the payload creates inherits an entry for the pilot, whatever the payload's
    umask (CREAM imposes 0077; with a default ACL the kernel ignores the umask), and
    nothing it creates is open to group or others.  A file gets ``u:<target>:r`` (plus
    ``x`` where it is executable) only where the target cannot already read it.  A parent
    of the work directory the target cannot traverse gets ``u:<target>:x`` (never
    ``o+x``); one that is not the pilot's own is a ``SandboxError``.
``world`` (the seed's mode, for file systems without POSIX ACLs)
    Directories get ``go+rwx`` and the sticky bit (another account may create there, never
    rename or remove what is not its own), unreadable files ``go+rX``, and the launcher runs the
    wrapper with umask 000 (``SandboxGrant.payload_umask``).  Logged as a warning.
``acl-or-world``
    ``acl`` where the file system has POSIX ACLs, else ``world`` (logged as a warning).
    ``acl`` itself never falls back: a file system without ACLs is an
    ``AclUnsupportedError``, since world mode trusts every other account on the node.

Never touched: the files the caller names as ``keep_private`` (the pilot's own proxy,
should it sit in the tree).  pilotid's own credential copies are never in the tree (see
``pilotid.workdir.private``); a work directory holding an older pilotid's ``.pilotid``
(``PRIVATE_DIR_NAME``) is refused before any grant (``refuse_leftovers``); the walk has
no name of its own.  Symbolic links and
special files are skipped, objects owned by someone else too.  Every object is opened with
``O_NOFOLLOW`` through its directory's descriptor (a directory ``O_RDONLY`` and changed
through that descriptor, a file ``O_PATH`` and changed through ``/proc/self/fd``), so a path
swapped for a symlink between the check and the change is never followed.  A big tree is
listed by GNU ``find`` alongside (``_Builder._walk_with_find``): the listing only says where
to look.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Iterable, Optional, Set, Tuple

from pilotid.errors import AclUnsupportedError, ConfigurationError, SandboxError, WorkdirError
from pilotid.identity.accounts import Account
from pilotid.workdir.acl import _AclNotSupported, acl_supported
from pilotid.workdir.builder import _Builder
from pilotid.workdir.changes import ACL, ACL_OR_WORLD, ASKED_MODES, WORLD, SandboxGrant
from pilotid.workdir.journal import GrantJournal
from pilotid.workdir.parents import checked_work_root
from pilotid.workdir.reclaim import reclaim

log = logging.getLogger(__name__)


def grant_target_access(workdir: Path, account: Account, mode: str = ACL,
                        keep_private: Iterable[Path] = (), work_root: Optional[Path] = None,
                        journal: Optional[GrantJournal] = None) -> SandboxGrant:
    """Let ``account`` work in ``workdir`` and the pilot read what it leaves; see the module.

    ``mode`` is ``'acl'``, ``'acl-or-world'`` or ``'world'``; only ``'acl-or-world'`` falls
    back to ``'world'`` (with a warning) where the file system refuses ACLs: check the
    returned grant's ``mode``.
    ``keep_private`` names files never opened to the target, wherever they are in the tree:
    the pilot's own credentials (the launcher passes its ``X509_USER_PROXY`` and the like).
    One found in the work directory is logged as a warning: the target may still rename or
    replace it there, so it belongs outside.
    ``work_root`` bounds what may change outside the work directory (``parents``): the
    directories from it down to the work directory; None: none at all.  ``journal``, if
    given, has every change written down before it is made.
    Raises ``WorkdirError`` when ``workdir`` does not exist, is not a directory, is not
    the pilot's and writable by it, or is outside ``work_root``;
    ``WorkRootUnreachableError`` when the target cannot reach the work root;
    ``AclUnsupportedError`` when ``mode`` is ``'acl'`` and the file system refuses ACLs;
    ``SandboxError`` when a change fails (nothing stays changed then);
    ``ConfigurationError`` for an unknown mode.
    """
    if mode not in ASKED_MODES:
        raise ConfigurationError(f"sandbox mode {mode!r} is unknown: use 'acl', "
                                 "'acl-or-world' or 'world'")
    workdir = _checked_workdir(workdir)
    root = checked_work_root(workdir, work_root)
    pilot_uid = os.geteuid()
    asked = mode
    if mode == ACL and not acl_supported(workdir):
        raise acl_unsupported(workdir)
    if mode == ACL_OR_WORLD:
        mode = ACL if acl_supported(workdir) else WORLD
        if mode == WORLD:
            log.warning("%s does not support POSIX ACLs: opening it to %s the seed's way "
                        "(directories go+rwx, payload umask 000), as the queue accepts "
                        "(sandbox: acl-or-world)", workdir, account.name)
    keep = _identities(keep_private)
    try:
        builder = _build(_Builder(workdir, account, mode, pilot_uid, keep, root, journal))
    except _AclNotSupported as refused:
        if asked != ACL_OR_WORLD:
            raise acl_unsupported(Path(str(refused))) from None
        log.warning("%s refused an ACL: opening it to %s the seed's way instead "
                    "(directories go+rwx, payload umask 000)", workdir, account.name)
        builder = _build(_Builder(workdir, account, WORLD, pilot_uid, keep, root, journal))
    grant = builder.grant()
    log.info("opened %s to %s (%s mode): %d objects changed, %d parent directories",
             workdir, account.name, grant.mode, len(grant.changes), len(grant.parents))
    return grant


def choose_sandbox_mode(workdir: Path, sandbox: str) -> str:
    """The grant's mode for a queue's ``sandbox`` on ``workdir``'s file system, before any
    change: ``acl`` where ACLs work, ``world`` where the queue asked for it; ``acl`` on a
    file system without ACLs is an ``AclUnsupportedError``; ``acl-or-world`` is ``world``
    there (logged)."""
    if sandbox == WORLD or acl_supported(workdir):
        return WORLD if sandbox == WORLD else ACL
    if sandbox == ACL:
        raise acl_unsupported(workdir)
    log.warning("%s does not support POSIX ACLs: world-writable directories and umask "
                "000, as the queue accepts (sandbox: acl-or-world)", workdir)
    return WORLD


def acl_unsupported(where: Path) -> AclUnsupportedError:
    """The error of an ``acl`` queue whose work directory (or ``where`` in it) has no ACLs."""
    return AclUnsupportedError(
        f"{where} is on a file system without POSIX ACLs and the queue's sandbox is 'acl': "
        "put the work directory on a file system with ACLs, or set the queue's sandbox to "
        "'acl-or-world' to accept world mode (every local account can then reach the job)")


def _build(builder: "_Builder") -> "_Builder":
    """Open the parents and the tree with ``builder``; taken back if that fails."""
    try:
        builder.open_parents()
        builder.open_tree()
    except BaseException:
        _undo(builder)
        raise
    return builder


def _undo(builder: "_Builder") -> None:
    """Take back a grant that failed half-way; the original error is what matters."""
    try:
        reclaim(builder.grant())
    except SandboxError as error:
        log.error("undoing the partial grant of %s failed too: %s", builder.workdir, error)


def _identities(paths: Iterable[Path]) -> Set[Tuple[int, int]]:
    """(device, inode) of each existing path, symlinks followed: the files themselves."""
    found = set()
    for path in paths:
        try:
            info = os.stat(path)
        except OSError:
            continue
        found.add((info.st_dev, info.st_ino))
    return found


def _checked_workdir(workdir: Path) -> Path:
    try:
        resolved = Path(workdir).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise WorkdirError(f"work directory {workdir} does not exist") from None
    except OSError as error:
        raise WorkdirError(f"work directory {workdir} cannot be reached: "
                           f"{error.strerror}") from None
    info = os.stat(resolved)
    if not stat.S_ISDIR(info.st_mode):
        raise WorkdirError(f"work directory {workdir} is not a directory")
    if info.st_uid != os.geteuid():
        raise WorkdirError(f"work directory {workdir} belongs to uid {info.st_uid}, not to the "
                           f"pilot (uid {os.geteuid()}): use a directory of the pilot's own")
    if not os.access(resolved, os.W_OK | os.X_OK):
        raise WorkdirError(f"work directory {workdir} is not writable by the pilot "
                           f"(uid {os.geteuid()})")
    return resolved
