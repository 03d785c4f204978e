"""GlexecSwitcher through the real gLExec stand-in, with the pilot as an unprivileged account.

Every exit status is provoked for real: a proxy with an ACL (201), a broken configuration
(202), an unmapped DN (203), a wrapper that cannot be executed (126), a payload exiting 203
(204).  The pilot runs as ``pilotid-pilot`` through tests/system/glexec_driver.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time

import pytest

from pilotid.strategies.glexec import TARGET_PROXY_NAME
from tests.conftest import ALICE_DN, EVE_DN, PILOT_DN
from tests.system import node
from tests.system.glexec_node import (  # noqa: F401 - fixture
    BROKEN_STANDIN,
    drive,
    standin_fixture,
    work_dir,
    write_proxy,
)

FAST_RETRY = (2, 0.0)


@pytest.fixture
def base(shared_tmp, standin):
    return shared_tmp


@pytest.fixture
def alice_proxy(base, users):
    return write_proxy(base, users.alice, "x509up_alice")


def spec(proxy, dn=ALICE_DN, op="probe", **extra):
    found = {"op": op, "proxy": str(proxy), "dn": dn, "retry": FAST_RETRY,
             "environ": {"GLEXEC_LOCATION": "/opt/pilotid-test/glexec"}}
    found.update(extra)
    return found


def launch_spec(proxy, workdir, *payload, **extra):
    marker = workdir / "marker"
    return spec(proxy, op=extra.pop("op", "launch"), workdir=str(workdir), marker=str(marker),
                argv=[str(workdir / "wrapper.sh"), str(marker), *payload], **extra)


def test_probe_returns_the_account_alices_proxy_maps_to(pilot_install, alice_proxy):
    answer = drive(pilot_install, spec(alice_proxy))
    alice = node.account(node.ALICE)
    assert answer == {"account": {"name": alice.name, "uid": alice.uid, "gid": alice.gid}}


def test_payload_runs_as_alice_with_the_target_proxy(pilot_install, base, alice_proxy):
    workdir = work_dir(base)
    answer = drive(pilot_install, launch_spec(alice_proxy, workdir, "/usr/bin/id", "-u"))
    alice = node.account(node.ALICE)
    assert answer["outcome"]["kind"] == "succeeded", answer
    assert answer["marker"] == [alice.uid, 0]
    assert (workdir / "stdout.log").read_text().strip() == str(alice.uid)
    target = workdir / TARGET_PROXY_NAME
    assert answer["handover"] == str(target)
    env = dict(line.split("=", 1) for line in (workdir / "marker.env").read_text().splitlines()
               if "=" in line)
    assert env["X509_USER_PROXY"] == str(target)
    assert (env["USER"], env["HOME"]) == (node.ALICE, f"/home/{node.ALICE}")
    info = os.stat(target)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (alice.uid, 0o600)
    assert target.read_bytes() == alice_proxy.read_bytes()


def test_environment_reaching_the_payload_has_no_ld_preload(pilot_install, base, alice_proxy):
    workdir = work_dir(base)
    environ = {"GLEXEC_LOCATION": "/opt/pilotid-test/glexec", "LD_PRELOAD": "/missing/lib.so"}
    answer = drive(pilot_install, launch_spec(alice_proxy, workdir, "/bin/true",
                                              environ=environ))
    assert answer["outcome"]["kind"] == "succeeded", answer
    assert "LD_PRELOAD" not in (workdir / "marker.env").read_text()
    assert "preloaded" not in (workdir / "stderr.log").read_text()


def test_client_cert_with_an_acl_is_refused_as_a_client_error(pilot_install, alice_proxy):
    subprocess.run(["setfacl", "-m", f"u:{node.ALICE}:r", str(alice_proxy)], check=True)
    answer = drive(pilot_install, spec(alice_proxy))
    assert answer["error"]["class"] == "SwitchClientError", answer
    assert "201" in answer["error"]["message"] and "ACL" in answer["error"]["message"]


def test_client_cert_readable_by_others_is_refused_as_a_client_error(pilot_install, alice_proxy):
    alice_proxy.chmod(0o644)
    answer = drive(pilot_install, spec(alice_proxy))
    assert answer["error"]["class"] == "SwitchClientError", answer


def test_unmapped_dn_is_refused_as_not_permitted(pilot_install, base, users):
    eve = write_proxy(base, users.eve, "x509up_eve")
    answer = drive(pilot_install, spec(eve, dn=EVE_DN))
    assert answer["error"]["class"] == "SwitchNotPermittedError", answer
    assert "203" in answer["error"]["message"]


def test_unmapped_dn_with_reschedule_hands_the_job_back(pilot_install, base, users):
    eve = write_proxy(base, users.eve, "x509up_eve")
    answer = drive(pilot_install, spec(eve, dn=EVE_DN, queue={"on_probe_failure": "reschedule"}))
    assert answer["error"]["class"] == "RescheduleRequest", answer
    assert answer["error"]["cause"] == "SwitchNotPermittedError"


def test_broken_glexec_configuration_is_a_system_error(pilot_install, alice_proxy):
    answer = drive(pilot_install, spec(alice_proxy, environ={},
                                       queue={"glexec_path": str(BROKEN_STANDIN)}))
    assert answer["error"]["class"] == "SwitchSystemError", answer
    assert "202" in answer["error"]["message"]


def test_wrapper_that_cannot_be_executed_is_an_exec_error(pilot_install, base, alice_proxy):
    workdir = work_dir(base)
    (workdir / "wrapper.sh").chmod(0o644)
    answer = drive(pilot_install, launch_spec(alice_proxy, workdir, "/bin/true"))
    assert answer["returncode"] == 126 and answer["marker"] is None, answer
    assert answer["outcome"]["kind"] == "switch_failed"
    assert answer["outcome"]["error"]["class"] == "SwitchExecError"


def test_payload_exiting_203_is_the_payloads_failure_not_an_authorisation_error(
        pilot_install, base, alice_proxy):
    workdir = work_dir(base)
    answer = drive(pilot_install, launch_spec(alice_proxy, workdir, "/bin/sh", "-c", "exit 203"))
    assert answer["returncode"] == 204, answer
    outcome = answer["outcome"]
    assert (outcome["kind"], outcome["exit_code"]) == ("payload_failed", 203)
    assert outcome["error"]["class"] == "PayloadFailedError"


def test_each_refusal_has_its_own_pilot_error_code(pilot_install, base, alice_proxy, users):
    workdir = work_dir(base)
    (workdir / "wrapper.sh").chmod(0o644)
    eve = write_proxy(base, users.eve, "x509up_eve")
    codes = {
        drive(pilot_install, spec(eve, dn=EVE_DN))["error"]["code"],
        drive(pilot_install, spec(alice_proxy, environ={},
                                  queue={"glexec_path": str(BROKEN_STANDIN)}))["error"]["code"],
        drive(pilot_install, launch_spec(alice_proxy, workdir,
                                         "/bin/true"))["outcome"]["error_code"],
    }
    alice_proxy.chmod(0o640)
    codes.add(drive(pilot_install, spec(alice_proxy))["error"]["code"])
    assert len(codes) == 4


def test_pilots_own_dn_is_refused_in_uid_mode(pilot_install, base, users):
    pilot = write_proxy(base, users.pilot, "x509up_pilot")
    answer = drive(pilot_install, spec(pilot, dn=PILOT_DN))
    assert answer["error"]["class"] == "SwitchSystemError", answer
    assert "pilot's own account" in answer["error"]["message"]


def test_test_mode_switches_with_the_pilots_own_proxy(pilot_install, base, users, alice_proxy):
    pilot = write_proxy(base, users.pilot, "x509up_pilot")
    environ = {"GLEXEC_LOCATION": "/opt/pilotid-test/glexec", "X509_USER_PROXY": str(pilot)}
    answer = drive(pilot_install, spec(alice_proxy, queue={"glexec_mode": "test"},
                                       environ=environ))
    assert answer["account"]["name"] == node.PILOT, answer


def test_pilot_cannot_signal_the_lingering_glexec_but_terminate_stops_the_payload(
        pilot_install, base, alice_proxy):
    workdir = work_dir(base)
    answer = drive(pilot_install, launch_spec(alice_proxy, workdir, "/bin/sleep", "60",
                                              op="terminate"))
    assert answer["glexec_real_uid"] == 0, answer
    assert answer["kill_errno"] == "EPERM" and answer["killpg_errno"] == "EPERM"
    assert "escalated" not in answer
    assert answer["seconds_to_end"] < 5
    assert answer["marker"][1] == 128 + 15  # the payload died of SIGTERM
    assert (answer["outcome"]["kind"], answer["outcome"]["signal"]) == ("terminated", 15)
    assert_nothing_left(answer["pid"])


def test_payload_ignoring_sigterm_is_killed_on_escalation(pilot_install, base, alice_proxy):
    workdir = work_dir(base)
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    answer = drive(pilot_install, launch_spec(alice_proxy, workdir, "/usr/bin/python3", "-c",
                                              stubborn, op="terminate", grace=2))
    assert answer.get("escalated") is True, answer
    assert answer["returncode"] == -9
    assert (answer["outcome"]["kind"], answer["outcome"]["signal"]) == ("terminated", 9)
    assert_nothing_left(answer["pid"])


def assert_nothing_left(pgid: int) -> None:
    """No process of alice from this payload (its process group) is still running."""
    deadline = time.monotonic() + 5
    while True:
        left = [pid for pid in node.processes_of(node.ALICE) if _pgid(pid) == pgid]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert left == []


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return -1


def test_installed_grid_mapfile_maps_the_test_dns(standin):
    """setup-node.sh writes the DNs of tests/conftest.py: they must not drift apart."""
    mapfile = (standin.parents[1] / "etc" / "grid-mapfile").read_text()
    for dn, account in ((ALICE_DN, node.ALICE), (PILOT_DN, node.PILOT)):
        assert f'"{dn}" {account}' in mapfile
    assert EVE_DN not in mapfile
