"""Undoing the grants of jobs whose pilot died: ``pilotid cleanup`` and the start of
``pilotid run`` call ``undo_dead_grants``."""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
from dataclasses import replace
from pathlib import Path
from typing import List

from pilotid.errors import SandboxError
from pilotid.escaping import printable
from pilotid.workdir.journal import (
    GrantJournal,
    dead_journals,
    read_journal,
    remove_unfinished_journals,
)
from pilotid.workdir.orphans import remove_dead_private_directories
from pilotid.workdir.reclaim import reclaim

log = logging.getLogger(__name__)


def default_state_dir() -> Path:
    """pilotid's state directory when the queue names none: ``$XDG_STATE_HOME/pilotid``
    where that is set (an absolute path), else ``~/.local/state/pilotid`` in the home the
    password database gives the pilot account."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg) / "pilotid"
    return Path(pwd.getpwuid(os.geteuid()).pw_dir) / ".local" / "state" / "pilotid"


def undo_journal(journal: GrantJournal) -> None:
    """Reclaim what ``journal`` (this process's own, its grant object lost: a grant that
    failed early) says was granted, and remove it.  ``SandboxError`` as ``reclaim``."""
    try:
        grant, _ = read_journal(journal.path)
    except FileNotFoundError:
        journal.close()  # removed by the reclaim of the failed grant already
        return
    reclaim(replace(grant, journal=journal))


def undo_dead_grants(state_dir: Path) -> List[Path]:
    """Reclaim what each job of this host whose pilotid process is gone had granted, from
    its journal in ``state_dir``; return their work directories.  Their private
    directories (``orphans``) and the journals they were creating go too.  A journal
    another pilot is undoing at the same time is left to it.  ``SandboxError`` naming what
    could not be given back, after every journal was tried (those journals stay, for the
    next time)."""
    undone: List[Path] = []
    failures: List[str] = []
    remove_dead_private_directories(state_dir)
    remove_unfinished_journals(state_dir)
    for path in dead_journals(state_dir):
        try:
            journal = GrantJournal.reopen(state_dir, path)
        except FileNotFoundError:
            continue  # undone by another pilot meanwhile
        try:
            fcntl.flock(journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            grant, header = read_journal(path)
        except BlockingIOError:
            journal.close()
            continue
        except (OSError, ValueError, KeyError) as error:
            journal.close()
            failures.append(f"{path}: not a journal pilotid can read ({error})")
            continue
        try:
            reclaim(replace(grant, journal=journal))
        except SandboxError as error:
            journal.close()
            failures.append(str(error))
            continue
        log.warning("undid the grant of %s to %s by a pilot that died (pid %s)",
                    printable(grant.workdir), grant.account.name, header.get("pid"))
        undone.append(grant.workdir)
    if failures:
        raise SandboxError(f"could not undo {len(failures)} grants of pilots that died; "
                           f"first: {failures[0]}")
    return undone
