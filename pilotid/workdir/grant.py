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
    Directories get ``go+rwx``, unreadable files ``go+rX``, and the launcher runs the
    wrapper with umask 000 (``SandboxGrant.payload_umask``).  Logged as a warning.

Never touched: ``<workdir>/.pilotid`` (``PRIVATE_DIR_NAME``), where the pilot keeps its
own copies of credentials; it is kept 0700 without ACL; and the files the caller names
as ``keep_private`` (the pilot's own proxy, should it sit in the tree).  Symbolic links and
special files are skipped, objects owned by someone else too.  Every object is opened with
``O_NOFOLLOW`` through its directory's descriptor (a directory ``O_RDONLY`` and changed
through that descriptor, a file ``O_PATH`` and changed through ``/proc/self/fd``), so a path
swapped for a symlink between the check and the change is never followed.  A big tree is
listed by GNU ``find`` alongside (``_Builder._walk_with_find``): the listing only says where
to look.

Made after the grant, so that the grant never walks it: the *handover directory*
(``make_handover_directory``), where a switcher that hands the proxy over on the wrapper's
standard input (sudo) has the target store its copy.  It is the pilot's, open to the target
alone with an access ACL and no default ACL: the file the target makes there under umask
077 is 0600, with no ACL, from its creation.

ACLs are read and written as the kernel's ``system.posix_acl_*`` extended attributes
(``getfacl``/``setfacl`` do the same): that gives an exact snapshot of each object before
the grant, which ``reclaim`` puts back byte for byte.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import shutil
import stat
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Callable,
    Collection,
    Dict,
    FrozenSet,
    Iterable,
    List,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

from pilotid.errors import ConfigurationError, SandboxError, WorkdirError
from pilotid.identity.accounts import Account

log = logging.getLogger(__name__)

PRIVATE_DIR_NAME = ".pilotid"
"""The pilot's private directory inside the work directory: never opened to the target."""

ACL = "acl"
WORLD = "world"
MODES = (ACL, WORLD)

_ACCESS = "system.posix_acl_access"
_DEFAULT = "system.posix_acl_default"
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_R, _W, _X = 4, 2, 1
_RWX = _R | _W | _X
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
#: Entries the grant looks at itself before GNU ``find`` walks the tree alongside
#: (``_Builder._walk_with_find``): starting it costs about as much as looking at 600 entries,
#: and it pays off from some 5,000 entries on.
_FIND_AFTER = 2048
_NOT_SUPPORTED = {errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


@dataclass(frozen=True)
class PathChange:
    """One object of the work directory as it was before the grant changed it.

    ``path`` is where it was (relative to the work directory); ``device`` and ``inode``
    find it again wherever the payload moved it.  ``access_acl`` and ``default_acl`` are
    the raw extended attributes (``None``: there was none).
    """

    path: str
    device: int
    inode: int
    mode: int
    access_acl: Optional[bytes] = None
    default_acl: Optional[bytes] = None


@dataclass(frozen=True)
class ParentChange:
    """A parent directory made traversable with ``u:<target>:x``.

    ``previous`` is the target's entry before (``None``: it had none), ``had_acl`` whether
    the directory had an extended ACL at all.
    """

    path: Path
    previous: Optional[int]
    had_acl: bool


@dataclass(frozen=True)
class SandboxGrant:
    """What ``grant_target_access`` changed, for ``reclaim`` to undo exactly that.

    ``mode`` is ``'acl'`` or ``'world'`` (the result's ``sandbox_mode``).
    """

    workdir: Path
    account: Account
    mode: str
    pilot_uid: int
    changes: Tuple[PathChange, ...] = ()
    parents: Tuple[ParentChange, ...] = ()

    def payload_umask(self, default: int) -> int:
        """The umask the wrapper must set: ``default`` (the queue's) in ACL mode, where the
        default ACL decides, and 000 in world mode, where nothing else lets the pilot read
        what the payload writes."""
        return 0 if self.mode == WORLD else default


class _Acl:
    """A POSIX ACL as the kernel stores it: {(tag, id): permission bits}."""

    def __init__(self, entries: Dict[Tuple[int, int], int]) -> None:
        self.entries = entries

    @classmethod
    def from_mode(cls, mode: int) -> "_Acl":
        return cls({(_USER_OBJ, _NO_ID): (mode >> 6) & 7, (_GROUP_OBJ, _NO_ID): (mode >> 3) & 7,
                    (_OTHER, _NO_ID): mode & 7})

    @classmethod
    def from_xattr(cls, blob: bytes) -> "_Acl":
        if len(blob) < 4 or (len(blob) - 4) % 8 or struct.unpack_from("<I", blob)[0] != 2:
            raise ValueError("not a POSIX ACL (version 2) attribute")
        entries = {}
        for offset in range(4, len(blob), 8):
            tag, perm, ident = struct.unpack_from("<HHI", blob, offset)
            entries[(tag, ident if tag in (_USER, _GROUP) else _NO_ID)] = perm
        return cls(entries)

    def to_xattr(self) -> bytes:
        body = b"".join(struct.pack("<HHI", tag, perm, ident)
                        for (tag, ident), perm in sorted(self.entries.items()))
        return struct.pack("<I", 2) + body

    def get(self, tag: int, ident: int = _NO_ID) -> Optional[int]:
        return self.entries.get((tag, ident))

    def named(self, tag: int) -> Dict[int, int]:
        return {ident: perm for (t, ident), perm in self.entries.items() if t == tag}

    def add_user(self, uid: int, perm: int) -> None:
        self.entries[(_USER, uid)] = self.entries.get((_USER, uid), 0) | perm

    def drop_user(self, uid: int) -> bool:
        return self.entries.pop((_USER, uid), None) is not None

    def recompute_mask(self) -> None:
        """The mask setfacl computes: the union of the group class (named users, owning
        and named groups); none where there are no named entries."""
        named = [p for (t, _), p in self.entries.items() if t in (_USER, _GROUP)]
        if named:
            union = self.entries[(_GROUP_OBJ, _NO_ID)]
            for perm in named:
                union |= perm
            self.entries[(_MASK, _NO_ID)] = union
        else:
            self.entries.pop((_MASK, _NO_ID), None)


def acl_supported(path: Path) -> bool:
    """True where the file system holding ``path`` supports POSIX ACLs.

    ``WorkdirError`` if ``path`` does not exist.
    """
    try:
        os.getxattr(path, _ACCESS)
    except OSError as error:
        if error.errno == errno.ENODATA:
            return True
        if error.errno in _NOT_SUPPORTED:
            return False
        if error.errno == errno.ENOENT:
            raise WorkdirError(f"{path} does not exist") from None
        log.debug("cannot tell whether %s supports ACLs (%s): assuming not", path, error)
        return False
    return True


def grant_target_access(workdir: Path, account: Account, mode: str = ACL,
                        keep_private: Iterable[Path] = ()) -> SandboxGrant:
    """Let ``account`` work in ``workdir`` and the pilot read what it leaves; see the module.

    ``mode`` is ``'acl'`` or ``'world'``; ``'acl'`` falls back to ``'world'`` (with a
    warning) where the file system refuses ACLs: check the returned grant's ``mode``.
    ``keep_private`` names files never opened to the target, wherever they are in the tree:
    the pilot's own credentials (the launcher passes its ``X509_USER_PROXY`` and the like).
    One found in the work directory is logged as a warning: the target may still rename or
    replace it there, so it belongs outside.
    Raises ``WorkdirError`` when ``workdir`` does not exist, is not a directory, or is not
    the pilot's and writable by it; ``SandboxError`` when a change fails (nothing stays
    changed then); ``ConfigurationError`` for an unknown mode.
    """
    if mode not in MODES:
        raise ConfigurationError(f"sandbox mode {mode!r} is unknown: use 'acl' or 'world'")
    workdir = _checked_workdir(workdir)
    pilot_uid = os.geteuid()
    if mode == ACL and not acl_supported(workdir):
        log.warning("%s does not support POSIX ACLs: opening it to %s the seed's way "
                    "(directories go+rwx, payload umask 000)", workdir, account.name)
        mode = WORLD
    _secure_private_dir(workdir, pilot_uid)
    keep = _identities(keep_private)
    try:
        builder = _build(_Builder(workdir, account, mode, pilot_uid, keep))
    except _AclNotSupported:
        log.warning("%s refused an ACL: opening it to %s the seed's way instead "
                    "(directories go+rwx, payload umask 000)", workdir, account.name)
        builder = _build(_Builder(workdir, account, WORLD, pilot_uid, keep))
    grant = builder.grant()
    log.info("opened %s to %s (%s mode): %d objects changed, %d parent directories",
             workdir, account.name, grant.mode, len(grant.changes), len(grant.parents))
    return grant


@dataclass(frozen=True)
class HandoverDirectory:
    """The directory ``make_handover_directory`` made for the proxy copy at ``proxy``.

    ``device`` and ``inode`` tell it from whatever the target may put in its place (the
    work directory is the target's to write in): ``remove`` touches only this directory.
    """

    proxy: Path
    device: int
    inode: int

    def remove(self) -> None:
        """Remove the proxy copy and the directory, if it is still the one made.

        Anything else the payload put in it keeps the directory (``reclaim`` then takes
        the target's entry off it, as off any directory of the pilot's); a directory swapped
        for another or for a symlink is left alone, logged.
        """
        directory = self.proxy.parent
        try:
            fd = os.open(directory, _DIR_FLAGS)
        except FileNotFoundError:
            return
        except OSError as error:
            log.warning("proxy handover directory %s cannot be opened (%s): left alone",
                        directory, error.strerror)
            return
        try:
            info = os.fstat(fd)
            if (info.st_dev, info.st_ino) != (self.device, self.inode):
                log.warning("proxy handover directory %s was replaced by another: left alone",
                            directory)
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.proxy.name, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            os.rmdir(directory)
        except OSError as error:
            log.warning("proxy handover directory %s is kept: %s", directory, error.strerror)


def make_handover_directory(proxy: Path, grant: Optional[SandboxGrant]) -> HandoverDirectory:
    """Make the directory of ``proxy``, new and directly in the work directory, where the
    payload's account alone stores its proxy copy; return it, for ``remove`` at the end.

    With ``grant`` in ACL mode the directory is the pilot's, mode 0700 with the access
    entry ``u:<target>:rwx`` and no default ACL: the file the target creates there under
    umask 077 is exactly 0600 with no ACL from the start, so that no one else, not the
    pilot either, can ever read it, and the wrapper need not ``chmod`` it.  In world mode
    (no ACLs) it is ``1733``: the target, like every account there, may create in it;
    no one may list it or remove what another created.  Without a grant (no switch) it is
    the pilot's, 0700.  Make it after the grant, which must not walk it.

    Raises ``WorkdirError`` when it exists already or cannot be made, ``SandboxError`` when
    it cannot be opened to the target, ``ValueError`` when, with a grant, ``proxy``'s
    directory is not directly in the granted work directory.
    """
    proxy = Path(os.path.abspath(proxy))
    directory = proxy.parent
    # (resolved only where it differs: the launcher passes the grant's own path)
    if grant is not None and directory.parent != grant.workdir and \
            directory.parent.resolve() != grant.workdir:
        raise ValueError(f"the proxy handover directory {directory} must be directly in the "
                         f"work directory {grant.workdir}")
    try:
        # 0700: what it inherits from the work directory's default ACL is masked to nothing
        # until the access ACL below replaces it, so the target gets in only then.
        os.mkdir(directory, 0o700)
    except OSError as error:
        raise WorkdirError(f"cannot make the proxy handover directory {directory}: "
                           f"{error.strerror}") from None
    try:
        info = _open_handover(directory, grant)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(directory)
        raise
    return HandoverDirectory(proxy, info.st_dev, info.st_ino)


def _open_handover(directory: Path, grant: Optional[SandboxGrant]) -> os.stat_result:
    """Give the new handover directory its ACL (or mode) for ``grant``; return its stat."""
    try:
        fd = os.open(directory, _DIR_FLAGS)
    except OSError as error:
        raise SandboxError(f"cannot open the new proxy handover directory {directory}: "
                           f"{error.strerror}") from None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid():
            raise SandboxError(f"{directory} was replaced by a directory of uid "
                               f"{info.st_uid} before it could be opened to the target")
        if _read_raw(fd, _DEFAULT) is not None:
            os.removexattr(fd, _DEFAULT)
        if grant is not None and grant.mode == ACL:
            acl = _Acl.from_mode(0o700)
            acl.add_user(grant.account.uid, _RWX)
            acl.recompute_mask()
            os.setxattr(fd, _ACCESS, acl.to_xattr())
        elif grant is not None:
            os.fchmod(fd, 0o1733)
    except OSError as error:
        whom = grant.account.name if grant else "the pilot"
        raise SandboxError(f"cannot make the proxy handover directory {directory} "
                           f"private to {whom}: {error.strerror}") from None
    finally:
        os.close(fd)
    return info


def reclaim(grant: SandboxGrant) -> None:
    """Undo ``grant``: every object it changed gets its mode and ACLs back exactly, the
    target's entries go from objects the pilot created since, and from the parents.

    Objects the payload created belong to the target and cannot be changed by the pilot;
    in ACL mode their inherited entry for the pilot lets it read and delete them.  Any
    that the pilot still cannot read (the payload chmod'ed them, which cuts the ACL mask)
    are logged as a warning.  Raises ``SandboxError`` naming what could not be restored,
    after restoring everything else.
    """
    reclaimer = _Reclaimer(grant)
    if grant.workdir.is_dir():
        reclaimer.walk()
    failures, pending, unreadable = reclaimer.failures, reclaimer.pending, reclaimer.unreadable
    for change in pending.values():
        log.debug("%s (changed by the grant) is no longer in %s: not restored",
                  change.path, grant.workdir)
    for parent in grant.parents:
        try:
            _restore_parent(parent, grant.account.uid)
        except OSError as error:
            failures.append(f"{parent.path}: {error.strerror}")
    if unreadable:
        log.warning("%d paths in %s are not readable by the pilot after the payload "
                    "(it changed their modes); first: %s", len(unreadable), grant.workdir,
                    ", ".join(unreadable[:5]))
    if failures:
        raise SandboxError(f"could not give back {len(failures)} paths of {grant.workdir} "
                           f"after the payload; first: {failures[0]}")
    log.info("reclaimed %s from %s", grant.workdir, grant.account.name)


class _AclNotSupported(Exception):
    pass


class _Reclaimer:
    """Walks the work directory after the payload the way the grant did (directory
    descriptors, one ``fstatat`` per entry, ``O_PATH | O_NOFOLLOW`` for what it changes):
    puts back what the grant changed and takes the target's entries from what the pilot
    made since.  A file the grant did not change is only opened when its ACL, read through
    its directory's descriptor (``/proc/self/fd/<dir>/<name>``, not following a symlink),
    names the target."""

    def __init__(self, grant: SandboxGrant) -> None:
        self.grant = grant
        self.pending = {(c.device, c.inode): c for c in grant.changes}
        self.failures: List[str] = []
        self.unreadable: List[str] = []

    def walk(self) -> None:
        top = self._enter(".", str(self.grant.workdir), None)
        if top is None:
            return
        try:
            _depth_first(top, self._scan, self._enter)
        finally:
            os.close(top)

    def _enter(self, relpath: str, name: str, dirfd: Optional[int]) -> Optional[int]:
        """Give back one directory (``dirfd`` None: the work directory, ``name`` its path);
        its descriptor to walk it, or None."""
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno in (errno.ENOTDIR, errno.ELOOP):
                if dirfd is None:  # the work directory itself swapped for something else
                    self.failures.append(f"{name}: {error.strerror}")
                return None  # a symlink or a file now: never followed
            self._give_back_at(relpath, name, dirfd, stat.S_ISDIR)  # not listable: not walked
            return None
        try:
            self._give_back(relpath, fd, os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _scan(self, relpath: str, dirfd: int) -> List[str]:
        """Give back the files of one directory; return its subdirectories."""
        subdirs = []
        pilot, pending, lstat = self.grant.pilot_uid, self.pending, os.lstat
        strip = self.grant.mode == ACL
        names, prefix = _entries(relpath, dirfd)
        here = f"/proc/self/fd/{dirfd}/"
        for name in names:
            try:
                info = lstat(name, dir_fd=dirfd)
            except FileNotFoundError:
                continue
            except PermissionError:
                # not searchable by the pilot: nothing in it was changed (the grant did not
                # walk it); one of the payload's is reported, the pilot's own is its own
                if os.fstat(dirfd).st_uid != pilot:
                    self.unreadable.append(relpath)
                break
            except OSError as error:
                self.failures.append(f"{prefix}{name}: {error.strerror}")
                break
            kind = info.st_mode & 0o170000
            if kind == stat.S_IFDIR:
                subdirs.append(name)
            elif kind != stat.S_IFREG:
                continue
            elif info.st_uid != pilot:
                if not os.access(name, os.R_OK, dir_fd=dirfd):
                    self.unreadable.append(prefix + name)
            elif (info.st_dev, info.st_ino) in pending or (strip and self._names_target(
                    here + name)):
                self._give_back_at(prefix + name, name, dirfd, stat.S_ISREG)
        return subdirs

    def _names_target(self, path: str) -> bool:
        """Does the access ACL of ``path`` (read without following a symlink) have an
        entry for the target?  True too when it cannot be read: look closer then."""
        try:
            blob = os.getxattr(path, _ACCESS, follow_symlinks=False)
        except OSError as error:
            return not (error.errno in (errno.ENODATA, errno.ENOENT)
                        or error.errno in _NOT_SUPPORTED)
        try:
            return _Acl.from_xattr(blob).get(_USER, self.grant.account.uid) is not None
        except ValueError:
            return True

    def _give_back_at(self, relpath: str, name: str, dirfd: Optional[int],
                      is_kind: Callable[[int], bool]) -> None:
        """Open ``name`` in ``dirfd`` (``O_PATH | O_NOFOLLOW``) and give it back if it is
        still of the kind ``is_kind`` tells (a directory, a regular file)."""
        try:
            fd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            return
        except OSError as error:
            self.failures.append(f"{relpath}: {error.strerror}")
            return
        try:
            info = os.fstat(fd)
            if is_kind(info.st_mode):
                self._give_back(relpath, _fd_path(fd), info)
        finally:
            os.close(fd)

    def _give_back(self, relpath: str, handle: Union[int, str], info: os.stat_result) -> None:
        """Restore one object the grant changed, or strip the target's entries from one
        the pilot made since; note one of the payload's that the pilot cannot use."""
        try:
            if info.st_uid != self.grant.pilot_uid:
                if not _pilot_can_use(handle, info):
                    self.unreadable.append(relpath)
                return
            change = self.pending.pop((info.st_dev, info.st_ino), None)
            if change is not None:
                _restore(handle, info, change, self.grant.mode)
            elif self.grant.mode == ACL:
                _strip_user(handle, info, self.grant.account.uid)
        except OSError as error:
            self.failures.append(f"{relpath}: {error.strerror}")


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


class _Builder:
    """Makes the changes of one grant, recording each before it is made."""

    def __init__(self, workdir: Path, account: Account, mode: str, pilot_uid: int,
                 keep: Optional[Set[Tuple[int, int]]] = None) -> None:
        self.workdir = workdir
        self.account = account
        self.mode = mode
        self.pilot_uid = pilot_uid
        self.keep = keep or set()
        self.groups = frozenset(_groups_of(account))
        self.changes: List[PathChange] = []
        self.parents: List[ParentChange] = []
        # the ACLs most objects get, by st_mode, made once: objects without an ACL of their own
        self._dir_blobs: Dict[int, bytes] = {}
        self._file_blobs: Dict[int, bytes] = {}
        self._default_blob: Optional[bytes] = None
        self.scanned = 0  # entries listed so far
        self.done: Set[Tuple[int, int]] = set()  # objects changed before the walk restarted

    def grant(self) -> SandboxGrant:
        return SandboxGrant(self.workdir, self.account, self.mode, self.pilot_uid,
                            tuple(self.changes), tuple(self.parents))

    def open_parents(self) -> None:
        for parent in reversed(self.workdir.parents):
            try:
                info = os.stat(parent)
                acl = _read_acl(str(parent), _ACCESS)
            except OSError as error:
                raise SandboxError(f"cannot check {parent} (a parent of the work directory): "
                                   f"{error.strerror}") from None
            if _may(info, acl, self.account.uid, self.groups, _X):
                continue
            name = self.account.name
            if info.st_uid != self.pilot_uid:
                raise SandboxError(
                    f"{parent} (a parent of the work directory) is not traversable by {name} "
                    f"and belongs to uid {info.st_uid}, not the pilot: make it traversable "
                    f"(setfacl -m u:{name}:x) or use a work directory elsewhere")
            if self.mode == WORLD or not acl_supported(parent):
                raise SandboxError(
                    f"{parent} (a parent of the work directory) is not traversable by {name} "
                    "and its file system has no ACLs; pilotid never makes it o+x: make it "
                    "traversable or use a work directory elsewhere")
            updated = acl if acl is not None else _Acl.from_mode(info.st_mode)
            previous = updated.get(_USER, self.account.uid)
            self.parents.append(ParentChange(parent, previous, acl is not None))
            updated.add_user(self.account.uid, _X)
            updated.recompute_mask()
            _write(str(parent), _ACCESS, updated.to_xattr(), parent)

    def open_tree(self) -> None:
        """Open every directory, and every file the target cannot read yet, top down.

        The hot path of a grant (a work directory may hold 100,000 staged-in files): a file
        costs one ``fstatat`` on its directory's descriptor and is judged by its mode bits;
        only a file those bits keep from the target is opened (``O_PATH | O_NOFOLLOW``)
        and judged again, on what is there now, with its ACL before it is changed.  A
        directory is opened once (``O_RDONLY | O_DIRECTORY | O_NOFOLLOW``), changed through
        that descriptor and then walked.  The mode bits can only err towards a change (an
        ACL that already grants the target), never towards more access; an ACL entry the
        pilot itself set to deny the target a file its mode bits let others read is
        respected, not overridden.

        A tree of more than ``_FIND_AFTER`` entries is walked again by GNU ``find`` in a
        process of its own (``_walk_with_find``); whatever goes wrong there, the walk is
        finished here.  An object changed once is never recorded twice (``done``).
        """
        top = os.open(self.workdir, _DIR_FLAGS)
        try:
            info = os.fstat(top)
            if info.st_uid == self.pilot_uid:
                self._open_dir(".", top, info)
            with_find = self.account.uid != self.pilot_uid  # else the owner's bits decide
            if self._walk(top, _FIND_AFTER if with_find else None):
                return
            self.done = {(change.device, change.inode) for change in self.changes}
            if self._walk_with_find(top):
                return
            self.done = {(change.device, change.inode) for change in self.changes}
            self._walk(top, None)
        finally:
            os.close(top)

    def _walk(self, top: int, budget: Optional[int]) -> bool:
        """Walk the tree below ``top`` (the work directory, changed already) here; False
        when it stopped after ``budget`` entries to let ``find`` walk the rest."""
        def stop() -> bool:
            return budget is not None and self.scanned > budget and _gnu_find() is not None
        return _depth_first(top, self._scan, self._enter, stop)

    def _walk_with_find(self, top: int) -> bool:
        """Have GNU ``find`` walk the tree in a process of its own (a second core) and list
        the directories, and the pilot's files whose mode bits keep them from the target
        (the test of ``_scan``); open each through ``top`` as ``_walk`` would, while
        ``find`` goes on.  True when ``find`` walked all of it.

        ``find`` only says where to look: every object is opened and judged here, one
        path component after the other with ``O_NOFOLLOW``, so a wrong or tampered
        listing can cost the target access, never give it more.
        """
        argv = self._find_argv()
        try:
            finder = subprocess.Popen(argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      env={"LC_ALL": "C"})
        except OSError as error:
            log.debug("cannot start %s (%s): walking %s here", argv[0], error.strerror,
                      self.workdir)
            return False
        stack: List[Tuple[bytes, int]] = [(b".", top)]
        complete = False
        try:
            assert finder.stdout is not None
            out = finder.stdout.fileno()
            pending = b""
            while True:
                chunk = os.read(out, 1 << 16)
                if not chunk:
                    break
                found = (pending + chunk).split(b"\0")
                pending = found.pop()
                for entry in found:
                    if entry == b"e":
                        complete = True
                    else:
                        self._found(entry, stack)
        except BaseException:
            finder.kill()
            raise
        finally:
            for _, fd in stack[1:]:
                os.close(fd)
            finder.wait()
            if finder.stdout is not None:
                finder.stdout.close()
        if complete and finder.returncode == 0:
            return True
        log.debug("find did not walk all of %s (exit status %s): walking it here",
                  self.workdir, finder.returncode)
        return False

    def _find_argv(self) -> List[str]:
        """``find`` printing ``d<path>`` for each directory, ``f<path>`` for each file
        ``_scan`` would open, then ``e`` when the walk is over (a second start point)."""
        in_group: List[str] = ["("]
        for gid in sorted(self.groups):
            in_group += ["-gid", str(gid), "-o"]
        in_group[-1] = ")"
        readable = ["(", "(", *in_group, "-perm", "-040", "(", "!", "-perm", "/111", "-o",
                    "-perm", "-010", ")", ")", "-o", "(", "!", *in_group, "-perm", "-004",
                    "(", "!", "-perm", "/111", "-o", "-perm", "-001", ")", ")", ")"]
        find = _gnu_find()
        assert find is not None
        return [find, ".", "./.",
                "(", "-path", "./.", "-prune", "-printf", "e\\0", ")",
                "-o", "-path", ".",
                "-o", "(", "-path", "./" + PRIVATE_DIR_NAME, "-prune", ")",
                "-o", "(", "-type", "d", "-printf", "d%p\\0", ")",
                "-o", "(", "-type", "f", "-uid", str(self.pilot_uid), "!", *readable,
                "-printf", "f%p\\0", ")"]

    def _found(self, entry: bytes, stack: List[Tuple[bytes, int]]) -> None:
        """Open one object ``find`` listed (``d./a/b`` or ``f./a/b``) through the open
        directories of ``stack``: the path from the work directory to it, kept as ``find``
        goes down and up (it lists a directory before what is in it)."""
        path = entry[1:]
        parent, _, name = path.rpartition(b"/")
        if name in (b"", b".", b".."):
            return  # never listed by find: no way up or sideways
        while parent != stack[-1][0]:
            if len(stack) == 1 or parent.startswith(stack[-1][0] + b"/"):
                return  # in a directory that was not entered
            os.close(stack.pop()[1])
        relpath = os.fsdecode(path[2:])
        if entry[:1] == b"d":
            if parent == b"." and name == PRIVATE_DIR_NAME.encode():
                return
            child = self._enter(relpath, name, stack[-1][1])
            if child is not None:
                stack.append((path, child))
        elif entry[:1] == b"f":
            self._open_file(relpath, name, stack[-1][1])

    def _enter(self, relpath: str, name: Union[str, bytes], dirfd: int) -> Optional[int]:
        """Open (and change) the subdirectory ``name`` of ``dirfd``; its descriptor for
        the walk, or ``None`` when it is not to be walked (the caller closes it)."""
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dirfd)
        except (FileNotFoundError, NotADirectoryError):
            return None  # gone, or no longer a directory
        except OSError as error:
            if error.errno == errno.ELOOP:
                return None  # a symlink now: never followed
            log.debug("%s not walked: %s", relpath, error.strerror)
            try:  # the pilot cannot list it: still opened to the target, not walked
                fd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
            except OSError:
                return None
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode) and self._is_mine(relpath, info):
                    self._open_dir(relpath, _fd_path(fd), info)
            finally:
                os.close(fd)
            return None
        try:
            info = os.fstat(fd)
            if self._is_mine(relpath, info):
                self._open_dir(relpath, fd, info)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _is_mine(self, relpath: str, info: os.stat_result) -> bool:
        """May the grant change this object: the pilot's, and not one of its credentials?"""
        if info.st_uid != self.pilot_uid:
            log.debug("%s belongs to uid %d: left as it is", relpath, info.st_uid)
            return False
        if (info.st_dev, info.st_ino) in self.keep:
            log.warning("%s in the work directory is one of the pilot's own credentials: "
                        "not opened to %s, but the payload may rename or replace it "
                        "there; keep it outside the work directory",
                        relpath, self.account.name)
            return False
        return True

    def _scan(self, relpath: str, dirfd: int) -> List[str]:
        """Open the files of one directory that need it; return its subdirectories.

        Written for speed: this loop runs once per file of the work directory.  A regular
        file whose mode bits let the target read it (and execute it, where anyone may) is
        left alone after one ``fstatat``: the sets of such ``st_mode`` values are made
        once (``_READABLE_BY_OTHERS``, ``_READABLE_BY_GROUP``).
        """
        subdirs = []
        target, pilot, groups = self.account.uid, self.pilot_uid, self.groups
        by_others, by_group = _READABLE_BY_OTHERS, _READABLE_BY_GROUP
        lstat = os.lstat
        names, prefix = _entries(relpath, dirfd)
        self.scanned += len(names)
        for name in names:
            try:
                info = lstat(name, dir_fd=dirfd)
            except FileNotFoundError:
                continue
            except PermissionError:
                # the pilot may list it but not search it (r without x): like a directory
                # it cannot list, opened to the target (``_enter``) but not walked
                log.debug("%s not walked: the pilot may list it but not search it", relpath)
                return []
            mode = info.st_mode
            if mode in (by_group if info.st_gid in groups else by_others):
                if info.st_uid != target:
                    continue  # the target reads it by its mode bits already
            kind = mode & 0o170000
            if kind == stat.S_IFDIR:
                subdirs.append(name)
            elif kind == stat.S_IFREG:
                if info.st_uid == pilot:
                    self._open_file(prefix + name, name, dirfd)
                else:
                    log.debug("%s%s belongs to uid %d: left as it is", prefix, name,
                              info.st_uid)
        return subdirs

    def _open_dir(self, relpath: str, handle: Union[int, str], info: os.stat_result) -> None:
        """Open one directory to the target; ``handle``: a descriptor that may be read (or
        the ``/proc/self/fd`` path of an ``O_PATH`` one)."""
        if self.done and (info.st_dev, info.st_ino) in self.done:
            return
        access = _read_raw(handle, _ACCESS)
        default = _read_raw(handle, _DEFAULT)
        mode = stat.S_IMODE(info.st_mode)
        self.changes.append(PathChange(relpath, info.st_dev, info.st_ino, mode, access,
                                       default))
        if self.mode == WORLD:
            self._chmod(handle, mode | 0o077, relpath)
            return
        if access is None:
            blob = self._dir_blobs.get(info.st_mode)
            if blob is None:
                blob = self._dir_blobs[info.st_mode] = self._dir_access(None, info.st_mode)
        else:
            blob = self._dir_access(access, info.st_mode)
        self._write(handle, _ACCESS, blob, relpath)
        self._write(handle, _DEFAULT, self._default_acl(default), relpath)

    def _dir_access(self, access: Optional[bytes], st_mode: int) -> bytes:
        acl = _Acl.from_xattr(access) if access else _Acl.from_mode(st_mode)
        acl.add_user(self.account.uid, _RWX)
        acl.recompute_mask()
        return acl.to_xattr()

    def _default_acl(self, default: Optional[bytes]) -> bytes:
        if default is None and self._default_blob is not None:
            return self._default_blob
        acl = (_Acl.from_xattr(default) if default
               else _Acl({(_USER_OBJ, _NO_ID): _RWX, (_GROUP_OBJ, _NO_ID): 0,
                          (_OTHER, _NO_ID): 0}))
        acl.add_user(self.account.uid, _RWX)
        if self.pilot_uid != self.account.uid:
            acl.add_user(self.pilot_uid, _RWX)
        acl.entries[(_MASK, _NO_ID)] = _RWX
        blob = acl.to_xattr()
        if default is None:
            self._default_blob = blob
        return blob

    def _open_file(self, relpath: str, name: Union[str, bytes], dirfd: int) -> None:
        """Give the target read (and execute, where anyone may) on the regular file
        ``name`` of ``dirfd`` if it cannot have them yet, judged on what is there now."""
        try:
            fd = os.open(name, _PATH_FLAGS, dir_fd=dirfd)
        except FileNotFoundError:
            return
        try:
            info = os.fstat(fd)  # what is there now, whatever was there at the fstatat
            if not stat.S_ISREG(info.st_mode) or not self._is_mine(relpath, info):
                return
            if self.done and (info.st_dev, info.st_ino) in self.done:
                return
            path = _fd_path(fd)
            access = _read_raw(path, _ACCESS)
            acl = _Acl.from_xattr(access) if access else None
            want = _needed(info)
            if _may(info, acl, self.account.uid, self.groups, want):
                return
            mode = stat.S_IMODE(info.st_mode)
            self.changes.append(PathChange(relpath, info.st_dev, info.st_ino, mode, access))
            if self.mode == WORLD:
                self._chmod(path, mode | 0o044 | (0o011 if want & _X else 0), relpath)
                return
            if acl is None:
                blob = self._file_blobs.get(info.st_mode)
                if blob is None:
                    acl = _Acl.from_mode(info.st_mode)
                    acl.add_user(self.account.uid, want)
                    acl.recompute_mask()
                    blob = self._file_blobs[info.st_mode] = acl.to_xattr()
            else:
                acl.add_user(self.account.uid, want)
                acl.recompute_mask()
                blob = acl.to_xattr()
            self._write(path, _ACCESS, blob, relpath)
        finally:
            os.close(fd)

    def _write(self, handle: Union[int, str], name: str, blob: bytes, relpath: str) -> None:
        _write(handle, name, blob, relpath, self.workdir)

    def _chmod(self, handle: Union[int, str], mode: int, relpath: str) -> None:
        try:
            os.chmod(handle, mode)
        except OSError as error:
            raise SandboxError(f"cannot chmod {os.path.join(self.workdir, relpath)} to "
                               f"{mode:04o}: {error.strerror}") from None


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


def _secure_private_dir(workdir: Path, pilot_uid: int) -> None:
    """Keep ``.pilotid`` the pilot's own: 0700, no ACL; refuse anything else there."""
    private = workdir / PRIVATE_DIR_NAME
    try:
        fd = os.open(private, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        info = os.fstat(fd)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != pilot_uid:
            raise SandboxError(f"{private} is not a directory of the pilot's own: remove it")
        for name in (_ACCESS, _DEFAULT):
            if _read_raw(_fd_path(fd), name) is not None:
                os.removexattr(_fd_path(fd), name)
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(_fd_path(fd), 0o700)
    except OSError as error:
        raise SandboxError(f"cannot keep {private} private: {error.strerror}") from None
    finally:
        os.close(fd)


def _readable_modes(shift: int) -> FrozenSet[int]:
    """``st_mode`` of every regular file whose permission bits at ``shift`` (3: group,
    0: others) give read, and execute too where anyone may execute the file."""
    found = set()
    for perm in range(0o10000):
        want = _R | _X if perm & 0o111 else _R
        if (perm >> shift) & want == want:
            found.add(stat.S_IFREG | perm)
    return frozenset(found)


_READABLE_BY_OTHERS = _readable_modes(0)
_READABLE_BY_GROUP = _readable_modes(3)


def _entries(relpath: str, dirfd: int) -> Tuple[List[str], str]:
    """The names in one directory of the walk (never the pilot's private directory at the
    top) and the prefix that makes them paths relative to the work directory."""
    names = os.listdir(dirfd)
    if relpath != ".":
        return names, relpath + "/"
    if PRIVATE_DIR_NAME in names:
        names.remove(PRIVATE_DIR_NAME)
    return names, ""


def _depth_first(top: int, scan: Callable[[str, int], List[str]],
                 enter: Callable[[str, str, int], Optional[int]],
                 stop: Callable[[], bool] = lambda: False) -> bool:
    """Walk the directories below ``top`` (an open directory, left open), depth first:
    ``scan(relpath, dirfd)`` handles one directory's entries and names its subdirectories,
    ``enter(relpath, name, parent_fd)`` opens one of them (None: not walked).  False when
    ``stop()`` ended the walk early.  Every descriptor opened here is closed here."""
    stack = [(".", top, iter(scan(".", top)))]
    try:
        while stack:
            if stop():
                return False
            relpath, dirfd, subdirs = stack[-1]
            name = next(subdirs, None)
            if name is None:
                stack.pop()
                if dirfd != top:
                    os.close(dirfd)
                continue
            child_path = name if relpath == "." else f"{relpath}/{name}"
            child = enter(child_path, name, dirfd)
            if child is not None:
                stack.append((child_path, child, iter(scan(child_path, child))))
    finally:
        for _, fd, _ in stack[1:]:
            os.close(fd)
    return True


@functools.lru_cache(maxsize=None)
def _gnu_find() -> Optional[str]:
    """The path of GNU ``find`` (in /usr/bin or /bin), or None; asked once per process."""
    path = shutil.which("find", path="/usr/bin:/bin")
    if path is None:
        return None
    try:
        version = subprocess.run([path, "--version"], stdin=subprocess.DEVNULL,
                                 capture_output=True, timeout=10, env={"LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError) as error:
        log.debug("cannot run %s --version (%s): walking trees in Python", path, error)
        return None
    if version.returncode != 0 or b"GNU findutils" not in version.stdout.split(b"\n")[0]:
        log.debug("%s is not GNU find: walking trees in Python", path)
        return None
    return path


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _read_raw(path: Union[int, str], name: str) -> Optional[bytes]:
    try:
        return os.getxattr(path, name)
    except OSError as error:
        if error.errno == errno.ENODATA or error.errno in _NOT_SUPPORTED:
            return None
        raise


def _read_acl(path: Union[int, str], name: str) -> Optional[_Acl]:
    raw = _read_raw(path, name)
    return _Acl.from_xattr(raw) if raw else None


def _write(path: Union[int, str], name: str, blob: bytes, shown: Union[Path, str],
           workdir: Optional[Path] = None) -> None:
    """Set the ACL attribute ``name``; ``shown`` (relative to ``workdir``, if given) names
    the object in errors."""
    try:
        os.setxattr(path, name, blob)
    except OSError as error:
        where = shown if workdir is None else os.path.join(workdir, shown)
        if error.errno in _NOT_SUPPORTED:
            raise _AclNotSupported(str(where)) from None
        raise SandboxError(f"cannot set an ACL on {where}: {error.strerror}") from None


def _groups_of(account: Account) -> Sequence[int]:
    try:
        return os.getgrouplist(account.name, account.gid)
    except OSError:
        return [account.gid]


def _needed(info: os.stat_result) -> int:
    """What the target needs on a file: read, and execute where anyone may execute it."""
    return _R | (_X if info.st_mode & 0o111 else 0)


def _may(info: os.stat_result, acl: Optional[_Acl], uid: int, groups: "Collection[int]",
         want: int) -> bool:
    """POSIX.1e access check: may ``uid`` (in ``groups``) do ``want`` on this object?"""
    if acl is None:  # the mode bits alone
        if uid == info.st_uid:
            bits = info.st_mode >> 6
        elif info.st_gid in groups:
            bits = info.st_mode >> 3
        else:
            bits = info.st_mode
        return bits & want == want
    mask = acl.get(_MASK)
    if uid == info.st_uid:
        return (acl.get(_USER_OBJ) or 0) & want == want
    named = acl.get(_USER, uid)
    if named is not None:
        return named & (_RWX if mask is None else mask) & want == want
    matching = []
    if info.st_gid in groups:
        matching.append(acl.get(_GROUP_OBJ) or 0)
    matching.extend(perm for gid, perm in acl.named(_GROUP).items() if gid in groups)
    if matching:
        return any(perm & (_RWX if mask is None else mask) & want == want for perm in matching)
    return (acl.get(_OTHER) or 0) & want == want


def _restore(handle: Union[int, str], info: os.stat_result, change: PathChange,
             mode: str) -> None:
    """Put back the mode and ACLs of one object; ``handle`` as for ``_Builder._open_dir``."""
    if mode == ACL:
        saved = [(_ACCESS, change.access_acl)]
        if stat.S_ISDIR(info.st_mode):
            saved.append((_DEFAULT, change.default_acl))
        for name, blob in saved:
            if blob is not None:
                os.setxattr(handle, name, blob)
            elif _read_raw(handle, name) is not None:
                os.removexattr(handle, name)
    os.chmod(handle, change.mode)


def _strip_user(handle: Union[int, str], info: os.stat_result, uid: int) -> None:
    """Drop ``uid``'s named entries, which objects the pilot made after the grant inherit."""
    names = (_ACCESS, _DEFAULT) if stat.S_ISDIR(info.st_mode) else (_ACCESS,)
    for name in names:
        acl = _read_acl(handle, name)
        if acl is not None and acl.drop_user(uid):
            if name == _ACCESS:  # a narrower mask, never a wider one
                old = acl.get(_MASK)
                acl.recompute_mask()
                if old is not None and acl.get(_MASK) is not None:
                    acl.entries[(_MASK, _NO_ID)] &= old
            os.setxattr(handle, name, acl.to_xattr())


def _restore_parent(change: ParentChange, uid: int) -> None:
    path = str(change.path)
    acl = _read_acl(path, _ACCESS)
    if acl is None:
        return
    if change.previous is None:
        acl.drop_user(uid)
    else:
        acl.entries[(_USER, uid)] = change.previous
    acl.recompute_mask()
    if not change.had_acl and not acl.named(_USER) and not acl.named(_GROUP):
        group = acl.get(_GROUP_OBJ) or 0
        os.removexattr(path, _ACCESS)
        mode = stat.S_IMODE(os.stat(path).st_mode)
        os.chmod(path, (mode & ~0o070) | (group << 3))
    else:
        os.setxattr(path, _ACCESS, acl.to_xattr())


def _pilot_can_use(handle: Union[int, str], info: os.stat_result) -> bool:
    """May the pilot read this file (enter, list and empty this directory)?"""
    want = os.R_OK | os.W_OK | os.X_OK if stat.S_ISDIR(info.st_mode) else os.R_OK
    return os.access(_fd_path(handle) if isinstance(handle, int) else handle, want)
