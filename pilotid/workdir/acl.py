"""POSIX ACLs as the kernel stores them, and the access check they make.

ACLs are read and written as the kernel's ``system.posix_acl_*`` extended attributes
(``getfacl``/``setfacl`` do the same): that gives an exact snapshot of each object before
the grant, which ``reclaim`` puts back byte for byte.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
from pathlib import Path
from typing import Collection, Dict, Optional, Tuple, Union

from pilotid.errors import SandboxError, WorkdirError
from pilotid.escaping import printable

log = logging.getLogger(__name__)

_ACCESS = "system.posix_acl_access"
_DEFAULT = "system.posix_acl_default"
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_R, _W, _X = 4, 2, 1
_RWX = _R | _W | _X
_NOT_SUPPORTED = {errno.EOPNOTSUPP, getattr(errno, "ENOTSUP", errno.EOPNOTSUPP)}


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


class _AclNotSupported(Exception):
    pass


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
        raise SandboxError(f"cannot set an ACL on {printable(where)}: {error.strerror}") from None


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
