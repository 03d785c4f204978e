"""Test support for pilotid and its plugins: checked fakes and contract tests.

This module is public API for anyone writing or testing a strategy.

Fakes (hand-written, declared with ``@implementer``, each checked by ``verifyClass`` and
``verifyObject`` in pilotid's own tests):

- ``RecordingSwitcher``: an ``IIdentitySwitcher`` that does not switch at all, runs the
  command as the current user and records every call;
- ``StaticCredentialSource``: the real ``file`` source (``LocalFileSource``) reading one
  given proxy file: a new checked 0600 copy per fetch, refused for another owner (or it
  raises one given error); it records the requests;
- ``FakePayload``: an ``IPayload`` with a fixed command; its outputs are the job's
  outFiles, as the real adapters', unless given.

Each fake's docstring says where it differs from the real strategy.

Contract tests (``IdentitySwitcherContract`` and ``IdentitySwitcherLaunchContract``, from
``pilotid.switcher_contract``; ``IsolationContract`` with its ``RecordedSession``, from
``pilotid.isolation_contract``; ``CredentialSourceContract``, ``PayloadContract`` and
``SOMEBODY_ELSE_DN``, from ``pilotid.strategy_contracts``): plain
classes whose ``test_*`` methods check what every
implementation of an interface must do.  A pytest test class inherits one and says how to
make the strategy under test::

    class TestMySwitcher(IdentitySwitcherContract):
        def make_provider(self):
            return MySwitcher(QueueSettings(name="TEST", switcher="mine"))

The throwaway certificate authority is re-exported: ``TestCA`` and ``make_proxy``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Union

from zope.interface import implementer

from pilotid.errors import (
    JobDescriptionError,
    PayloadFailedError,
    PayloadTerminatedError,
    PilotidError,
    SwitchExecError,
    TransformationNotFoundError,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.sources import LocalFileSource
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.interfaces import ICredentialSource, IIdentitySwitcher, IPayload
from pilotid.isolation_contract import IsolationContract as IsolationContract
from pilotid.isolation_contract import RecordedSession as RecordedSession
from pilotid.payloads.job import JobSpec, PayloadCommand
from pilotid.strategies.base import SwitcherBase
from pilotid.strategies.noop import NoopSwitcher
from pilotid.strategies.session import SwitchSession
from pilotid.strategy_contracts import SOMEBODY_ELSE_DN as SOMEBODY_ELSE_DN
from pilotid.strategy_contracts import CredentialSourceContract as CredentialSourceContract
from pilotid.strategy_contracts import PayloadContract as PayloadContract
from pilotid.switcher_contract import IdentitySwitcherContract as IdentitySwitcherContract
from pilotid.switcher_contract import (
    IdentitySwitcherLaunchContract as IdentitySwitcherLaunchContract,
)
from pilotid.values import (
    PAYLOAD_FAILED,
    SUCCEEDED,
    SWITCH_FAILED,
    TERMINATED,
    Outcome,
    PayloadLogs,
    ProxyHandover,
    WrapperMarker,
)

__all__ = [
    "CredentialSourceContract", "FakePayload", "IdentitySwitcherContract",
    "IdentitySwitcherLaunchContract", "IsolationContract", "PayloadContract",
    "RecordedSession", "SOMEBODY_ELSE_DN",
    "RecordingSwitcher", "StaticCredentialSource", "TestCA", "explain_without_switch",
    "make_proxy",
]


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def explain_without_switch(returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
    """The ``Outcome`` of a launch that did not switch identity, as a no-op switch reads it.

    A negative ``returncode`` is a death by that signal (``terminated``); no ``marker``
    means the wrapper never ran (``switch_failed``, ``SwitchExecError``); a marker of a
    real wrapper that names a signal is ``terminated`` by it, one that names the wrapper's
    own failure (``error=``) is ``setup_failed`` as every switcher reads it
    (``SwitcherBase.explain_marker``); otherwise the payload's status (the marker's, else
    ``returncode``) is 0 (``succeeded``) or not (``payload_failed``, ``PayloadFailedError``).
    """
    if returncode < 0:
        signum = -returncode
        return Outcome(TERMINATED, signal=signum, error=PayloadTerminatedError(
            f"the payload was killed by {_signal_name(signum)}"))
    if marker is None:
        return Outcome(SWITCH_FAILED, error=SwitchExecError(
            f"the wrapper never reported running (exit status {returncode}, no marker); "
            "check the switch's stderr log"))
    if marker.signal or marker.error is not None:
        return SwitcherBase(None).explain_marker(returncode, marker)  # type: ignore[arg-type]
    status = returncode if marker.payload_status is None else marker.payload_status
    if status == 0:
        return Outcome(SUCCEEDED, exit_code=0)
    return Outcome(PAYLOAD_FAILED, exit_code=status, error=PayloadFailedError(
        f"the payload exited with status {status}"))


@implementer(IIdentitySwitcher)
class RecordingSwitcher(NoopSwitcher):
    """The real ``NoopSwitcher`` that records every call: everything runs as the current user.

    Built on ``NoopSwitcher`` so that the two cannot disagree: ``probe`` answers
    ``Account.current()``, ``open`` gives a ``SwitchSession`` with no switch, the payload
    uses the credential's own file, ``launch`` starts ``argv`` in a session of its own with
    ``start_environment``, ``terminate`` signals its process groups, ``explain`` is
    ``NoopSwitcher``'s.  Where it differs: every call (``probe``, ``open``, ``handover``,
    ``launch``, ``terminate``, ``explain``, ``retry_delay``, ``refresh_proxy``,
    ``node_checks``) is appended to ``calls`` as ``(method name, arguments tuple)``, every
    process ``launch`` started to ``processes``, and ``settings`` may be ``None``.

    Built like any strategy, ``RecordingSwitcher(settings)``; ``name`` overrides the
    registry name (``'recording'``) for registering it under another one.
    """

    name = "recording"

    def __init__(self, settings: Any = None, name: Optional[str] = None) -> None:
        super().__init__(settings)
        if name is not None:
            self.name = name
        self.calls: List[Tuple[str, Tuple[Any, ...]]] = []
        self.processes: List[Any] = []

    def probe(self, credential: Credential) -> Account:
        """``NoopSwitcher.probe``, recorded."""
        self.calls.append(("probe", (credential,)))
        return super().probe(credential)

    def open(self, credential: Credential, account: Account, workdir: Path) -> SwitchSession:
        """``NoopSwitcher.open``, recorded."""
        self.calls.append(("open", (credential, account, workdir)))
        return super().open(credential, account, workdir)

    def handover(self, credential: Credential, account: Account, workdir: Path) -> ProxyHandover:
        """``NoopSwitcher.handover`` (the credential's own file), recorded."""
        self.calls.append(("handover", (credential, account, workdir)))
        return super().handover(credential, account, workdir)

    def launch(self, argv: Sequence[str], credential: Credential, account: Account,
               workdir: Path, logs: PayloadLogs) -> Any:
        """``NoopSwitcher.launch``, recorded; the process is kept in ``processes``."""
        self.calls.append(("launch", (argv, credential, account, workdir, logs)))
        process = super().launch(argv, credential, account, workdir, logs)
        self.processes.append(process)
        return process

    def terminate(self, process: Any, signum: int) -> None:
        """``NoopSwitcher.terminate``, recorded."""
        self.calls.append(("terminate", (process, signum)))
        super().terminate(process, signum)

    def explain(self, returncode: int, marker: Optional[WrapperMarker]) -> Outcome:
        """``NoopSwitcher.explain``, recorded."""
        self.calls.append(("explain", (returncode, marker)))
        return super().explain(returncode, marker)

    def retry_delay(self, outcome: Outcome, attempt: int) -> Optional[float]:
        """``NoopSwitcher.retry_delay`` (never), recorded."""
        self.calls.append(("retry_delay", (outcome, attempt)))
        return super().retry_delay(outcome, attempt)

    def refresh_proxy(self, credential: Credential, workdir: Path) -> bool:
        """``NoopSwitcher.refresh_proxy`` (False), recorded."""
        self.calls.append(("refresh_proxy", (credential, workdir)))
        return super().refresh_proxy(credential, workdir)

    def node_checks(self, credential: Optional[Credential]) -> List[Any]:
        """``NoopSwitcher.node_checks``, recorded."""
        self.calls.append(("node_checks", (credential,)))
        return super().node_checks(credential)

    def called(self, method: str) -> List[Tuple[Any, ...]]:
        """The arguments of every call to ``method``, in order."""
        return [args for name, args in self.calls if name == method]


@implementer(ICredentialSource)
class StaticCredentialSource(LocalFileSource):
    """The real ``file`` source reading one given proxy, or a source raising one given error.

    ``StaticCredentialSource(credential)`` (a ``Credential``, or the path of a proxy file)
    is a ``LocalFileSource`` whose ``proxy_path`` is that file for every request, so every
    ``fetch`` does what the real ``file`` source does: it reads and checks the file
    (parsable, key matching, valid ``request.lifetime`` seconds more), refuses it with a
    ``CredentialError`` when ``request.owner_dn`` names somebody else, and writes a *new*
    0600 copy (``O_EXCL``, ``O_NOFOLLOW``) in ``request.directory``, which the launcher may
    delete after the job without harming the next one.
    ``StaticCredentialSource(error=CredentialRefusedError("..."))`` raises that error
    instead.  Every request is appended to ``requests``.

    Where it differs from the real ``file`` source: it reads the file it was given, not the
    queue's ``proxy_file`` nor ``X509_USER_PROXY`` (``settings`` is kept, never read); its
    registry name is ``'static'``; it records requests; and it can raise a chosen error
    without reading anything.  Register it with a closure,
    ``registry.register_credential_source("static", lambda settings:
    StaticCredentialSource(credential))``.
    """

    name = "static"

    def __init__(self, credential: Union[Credential, str, "os.PathLike[str]", None] = None,
                 error: Optional[PilotidError] = None, name: Optional[str] = None,
                 settings: Any = None) -> None:
        if (credential is None) == (error is None):
            raise TypeError("StaticCredentialSource takes a credential or an error, not both "
                            "nor neither")
        super().__init__(settings, environ={})
        self.proxy_file: Optional[Path] = None
        if credential is not None:
            self.proxy_file = Path(credential.proxy_file("StaticCredentialSource")
                                   if isinstance(credential, Credential) else credential)
        self.error = error
        if name is not None:
            self.name = name
        self.requests: List[CredentialRequest] = []

    def proxy_path(self, request: CredentialRequest) -> Path:
        """The proxy file given at construction, whoever the job is for (``fetch`` then
        checks that it is the job owner's)."""
        assert self.proxy_file is not None
        return self.proxy_file

    def fetch(self, request: CredentialRequest) -> Credential:
        """Record ``request``; raise the given error, or fetch as ``LocalFileSource`` does."""
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return super().fetch(request)


def _accept_every_job(job: JobSpec) -> bool:
    return True


@implementer(IPayload)
class FakePayload:
    """A payload adapter with a fixed command: ``FakePayload(["/bin/echo", "hi"])``.

    ``accepts`` is a predicate on the ``JobSpec`` (every job by default); ``outputs`` the
    file names ``outputs(job)`` returns, by default what the real adapters return (the
    job's ``outFiles`` without its ``logFile``); ``environment`` and ``setup`` go into the
    ``PayloadCommand``; ``error`` (a ``JobDescriptionError`` or
    ``TransformationNotFoundError``) makes ``command`` raise it, as a real adapter does
    for a job it cannot run.  Every ``command`` call is appended to ``commands`` as
    ``(job, workdir)``.

    Where it differs from the real adapters (``TransformationPayload``): it accepts by
    the predicate, not by the transformation's name; it never reads ``jobPars`` (a job
    whose options a real adapter refuses still gets the fixed command) nor looks the
    transformation up; outputs named by jobPars options (``-o``) are not added; and its
    environment has no ``PANDAID``/``ATLAS_RELEASE`` unless given.
    """

    name = "fake"

    def __init__(self, argv: Sequence[str], outputs: Optional[Iterable[str]] = None,
                 accepts: Callable[[JobSpec], bool] = _accept_every_job,
                 environment: Iterable[Tuple[str, str]] = (), setup: Iterable[str] = (),
                 name: Optional[str] = None,
                 error: Optional[PilotidError] = None) -> None:
        if error is not None and not isinstance(
                error, (JobDescriptionError, TransformationNotFoundError)):
            raise TypeError("a payload adapter's command raises only JobDescriptionError or "
                            f"TransformationNotFoundError, not {type(error).__name__}")
        self.argv = tuple(str(arg) for arg in argv)
        self._outputs = None if outputs is None else tuple(outputs)
        self.error = error
        self._accepts = accepts
        self.environment = tuple((str(k), str(v)) for k, v in environment)
        self.setup = tuple(setup)
        if name is not None:
            self.name = name
        self.commands: List[Tuple[JobSpec, Path]] = []

    def accepts(self, job: JobSpec) -> bool:
        """Whether the predicate given at construction accepts ``job``."""
        return bool(self._accepts(job))

    def command(self, job: JobSpec, workdir: Path) -> PayloadCommand:
        """The fixed command, or the error given at construction; the call is recorded."""
        self.commands.append((job, workdir))
        if self.error is not None:
            raise self.error
        return PayloadCommand(self.argv, self.environment, self.setup)

    def outputs(self, job: JobSpec) -> Tuple[str, ...]:
        """The output names given at construction, else the job's outFiles without its
        logFile (as the real adapters, less what their jobPars options name)."""
        if self._outputs is not None:
            return self._outputs
        return tuple(dict.fromkeys(name for name in job.out_files if name != job.log_file))
