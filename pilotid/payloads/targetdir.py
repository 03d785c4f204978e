"""The wrapper's own directory in world mode, where its marker and proxy copy live.

In world mode every local account may create names in the work directory (mode 1777), so
a marker or a proxy copy under a name the pilot chose could be planted there first by
another account: a forged marker, a FIFO that hands the proxy to whoever reads it.  The
wrapper (``WrapperSpec.target_directory``) therefore makes, as the target, a new directory
``<prefix><32 random hex digits>``, mode 0755: a name no one can know before it exists, in
which no one but the target can create anything.

``TargetDirectory`` finds it after the job.  Of the work directory's names that start with
the prefix, only a directory owned by the target that no one else may write counts, judged
on the descriptor opened ``O_NOFOLLOW`` (what is read is what was judged); the marker is read
through that descriptor and must be the target's regular file.  Another account's plants
are ignored, with a warning.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

from pilotid.escaping import printable
from pilotid.identity.accounts import Account
from pilotid.payloads.marker import read_marker
from pilotid.values import WrapperMarker

log = logging.getLogger(__name__)

MARKER_NAME = "marker"
"""The marker's name in the wrapper's own directory."""

PROXY_NAME = "x509up"
"""The name of the proxy copy from standard input in the wrapper's own directory."""

TOKEN_NAME = "token"  # noqa: S105 - a file name, no secret
"""The name of the bearer token copy from standard input there."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class TargetDirectory:
    """The directories ``<prefix>*`` the wrapper running as ``account`` made."""

    prefix: Path
    account: Account

    def read(self) -> Tuple[Optional[WrapperMarker], Optional[str]]:
        """Return the wrapper's marker and why its outcome cannot be trusted, or None.

        ``(None, None)``: no directory of the target's, the wrapper never ran.  A directory
        only the target could make proves the switch happened: a second one, or a marker in
        it that is missing, does not parse or names another uid, was the payload's doing
        (the reason is then given, as ``tampered_marker`` gives it).
        """
        with self._opened() as made:
            if not made:
                return None, None
            if len(made) > 1:
                return None, (f"the wrapper ran as {self.account.name} but {len(made)} "
                              f"directories {self.prefix.name}* are its own: the payload made "
                              "the others, so its outcome is unknown")
            name, fd = made[0]
            found = read_marker(Path(MARKER_NAME), dir_fd=fd, owner=self.account.uid)
        if found is None or found.uid != self.account.uid:
            return found, (f"the wrapper ran as {self.account.name} (its directory "
                           f"{printable(name)} exists) but its marker is missing, does not "
                           "parse or names another uid: the payload changed it, so its "
                           "outcome is unknown")
        return found, None

    def made(self) -> List[Path]:
        """The paths of the directories the target made under the prefix: the wrapper's,
        and any the payload made like it, for the session to remove as the target."""
        with self._opened() as made:
            return [self.prefix.parent / name for name, _ in made]

    @contextlib.contextmanager
    def _opened(self) -> Iterator[List[Tuple[str, int]]]:
        """(name, descriptor) of each directory under the prefix that is the target's and
        writable by it alone; closed on the way out."""
        made: List[Tuple[str, int]] = []
        try:
            workdir = os.open(self.prefix.parent, _DIR_FLAGS)
        except OSError as error:
            log.warning("cannot open %s to find the wrapper's directory: %s",
                        self.prefix.parent, error.strerror)
            yield made
            return
        try:
            with os.scandir(workdir) as entries:
                names = [e.name for e in entries if e.name.startswith(self.prefix.name)]
            for name in names:
                fd = self._open_own(workdir, name)
                if fd is not None:
                    made.append((name, fd))
            yield made
        finally:
            for _, fd in made:
                os.close(fd)
            os.close(workdir)

    def _open_own(self, workdir: int, name: str) -> Optional[int]:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=workdir)
        except OSError as error:
            log.warning("%s in %s is not the wrapper's directory (%s): ignored",
                        printable(name), self.prefix.parent, error.strerror)
            return None
        info = os.fstat(fd)
        if info.st_uid == self.account.uid and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return fd
        os.close(fd)
        log.warning("%s in %s was not made by the wrapper (uid %d, mode %04o): ignored; another "
                    "account may have planted it", printable(name), self.prefix.parent,
                    info.st_uid, stat.S_IMODE(info.st_mode))
        return None
