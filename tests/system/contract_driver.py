"""Runs a job scenario of ``IdentitySwitcherLaunchContract`` AS THE PILOT (not a test module).

Used by tests/system/test_switcher_contracts_as_pilot.py through ``node.run_as(PILOT, ...)``
with PYTHONPATH at the pilot's copy of pilotid.  Usage: ``python contract_driver.py
'<json request>'``; the request holds ``contract`` (a class name below), ``scenario`` (the
contract's ``scenario_<name>``), ``site`` (a 0755 directory the pilot and the target can
traverse) and ``tmp`` (the pilot's own directory for this scenario).  Prints one JSON object:
``{"passed": true, "uid": <the driver's uid>}``, or with ``"passed": false`` and
``"failure": "<traceback>"``.

The contract classes are defined here, importing only pilotid, so that the test process (as
root: the offline part) and the pilot's process (the job scenarios) build the same switcher.
"""

import json
import os
import secrets
import sys
import traceback
from pathlib import Path

from pilotid.identity.accounts import Account
from pilotid.identity.credential import Credential
from pilotid.identity.credfile import write_private
from pilotid.identity.proxy import parse_proxy
from pilotid.identity.testca import TestCA, make_proxy
from pilotid.queue import QueueSettings
from pilotid.strategies.glexec import GlexecSwitcher, ProbeCache
from pilotid.strategies.sudo import SudoSwitcher
from pilotid.testing import IdentitySwitcherLaunchContract
from pilotid.values import WrapperMarker

TARGET = "pilotid-alice"
#: The DN the gLExec stand-in's grid-mapfile maps to TARGET (tests/conftest.py ALICE_DN).
TARGET_DN = "/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
GLEXEC_LOCATION = "/opt/pilotid-test/glexec"


class _PilotContract(IdentitySwitcherLaunchContract):
    """Jobs as TARGET, with work directories in ``self.site`` (set before use)."""

    site = Path("/nonexistent")

    def make_credential(self, directory: Path) -> Credential:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        pem = make_proxy(TestCA(bits=1024).issue(TARGET_DN, bits=1024), bits=1024)
        path = write_private(directory / f"x509up-{secrets.token_hex(4)}", pem)
        return Credential(path=path, proxy=parse_proxy(pem, path), source="contract")

    def make_workdir(self, tmp_path: Path) -> Path:
        path = tmp_path / f"work-{secrets.token_hex(4)}"
        path.mkdir(mode=0o700)
        return path

    def make_account(self) -> Account:
        return Account.by_name(TARGET)

    def make_marker(self, payload_status):
        return WrapperMarker(Account.by_name(TARGET).uid, payload_status)


class GlexecContractAsPilot(_PilotContract):
    """gLExec through the stand-in installed under GLEXEC_LOCATION."""

    def make_provider(self):
        settings = QueueSettings("ANALY_GLEXEC", switcher="glexec",
                                 options={"switch_retries": 3, "switch_retry_delay": 0})
        return GlexecSwitcher(settings, environ={"GLEXEC_LOCATION": GLEXEC_LOCATION},
                              probe_cache=ProbeCache())


class SudoContractAsPilot(_PilotContract):
    """sudo under the node's rule for the pilot, mapping through ``site/grid-mapfile``."""

    def make_provider(self):
        mapfile = self.site / "grid-mapfile"
        return SudoSwitcher(QueueSettings("ANALY_SUDO", switcher="sudo",
                                          options={"grid_mapfile": mapfile}))


CONTRACTS = {cls.__name__: cls for cls in (GlexecContractAsPilot, SudoContractAsPilot)}


def main(request):
    contract = CONTRACTS[request["contract"]]()
    contract.site = Path(request["site"])
    try:
        getattr(contract, "scenario_" + request["scenario"])(Path(request["tmp"]))
    except Exception:  # noqa: BLE001 - every failure goes back to the test as JSON
        return {"passed": False, "uid": os.getuid(), "failure": traceback.format_exc()}
    return {"passed": True, "uid": os.getuid()}


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
