"""The proxy handover directory.

Made after the grant, so that the grant never walks it: the *handover directory*
(``make_handover_directory``), where a switcher that hands the proxy over on the wrapper's
standard input (sudo) has the target store its copy.  It is the pilot's, open to the target
alone with an access ACL and no default ACL: the file the target makes there under umask
077 is 0600, with no ACL, from its creation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from pilotid.errors import SandboxError, WorkdirError
from pilotid.escaping import printable
from pilotid.workdir.acl import _ACCESS, _DEFAULT, _RWX, _Acl, _read_raw
from pilotid.workdir.changes import ACL, SandboxGrant
from pilotid.workdir.copies import remove_links
from pilotid.workdir.walk import _DIR_FLAGS, _fd_path

log = logging.getLogger(__name__)


@dataclass
class HandoverDirectory:
    """The directory ``make_handover_directory`` made for the proxy copy at ``proxy``.

    ``fd``, opened when it was made and kept until ``remove``, is that directory wherever
    the payload moves it (the work directory is the target's to write in), and never
    anything put in its place; ``device`` and ``inode`` are its identity.
    """

    proxy: Path
    device: int
    inode: int
    fd: Optional[int]
    token: Optional[Path] = None

    def remove(self) -> None:
        """Remove the proxy copy (and the token copy) through ``fd`` and the directory where
        it now is (a move is logged, with the new name); close ``fd``.  Anything else the
        payload put in it keeps the directory (``reclaim`` then takes the target's entry off
        it, as off any directory of the pilot's).  A second call does nothing."""
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            for name, kind in ((self.proxy.name, "proxy copy"),
                               (self.token.name if self.token else None, "token copy")):
                if name is None:
                    continue
                with contextlib.suppress(FileNotFoundError):
                    copy = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    os.unlink(name, dir_fd=fd)
                    if copy.st_nlink > 1:
                        remove_links(self.proxy.parent.parent, copy, kind)
            where = os.readlink(_fd_path(fd))
            try:
                found = os.lstat(where)
            except OSError:
                return  # removed already (the kernel's name ends in " (deleted)")
            if (found.st_dev, found.st_ino) != (self.device, self.inode):
                return
            if where != str(self.proxy.parent):
                log.warning("the payload moved the proxy handover directory %s to %s",
                            printable(self.proxy.parent), printable(where))
            try:
                os.rmdir(where)
            except OSError as error:
                log.warning("proxy handover directory %s is kept: %s", printable(where),
                            error.strerror)
        finally:
            os.close(fd)
        _remove_planted(self.proxy.parent)


def _remove_planted(name: Path) -> None:
    """Unlink what the payload put at the handover directory's own name after moving the
    directory away (a symlink, a file: never followed), so that the name, pilotid's,
    does not make the next job refuse the work directory (``refuse_leftovers``)."""
    try:
        if stat.S_ISDIR(os.lstat(name).st_mode):
            return
        os.unlink(name)
    except OSError:
        return
    log.warning("removed what the payload put at the proxy handover directory's name %s",
                printable(name))


def make_handover_directory(proxy: Path, grant: Optional[SandboxGrant],
                            token: Optional[Path] = None) -> HandoverDirectory:
    """Make the directory of ``proxy``, new and directly in the work directory, where the
    payload's account alone stores its proxy copy (and its bearer token copy ``token``, in
    the same directory); return it, for ``remove`` at the end.

    With ``grant`` in ACL mode the directory is the pilot's, mode 0700 with the access
    entry ``u:<target>:rwx`` and no default ACL: the file the target creates there under
    umask 077 is exactly 0600 with no ACL from the start, so that no one else, not the
    pilot either, can ever read it, and the wrapper need not ``chmod`` it.  Without a grant
    (no switch) it is the pilot's, 0700.  Make it after the grant, which must not walk it.
    World mode has none: without ACLs the pilot cannot make a directory that the target
    alone may write in, so the wrapper keeps the proxy in a directory of its own
    (``pilotid.payloads.targetdir``).

    Raises ``WorkdirError`` when it exists already or cannot be made, ``SandboxError`` when
    it cannot be opened to the target, ``ValueError`` when, with a grant, ``proxy``'s
    directory is not directly in the granted work directory, or the grant is in world mode.
    """
    proxy = Path(os.path.abspath(proxy))
    directory = proxy.parent
    if token is not None and Path(os.path.abspath(token)).parent != directory:
        raise ValueError(f"the token copy {token} goes in the proxy's handover directory "
                         f"{directory}")
    # (resolved only where it differs: the launcher passes the grant's own path)
    if grant is not None and grant.mode != ACL:
        raise ValueError("world mode has no proxy handover directory: the wrapper keeps the "
                         "proxy in a directory of its own")
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
        fd, info = _open_handover(directory, grant)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rmdir(directory)
        raise
    return HandoverDirectory(proxy, info.st_dev, info.st_ino, fd,
                             Path(os.path.abspath(token)) if token is not None else None)


def _open_handover(directory: Path,
                   grant: Optional[SandboxGrant]) -> Tuple[int, os.stat_result]:
    """Give the new handover directory its ACL (or mode) for ``grant``; return it open,
    and its stat."""
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
    except OSError as error:
        os.close(fd)
        whom = grant.account.name if grant else "the pilot"
        raise SandboxError(f"cannot make the proxy handover directory {directory} "
                           f"private to {whom}: {error.strerror}") from None
    except BaseException:
        os.close(fd)
        raise
    return fd, info
