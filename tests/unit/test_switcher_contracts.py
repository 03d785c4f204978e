"""The built-in switchers pass the contract that ``pilotid.testing`` gives plugin authors,
and each says in ``pilotid probe`` what is particular to its switch."""

from __future__ import annotations

from pathlib import Path

from pilotid.probe import FAIL, OK, Check
from pilotid.queue import QueueSettings
from pilotid.strategies.glexec import GlexecSwitcher, ProbeCache, RetryPolicy
from pilotid.strategies.glexec import binary as glexec_binary
from pilotid.strategies.noop import NoopSwitcher
from pilotid.strategies.sudo import SudoSwitcher
from pilotid.testing import (
    IdentitySwitcherContract,
    IdentitySwitcherLaunchContract,
    RecordingSwitcher,
)


class TestNoopSwitcherContract(IdentitySwitcherLaunchContract):
    def make_provider(self):
        return NoopSwitcher(QueueSettings("ANALY_DEMO"))


class TestRecordingSwitcherContract(IdentitySwitcherLaunchContract):
    def make_provider(self):
        return RecordingSwitcher(QueueSettings("ANALY_DEMO"))


class TestSudoSwitcherContract(IdentitySwitcherContract):
    def make_provider(self):
        return SudoSwitcher(QueueSettings("ANALY_SUDO", switcher="sudo", options={
            "grid_mapfile": Path("/etc/grid-security/grid-mapfile")}))


class TestGlexecSwitcherContract(IdentitySwitcherContract):
    def make_provider(self):
        return GlexecSwitcher(QueueSettings("ANALY_GLEXEC", switcher="glexec"),
                              environ={}, probe_cache=ProbeCache(), retry=RetryPolicy())


def test_noop_says_there_is_no_switch():
    (check,) = NoopSwitcher(QueueSettings("ANALY_DEMO")).node_checks(None)
    assert isinstance(check, Check) and check.status == OK
    assert "runs as the pilot" in check.detail or "run as the pilot" in check.detail


def test_sudo_reports_its_program(tmp_path):
    settings = QueueSettings("ANALY_SUDO", switcher="sudo",
                             options={"grid_mapfile": tmp_path / "map"})
    missing = SudoSwitcher(settings, sudo=str(tmp_path / "no-sudo")).node_checks(None)
    assert [(c.name, c.status) for c in missing] == [("sudo", FAIL)]
    assert missing[0].error_code == 51


def test_glexec_without_a_binary_is_one_failed_check(monkeypatch, tmp_path):
    monkeypatch.setattr(glexec_binary, "DEFAULT_GLEXEC", tmp_path / "no-glexec")
    switcher = GlexecSwitcher(QueueSettings("ANALY_GLEXEC", switcher="glexec",
                                            options={"glexec_path": tmp_path / "missing"}),
                              environ={})
    checks = switcher.node_checks(None)
    assert [(c.name, c.status, c.error_code) for c in checks] == [("gLExec", FAIL, 51)]
    assert "not found" in checks[0].detail


def test_every_launch_check_runs_its_scenario_through_run_scenario(tmp_path):
    """A contract that runs the job scenarios elsewhere (as the pilot account, say) overrides
    one hook and so misses none of them."""
    offline = {n for n in dir(IdentitySwitcherContract) if n.startswith("test_")}
    launch = sorted(n for n in dir(IdentitySwitcherLaunchContract)
                    if n.startswith("test_") and n not in offline)
    ran = []

    class Elsewhere(IdentitySwitcherLaunchContract):
        def run_scenario(self, name, tmp_path):
            ran.append(name)

    for name in launch:
        getattr(Elsewhere(), name)(tmp_path)
    assert ran == [name[len("test_"):] for name in launch]
    assert all(callable(getattr(Elsewhere, f"scenario_{name}")) for name in ran)
