"""What a grant changed, kept for the reclaim to undo exactly that; the two modes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, AbstractSet, Optional, Tuple

from pilotid.identity.accounts import Account

if TYPE_CHECKING:
    from pilotid.workdir.journal import GrantJournal

ACL = "acl"
WORLD = "world"
MODES = (ACL, WORLD)
"""The sandbox modes: least privilege with POSIX ACLs, or the seed's world-writable mode."""
ACL_OR_WORLD = "acl-or-world"
"""Not a mode of its own: ``acl`` where the file system has POSIX ACLs, else ``world``."""
ASKED_MODES = (ACL, ACL_OR_WORLD, WORLD)
"""What a queue may ask for (its ``sandbox`` setting); a grant's ``mode`` is one of MODES."""


@dataclass(frozen=True)
class PathChange:
    """One object of the work directory as it was before the grant changed it.

    ``path`` is where it was (relative to the work directory); ``device`` and ``inode``
    find it again wherever the payload moved it.  ``access_acl`` and ``default_acl`` are
    the raw extended attributes (``None``: there was none).  ``ctime_ns``, for a directory,
    is its change time right after the grant changed it (``settled_since_grant``).
    """

    path: str
    device: int
    inode: int
    mode: int
    access_acl: Optional[bytes] = None
    default_acl: Optional[bytes] = None
    ctime_ns: Optional[int] = None

    def settled_since_grant(self, info: os.stat_result) -> bool:
        """Has no entry been created, removed or renamed in this directory since the grant
        changed it, ``info`` being its ``stat`` now?

        Each of those sets a directory's modification and change times to the same instant;
        so does nothing else but setting the times themselves, which only the owner (the
        pilot) may do to another instant, and which changes the change time too.  So a
        change time still the one after the grant with a modification time before it
        means no entry changed since: it holds by the kernel's rule, whatever the clock
        does (a change in the grant's own clock tick leaves the modification time at
        that tick, not before it).
        """
        return (self.ctime_ns is not None and info.st_ctime_ns == self.ctime_ns
                and info.st_mtime_ns < self.ctime_ns)


@dataclass(frozen=True)
class ParentChange:
    """A parent directory the job relies on for ``u:<target>:x``.

    ``previous`` is the target's entry before the first job that needed it (``None``: it
    had none), ``had_acl`` whether the directory had an extended ACL at all then; ``device``
    and ``inode`` say which directory it is (its lock and its holders, see ``parents``).
    """

    path: Path
    previous: Optional[int]
    had_acl: bool
    device: int = 0
    inode: int = 0


@dataclass(frozen=True)
class SandboxGrant:
    """What ``grant_target_access`` changed, for ``reclaim`` to undo exactly that.

    ``mode`` is ``'acl'`` or ``'world'`` (the result's ``sandbox_mode``).  ``work_root``
    is where parents may be changed and objects moved out are looked for (None: the work
    directory itself); ``journal``, if any, has it all written down and is removed once
    ``reclaim`` is complete.
    """

    workdir: Path
    account: Account
    mode: str
    pilot_uid: int
    changes: Tuple[PathChange, ...] = ()
    parents: Tuple[ParentChange, ...] = ()
    work_root: Optional[Path] = None
    journal: Optional["GrantJournal"] = field(default=None, compare=False)

    def without(self, gone: AbstractSet[Tuple[int, int]]) -> "SandboxGrant":
        """This grant without the changed objects whose (device, inode) is in ``gone``:
        objects the pilot removed for good, which the reclaim must not look for."""
        return replace(self, changes=tuple(change for change in self.changes
                                           if (change.device, change.inode) not in gone))

    def payload_umask(self, default: int) -> int:
        """The umask the wrapper must set: ``default`` (the queue's) in ACL mode, where the
        default ACL decides, and 000 in world mode, where nothing else lets the pilot read
        what the payload writes."""
        return 0 if self.mode == WORLD else default
