"""Where a work directory may not be, and making it ready for a job.

``prepare_workdir`` is the launcher's first step: the work directory exists, the pilot can
write there, it is not a place a grant must not open (``refuse_unsafe_workdir``), and it
holds no other job's pilotid files (``refuse_leftovers``).  pilotid keeps nothing private
in it: its credential copies are in the job's private directory elsewhere
(``pilotid.workdir.private``).

``refuse_unsafe_workdir`` is asked before anything is changed (by ``pilotid run`` and by
``pilotid probe``).  The grant opens the whole work directory to the job's user, so a work
directory that is the file system's root, the pilot's home, a shared temporary directory
itself (``/tmp``, ``/var/tmp``, ``/dev/shm``), or a directory holding credentials (the
pilot's own proxy, ``x509up_*`` files, a ``.globus`` directory) would hand that user what
is there.  A subdirectory of the pilot's home is allowed (the grant then needs ``x`` on the
home for the target: see :doc:`sandbox`); the home itself is not.
"""

from __future__ import annotations

import functools
import os
import pwd
from pathlib import Path
from typing import FrozenSet, Iterable, Optional

from pilotid.errors import WorkdirError, WorkdirLeftoversError
from pilotid.workdir.journal import running_journals

#: Shared temporary directories: every account may create entries there.
SHARED_TEMPORARY = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"))  # noqa: S108

#: Names whose presence at the top of a directory says it holds credentials.
CREDENTIAL_NAMES = (".globus",)
CREDENTIAL_PREFIXES = ("x509up_",)

#: Where an older pilotid kept its credential copies, in the work directory itself.
PRIVATE_DIR_NAME = ".pilotid"

#: The prefix of every name pilotid makes in a work directory for one job (its wrapper,
#: marker, proxy handover directory, container sentinel), never the payload's to keep.
SCRATCH_PREFIX = ".pilotid-"

_HOW = "give --workdir a fresh directory of the pilot's own, made for this job"


def refuse_unsafe_workdir(workdir: Path, pilot_credentials: Iterable[Path] = (),
                          home: Optional[Path] = None) -> None:
    """Raise ``WorkdirError`` (naming what is wrong and how to fix it) where ``workdir``
    (resolved) is ``/``, the pilot's home (``home``, default: the effective user's home in
    the password database), a shared temporary directory itself, or holds credentials:
    a ``.globus`` or ``x509up_*`` entry at its top, or one of ``pilot_credentials``
    anywhere below it.  A ``workdir`` that cannot be resolved is left to the later checks.
    """
    try:
        resolved = Path(workdir).resolve(strict=True)
    except OSError:
        return
    home = _pilot_home() if home is None else home
    if resolved == Path("/"):
        raise WorkdirError(f"work directory {workdir} is the file system's root: {_HOW}")
    if home is not None and resolved == _resolved(home):
        raise WorkdirError(f"work directory {workdir} is the pilot's home, which would be "
                           f"opened to the job's user: {_HOW}")
    if resolved in _shared_temporary():
        raise WorkdirError(f"work directory {workdir} is the shared temporary directory "
                           f"{resolved} itself: {_HOW} (a subdirectory of it will do)")
    for credential in pilot_credentials:
        path = _resolved(credential)
        if path is not None and resolved in path.parents:
            raise WorkdirError(f"work directory {workdir} holds the pilot's own credential "
                               f"{credential}: {_HOW}, or keep the credential elsewhere")
    try:
        names = os.listdir(resolved)
    except OSError:
        return  # the pilot cannot list it: the launcher's own checks say so
    for name in sorted(names):
        if name in CREDENTIAL_NAMES or name.startswith(CREDENTIAL_PREFIXES):
            raise WorkdirError(f"work directory {workdir} holds credentials ({name!r}): "
                               f"{_HOW}, or move them out")


def refuse_leftovers(workdir: Path, state_dir: Optional[Path] = None) -> None:
    """Raise ``WorkdirLeftoversError`` where ``workdir`` holds, at its top, a name only
    pilotid makes (``SCRATCH_PREFIX``, or an older pilotid's private ``PRIVATE_DIR_NAME``),
    or is, holds or lies in the work directory of a job whose grant journal in
    ``state_dir`` is a running pilot's: another job runs there or did not end cleanly, and
    its files (a user's proxy copy, a wrapper, a marker, its outputs) would be opened to
    this job's user by the grant."""
    if state_dir is not None:
        _refuse_running_jobs(workdir, state_dir)
    try:
        names = os.listdir(workdir)
    except OSError:
        return  # the pilot cannot list it: the launcher's own checks say so
    found = sorted(name for name in names
                   if name == PRIVATE_DIR_NAME or name.startswith(SCRATCH_PREFIX))
    if found:
        shown = ", ".join(repr(name) for name in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise WorkdirLeftoversError(
            f"work directory {workdir} holds another job's pilotid files ({shown}{more}): "
            f"a job still runs there or did not end cleanly; {_HOW}, or remove them once "
            "no job runs there")


def prepare_workdir(workdir: Path, pilot_credentials: Iterable[Path] = (),
                    state_dir: Optional[Path] = None) -> None:
    """Check ``workdir`` for a job: ``WorkdirError`` where it is not a directory, the
    pilot cannot write and traverse it, or ``refuse_unsafe_workdir`` refuses it
    (``pilot_credentials`` as there); ``WorkdirLeftoversError`` where ``refuse_leftovers``
    does (with the running jobs' journals of ``state_dir``)."""
    if not workdir.is_dir():
        raise WorkdirError(f"work directory {workdir} does not exist or is not a directory")
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise WorkdirError(f"work directory {workdir} is not writable by the pilot "
                           f"(uid {os.geteuid()})")
    refuse_unsafe_workdir(workdir, pilot_credentials)
    refuse_leftovers(workdir, state_dir)


def _refuse_running_jobs(workdir: Path, state_dir: Path) -> None:
    resolved = _resolved(workdir)
    for journal, header in running_journals(state_dir):
        theirs = _resolved(Path(header.get("workdir", "/")))
        if resolved is None or theirs is None or not (
                resolved == theirs or theirs in resolved.parents
                or resolved in theirs.parents):
            continue
        raise WorkdirLeftoversError(
            f"work directory {workdir} is, holds or lies in the work directory {theirs} of "
            f"a job that still runs (pid {header.get('pid')}, its grant journal "
            f"{journal}): {_HOW}")


def _pilot_home() -> Optional[Path]:
    try:
        return Path(pwd.getpwuid(os.geteuid()).pw_dir)
    except KeyError:
        return None


@functools.lru_cache(maxsize=1)
def _shared_temporary() -> FrozenSet[Optional[Path]]:
    """``SHARED_TEMPORARY`` resolved, once per process: a node's /tmp does not move."""
    return frozenset(_resolved(Path(shared)) for shared in SHARED_TEMPORARY)


def _resolved(path: Path) -> Optional[Path]:
    try:
        return Path(path).resolve()
    except OSError:
        return None
