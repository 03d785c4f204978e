"""Wrapper and sandbox on the real node: the unprivileged pilot opens its work directory to
pilotid-alice, runs the wrapper through real ``sudo -n -u pilotid-alice`` with the proxy on
standard input, and takes the directory back.

The ACL-less fallback runs on a ``ramfs`` mount: ramfs has no extended attributes at all,
so ``setfacl`` answers "Operation not supported" there (tmpfs cannot be mounted ``noacl``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.system import node

PEM = ("-----BEGIN CERTIFICATE-----\nMIIBdummyPayloadProxyForTheSandboxTest\n"
       "-----END CERTIFICATE-----\n")

PAYLOAD = r"""
set -u
umask 0077
id -u > uid.txt
mkdir -p out/deep
echo result > out/deep/result.txt
echo top > top.txt
cat input.txt > copy-of-input.txt
cat sub/nested.txt > copy-of-nested.txt
attempt() { if "$@" >/dev/null 2>&1; then echo LEAK; else echo denied; fi; }
attempt cat ../private/pilot-proxy > try-private-file.txt
attempt ls ../private > try-private-dir.txt
attempt cat ../x509up_pilot > try-pilot-proxy.txt
sha256sum < "$X509_USER_PROXY" | cut -d' ' -f1 > proxy-sha.txt
stat -c %a "$X509_USER_PROXY" > proxy-mode.txt
getfacl -cpn "$X509_USER_PROXY" > proxy-acl.txt
echo "$PYTHON_EGG_CACHE" > egg.txt
test -d "$PYTHON_EGG_CACHE" && stat -c %a "$PYTHON_EGG_CACHE" > egg-mode.txt
env > env.txt
"""


def own(path: Path, name: str, mode: int) -> None:
    account = node.account(name)
    os.chown(path, account.uid, account.gid)
    os.chmod(path, mode)


def prepare(base: Path) -> Path:
    """pilot-home (0700) / work (0700, CREAM-like) with inputs, and beside it a private
    directory of the pilot's (where pilotid keeps its copies: outside the work directory,
    which the grant opens whole)."""
    home = base / "pilot-home"
    home.mkdir()
    own(home, node.PILOT, 0o700)
    (home / "x509up_pilot").write_text("pilot's own proxy")
    own(home / "x509up_pilot", node.PILOT, 0o600)
    work = home / "work"
    work.mkdir()
    own(work, node.PILOT, 0o700)
    for rel, text in (("input.txt", "input"), ("sub/nested.txt", "nested")):
        (work / rel).parent.mkdir(exist_ok=True)
        (work / rel).write_text(text)
        own(work / rel, node.PILOT, 0o600)
    own(work / "sub", node.PILOT, 0o700)
    private = home / "private"
    private.mkdir()
    own(private, node.PILOT, 0o700)
    (private / "pilot-proxy").write_text("pilot's proxy copy")
    own(private / "pilot-proxy", node.PILOT, 0o600)
    return work


def drive(pilot_install, base: Path, work: Path, mode: str = "acl") -> dict:
    python, site = pilot_install
    driver = base / "sandbox_driver.py"
    if not driver.exists():
        shutil.copy(Path(__file__).with_name("sandbox_driver.py"), driver)
        driver.chmod(0o644)
    pilot_tmp = base / "pilot-tmpdir"
    if not pilot_tmp.exists():
        pilot_tmp.mkdir()
        own(pilot_tmp, node.PILOT, 0o700)
    config = {"workdir": str(work), "target": node.ALICE, "pem": PEM, "mode": mode,
              "argv": ["/bin/bash", "-c", PAYLOAD]}
    env = {"PYTHONPATH": site, "LD_PRELOAD": "/nonexistent.so", "TMPDIR": str(pilot_tmp),
           "X509_USER_PROXY": str(work.parent / "x509up_pilot"), "BEARER_TOKEN": "pilot-token"}
    done = node.run_as(node.PILOT, [python, str(driver), json.dumps(config)], env=env)
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout)
    report["log"] = done.stderr.decode()
    return report


def acl_blocks(path: Path, recursive: bool = False) -> list:
    """(owner uid, ACL lines) of ``path`` (and everything under it)."""
    argv = ["getfacl", "-p", "-n"] + (["-R"] if recursive else []) + [str(path)]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    blocks = []
    for block in out.strip().split("\n\n"):
        lines = block.splitlines()
        owner = next(int(line.split(": ")[1]) for line in lines if line.startswith("# owner"))
        blocks.append((owner, [line for line in lines if not line.startswith("#")]))
    return blocks


@pytest.fixture
def acl_run(pilot_install, shared_tmp):
    work = prepare(shared_tmp)
    return work, drive(pilot_install, shared_tmp, work)


def test_payload_runs_as_alice_with_her_proxy_from_stdin(acl_run):
    work, report = acl_run
    alice = node.account(node.ALICE)
    assert report["mode"] == "acl"
    assert report["returncode"] == 0, report["stderr"]
    assert report["marker"] == {"uid": alice.uid, "status": 0, "signal": None, "error": None}
    assert (work / "uid.txt").read_text().strip() == str(alice.uid)
    assert (work / "proxy-sha.txt").read_text().strip() == hashlib.sha256(PEM.encode()).hexdigest()
    assert (work / "proxy-mode.txt").read_text().strip() == "600"
    assert Path(report["proxy"]).stat().st_uid == alice.uid


def test_payloads_proxy_copy_never_had_an_acl_entry_for_the_pilot(acl_run):
    """Stored without a chmod in its handover directory: 0600 with no ACL at all, not the
    entry for the pilot that the work directory's default ACL gives what the payload makes
    (a chmod only narrows the mask: the entry would still be listed)."""
    work, _ = acl_run
    assert (work / "proxy-acl.txt").read_text().split() == ["user::rw-", "group::---",
                                                             "other::---"]


def test_pilot_reads_and_deletes_what_the_payload_wrote_with_umask_0077(acl_run):
    work, _ = acl_run
    alice = node.account(node.ALICE)
    result = work / "out" / "deep" / "result.txt"
    assert result.stat().st_uid == alice.uid
    for path, text in ((result, "result\n"), (work / "top.txt", "top\n"),
                       (work / "copy-of-input.txt", "input"),
                       (work / "copy-of-nested.txt", "nested")):
        done = node.run_as(node.PILOT, ["cat", str(path)])
        assert done.returncode == 0, (path, done.stderr)
        assert done.stdout.decode() == text
    done = node.run_as(node.PILOT, ["rm", "-rf", "--", str(work)])
    assert done.returncode == 0, done.stderr
    assert not work.exists()


def test_pilot_private_files_stay_unreadable_to_alice(acl_run):
    work, _ = acl_run
    for attempt in ("try-private-file.txt", "try-private-dir.txt", "try-pilot-proxy.txt"):
        assert (work / attempt).read_text() == "denied\n", attempt
    assert stat.S_IMODE((work.parent / "private").stat().st_mode) == 0o700


def test_alice_cannot_read_the_private_directory_herself(acl_run):
    """Checked once more from outside the payload, while the grant is gone: still denied."""
    work, _ = acl_run
    done = node.run_as(node.ALICE, ["cat", str(work.parent / "private" / "pilot-proxy")])
    assert done.returncode != 0


def test_no_world_writable_path_in_the_work_directory(acl_run):
    _, report = acl_run
    assert report["world_writable"] == []


def test_egg_cache_was_private_and_is_gone(acl_run):
    work, _ = acl_run
    egg = Path((work / "egg.txt").read_text().strip())
    assert egg.parent == Path("/tmp") and egg.name.startswith("pilotid-egg-")
    assert (work / "egg-mode.txt").read_text().strip() == "700"
    assert not egg.exists()


def test_loader_variables_and_pilot_credentials_stay_behind(acl_run):
    work, report = acl_run
    env = dict(line.split("=", 1) for line in (work / "env.txt").read_text().splitlines()
               if "=" in line)
    assert "LD_PRELOAD" not in env and "BEARER_TOKEN" not in env
    assert env["X509_USER_PROXY"] == report["proxy"]
    assert env["HOME"] == os.path.expanduser(f"~{node.ALICE}")
    assert "cannot be preloaded" not in report["stderr"]


def test_alices_entries_are_gone_from_everything_the_pilot_owns(acl_run):
    work, report = acl_run
    pilot, alice = node.account(node.PILOT), node.account(node.ALICE)
    assert report["parents"] == [str(work.parent)]
    blocks = acl_blocks(work.parent) + acl_blocks(work, recursive=True)
    for owner, lines in blocks:
        if owner == pilot.uid:
            assert not [line for line in lines if f"user:{alice.uid}:" in line], lines
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert stat.S_IMODE(work.parent.stat().st_mode) == 0o700


def drive_script(pilot_install, base: Path, work: Path, script: str) -> str:
    """Run the driver as the pilot with a bash ``script`` as alice's payload, which must
    succeed; return the driver's log."""
    python, site = pilot_install
    shutil.copy(Path(__file__).with_name("sandbox_driver.py"), base / "d.py")
    config = {"workdir": str(work), "target": node.ALICE, "pem": PEM,
              "argv": ["/bin/bash", "-c", script]}
    done = node.run_as(node.PILOT, [python, str(base / "d.py"), json.dumps(config)],
                       env={"PYTHONPATH": site})
    log = done.stderr.decode()
    assert done.returncode == 0, log
    assert json.loads(done.stdout)["returncode"] == 0, log
    return log


def test_reclaim_reports_what_the_payload_locked_away(pilot_install, shared_tmp):
    """An explicit ``chmod``/``mkdir -m 700`` by the payload cuts the ACL mask, and only
    the target could undo it: reclaim names such paths in a warning."""
    work = prepare(shared_tmp)
    log = drive_script(pilot_install, shared_tmp, work, "mkdir -m 700 locked && echo x > locked/f")
    assert "not readable by the pilot" in log
    assert "locked" in log


def test_a_directory_the_pilot_may_list_but_not_search_is_opened_not_walked(pilot_install,
                                                                            shared_tmp):
    """A directory of the pilot's with mode 0600 (r without x): the grant gives the target
    its entry and does not walk it, the job runs, and reclaim gives it back, no error."""
    work = prepare(shared_tmp)
    listonly = work / "listonly"
    listonly.mkdir()
    (listonly / "f").write_text("inside")
    own(listonly / "f", node.PILOT, 0o600)
    own(listonly, node.PILOT, 0o600)
    log = drive_script(pilot_install, shared_tmp, work, "echo ran > ran.txt")
    assert "ERROR" not in log and "could not give back" not in log, log
    assert (work / "ran.txt").read_text() == "ran\n"
    assert stat.S_IMODE(listonly.stat().st_mode) == 0o600
    alice = node.account(node.ALICE).uid
    for owner, lines in acl_blocks(listonly, recursive=True):
        assert not [line for line in lines if f"user:{alice}:" in line], lines


@pytest.fixture
def noacl_dir(shared_tmp):
    """A ramfs mount (no extended attributes, hence no ACLs) inside shared_tmp."""
    mount_point = shared_tmp / "noacl"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "-o", "mode=0755", "ramfs", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_without_acls_acl_or_world_falls_back_to_world_mode_and_umask_000(pilot_install,
                                                                          shared_tmp, noacl_dir):
    work = noacl_dir / "work"
    work.mkdir()
    own(work, node.PILOT, 0o700)
    (work / "input.txt").write_text("input")
    own(work / "input.txt", node.PILOT, 0o600)
    (work / "sub").mkdir()
    own(work / "sub", node.PILOT, 0o700)
    (work / "sub" / "nested.txt").write_text("nested")
    own(work / "sub" / "nested.txt", node.PILOT, 0o600)
    private = noacl_dir / "private"
    private.mkdir()
    own(private, node.PILOT, 0o700)
    (private / "pilot-proxy").write_text("secret")
    own(private / "pilot-proxy", node.PILOT, 0o600)
    script = ("mkdir -p out/deep && echo result > out/deep/result.txt && "
              "cat input.txt sub/nested.txt > copy.txt && "
              "if cat ../private/pilot-proxy >/dev/null 2>&1; then echo LEAK; else echo denied; "
              "fi > try-private.txt && umask > umask.txt")
    python, site = pilot_install
    shutil.copy(Path(__file__).with_name("sandbox_driver.py"), shared_tmp / "d.py")
    config = {"workdir": str(work), "target": node.ALICE, "pem": PEM, "mode": "acl-or-world",
              "argv": ["/bin/bash", "-c", script]}
    done = node.run_as(node.PILOT, [python, str(shared_tmp / "d.py"), json.dumps(config)],
                       env={"PYTHONPATH": site})
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["mode"] == "world" and report["payload_umask"] == 0
    assert "does not support POSIX ACLs" in done.stderr.decode()
    assert report["returncode"] == 0, report["stderr"]
    assert (work / "umask.txt").read_text().strip() == "0000"
    assert (work / "try-private.txt").read_text() == "denied\n"
    assert stat.S_IMODE(work.stat().st_mode) == 0o700  # reclaimed
    assert stat.S_IMODE((work / "input.txt").stat().st_mode) == 0o600
    read = node.run_as(node.PILOT, ["cat", str(work / "out" / "deep" / "result.txt")])
    assert read.stdout == b"result\n"
    assert (work / "copy.txt").read_text() == "inputnested"
    gone = node.run_as(node.PILOT, ["find", str(work), "-mindepth", "1", "-delete"])
    assert gone.returncode == 0, gone.stderr
    assert os.listdir(work) == []
