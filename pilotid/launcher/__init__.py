"""``PayloadLauncher``: one job, from credential to accounting record.

The launcher is composed, not subclassed: customise the strategies it is given (credential
source, identity switcher, payload adapters), which ``pilotid.factory.build_launcher``
builds from a queue's settings.  ``run`` does the eight steps of DESIGN.md in order and
always returns a ``PayloadResult``: failures become an outcome with its pilot error code,
never an exception, so that the pilot can report every job.

This module orchestrates and holds no policy: every decision about the switch (is there one,
does the marker prove it, how are the payload's processes signalled and its leftovers
killed) is the switch session's (``ISwitchSession``).  What it relies on lives apart:
watching the payload (``pilotid.supervision``), what the payload left running
(``pilotid.leftovers``), the pilot's own signals during the job (``pilotid.signals``),
what one job set up and its undoing (``JobRun``, in ``pilotid.launcher.jobrun``),
appending to its files in the work directory (``pilotid.workfiles``), and the accounting
record (``pilotid.accounting``).  An unexpected exception (not a ``PilotidError``) becomes
the outcome ``internal_error`` with its traceback in the log.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from pilotid import leftovers, values
from pilotid.accounting import append_record
from pilotid.errors import (
    AccountMappingError,
    PayloadFailedError,
    PayloadTimeoutError,
    PilotidError,
    PilotInterruptedError,
    SwitchError,
    SwitchNotPermittedError,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.default_proxy import pilot_credentials
from pilotid.identity.owner import owner_dn, token_owner
from pilotid.launcher.jobrun import JobRun
from pilotid.nodelog import NodeLog
from pilotid.payloads.envmigration import log_newly_dropped
from pilotid.payloads.job import JobSpec
from pilotid.payloads.wrapper import WrapperSpec, rewrite_wrapper, write_wrapper
from pilotid.queue import QueueSettings
from pilotid.result import PayloadResult, internal_error, outcome_for_error
from pilotid.signals import PilotSignal
from pilotid.strategies.base import check_launch_lifetime, reschedule_if_asked
from pilotid.supervision import Supervisor
from pilotid.values import Outcome, WrapperMarker
from pilotid.workdir import (
    GrantJournal,
    choose_sandbox_mode,
    default_state_dir,
    grant_target_access,
    make_handover_directory,
    make_private_directory,
    prepare_workdir,
    undo_dead_grants,
)

if TYPE_CHECKING:
    from pilotid.queue_strategies import Strategies

__all__ = ["PayloadLauncher", "PayloadResult", "outcome_for_error"]

log = logging.getLogger(__name__)


class PayloadLauncher:
    """Run jobs of one queue as their users. Not intended to be subclassed: customise the
    strategies instead.

    ``strategies`` holds the credential source, the identity switcher and the payload
    adapters (see ``pilotid.queue_strategies.Strategies``).
    """

    def __init__(self, settings: QueueSettings, strategies: "Strategies") -> None:
        self.settings = settings
        self.strategies = strategies
        self.source = strategies.source
        self.switcher = strategies.switcher
        self.isolation = strategies.isolation
        self.node_log = NodeLog.from_settings(settings)

    def run(self, job: JobSpec, workdir: Path) -> PayloadResult:
        """Run ``job`` in ``workdir`` as its user; return what happened (never raises: a
        failure becomes the result's outcome and error code, an unexpected exception the
        outcome ``internal_error``)."""
        state = JobRun(job, Path(os.path.abspath(workdir)))
        log.info("job %s: starting in %s (queue %s, switcher %s)", job.panda_id, state.workdir,
                 self.settings.name, self.switcher.name)
        with state.signals.caught():
            try:
                outcome = self._run(state)
            except PilotidError as error:
                log.error("job %s: %s", job.panda_id, error)
                outcome = outcome_for_error(error)
            except Exception as error:  # every job reported, whatever went wrong
                log.exception("job %s: internal error", job.panda_id)
                outcome = internal_error(error, "running the job")
            unexpected = state.finish()
            if unexpected is not None and outcome.error is None:
                outcome = internal_error(unexpected, "cleaning up after the job")
            result = state.result(outcome, self.switcher.name)
            append_record(result, state.token, self.settings.accounting_file,
                          in_workdir=state.private is not None)
            self.node_log.ended(result, state.credential)
        if state.signals.pending is not None:
            log.warning("job %s: pilot got signal %d while finishing the job: the job's "
                        "result stands", job.panda_id, state.signals.pending)
        log.info("job %s: %s (exit code %s, error code %s)", job.panda_id, result.outcome,
                 result.exit_code, result.error_code)
        return result

    def _run(self, state: JobRun) -> Outcome:
        state_dir = self.settings.state_dir or default_state_dir()
        prepare_workdir(state.workdir, pilot_credentials(), state_dir)
        # recorded before the credential is fetched into it: a pilot killed later leaves
        # it to ``pilotid cleanup``
        state.private = make_private_directory(state.workdir, state.job.panda_id, state_dir)
        try:
            undo_dead_grants(state_dir)
        except PilotidError as error:  # not this job's to fail for; cleanup retries later
            log.error("job %s: %s", state.job.panda_id, error)
        command = self.strategies.payload_for(state.job).command(state.job, state.workdir)
        credential = state.credential = self._fetch(state)
        log.info("job %s: credential of %s from %s", state.job.panda_id, credential.identity,
                 credential.source)
        account = state.account = self._probe(credential)
        log.info("job %s: will run as %s (uid %d)", state.job.panda_id, account.name,
                 account.uid)
        session = state.session = self.isolation.wrap(
            self.switcher.open(credential, account, state.workdir), state.workdir)
        marker, wrapper = state.scratch("marker"), state.scratch("wrapper", ".sh")
        mode = (choose_sandbox_mode(state.workdir, self.settings.sandbox)
                if session.switches_identity else "none")
        state.world_mode(mode == "world")
        spec = WrapperSpec(
            command=command, workdir=state.workdir, handover=session.handover, marker=marker,
            environment=tuple(sorted(os.environ.items())),
            umask=0 if mode == "world" else self.settings.umask,
            egg_cache_base=self.settings.egg_cache_base, extra_deny=self.settings.env_deny,
            extra_pass=self.settings.env_pass,
            reaper_pid=(os.getpid() if session.switches_identity
                        and leftovers.subreaper_supported() else None),
            strip_leftover_modes=session.switches_identity, target_directory=state.target_prefix)
        log_newly_dropped(state.job.panda_id, spec)
        write_wrapper(spec, wrapper)  # before the grant, which opens it to the target
        if session.switches_identity:
            asked = "acl-or-world" if self.settings.sandbox == "acl-or-world" else mode
            state.journal = GrantJournal.create(state_dir, state.workdir, account, mode,
                                                os.geteuid(), self.settings.work_root)
            state.grant = grant_target_access(state.workdir, account, asked,
                                              keep_private=pilot_credentials(),
                                              work_root=self.settings.work_root,
                                              journal=state.journal)
            mode = state.grant.mode
            state.world_mode(mode == "world")
            umask = state.grant.payload_umask(self.settings.umask)
            if (umask, state.target_prefix) != (spec.umask, spec.target_directory):
                # the grant fell back to world mode by itself
                rewrite_wrapper(replace(spec, umask=umask,
                                        target_directory=state.target_prefix), wrapper)
        state.sandbox_mode = mode
        # after the grant, which must not walk it; in world mode the wrapper's own directory
        if session.handover.from_stdin and state.target_prefix is None:
            state.handover_dir = make_handover_directory(session.handover.stdin_place,
                                                         state.grant,
                                                         session.handover.payload_token)
        state.supervisor = Supervisor(self.settings, session, credential,
                                      lambda: self.source.fetch(self._request(state)),
                                      state.signals, state.job.panda_id, self.switcher.name)
        with leftovers.child_subreaper():
            try:
                return self._launch(state, state.supervisor, wrapper, marker)
            finally:
                self._end_payload(state)

    def _fetch(self, state: JobRun) -> Credential:
        """The job's credential from the source, also kept in ``state.credential`` at once
        (so that ``_finish`` removes it whatever comes next).  The only step of the set-up
        that may wait long (a credential server that does not answer): a signal to the
        pilot stops it there (``PilotInterruptedError``) instead of when it ends."""
        try:
            state.signals.arm()
            credential = state.credential = self.source.fetch(self._request(state))
            return credential
        except PilotSignal as caught:
            raise PilotInterruptedError(
                f"pilot received signal {caught.signum} while fetching the credential: the "
                "payload was not started") from None
        finally:
            state.signals.disarm()

    def _probe(self, credential: Credential) -> Account:
        """The switcher's probe; a failure may become a ``RescheduleRequest``
        (``reschedule_if_asked``), never a fallback to the pilot's identity."""
        try:
            return self.switcher.probe(credential)
        except (SwitchError, AccountMappingError) as error:
            handed_back = reschedule_if_asked(self.settings, error,
                                              f"the {self.switcher.name} probe failed")
            if handed_back is error:
                raise
            raise handed_back from error

    def _request(self, state: JobRun) -> CredentialRequest:
        """The job's credential request: valid at least ``proxy_lifetime_needed`` more."""
        assert state.private is not None
        return CredentialRequest(
            directory=state.private.path, lifetime=self.settings.proxy_lifetime_needed(),
            owner_dn=owner_dn(state.job.prod_user_id, self.settings.jobs_without_dn),
            credname=state.job.credname,
            server=state.job.myproxy, job_id=str(state.job.panda_id),
            owner_id=token_owner(state.job.prod_user_id))

    def _launch(self, state: JobRun, supervisor: Supervisor, wrapper: Path,
                marker: Path) -> Outcome:
        """Launch the wrapper, again while the session says a failure before it ran may go
        away (``retry_delay``); watch it; return the outcome of the last launch."""
        state.signals.check()  # a stop asked for during the set-up: do not start the payload
        state.stdout = state.workdir / f"pilotid-{state.job.panda_id}.stdout"
        state.stderr = state.workdir / f"pilotid-{state.job.panda_id}.stderr"
        session, attempt, account = state.session, 1, state.account
        assert account is not None  # probed before the session was opened
        with state.logs() as logs:
            while True:
                check_launch_lifetime(supervisor.credential,
                                      self.settings.proxy_lifetime_needed(), self.settings.name)
                process = state.process = session.launch([str(wrapper)], logs)
                log.info("job %s: launch %d started (pid %d)", state.job.panda_id, attempt,
                         process.pid)
                self.node_log.switched(state.job.panda_id, supervisor.credential, account,
                                       self.switcher.name, state.workdir, wrapper, process.pid)
                override = supervisor.watch(process)
                found, tampered = state.read_marker(marker)
                if tampered is not None:  # the wrapper ran: never launch again
                    log.warning("job %s: %s", state.job.panda_id, tampered)
                    return Outcome(values.PAYLOAD_FAILED, error=PayloadFailedError(tampered))
                outcome = self._outcome(state, process, found, override)
                if found is not None or override is not None:
                    return outcome
                delay = session.retry_delay(outcome, attempt)
                if delay is None:
                    if attempt > 1:
                        log.error("job %s: giving up after %d launches", state.job.panda_id,
                                  attempt)
                    return self._refused_at_launch(outcome)
                log.warning("job %s: launch %d: %s; launching again in %gs",
                            state.job.panda_id, attempt, outcome.error, delay)
                interrupted = supervisor.pause(delay)
                if interrupted is not None:
                    return Outcome(values.INTERRUPTED, error=interrupted)
                attempt += 1

    def _refused_at_launch(self, outcome: Outcome) -> Outcome:
        """A switch refused before the wrapper ran, as a refused probe (a probe answer kept
        from an earlier job, ``probe_cache_lifetime``, may have gone stale since)."""
        if not isinstance(outcome.error, SwitchNotPermittedError):
            return outcome
        error = reschedule_if_asked(self.settings, outcome.error,
                                    f"the {self.switcher.name} switch was refused at launch")
        return outcome if error is outcome.error else outcome_for_error(error)

    def _outcome(self, state: JobRun, process: Any, found: Optional[WrapperMarker],
                 override: Optional[PilotidError]) -> Outcome:
        """The outcome of one launch, from its status, the wrapper's marker and ``override``."""
        if process.returncode is None:  # it survived SIGKILL: see Supervisor.stop
            assert override is not None
            return Outcome(values.TIMED_OUT if isinstance(override, PayloadTimeoutError)
                           else values.INTERRUPTED, error=type(override)(
                               f"{override}; but the payload (pid {process.pid}) could not be "
                               "stopped and may still run"))
        outcome = state.session.explain(process.returncode, found)
        if override is not None:
            timed_out = isinstance(override, PayloadTimeoutError)
            kind = values.TIMED_OUT if timed_out else values.INTERRUPTED
            outcome = replace(outcome, kind=kind, error=override)
        return outcome

    def _end_payload(self, state: JobRun) -> None:
        """After the last launch, on every way out: stop a payload still running (an error
        between its launch and its end), then have the session end what it left running.
        A signal to the pilot meanwhile is only remembered (``PilotSignals``)."""
        process = state.process
        if process is None or state.supervisor is None:
            return
        if process.poll() is None:
            log.error("job %s: the payload (pid %d) still runs after its launch ended: "
                      "stopping it", state.job.panda_id, process.pid)
            state.supervisor.stop(process)
        state.session.stop_leftovers(process)
        state.note_copies_in_place()
        left = state.wrapper_leftovers(Path(self.settings.egg_cache_base))
        if left:
            log.info("job %s: removing what the wrapper left as its account: %s",
                     state.job.panda_id, " ".join(map(str, left)))
            state.session.remove_as_target(left)
