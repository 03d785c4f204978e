"""Trust roots on disk: the CA directory GET_TRUSTROOTS fetched, written atomically.

``write_trustroots`` builds the new directory beside the target and swaps it in one step,
so a pilot reading ``X509_CERT_DIR`` never sees it half-written; it replaces only a
directory it wrote before (marked ``.pilotid-trustroots``) unless forced.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Mapping, Union

from pilotid.errors import CredentialError
from pilotid.identity.myproxy.wire import TRUSTROOT_NAME

TRUSTROOTS_MARKER = ".pilotid-trustroots"


def write_trustroots(files: Mapping[str, bytes], directory: Union[str, Path],
                     force: bool = False) -> Path:
    """Write trust roots into ``directory`` atomically: build a sibling directory, then swap.

    A directory pilotid made earlier (it holds ``.pilotid-trustroots``) is replaced; any
    other existing directory only with ``force``.  Returns the directory.
    """
    target = Path(directory)
    parent = target.parent
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise CredentialError(f"{target} exists and is not a directory: choose another -o")
    if target.is_dir() and not (target / TRUSTROOTS_MARKER).is_file() and not force:
        raise CredentialError(f"{target} exists and was not written by pilotid: use --force "
                              "to replace its contents, or choose a new directory")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=parent))
    try:
        os.chmod(staging, 0o755)  # noqa: S103 - a CA directory is public by nature
        for name, data in sorted(files.items()):
            if not TRUSTROOT_NAME.fullmatch(name):
                continue
            (staging / name).write_bytes(data)
            os.chmod(staging / name, 0o644)
        (staging / TRUSTROOTS_MARKER).write_text("written by pilotid myproxy trustroots\n")
        if target.is_dir():
            _swap_directories(staging, target)
            shutil.rmtree(staging, ignore_errors=True)  # now holds the old contents
        else:
            os.rename(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise CredentialError(f"cannot write trust roots to {target}: {error.strerror}") from None
    return target


def _swap_directories(new: Path, old: Path) -> None:
    """Exchange two directories in one step (renameat2 RENAME_EXCHANGE), or as close as the
    system allows (two renames) where that call does not exist."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        renameat2 = None
    if renameat2 is not None:
        at_fdcwd, rename_exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(old),
                     rename_exchange) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
            raise OSError(code, os.strerror(code))
    aside = old.with_name(old.name + f".old-{secrets.token_hex(4)}")
    os.rename(old, aside)
    os.rename(new, old)
    os.rename(aside, new)
