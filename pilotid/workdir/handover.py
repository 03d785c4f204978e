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
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pilotid.errors import SandboxError, WorkdirError
from pilotid.workdir.acl import _ACCESS, _DEFAULT, _RWX, _Acl, _read_raw
from pilotid.workdir.changes import ACL, SandboxGrant
from pilotid.workdir.walk import _DIR_FLAGS

log = logging.getLogger(__name__)


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
    except OSError as error:
        whom = grant.account.name if grant else "the pilot"
        raise SandboxError(f"cannot make the proxy handover directory {directory} "
                           f"private to {whom}: {error.strerror}") from None
    finally:
        os.close(fd)
    return info
