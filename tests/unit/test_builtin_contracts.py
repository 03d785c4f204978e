"""Every built-in credential source and payload adapter passes its pilotid.testing contract.

The MyProxy source runs through its contract against the real ``myproxy-server``:
tests/system/test_myproxy_source_contract.py.
"""

from __future__ import annotations

from pathlib import Path

from pilotid.identity.credential import CredentialRequest
from pilotid.identity.credfile import write_private
from pilotid.identity.sources import LocalFileSource
from pilotid.payloads.buildjob import BuildJobPayload
from pilotid.payloads.job import JobSpec
from pilotid.payloads.runathena import RunAthenaPayload
from pilotid.queue import QueueSettings
from pilotid.testing import CredentialSourceContract, PayloadContract, TestCA, make_proxy
from tests.conftest import ALICE_DN

ALICE = TestCA(bits=1024).issue(ALICE_DN, bits=1024)
#: The built-in adapters run the shipped stand-in transformations only where a queue asks.
QUEUE = QueueSettings("ANALY_CONTRACT", setup=("source /cvmfs/atlas/setup.sh",),
                      standin_transformations=True)


class TestLocalFileSourceContract(CredentialSourceContract):
    def make_provider(self, directory: Path) -> LocalFileSource:
        proxy = write_private(directory / "x509up_alice", make_proxy(ALICE, bits=1024))
        return LocalFileSource(QueueSettings("ANALY_CONTRACT", options={"proxy_file": proxy}),
                               environ={})

    def make_request(self, directory: Path) -> CredentialRequest:
        return CredentialRequest(directory, lifetime=self.needed_lifetime, owner_dn=ALICE_DN)


class TestLocalFileSourceFromTheEnvironmentContract(CredentialSourceContract):
    """The same promises when the file is named by X509_USER_PROXY, for jobs naming no
    owner."""

    def make_provider(self, directory: Path) -> LocalFileSource:
        proxy = write_private(directory / "x509up_alice", make_proxy(ALICE, bits=1024))
        return LocalFileSource(QueueSettings("ANALY_CONTRACT"),
                               environ={"X509_USER_PROXY": str(proxy)})


class TestBuildJobContract(PayloadContract):
    def make_provider(self) -> BuildJobPayload:
        return BuildJobPayload(QUEUE)

    def make_job(self) -> JobSpec:
        return JobSpec(panda_id=11, transformation="buildJob-00-00-03",
                       job_pars="-i user.alice.src.tgz -o user.alice.lib.tgz",
                       out_files=("user.alice.lib.tgz", "user.alice.log.tgz"),
                       log_file="user.alice.log.tgz")


class TestRunAthenaContract(PayloadContract):
    def make_provider(self) -> RunAthenaPayload:
        return RunAthenaPayload(QUEUE)

    def make_job(self) -> JobSpec:
        return JobSpec(panda_id=12, transformation="runAthena-00-00-11",
                       job_pars='-r ./ -j "" -l user.alice.lib.tgz '
                                '-o "{\'hist\': \'user.alice.hist.root\'}"',
                       in_files=("data.root",), out_files=("user.alice.hist.root", "log.tgz"),
                       log_file="log.tgz", sw_release="Atlas-17.2.7")


class TestRunAthenaFromAUrlContract(TestRunAthenaContract):
    """A transformation named by the URL PanDA sends is found by its stem."""

    def make_job(self) -> JobSpec:
        return JobSpec(panda_id=13, transformation=(
            "http://pandaserver.cern.ch:25080/trf/user/runAthena-00-00-11"))
