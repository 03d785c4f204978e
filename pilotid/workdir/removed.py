"""Objects the pilot removes itself from the work directory after a job (its wrapper,
written before the grant): gone for good, so not "moved out" by the payload.

``remove_for_good`` says which object it removed by the device and inode of a descriptor
held across the ``unlink``, and only when that object has no name left anywhere: a name the
payload swapped meanwhile, or a second name it gave the object (a rename, a hard link),
leaves the object to the reclaim's search, as any other it moved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

from pilotid.workdir.walk import _PATH_FLAGS


def remove_for_good(path: Path) -> Optional[Tuple[int, int]]:
    """Unlink ``path`` (missing: nothing to do); return the device and inode of the object
    it named when it was opened if that object now has no name at all, else None.
    ``OSError`` where ``path`` cannot be removed (a directory, say)."""
    try:
        fd = os.open(path, _PATH_FLAGS)  # the object itself: a symlink is not followed
    except FileNotFoundError:
        return None
    try:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return None
        info = os.fstat(fd)
    finally:
        os.close(fd)
    # a link count of 0 cannot rise again: no process may give a name back to such a file
    return (info.st_dev, info.st_ino) if info.st_nlink == 0 else None
