"""The contract tests of ``ICredentialSource`` and ``IPayload``, for plugin authors.

Re-exported by ``pilotid.testing``.  Two mixins for pytest test classes, sharing the check of
the interface and the name:

- ``CredentialSourceContract``: what every credential source's ``fetch`` must write and
  refuse;
- ``PayloadContract``: what every payload adapter's ``accepts``, ``command`` and ``outputs``
  must answer.

Each class's docstring names its hooks and the promises it checks.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path
from typing import Any, Callable, Tuple, Type

from zope.interface.verify import verifyClass, verifyObject

from pilotid.errors import CredentialError, JobDescriptionError, TransformationNotFoundError
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.proxy import parse_proxy
from pilotid.interfaces import ICredentialSource, IPayload
from pilotid.payloads.job import JobSpec, PayloadCommand

__all__ = ["CredentialSourceContract", "PayloadContract", "SOMEBODY_ELSE_DN"]


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
        copy = credential.files[0]
        info = os.lstat(copy)
        assert stat.S_ISREG(info.st_mode), f"{copy} is not a regular file"
        mode = stat.S_IMODE(info.st_mode)
        assert mode & 0o077 == 0, f"{copy} has mode {mode:o}"
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
