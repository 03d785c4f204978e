"""The whole switcher contract with the pilot as the unprivileged pilot account (issue 11).

gLExec's stand-in and the node's sudoers rule accept only ``pilotid-pilot`` as the caller,
so the contract's job scenarios (``IdentitySwitcherLaunchContract.scenario_*``) run in a
process of the pilot's: ``run_scenario`` hands the scenario's name to
tests/system/contract_driver.py, run as the pilot, which calls the same method on the same
contract class and answers in JSON.  The offline part of the contract runs here, as root.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.system import node
from tests.system.contract_driver import (
    CONTRACTS,
    TARGET_DN,
    GlexecContractAsPilot,
    SudoContractAsPilot,
)
from tests.system.glexec_node import give_to_pilot, standin_fixture  # noqa: F401 - a fixture

DRIVER = Path(__file__).resolve().parent / "contract_driver.py"


def _kill_processes_under(directory: Path) -> None:
    """Kill what a failed scenario left running in ``directory`` (its work directories)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass


def contract_name(test: object) -> str:
    """The name of the driver's contract class ``test`` is built on."""
    return next(cls.__name__ for cls in type(test).__mro__ if cls.__name__ in CONTRACTS)


class _AsThePilot:
    """``run_scenario`` through the driver, as ``pilotid-pilot``."""

    @pytest.fixture(autouse=True)
    def _site(self, real_node, shared_tmp, pilot_install):
        self.site = shared_tmp
        self.pilot_install = pilot_install
        (shared_tmp / "grid-mapfile").write_text(f'"{TARGET_DN}" {node.ALICE}\n')

    def run_scenario(self, name: str, tmp_path: Path) -> None:
        answer = drive_scenario(self.pilot_install, contract_name(self), name, self.site)
        assert answer["uid"] == node.account(node.PILOT).uid
        assert answer["passed"], f"as {node.PILOT}:\n{answer['failure']}"


def drive_scenario(pilot_install, contract: str, name: str, site: Path) -> dict:
    """Run ``scenario_<name>`` of the driver's ``contract`` as the pilot; its JSON answer."""
    python, pythonpath = pilot_install
    scratch = site / f"pilot-{name}"
    scratch.mkdir()
    give_to_pilot(scratch, 0o755)
    request = {"contract": contract, "scenario": name, "site": str(site), "tmp": str(scratch)}
    try:
        done = node.run_as(node.PILOT, [python, str(DRIVER), json.dumps(request)],
                           env={"PYTHONPATH": pythonpath}, cwd=Path("/"), timeout=180)
    finally:
        _kill_processes_under(scratch)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


class TestGlexecSwitcherContractAsPilot(_AsThePilot, GlexecContractAsPilot):
    @pytest.fixture(autouse=True)
    def _standin(self, standin):
        pass


class TestSudoSwitcherContractAsPilot(_AsThePilot, SudoContractAsPilot):
    pass


def test_a_scenario_that_fails_as_the_pilot_comes_back_as_a_failure(shared_tmp,
                                                                    pilot_install):
    """Without the grid-mapfile sudo cannot map the user: the driver says so, not "passed"."""
    answer = drive_scenario(pilot_install, "SudoContractAsPilot", "probe_answers_an_account",
                            shared_tmp)
    assert answer["uid"] == node.account(node.PILOT).uid
    assert not answer["passed"]
    assert "ConfigurationError: grid-mapfile" in answer["failure"]
