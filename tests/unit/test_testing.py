"""pilotid.testing: the public fakes pass their own contract tests, and the contracts bite."""

from __future__ import annotations

import dataclasses
import os
import signal
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from zope.interface.verify import verifyClass, verifyObject

import pilotid.identity.testca as testca
from pilotid.errors import (
    ConfigurationError,
    CredentialError,
    CredentialRefusedError,
    JobDescriptionError,
    PayloadFailedError,
    PayloadTerminatedError,
    ProxyExpiredError,
    SandboxError,
    SwitchExecError,
)
from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential, CredentialRequest
from pilotid.identity.credfile import write_private
from pilotid.identity.sources import LocalFileSource
from pilotid.interfaces import ICredentialSource, IIdentitySwitcher, IPayload
from pilotid.payloads.job import JobSpec, PayloadCommand
from pilotid.queue import QueueSettings
from pilotid.strategies.noop import NoopSwitcher
from pilotid.testing import (
    CredentialSourceContract,
    FakePayload,
    IdentitySwitcherContract,
    PayloadContract,
    RecordingSwitcher,
    StaticCredentialSource,
    TestCA,
    make_proxy,
)
from pilotid.values import (
    PAYLOAD_FAILED,
    SETUP_FAILED,
    SUCCEEDED,
    SWITCH_FAILED,
    TERMINATED,
    Outcome,
    PayloadLogs,
    ProxyHandover,
    WrapperMarker,
)

ALICE_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
ALICE = TestCA(bits=1024).issue(ALICE_DN, bits=1024)


@dataclass(frozen=True)
class ProxyStandIn:
    """Stands in for the parsed proxy model (pilotid.identity.proxy is another module's)."""

    identity: str


def private_credential(directory: Path, identity) -> Credential:
    path = write_private(directory / "x509up", make_proxy(identity, bits=1024))
    return Credential(path, ProxyStandIn(identity.dn), "static")  # type: ignore[arg-type]


@pytest.mark.parametrize("interface, provider", [
    (IIdentitySwitcher, RecordingSwitcher()),
    (ICredentialSource, StaticCredentialSource(error=CredentialRefusedError("no"))),
    (IPayload, FakePayload(["/bin/true"])),
], ids=["RecordingSwitcher", "StaticCredentialSource", "FakePayload"])
def test_fake_provides_its_interface(interface, provider):
    assert verifyClass(interface, type(provider))
    assert verifyObject(interface, provider)


def test_testing_re_exports_the_throwaway_ca():
    assert TestCA is testca.TestCA and make_proxy is testca.make_proxy


# --- the fakes under their own contracts -------------------------------------------------

class TestRecordingSwitcherContract(IdentitySwitcherContract):
    def make_provider(self):
        return RecordingSwitcher()


class TestStaticCredentialSourceContract(CredentialSourceContract):
    def make_provider(self, directory):
        return StaticCredentialSource(private_credential(directory, ALICE))


class TestFakePayloadContract(PayloadContract):
    def make_provider(self):
        return FakePayload(["/bin/echo", "hello"], outputs=("out.txt",),
                           environment=[("A", "1")], setup=["source /a.sh"])


# --- the contracts catch broken implementations -------------------------------------------

class OptimisticSwitcher(RecordingSwitcher):
    """Says 'succeeded' for status 0 even when the wrapper never ran."""

    def explain(self, returncode, marker):
        return Outcome(SUCCEEDED, exit_code=0) if returncode == 0 else \
            super().explain(returncode, marker)


class SignalBlindSwitcher(RecordingSwitcher):
    """Reports a death by signal as a switch failure."""

    def explain(self, returncode, marker):
        if returncode < 0:
            return Outcome(SWITCH_FAILED, error=SwitchExecError("?"))
        return super().explain(returncode, marker)


class Contract(IdentitySwitcherContract):
    def __init__(self, switcher_class):
        self.switcher_class = switcher_class

    def make_provider(self):
        return self.switcher_class()


def test_switcher_contract_fails_a_switcher_that_succeeds_without_marker(tmp_path):
    with pytest.raises(AssertionError, match=r"explain\(0, None\) said succeeded"):
        Contract(OptimisticSwitcher).test_explain_without_marker_never_succeeds(tmp_path)


def test_switcher_contract_fails_a_switcher_that_hides_the_signal(tmp_path):
    with pytest.raises(AssertionError):
        Contract(SignalBlindSwitcher).test_explain_negative_status_is_termination_by_that_signal(
            tmp_path)


def test_payload_contract_fails_a_string_argv(tmp_path):
    class StringCommand(FakePayload):
        def command(self, job, workdir):
            return PayloadCommand("runAthena --x")  # type: ignore[arg-type]

    class Check(PayloadContract):
        def make_provider(self):
            return StringCommand(["x"])

    with pytest.raises(AssertionError):
        Check().test_command_is_a_payload_command_of_strings(tmp_path)


class ReadableCopySource(StaticCredentialSource):
    """Hands out a copy that others may read."""

    def fetch(self, request):
        credential = super().fetch(request)
        os.chmod(credential.path, 0o644)
        return credential


class SameFileSource(StaticCredentialSource):
    """Hands out its own file every time, as the old StaticCredentialSource did."""

    def fetch(self, request):
        credential = super().fetch(request)
        os.unlink(credential.path)
        return Credential(self.proxy_file, credential.proxy, self.name)


class OwnerBlindSource(StaticCredentialSource):
    """Never checks whose proxy it hands out."""

    def fetch(self, request):
        return super().fetch(dataclasses.replace(request, owner_dn=None))


class CrashingSource(StaticCredentialSource):
    """Lets an OSError escape instead of a CredentialError."""

    def fetch(self, request):
        if not Path(request.directory).is_dir():
            raise FileNotFoundError(request.directory)
        return super().fetch(request)


class SourceCheck(CredentialSourceContract):
    def __init__(self, source_class):
        self.source_class = source_class

    def make_provider(self, directory):
        return self.source_class(private_credential(directory, ALICE))


def test_credential_source_contract_fails_a_readable_credential(tmp_path):
    with pytest.raises(AssertionError, match="mode 644"):
        SourceCheck(ReadableCopySource).test_fetch_returns_a_private_credential_file(tmp_path)


def test_credential_source_contract_fails_a_source_handing_out_the_same_file(tmp_path):
    with pytest.raises((AssertionError, CredentialError)):
        SourceCheck(SameFileSource).test_a_fetch_does_not_need_the_file_of_an_earlier_one(
            tmp_path)


def test_credential_source_contract_fails_a_source_blind_to_the_owner(tmp_path):
    with pytest.raises(AssertionError, match="instead of raising CredentialError"):
        SourceCheck(OwnerBlindSource).test_a_credential_of_another_owner_is_refused(tmp_path)


def test_credential_source_contract_fails_a_source_raising_another_error(tmp_path):
    with pytest.raises(AssertionError, match="raised FileNotFoundError"):
        SourceCheck(CrashingSource).test_a_directory_that_cannot_be_written_is_a_credential_error(
            tmp_path)


def test_payload_contract_fails_an_adapter_raising_another_error(tmp_path):
    class KeyErrorPayload(FakePayload):
        def command(self, job, workdir):
            raise KeyError("jobPars")

    class Check(PayloadContract):
        def make_provider(self):
            return KeyErrorPayload(["x"])

    with pytest.raises(AssertionError, match="raised KeyError"):
        Check().test_command_refuses_a_job_only_with_the_adapters_errors(tmp_path)


def test_payload_contract_fails_an_output_outside_the_work_directory():
    class Check(PayloadContract):
        def make_provider(self):
            return FakePayload(["x"], outputs=["../stolen.root"])

    with pytest.raises(AssertionError, match="leaves the work directory"):
        Check().test_outputs_stay_inside_the_work_directory()


def test_contract_without_make_provider_says_what_to_define():
    with pytest.raises(NotImplementedError, match="make_provider"):
        IdentitySwitcherContract().test_name_is_a_non_empty_string(Path("/"))


# --- RecordingSwitcher -------------------------------------------------------------------

@pytest.fixture
def credential(tmp_path):
    return private_credential(tmp_path, ALICE)


@pytest.fixture
def logs(tmp_path):
    with open(tmp_path / "stdout", "wb") as out, open(tmp_path / "stderr", "wb") as err:
        yield PayloadLogs(out, err)


def test_recording_switcher_does_not_switch(credential):
    switcher = RecordingSwitcher()
    assert switcher.probe(credential) == Account.current()
    assert switcher.called("probe") == [(credential,)]


def test_recording_switcher_hands_over_the_credentials_own_file(credential, tmp_path):
    switcher = RecordingSwitcher()
    account = Account.current()
    assert switcher.handover(credential, account, tmp_path) == ProxyHandover(credential.path)
    assert switcher.called("handover") == [(credential, account, tmp_path)]


def test_recording_switcher_runs_argv_in_workdir_with_output_in_the_logs(credential, tmp_path,
                                                                         logs):
    switcher = RecordingSwitcher()
    argv = ["/bin/sh", "-c", "pwd; echo oops >&2; exit 3"]
    process = switcher.launch(argv, credential, Account.current(), tmp_path, logs)
    assert process.wait(timeout=10) == 3
    logs.stdout.flush()
    logs.stderr.flush()
    assert (tmp_path / "stdout").read_text() == f"{tmp_path}\n"
    assert (tmp_path / "stderr").read_text() == "oops\n"
    assert [name for name, _ in switcher.calls] == ["launch"]
    assert switcher.processes == [process]


def test_recording_switcher_terminates_what_it_launched(credential, tmp_path, logs):
    switcher = RecordingSwitcher()
    process = switcher.launch(["sleep", "30"], credential, Account.current(), tmp_path, logs)
    switcher.terminate(process, signal.SIGTERM)
    returncode = process.wait(timeout=10)
    outcome = switcher.explain(returncode, WrapperMarker(os.getuid()))
    assert (outcome.kind, outcome.signal) == (TERMINATED, signal.SIGTERM)
    assert isinstance(outcome.error, PayloadTerminatedError)
    assert "SIGTERM" in str(outcome.error)
    switcher.terminate(process, signal.SIGTERM)  # already gone: no error


@pytest.mark.parametrize("returncode, marker, kind, exit_code, error", [
    (0, WrapperMarker(0, 0), SUCCEEDED, 0, None),
    (0, WrapperMarker(0, None), PAYLOAD_FAILED, None, PayloadFailedError),
    (7, WrapperMarker(0, 7), PAYLOAD_FAILED, 7, PayloadFailedError),
    (204, WrapperMarker(0, 202), PAYLOAD_FAILED, 202, PayloadFailedError),
    (1, WrapperMarker(0, None), PAYLOAD_FAILED, None, PayloadFailedError),
    (0, None, SWITCH_FAILED, None, SwitchExecError),
    (126, None, SWITCH_FAILED, None, SwitchExecError),
    (-9, None, TERMINATED, None, PayloadTerminatedError),
    (-15, WrapperMarker(0, None), TERMINATED, None, PayloadTerminatedError),
    (143, WrapperMarker(0, 143, signal=15), TERMINATED, None, PayloadTerminatedError),
    (125, WrapperMarker(0, None, error="setup"), SETUP_FAILED, None, ConfigurationError),
    (125, WrapperMarker(0, None, error="egg-cache"), SETUP_FAILED, None, SandboxError),
])
def test_recording_switcher_explains_like_a_no_op_switch(returncode, marker, kind, exit_code,
                                                         error):
    """The fake is the real no-op switcher: the two cannot disagree."""
    outcome = RecordingSwitcher().explain(returncode, marker)
    assert (outcome.kind, outcome.exit_code) == (kind, exit_code)
    assert type(outcome.error) is error if error else outcome.error is None
    real = NoopSwitcher(QueueSettings("TEST")).explain(returncode, marker)
    assert (outcome.kind, outcome.exit_code, outcome.signal) == (real.kind, real.exit_code,
                                                                 real.signal)


def test_recording_switcher_may_be_named_for_registration():
    assert RecordingSwitcher(None, name="glexec").name == "glexec"
    assert RecordingSwitcher().name == "recording"


# --- StaticCredentialSource and FakePayload ----------------------------------------------

def test_static_source_hands_out_a_new_private_copy_and_records_requests(tmp_path):
    given = private_credential(tmp_path, ALICE)
    source = StaticCredentialSource(given)
    request = CredentialRequest(tmp_path / "job", lifetime=3600, owner_dn=ALICE_DN)
    request.directory.mkdir()
    fetched = source.fetch(request)
    assert fetched.path.parent == request.directory and fetched.path != given.path
    assert fetched.path.read_bytes() == given.path.read_bytes()
    assert stat.S_IMODE(fetched.path.stat().st_mode) == 0o600
    assert fetched.identity == ALICE_DN and fetched.source == "static"
    assert source.requests == [request]


def test_static_source_serves_a_second_job_after_the_first_credential_is_removed(tmp_path):
    source = StaticCredentialSource(private_credential(tmp_path, ALICE))
    first = source.fetch(CredentialRequest(tmp_path))
    first.path.unlink()
    assert source.fetch(CredentialRequest(tmp_path)).path.is_file()


def test_static_source_refuses_a_job_of_another_owner_as_the_file_source_does(tmp_path):
    source = StaticCredentialSource(private_credential(tmp_path, ALICE))
    bob = "/DC=org/DC=example/OU=People/CN=Bob Other"
    with pytest.raises(CredentialError, match="refusing to run one user's job"):
        source.fetch(CredentialRequest(tmp_path, owner_dn=bob))


def test_static_source_refuses_a_proxy_too_short_for_the_job(tmp_path):
    source = StaticCredentialSource(private_credential(tmp_path, ALICE))
    with pytest.raises(ProxyExpiredError):
        source.fetch(CredentialRequest(tmp_path, lifetime=48 * 3600))


def test_static_source_takes_the_path_of_a_proxy_file(tmp_path):
    path = private_credential(tmp_path, ALICE).path
    assert StaticCredentialSource(path).fetch(CredentialRequest(tmp_path)).identity == ALICE_DN


def test_static_source_is_the_real_file_source():
    assert issubclass(StaticCredentialSource, LocalFileSource)


def test_static_source_may_raise_a_given_error_instead(tmp_path):
    error = CredentialRefusedError("not delegated")
    source = StaticCredentialSource(error=error)
    with pytest.raises(CredentialRefusedError) as caught:
        source.fetch(CredentialRequest(tmp_path))
    assert caught.value is error
    assert len(source.requests) == 1


@pytest.mark.parametrize("arguments", [{}, {"credential": object(), "error": ValueError()}])
def test_static_source_takes_exactly_one_of_credential_and_error(arguments):
    with pytest.raises(TypeError, match="a credential or an error"):
        StaticCredentialSource(**arguments)


def test_fake_payload_uses_its_predicate_and_records_commands(tmp_path):
    payload = FakePayload(["run", "it"], outputs=["a.root"],
                          accepts=lambda job: job.transformation.startswith("runAthena"))
    job = JobSpec(7, "runAthena-00-00-11")
    assert payload.accepts(job) is True
    assert payload.accepts(JobSpec(8, "buildJob-00-00-03")) is False
    assert payload.command(job, tmp_path) == PayloadCommand(("run", "it"))
    assert payload.commands == [(job, tmp_path)]
    assert payload.outputs(job) == ("a.root",)


def test_fake_payload_outputs_are_the_jobs_out_files_as_for_the_real_adapters():
    job = JobSpec(7, "runAthena-00-00-11", out_files=("hist.root", "job.log.tgz"),
                  log_file="job.log.tgz")
    assert FakePayload(["run"]).outputs(job) == ("hist.root",)


def test_fake_payload_may_refuse_a_job_as_a_real_adapter_does(tmp_path):
    error = JobDescriptionError("field 'jobPars': option -o names no file")
    with pytest.raises(JobDescriptionError) as caught:
        FakePayload(["run"], error=error).command(JobSpec(7, "buildJob-00-00-03"), tmp_path)
    assert caught.value is error


def test_fake_payload_refuses_an_error_no_adapter_may_raise():
    with pytest.raises(TypeError, match="JobDescriptionError"):
        FakePayload(["run"], error=ConfigurationError("no"))
