"""Replacing a running payload's bearer token copy with a newer token, atomically.

The new token is written to a new file beside the copy (``O_EXCL|O_NOFOLLOW``, 0600 from
creation), opened to the payload's account alone with an access ACL entry ``u:<uid>:r``
where the payload runs as another account, then renamed over the copy: the payload reads
the old token or the new one, never a partial file, and no one else can read either.  It
is done only in a directory of the pilot's that no other account may write (the handover
directory of an ACL-mode job, the job's private directory): never in a world-mode
handover directory, whose sticky bit makes the target's copy the target's alone.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Optional

from pilotid.errors import CredentialError
from pilotid.identity.credfile import write_private
from pilotid.workdir.acl import _ACCESS, _R, _Acl


def replace_token_copy(copy: Path, token: bytes, reader_uid: Optional[int]) -> bool:
    """Put ``token`` in place of the payload's token file ``copy``; True once renamed.

    ``reader_uid`` is the payload's account where it is not the pilot's (None: the pilot's
    own copy).  False, and nothing changed, where ``copy``'s directory is not the pilot's
    or is open to others (writable by all, or sticky: a world-mode handover directory).
    ``CredentialError`` when the new file cannot be written.
    """
    directory = Path(copy).parent
    info = os.lstat(directory)
    if (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid()
            or info.st_mode & (stat.S_IWOTH | stat.S_ISVTX)):
        # (the group bits of an ACL-mode handover directory are its mask, which the target's
        # own entry sets: only "others" and the world-mode sticky bit say others may write)
        return False
    staging = write_private(directory / f".bt-{secrets.token_hex(8)}", token)
    try:
        if reader_uid is not None:
            acl = _Acl.from_mode(0o600)
            acl.add_user(reader_uid, _R)
            acl.recompute_mask()
            os.setxattr(staging, _ACCESS, acl.to_xattr(), follow_symlinks=False)
        os.replace(staging, copy)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(staging)
        raise CredentialError(f"cannot replace the payload's token copy {copy}: "
                              f"{error.strerror}") from None
    return True
