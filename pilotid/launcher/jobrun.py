"""``JobRun``: the state of one job while ``PayloadLauncher.run`` runs it, and its undoing.

Each step of the launcher's sequence keeps here what it set up (the private directory with
the credential copies, the switch session, the sandbox grant, the proxy handover directory,
scratch files in the work directory), so that ``finish`` takes it all back on every way
out, and ``result`` makes the job's ``PayloadResult`` from it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from pilotid.errors import PilotidError
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.payloads.job import JobSpec
from pilotid.payloads.marker import read_marker, tampered_marker
from pilotid.payloads.targetdir import PROXY_NAME, TOKEN_NAME, TargetDirectory
from pilotid.payloads.wrapper import EGG_CACHE_PREFIX
from pilotid.result import PayloadResult, now
from pilotid.signals import PilotSignals
from pilotid.supervision import Supervisor
from pilotid.values import Outcome, PayloadLogs, WrapperMarker
from pilotid.workdir import (
    GrantJournal,
    HandoverDirectory,
    PrivateDirectory,
    SandboxGrant,
    copies_in_place,
    reclaim,
    remove_copies,
    remove_for_good,
    undo_journal,
)
from pilotid.workfiles import open_payload_log

__all__ = ["JobRun"]

# The launcher's logger: ``pilotid run``'s summary filters the errors it carries there.
log = logging.getLogger("pilotid.launcher")


class JobRun:
    """The state of one job while it runs; everything ``finish`` must undo."""

    def __init__(self, job: JobSpec, workdir: Path) -> None:
        self.job = job
        self.workdir = workdir
        self.token = secrets.token_hex(8)
        self.started = now()
        self.credential: Optional[Credential] = None
        self.account: Optional[Account] = None
        self.session: Any = None
        self.supervisor: Optional[Supervisor] = None
        self.grant: Optional[SandboxGrant] = None
        self.journal: Optional[GrantJournal] = None
        self.sandbox_mode: Optional[str] = None
        self.handover_dir: Optional[HandoverDirectory] = None
        self.stdout: Optional[Path] = None
        self.stderr: Optional[Path] = None
        self.private: Optional[PrivateDirectory] = None
        self.process: Any = None  # the last launch's switch process
        self.cleanup: List[Path] = []
        self.signals = PilotSignals()
        self.target_dir: Optional[TargetDirectory] = None
        self.marker: Optional[WrapperMarker] = None  # the last launch's
        self.copies_in_place: Set[Tuple[int, int]] = set()

    def scratch(self, stem: str, suffix: str = "") -> Path:
        """A path in the work directory unique to this run."""
        path = self.workdir / f".pilotid-{stem}-{self.job.panda_id}-{self.token}{suffix}"
        self.cleanup.append(path)
        return path

    def world_mode(self, world: bool) -> None:
        """Say whether the work directory is in world mode, where the wrapper keeps its
        marker and proxy copy in a directory of its own (``target_prefix``)."""
        assert self.account is not None
        self.target_dir = (TargetDirectory(
            self.workdir / f".pilotid-target-{self.job.panda_id}-{self.token}-", self.account)
            if world else None)

    @property
    def target_prefix(self) -> Optional[Path]:
        """``WrapperSpec.target_directory``: None but in world mode."""
        return self.target_dir.prefix if self.target_dir is not None else None

    def read_marker(self, marker: Path) -> Tuple[Optional[WrapperMarker], Optional[str]]:
        """The wrapper's marker (at ``marker``, or in its own directory in world mode), kept
        as ``self.marker``, and why the payload's outcome is unknown (a marker the payload
        changed), or None."""
        if self.target_dir is not None:
            self.marker, tampered = self.target_dir.read()
            return self.marker, tampered
        owner = self.session.marker_owner
        self.marker = read_marker(marker)
        return self.marker, tampered_marker(marker, self.marker, owner, self.account)

    def wrapper_leftovers(self, egg_cache_base: Path) -> List[Path]:
        """What the wrapper made as its account and is still there once its processes are
        gone, for ``ISwitchSession.remove_as_target``: the egg cache its marker names,
        where a wrapper killed outright left it, and, in world mode, its own directory
        (after a switch, the pilot may remove neither itself)."""
        left = self.target_dir.made() if self.target_dir is not None else []
        # error=egg-cache: the mkdir failed, whatever is at that name is not the wrapper's
        if (self.marker is not None and self.marker.egg_cache is not None
                and self.marker.error != "egg-cache"):
            egg = egg_cache_base / f"{EGG_CACHE_PREFIX}{self.marker.egg_cache}"
            if os.path.lexists(egg):
                left.append(egg)
        return left

    def note_copies_in_place(self) -> None:
        """Once the payload's processes are gone, before anything is removed: which of the
        credential copies the marker names are still where the wrapper stored them, with
        no other name (``finish`` then need not search the work directory for them)."""
        if self.marker is None or not self.marker.copies:
            return
        places: List[Tuple[Optional[int], str]] = []
        handover = self.handover_dir
        if handover is not None and handover.fd is not None:
            places += [(handover.fd, handover.proxy.name)]
            if handover.token is not None:
                places += [(handover.fd, handover.token.name)]
        if self.target_dir is not None:
            places += [(None, str(own / name)) for own in self.target_dir.made()
                       for name in (PROXY_NAME, TOKEN_NAME)]
        self.copies_in_place = copies_in_place(self.marker.copies, places)

    @contextlib.contextmanager
    def logs(self) -> Iterator[PayloadLogs]:
        """The payload's two logs, open to append to, for one launch through the switch."""
        assert self.stdout is not None and self.stderr is not None
        with open_payload_log(self.stdout, self.token) as out, \
                open_payload_log(self.stderr, self.token) as err:
            yield PayloadLogs(out, err)

    def finish(self) -> Optional[Exception]:
        """Undo what the run set up: credentials and scratch files, the session, then the
        sandbox grant.  Every step is tried; the first unexpected exception is returned
        (logged with its traceback), never raised."""
        unexpected: List[Exception] = []

        def attempt(step: str, action: Any, *args: Any) -> None:
            try:
                action(*args)
            except PilotidError as error:
                log.error("job %s: %s failed: %s", self.job.panda_id, step, error)
            except Exception as error:  # the job's result must still be written
                log.exception("job %s: internal error while %s", self.job.panda_id, step)
                unexpected.append(error)

        paths = list(self.cleanup)
        # The credential copies (the source's, the refreshed ones) are in the private
        # directory, out of the payload's reach: removed through its descriptor.
        if self.private is not None:
            attempt("removing the private directory", self.private.remove)
        # A stdin handover's copy goes with its directory, and only with the one made: its
        # path may lead through whatever someone else put there.
        if self.handover_dir is not None:
            attempt("removing the proxy handover directory", self.handover_dir.remove)
        if self.session is not None and (not self.session.handover.from_stdin
                                         or self.session.handover.proxy_by_switch):
            paths.append(self.session.handover.payload_proxy)  # the switch program's copy
        # Removed before the reclaim, not after: a pilot killed in between leaves no
        # ``.pilotid-*`` name that would fail the next job there (26), and its journal still
        # undoes the whole grant.  What was removed for good (the wrapper, changed by the
        # grant) is dropped from the grant and the journal, so that neither this reclaim
        # nor ``pilotid cleanup`` reports it as moved out or searches the work root for it.
        gone: Set[Tuple[int, int]] = set()
        for path in paths:
            attempt(f"removing {path}", _remove, path, gone)
        if gone:
            attempt("writing down the scratch files removed", self._forget, gone)
        # Copies the payload renamed away from where the wrapper stored them.
        moved = set(self.marker.copies) - self.copies_in_place if self.marker else set()
        if moved and self.account is not None and self.session is not None \
                and self.session.switches_identity:
            attempt("removing the credential copies the payload moved", remove_copies,
                    self.workdir, moved, self.account.uid, self.session.remove_as_target)
        if self.session is not None:
            attempt("closing the switch session", self.session.close)
        if self.grant is not None:
            attempt("reclaiming the work directory", reclaim, self.grant)
        elif self.journal is not None:  # the grant failed: its journal says what stays
            attempt("undoing the grant's journal", undo_journal, self.journal)
        return unexpected[0] if unexpected else None

    def _forget(self, gone: Set[Tuple[int, int]]) -> None:
        """Drop the objects removed for good from the grant, then write them down in its
        journal (a pilot killed between the two: ``pilotid cleanup`` reports them)."""
        if self.grant is not None:
            self.grant = self.grant.without(gone)
        if self.journal is not None and not self.journal.closed:  # closed: undone already
            for device, inode in sorted(gone):
                self.journal.record_removed(device, inode)

    def result(self, outcome: Outcome, switcher: str) -> PayloadResult:
        """The job's ``PayloadResult``: ``outcome``, through the switcher named ``switcher``."""
        credential = (self.supervisor.credential if self.supervisor is not None
                      else self.credential)
        return PayloadResult(
            panda_id=self.job.panda_id, outcome=outcome.kind, exit_code=outcome.exit_code,
            signal=outcome.signal, error_code=outcome.error_code,
            error=str(outcome.error) if outcome.error else None, account=self.account,
            switcher=switcher, sandbox_mode=self.sandbox_mode,
            workdir=self.workdir, stdout=self.stdout, stderr=self.stderr,
            started=self.started, ended=now(),
            user_dn=credential.identity if credential else self.job.prod_user_id,
            token=token_record(credential))


def token_record(credential: Optional[Credential]) -> Optional[Dict[str, Any]]:
    """Who the job's bearer token names, for the accounting record (None without one)."""
    if credential is None or credential.token is None:
        return None
    token = credential.token
    return {"issuer": token.issuer, "subject": token.subject, "groups": list(token.groups)}


def _remove(path: Path, gone: Set[Tuple[int, int]]) -> None:
    identity = remove_for_good(path)
    if identity is not None:
        gone.add(identity)

