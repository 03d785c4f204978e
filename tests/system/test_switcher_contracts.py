"""The whole switcher contract (``IdentitySwitcherLaunchContract``) on the real node, as
root: sudo to a real account, and the worked example's setpriv, whose switch program execs
the wrapper.  (gLExec's stand-in and the sudoers rule take only the pilot account as
caller: tests/system/test_switcher_contracts_as_pilot.py runs the same contract for gLExec
and sudo with the job scenarios in a process of ``pilotid-pilot``.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pilotid.queue import QueueSettings
from pilotid.strategies.sudo import SudoSwitcher
from pilotid.switcher_contract import CONTRACT_DN
from pilotid.testing import IdentitySwitcherLaunchContract
from pilotid.values import WrapperMarker
from tests.setpriv_switcher import SetprivSwitcher
from tests.system import node


class _OnTheNode(IdentitySwitcherLaunchContract):
    """Jobs as pilotid-alice, in work directories under a shared 0755 directory."""

    @pytest.fixture(autouse=True)
    def _site(self, real_node, shared_tmp):
        self.site = shared_tmp
        self.mapfile = shared_tmp / "grid-mapfile"
        self.mapfile.write_text(f'"{CONTRACT_DN}" {node.ALICE}\n')

    def make_workdir(self, tmp_path: Path) -> Path:
        path = self.site / f"work-{len(list(self.site.iterdir()))}"
        path.mkdir(mode=0o700)
        return path

    def make_account(self):
        return node.account(node.ALICE)

    def make_marker(self, payload_status):

        return WrapperMarker(node.account(node.ALICE).uid, payload_status)


class TestSudoSwitcherContractAsRoot(_OnTheNode):
    def make_provider(self):
        assert os.geteuid() == 0
        return SudoSwitcher(QueueSettings("ANALY_SUDO", switcher="sudo",
                                          options={"grid_mapfile": self.mapfile}))


class TestSetprivSwitcherContract(_OnTheNode):
    def make_provider(self):
        return SetprivSwitcher(QueueSettings("ANALY_SETPRIV",
                                             options={"grid_mapfile": self.mapfile}))
