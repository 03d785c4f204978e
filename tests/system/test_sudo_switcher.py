"""SudoSwitcher for real: run by the unprivileged pilot account, real sudo, real accounts.

The switcher code runs AS pilotid-pilot (tests/system/sudo_driver.py, started with setpriv);
the wrapper is a hand-written stand-in (wrapper_standin.py) that writes the marker and stores
the proxy it gets on stdin.  Other test suites may use pilotid-alice at the same time, so
"no process left" is checked for the processes of this launch's session only.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

from pilotid.identity.testca import make_proxy
from tests.conftest import ALICE_DN, CAROL_DN, EVE_DN
from tests.system import node

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def alice_proxy(users) -> bytes:
    return make_proxy(users.alice, bits=1024)


@pytest.fixture
def site(real_node, shared_tmp, pilot_install, alice_proxy):
    """A grid-mapfile, the pilot's proxy file, a work directory the target may use."""
    pilot = node.account(node.PILOT)
    bindir = shared_tmp / "bin"
    bindir.mkdir()
    for name in ("sudo_driver.py", "wrapper_standin.py"):
        shutil.copy(HERE / name, bindir / name)
        (bindir / name).chmod(0o644)
    mapfile = shared_tmp / "grid-mapfile"
    mapfile.write_text(f'"{ALICE_DN}" {node.ALICE}\n"{CAROL_DN}" {node.CAROL}\n')
    mapfile.chmod(0o644)
    private = shared_tmp / "pilot"
    private.mkdir(mode=0o700)
    proxy = private / "x509up"
    proxy.write_bytes(alice_proxy)
    proxy.chmod(0o600)
    for path in (private, proxy):
        os.chown(path, pilot.uid, pilot.gid)
    workdir = shared_tmp / "work"
    workdir.mkdir(mode=0o700)
    os.chown(workdir, pilot.uid, pilot.gid)
    subprocess.run(["setfacl", "-m", f"u:{node.ALICE}:rwx,u:{node.BOB}:rwx", str(workdir)],
                   check=True)
    python, site_path = pilot_install
    return {"mapfile": str(mapfile), "proxy": str(proxy), "workdir": str(workdir),
            "dn": ALICE_DN, "wrapper": [python, str(bindir / "wrapper_standin.py")],
            "driver": [python, str(bindir / "sudo_driver.py")], "pythonpath": site_path}


def drive(site, **request):
    """Run the driver as the pilot account with ``request``; return its JSON answer."""
    request = {key: value for key, value in {**site, **request}.items()
               if key not in ("driver", "pythonpath")}
    done = node.run_as(node.PILOT, [*site["driver"], json.dumps(request)],
                       env={"PYTHONPATH": site["pythonpath"]}, cwd=Path("/"))
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


def session_processes(name: str, sid: int) -> list:
    """Processes of account ``name`` still in session ``sid`` (the launch's), zombies aside."""
    left = []
    for pid in node.processes_of(name):
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z" and int(fields[4]) == sid:
            left.append(pid)
    return left


def test_probe_maps_the_dn_and_sudo_may_switch(site):
    answer = drive(site, action="probe")
    assert answer["pilot"] == node.PILOT
    assert answer["account"] == node.account(node.ALICE).as_dict()


def test_payload_runs_as_the_mapped_account(site):
    answer = drive(site, action="run", mode="ok")
    alice = node.account(node.ALICE)
    assert answer["kind"] == "succeeded", answer
    assert answer["marker"] == [alice.uid, 0]
    assert answer["exit_code"] == 0 and answer["error"] is None


def test_payload_gets_the_proxy_as_a_0600_file_of_its_own(site, alice_proxy):
    answer = drive(site, action="run", mode="ok")
    proxy = Path(answer["payload_proxy"])
    info = proxy.stat()
    assert proxy.parent.parent == Path(site["workdir"])  # in its handover directory
    assert info.st_uid == node.account(node.ALICE).uid
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert proxy.read_bytes() == alice_proxy
    acl = subprocess.run(["getfacl", "-cp", str(proxy)], capture_output=True, text=True).stdout
    assert acl.split() == ["user::rw-", "group::---", "other::---"]  # no ACL at all


def test_payload_failure_passes_its_status_through(site):
    answer = drive(site, action="run", mode="fail")
    assert (answer["kind"], answer["exit_code"], answer["error"]) == \
        ("payload_failed", 7, "PayloadFailedError")


def test_account_without_sudo_rule_is_not_permitted(site):
    answer = drive(site, action="probe", dn=CAROL_DN)
    assert answer["error"] == "SwitchNotPermittedError"
    message = answer["message"]
    assert node.PILOT in message and node.CAROL in message
    assert f"{node.PILOT} ALL=({node.CAROL}) NOPASSWD: ALL" in message


def test_sudo_refusal_at_launch_is_explained_as_not_permitted(site):
    answer = drive(site, action="run", mode="ok", account=node.CAROL)
    assert answer["kind"] == "switch_failed"
    assert answer["error"] == "SwitchNotPermittedError"
    assert "a password is required" in answer["message"]
    assert answer["marker"] is None


def test_dn_not_in_grid_mapfile_is_an_account_mapping_error(site):
    answer = drive(site, action="probe", dn=EVE_DN)
    assert answer["error"] == "AccountMappingError"
    assert EVE_DN in answer["message"]


def test_missing_wrapper_is_an_exec_error(site):
    answer = drive(site, action="run", mode="ok",
                   wrapper=["/bin/bash", str(Path(site["workdir"]) / "no-such-wrapper")])
    assert answer["kind"] == "switch_failed"
    assert (answer["returncode"], answer["error"]) == (127, "SwitchExecError")


def test_sudo_missing_is_unavailable(site, tmp_path):
    """Run in-process: the sudo program is looked up and missing (no account needed)."""
    from pilotid.errors import SwitchUnavailableError
    from pilotid.queue import QueueSettings
    from pilotid.strategies.sudo import SudoSwitcher
    switcher = SudoSwitcher(QueueSettings("Q", options={"grid_mapfile": Path(site["mapfile"])}),
                            sudo="/nonexistent/sudo")
    with pytest.raises(SwitchUnavailableError):
        switcher.sudo_path()


def _wait_gone(name: str, sid: int, timeout: float = 10) -> list:
    deadline = time.monotonic() + timeout
    left = session_processes(name, sid)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = session_processes(name, sid)
    return left


def test_terminate_delivers_sigterm_to_the_payload_and_leaves_nothing(site):
    answer = drive(site, action="terminate", mode="wait", signal="SIGTERM")
    workdir = Path(site["workdir"])
    alice = node.account(node.ALICE)
    received = workdir / "term-received"
    assert received.exists(), answer
    assert received.read_text().strip() == str(alice.uid)
    assert received.stat().st_uid == alice.uid
    assert (answer["kind"], answer["signal"]) == ("terminated", 15), answer
    assert answer["marker"] == [alice.uid, 143]
    assert _wait_gone(node.ALICE, answer["pid"]) == []


def test_terminate_with_sigkill_leaves_nothing(site):
    """The launcher's escalation: SIGKILL cannot be relayed by sudo, kill as the target can."""
    answer = drive(site, action="terminate", mode="wait", signal="SIGKILL")
    assert (answer["kind"], answer["signal"]) == ("terminated", 9), answer
    assert answer["returncode"] == -9
    assert _wait_gone(node.ALICE, answer["pid"]) == []
