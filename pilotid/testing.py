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
``pilotid.isolation_contract``; ``CredentialSourceContract``, ``PayloadContract``): plain
classes whose ``test_*`` methods check what every
implementation of an interface must do.  A pytest test class inherits one and says how to
make the strategy under test::

    class TestMySwitcher(IdentitySwitcherContract):
        def make_provider(self):
            return MySwitcher(QueueSettings(name="TEST", switcher="mine"))

The throwaway certificate authority is re-exported: ``TestCA`` and ``make_proxy``.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import stat
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple, Type, Union

from zope.interface import implementer
from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import (
    CredentialError,
    JobDescriptionError,
    PayloadFailedError,
    PayloadTerminatedError,
    PilotidError,
    SwitchExecError,
    TransformationNotFoundError,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.sources import LocalFileSource
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.interfaces import ICredentialSource, IIdentitySwitcher, IPayload
from pilotid.isolation_contract import IsolationContract as IsolationContract
from pilotid.isolation_contract import RecordedSession as RecordedSession
from pilotid.payloads.job import JobSpec, PayloadCommand
from pilotid.strategies.base import SwitcherBase
from pilotid.strategies.noop import NoopSwitcher
from pilotid.strategies.session import SwitchSession
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
            self.proxy_file = Path(credential.path if isinstance(credential, Credential)
                                   else credential)
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


# --- contract tests ----------------------------------------------------------------------


class _ProviderContract:
    interface: Any = None

    def _provider(self, tmp_path: Path) -> Any:
        return self.make_provider()  # type: ignore[attr-defined]

    def test_provides_its_interface(self, tmp_path: Path) -> None:
        provider = self._provider(tmp_path)
        assert verifyClass(self.interface, type(provider))
        assert verifyObject(self.interface, provider)

    def test_name_is_a_non_empty_string(self, tmp_path: Path) -> None:
        name = self._provider(tmp_path).name
        assert isinstance(name, str) and name, f"name must be a non-empty str, not {name!r}"


def _raised(expected: Tuple[Type[BaseException], ...], call: Callable[[], Any]
            ) -> BaseException:
    """The error ``call()`` raised, asserting it is one of ``expected``."""
    names = " or ".join(kind.__name__ for kind in expected)
    try:
        answer = call()
    except expected as error:
        return error
    except Exception as error:  # noqa: BLE001 - the contract reports any other kind
        raise AssertionError(f"raised {type(error).__name__} ({error}); only {names} (or a "
                             "subclass) is allowed") from error
    raise AssertionError(f"returned {answer!r} instead of raising {names}")


#: The owner named by ``CredentialSourceContract``'s default foreign request: nobody's.
SOMEBODY_ELSE_DN = "/DC=org/DC=example/OU=People/CN=Somebody Else (pilotid.testing)"

#: Ten years: longer than any proxy a source may hand out.
_LONGER_THAN_ANY_PROXY = 10 * 365 * 24 * 3600


class CredentialSourceContract(_ProviderContract):
    """What every ``ICredentialSource`` must do; inherit it in a pytest test class.

    Hooks: ``make_provider(directory)`` (required) returns the source under test, with
    ``directory`` a fresh scratch directory of the test; ``make_request(directory)``
    returns a ``CredentialRequest`` the source must satisfy, writing into ``directory``
    (by default ``CredentialRequest(directory, lifetime=needed_lifetime)``: name the
    owner there if your source needs one); ``make_foreign_request(directory)`` one for
    a job of another owner, which the source must refuse (by default ``make_request``'s
    with ``owner_dn`` set to ``SOMEBODY_ELSE_DN``).  ``needed_lifetime`` is the lifetime
    (seconds) the default request asks for.

    The promises checked: each ``fetch`` writes a new regular file in
    ``request.directory``, 0600 and owned by the caller, that parses as the proxy the
    ``Credential`` describes and is valid for at least ``request.lifetime`` seconds; a
    later fetch does not need an earlier file (the launcher deletes it); a credential of
    another owner than ``request.owner_dn``, one too short for ``request.lifetime`` and a
    directory that cannot be written are refused with a ``CredentialError`` (or a
    subclass), never another exception, and leave nothing in the directory.
    """

    interface = ICredentialSource
    needed_lifetime = 3600

    def make_provider(self, directory: Path) -> Any:
        """Return the credential source under test; ``directory`` is scratch space."""
        raise NotImplementedError("a credential source contract test must define "
                                  "make_provider(directory)")

    def make_request(self, directory: Path) -> CredentialRequest:
        """The request to fetch with; the proxy is to be written into ``directory``."""
        return CredentialRequest(directory=directory, lifetime=self.needed_lifetime)

    def make_foreign_request(self, directory: Path) -> CredentialRequest:
        """A request for a job of somebody else than the credential's owner."""
        return dataclasses.replace(self.make_request(directory), owner_dn=SOMEBODY_ELSE_DN)

    def _provider(self, tmp_path: Path) -> Any:
        scratch = tmp_path / "scratch"
        scratch.mkdir(mode=0o700, exist_ok=True)
        return self.make_provider(scratch)

    def _job_dir(self, tmp_path: Path, name: str = "job") -> Path:
        job_dir = tmp_path / name
        job_dir.mkdir(mode=0o700)
        return job_dir

    def test_fetch_returns_a_private_credential_file(self, tmp_path: Path) -> None:
        source = self._provider(tmp_path)
        job_dir = self._job_dir(tmp_path)
        credential = source.fetch(self.make_request(job_dir))
        assert isinstance(credential, Credential)
        info = os.lstat(credential.path)
        assert stat.S_ISREG(info.st_mode), f"{credential.path} is not a regular file"
        mode = stat.S_IMODE(info.st_mode)
        assert mode & 0o077 == 0, f"{credential.path} has mode {mode:o}"
        assert info.st_uid == os.geteuid()

    def test_fetch_writes_into_the_requested_directory(self, tmp_path: Path) -> None:
        source = self._provider(tmp_path)
        job_dir = self._job_dir(tmp_path)
        credential = source.fetch(self.make_request(job_dir))
        assert Path(credential.path).parent == job_dir

    def test_each_fetch_writes_a_new_file(self, tmp_path: Path) -> None:
        source = self._provider(tmp_path)
        job_dir = self._job_dir(tmp_path)
        first = source.fetch(self.make_request(job_dir))
        second = source.fetch(self.make_request(job_dir))
        assert Path(first.path) != Path(second.path)
        assert Path(first.path).is_file() and Path(second.path).is_file()

    def test_a_fetch_does_not_need_the_file_of_an_earlier_one(self, tmp_path: Path) -> None:
        """The launcher deletes a job's credential when the job ends."""
        source = self._provider(tmp_path)
        first = source.fetch(self.make_request(self._job_dir(tmp_path, "job1")))
        os.unlink(first.path)
        second = source.fetch(self.make_request(self._job_dir(tmp_path, "job2")))
        assert Path(second.path).is_file()

    def test_the_file_is_the_proxy_the_credential_describes(self, tmp_path: Path) -> None:
        source = self._provider(tmp_path)
        credential = source.fetch(self.make_request(self._job_dir(tmp_path)))
        parsed = parse_proxy(Path(credential.path).read_bytes(), Path(credential.path))
        assert parsed.identity == credential.identity
        assert parsed.certificates[0].serial_number == \
            credential.proxy.certificates[0].serial_number

    def test_the_credential_lasts_the_requested_lifetime(self, tmp_path: Path) -> None:
        source = self._provider(tmp_path)
        request = self.make_request(self._job_dir(tmp_path))
        credential = source.fetch(request)
        parsed = parse_proxy(Path(credential.path).read_bytes(), Path(credential.path))
        left = parsed.time_left().total_seconds()
        assert left >= request.lifetime - 60, (
            f"{credential.path} has {int(left)} s left, {request.lifetime} s requested")

    def test_a_credential_too_short_for_the_request_is_refused(self, tmp_path: Path) -> None:
        source = self._provider(tmp_path)
        job_dir = self._job_dir(tmp_path)
        request = dataclasses.replace(self.make_request(job_dir),
                                      lifetime=_LONGER_THAN_ANY_PROXY)
        _raised((CredentialError,), lambda: source.fetch(request))
        assert list(job_dir.iterdir()) == [], "a refused credential left a file behind"

    def test_a_credential_of_another_owner_is_refused(self, tmp_path: Path) -> None:
        source = self._provider(tmp_path)
        job_dir = self._job_dir(tmp_path)
        request = self.make_foreign_request(job_dir)
        _raised((CredentialError,), lambda: source.fetch(request))
        assert list(job_dir.iterdir()) == [], "a refused credential left a file behind"

    def test_a_directory_that_cannot_be_written_is_a_credential_error(self, tmp_path: Path
                                                                       ) -> None:
        source = self._provider(tmp_path)
        missing = tmp_path / "no-such-job-directory"
        _raised((CredentialError,), lambda: source.fetch(self.make_request(missing)))


class PayloadContract(_ProviderContract):
    """What every ``IPayload`` must do; inherit it in a pytest test class.

    Hooks: ``make_provider()`` (required) returns the adapter under test; ``make_job()``
    returns a ``JobSpec`` the adapter accepts and can build a command for;
    ``make_foreign_job()`` one it is asked about but need not accept; ``make_bare_job()``
    one it accepts that carries nothing but its transformation (by default
    ``make_job()``'s), for which ``command`` may refuse, with the adapter's own errors.

    The promises checked: ``accepts`` answers a bool and accepts ``make_job()``;
    ``command`` returns a ``PayloadCommand`` of strings (a non-empty argv tuple,
    environment pairs, setup lines) and raises nothing but ``JobDescriptionError`` or
    ``TransformationNotFoundError``; ``outputs`` names files inside the work directory
    (relative, no ``..``), as strings.
    """

    interface = IPayload

    def make_provider(self) -> Any:
        """Return the payload adapter under test."""
        raise NotImplementedError("a payload contract test must define make_provider()")

    def make_job(self) -> JobSpec:
        """A job the adapter accepts (override for a real adapter)."""
        return JobSpec(panda_id=1, transformation="fake-00-00-01")

    def make_foreign_job(self) -> JobSpec:
        """A job of a transformation no adapter is expected to know."""
        return JobSpec(panda_id=2, transformation="https://example.org/trf/notAnAdapter-9")

    def make_bare_job(self) -> JobSpec:
        """``make_job()``'s transformation and nothing else (no jobPars, no files)."""
        return JobSpec(panda_id=3, transformation=self.make_job().transformation)

    def test_accepts_returns_a_bool(self) -> None:
        payload = self.make_provider()
        for job in (self.make_job(), self.make_foreign_job(), self.make_bare_job()):
            answer = payload.accepts(job)
            assert isinstance(answer, bool), f"accepts() returned {answer!r}, not a bool"

    def test_accepts_its_own_job(self) -> None:
        assert self.make_provider().accepts(self.make_job()) is True

    def test_command_is_a_payload_command_of_strings(self, tmp_path: Path) -> None:
        command = self.make_provider().command(self.make_job(), tmp_path)
        _check_payload_command(command)

    def test_command_refuses_a_job_only_with_the_adapters_errors(self, tmp_path: Path
                                                                 ) -> None:
        payload = self.make_provider()
        job = self.make_bare_job()
        try:
            command = payload.command(job, tmp_path)
        except (JobDescriptionError, TransformationNotFoundError):
            return
        except Exception as error:  # noqa: BLE001 - the contract reports any other kind
            raise AssertionError(
                f"command() raised {type(error).__name__} ({error}); only "
                "JobDescriptionError or TransformationNotFoundError is allowed") from error
        _check_payload_command(command)

    def test_outputs_are_relative_file_names(self) -> None:
        outputs = list(self.make_provider().outputs(self.make_job()))
        assert all(isinstance(name, str) and name for name in outputs)
        assert not any(os.path.isabs(name) for name in outputs)

    def test_outputs_stay_inside_the_work_directory(self) -> None:
        for name in self.make_provider().outputs(self.make_job()):
            assert ".." not in Path(name).parts, f"output {name!r} leaves the work directory"


def _check_payload_command(command: Any) -> None:
    assert isinstance(command, PayloadCommand), f"{command!r} is not a PayloadCommand"
    assert isinstance(command.argv, tuple) and command.argv
    assert all(isinstance(arg, str) for arg in command.argv)
    assert isinstance(command.environment, tuple)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in command.environment)
    assert isinstance(command.setup, tuple)
    assert all(isinstance(line, str) for line in command.setup)
