"""MyProxySource passes the credential-source contract against the real myproxy-server.

alice delegates with the real ``myproxy-init`` (retrieval by the pilot's DN, ``-Z``); the
source, authenticating with the pilot's proxy made by ``grid-proxy-init``, retrieves it
from the session's server on loopback (``tests/system/myproxy_lab.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pilotid.identity.credential import CredentialRequest
from pilotid.identity.myproxy import ClientCredential, MyProxyClient
from pilotid.identity.sources import CredentialCache, MyProxySource
from pilotid.queue import QueueSettings
from pilotid.testing import CredentialSourceContract
from tests.conftest import ALICE_DN, PILOT_DN

CREDNAME = "contractcred"


@pytest.fixture(scope="module")
def contract_lab(myproxy):
    """The session's server with alice's credential stored twice for the pilot: under the
    username ``alice`` and under her DN (as PanDA users store it, found by prodUserID)."""
    myproxy.store("alice", CREDNAME, PILOT_DN, username="alice")
    myproxy.store("alice", CREDNAME, PILOT_DN, username=None)
    return myproxy


class _MyProxyContract(CredentialSourceContract):
    @pytest.fixture(autouse=True)
    def _lab(self, contract_lab):
        self.lab = contract_lab

    def _client(self, server: str, port: int) -> MyProxyClient:
        return MyProxyClient("localhost", self.lab.port, retries=0, ca_dir=self.lab.cert_dir,
                             credential=ClientCredential.load(self.lab.proxy("pilot")),
                             environ={})

    def _settings(self) -> QueueSettings:
        return QueueSettings(name="ANALY_CONTRACT", credential_source="myproxy",
                             options={"myproxy_server": f"localhost:{self.lab.port}"})


class TestMyProxySourceByUsernameContract(_MyProxyContract):
    """Asked by username and credential name, with no cache: one GET per fetch."""

    def make_provider(self, directory: Path) -> MyProxySource:
        return MyProxySource(self._settings(), use_cache=False, client_factory=self._client)

    def make_request(self, directory: Path) -> CredentialRequest:
        return CredentialRequest(directory, lifetime=self.needed_lifetime, owner_dn=ALICE_DN,
                                 credname=CREDNAME, username="alice")


class TestMyProxySourceByOwnerDnContract(_MyProxyContract):
    """Found by the owner's DN (prodUserID), through the node-local credential cache."""

    def make_provider(self, directory: Path) -> MyProxySource:
        return MyProxySource(self._settings(), cache=CredentialCache(directory / "cache"),
                             client_factory=self._client)

    def make_request(self, directory: Path) -> CredentialRequest:
        return CredentialRequest(directory, lifetime=self.needed_lifetime, owner_dn=ALICE_DN,
                                 credname=CREDNAME)
