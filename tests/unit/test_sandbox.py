"""The sandbox on this machine's own file system, as the current user, checked with getfacl.

The target is a made-up uid (ACL entries may name any uid), so these tests need no test
accounts; tests/system/test_sandbox_sudo.py runs a real payload as a real other account.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Dict, Tuple

import pytest

from pilotid.errors import (
    ConfigurationError,
    SandboxError,
    WorkdirError,
    WorkRootUnreachableError,
)
from pilotid.identity.accounts import Account
from pilotid.workdir import (
    PRIVATE_DIR_NAME,
    acl_supported,
    grant_target_access,
    make_handover_directory,
    reclaim,
)
from pilotid.workdir.reclaim import _Reclaimer

TARGET = Account("pilotid-unit-target", 54321, 54321)
ME = os.geteuid()


@pytest.fixture
def workdir(area: Path) -> Path:
    """A pilot work directory (0700, as under CREAM) with inputs, a subdirectory and the
    pilot's private directory holding a proxy copy."""
    work = area / "work"
    work.mkdir(mode=0o700)
    work.chmod(0o700)
    (work / "input.txt").write_text("input")
    (work / "input.txt").chmod(0o600)
    (work / "public.txt").write_text("public")
    (work / "public.txt").chmod(0o644)
    (work / "tool.sh").write_text("#!/bin/sh\n")
    (work / "tool.sh").chmod(0o700)
    (work / "sub").mkdir(mode=0o700)
    (work / "sub" / "nested.txt").write_text("nested")
    (work / "sub" / "nested.txt").chmod(0o600)
    return work


def getfacl(path: Path) -> Tuple[str, ...]:
    out = subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return tuple(line for line in out.splitlines() if line)


def snapshot(top: Path) -> Dict[str, Tuple[int, Tuple[str, ...]]]:
    """Mode and ACL of every object under (and including) ``top``."""
    found = {}
    for root, dirs, files in os.walk(top):
        for name in [".", *dirs, *files]:
            path = Path(root) / name if name != "." else Path(root)
            if not path.is_symlink():
                found[str(path)] = (stat.S_IMODE(path.lstat().st_mode), getfacl(path))
    return found


def has_entry(path: Path, entry: str) -> bool:
    return entry in getfacl(path)


def test_acl_supported_on_this_file_system(area):
    assert acl_supported(area) is True


def test_acl_supported_of_a_missing_path_is_a_workdir_error(area):
    with pytest.raises(WorkdirError):
        acl_supported(area / "missing")


def test_directories_get_the_target_and_default_entries(workdir):
    grant = grant_target_access(workdir, TARGET)
    assert grant.mode == "acl"
    for directory in (workdir, workdir / "sub"):
        acl = getfacl(directory)
        assert f"user:{TARGET.uid}:rwx" in acl
        for entry in (f"default:user:{TARGET.uid}:rwx", f"default:user:{ME}:rwx",
                      "default:user::rwx", "default:group::---", "default:mask::rwx",
                      "default:other::---"):
            assert entry in acl, (directory, acl)


def test_unreadable_files_get_read_and_executables_execute(workdir):
    grant_target_access(workdir, TARGET)
    assert has_entry(workdir / "input.txt", f"user:{TARGET.uid}:r--")
    assert has_entry(workdir / "sub" / "nested.txt", f"user:{TARGET.uid}:r--")
    assert has_entry(workdir / "tool.sh", f"user:{TARGET.uid}:r-x")


def test_files_the_target_can_already_read_are_not_touched(workdir):
    before = getfacl(workdir / "public.txt")
    grant = grant_target_access(workdir, TARGET)
    assert getfacl(workdir / "public.txt") == before
    assert "public.txt" not in {change.path for change in grant.changes}


def test_files_named_keep_private_are_never_opened(workdir, caplog):
    """The pilot's own proxy, wherever it sits in the tree (here through a symlink)."""
    proxy = workdir / "sub" / "x509up_pilot"
    proxy.write_text("the pilot's own proxy")
    proxy.chmod(0o600)
    (workdir.parent / "x509up_link").symlink_to(proxy)
    before = getfacl(proxy)
    grant = grant_target_access(workdir, TARGET, keep_private=[workdir.parent / "x509up_link",
                                                               workdir / "not-there"])
    assert getfacl(proxy) == before
    assert "sub/x509up_pilot" not in {change.path for change in grant.changes}
    assert has_entry(workdir / "sub" / "nested.txt", f"user:{TARGET.uid}:r--")
    assert "sub/x509up_pilot" in caplog.text and "outside the work directory" in caplog.text
    reclaim(grant)
    assert getfacl(proxy) == before


def test_the_walk_has_no_name_of_its_own(workdir):
    """pilotid keeps nothing of its own in the work directory (its copies are in the job's
    private directory elsewhere; a ``.pilotid`` there is refused before any grant, code
    26): a tree granted directly opens an object named ``.pilotid`` like any other."""
    (workdir / PRIVATE_DIR_NAME).mkdir(mode=0o700)
    (workdir / PRIVATE_DIR_NAME / "data").write_text("data")
    (workdir / PRIVATE_DIR_NAME / "data").chmod(0o600)
    before = snapshot(workdir)
    grant = grant_target_access(workdir, TARGET)
    assert has_entry(workdir / PRIVATE_DIR_NAME / "data", f"user:{TARGET.uid}:r--")
    reclaim(grant)
    assert snapshot(workdir) == before


def test_symlinks_in_the_work_directory_are_not_followed(workdir, area):
    secret = area / "pilot-secret"
    secret.write_text("secret")
    secret.chmod(0o600)
    outside = area / "outside-dir"
    outside.mkdir(mode=0o700)
    (workdir / "link-to-secret").symlink_to(secret)
    (workdir / "link-to-dir").symlink_to(outside)
    before = (getfacl(secret), getfacl(outside))
    grant_target_access(workdir, TARGET)
    assert (getfacl(secret), getfacl(outside)) == before


def test_reclaim_restores_every_mode_and_acl_exactly(workdir):
    subprocess.run(["setfacl", "-m", "u:12345:r", str(workdir / "input.txt")], check=True)
    before = snapshot(workdir)
    grant = grant_target_access(workdir, TARGET)
    assert snapshot(workdir) != before
    reclaim(grant)
    assert snapshot(workdir) == before


def test_parent_the_target_cannot_traverse_gets_x_and_loses_it_again(area):
    home = area / "pilot-home"
    home.mkdir(mode=0o700)
    work = home / "work"
    work.mkdir(mode=0o700)
    before = (stat.S_IMODE(home.stat().st_mode), getfacl(home))
    grant = grant_target_access(work, TARGET, work_root=home)
    assert [p.path for p in grant.parents] == [home]
    assert has_entry(home, f"user:{TARGET.uid}:--x")
    assert "other::---" in getfacl(home)
    assert stat.S_IMODE(home.stat().st_mode) & 0o007 == 0  # never o+x
    reclaim(grant)
    assert (stat.S_IMODE(home.stat().st_mode), getfacl(home)) == before


def test_parent_with_its_own_acl_keeps_it(area):
    home = area / "pilot-home"
    home.mkdir(mode=0o700)
    subprocess.run(["setfacl", "-m", "u:12345:rx", str(home)], check=True)
    work = home / "work"
    work.mkdir(mode=0o700)
    before = getfacl(home)
    grant = grant_target_access(work, TARGET, work_root=home)
    assert has_entry(home, "user:12345:r-x") and has_entry(home, f"user:{TARGET.uid}:--x")
    reclaim(grant)
    assert getfacl(home) == before


def test_traversable_parents_are_left_alone(area):
    work = area / "work"
    work.mkdir(mode=0o700)
    before = getfacl(area)
    grant = grant_target_access(work, TARGET)
    assert grant.parents == ()
    assert getfacl(area) == before


@pytest.mark.skipif(ME != 0, reason="needs root to make a directory of another uid")
def test_parent_of_someone_else_that_blocks_the_target_is_a_sandbox_error(area):
    other = area / "other"
    other.mkdir(mode=0o700)
    work = other / "work"
    work.mkdir(mode=0o700)
    os.chown(other, 54999, 54999)
    with pytest.raises(SandboxError, match="not traversable"):
        grant_target_access(work, TARGET, work_root=area)


def test_objects_the_pilot_makes_after_the_grant_lose_the_targets_entries(workdir):
    grant = grant_target_access(workdir, TARGET)
    log = workdir / "pilot.log"
    log.write_text("log")
    newdir = workdir / "later"
    newdir.mkdir()
    assert any(str(TARGET.uid) in line for line in getfacl(log))
    reclaim(grant)
    assert not any(str(TARGET.uid) in line for line in getfacl(log))
    assert not any(str(TARGET.uid) in line for line in getfacl(newdir))


def test_no_world_writable_path_in_acl_mode(workdir):
    grant_target_access(workdir, TARGET)
    for path, (mode, _) in snapshot(workdir).items():
        assert not mode & stat.S_IWOTH, path


def test_world_mode_opens_directories_and_unreadable_files_and_reclaim_restores(workdir):
    before = snapshot(workdir)
    grant = grant_target_access(workdir, TARGET, "world")
    assert grant.mode == "world"
    assert grant.payload_umask(0o022) == 0
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o1777
    assert stat.S_IMODE((workdir / "sub").stat().st_mode) == 0o1777
    assert stat.S_IMODE((workdir / "input.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((workdir / "tool.sh").stat().st_mode) == 0o755
    reclaim(grant)
    assert snapshot(workdir) == before


def test_acl_mode_keeps_the_queue_umask(workdir):
    assert grant_target_access(workdir, TARGET).payload_umask(0o022) == 0o022


def test_unknown_mode_is_a_configuration_error(workdir):
    with pytest.raises(ConfigurationError):
        grant_target_access(workdir, TARGET, "open")


def test_missing_work_directory_is_a_workdir_error(area):
    with pytest.raises(WorkdirError, match="does not exist"):
        grant_target_access(area / "missing", TARGET)


def test_work_directory_that_is_a_file_is_a_workdir_error(area):
    (area / "file").write_text("")
    with pytest.raises(WorkdirError, match="not a directory"):
        grant_target_access(area / "file", TARGET)


@pytest.mark.skipif(ME != 0, reason="needs root to make a directory of another uid")
def test_work_directory_of_someone_else_is_a_workdir_error(area):
    work = area / "work"
    work.mkdir()
    os.chown(work, 54999, 54999)
    with pytest.raises(WorkdirError, match="belongs to uid 54999"):
        grant_target_access(work, TARGET)


@pytest.mark.skipif(ME == 0, reason="root may write anywhere")
def test_work_directory_the_pilot_cannot_write_is_a_workdir_error(area):
    work = area / "work"
    work.mkdir(mode=0o500)
    try:
        with pytest.raises(WorkdirError, match="not writable"):
            grant_target_access(work, TARGET)
    finally:
        work.chmod(0o700)


def test_reclaim_of_a_removed_work_directory_does_nothing(workdir):
    grant = grant_target_access(workdir, TARGET)
    shutil.rmtree(workdir)
    reclaim(grant)


def test_objects_the_pilot_makes_deep_in_the_tree_lose_only_the_targets_entries(workdir):
    grant = grant_target_access(workdir, TARGET)
    deep = workdir / "sub" / "later"
    deep.mkdir()
    log = deep / "pilot.log"
    log.write_text("log")
    shared = workdir / "sub" / "shared.txt"
    shared.write_text("shared")
    subprocess.run(["setfacl", "-m", "u:12345:r", str(shared)], check=True)
    reclaim(grant)
    for path in (deep, log, shared, workdir / "sub"):
        assert not any(str(TARGET.uid) in line for line in getfacl(path)), path
    assert "user:12345:r--" in getfacl(shared)



def test_reclaim_looks_at_no_file_of_a_directory_with_no_entry_changed(workdir, monkeypatch):
    """A directory nothing was created, removed or renamed in since the grant holds no new
    file: only the files the grant changed are given back, none is read for entries."""
    hour_ago = time.time_ns() - 3600 * 10**9
    for directory in (workdir, workdir / "sub"):
        os.utime(directory, ns=(hour_ago, hour_ago))  # staged before, not in the grant's tick
    before = snapshot(workdir)
    grant = grant_target_access(workdir, TARGET)

    def reads(self, path):
        raise AssertionError(f"{path} read: its directory had no entry changed")

    monkeypatch.setattr(_Reclaimer, "_names_target", reads)
    reclaim(grant)
    assert snapshot(workdir) == before


def test_directory_whose_time_the_pilot_set_back_is_looked_at_again(workdir):
    """Setting a directory's times back (``cp -a``, ``tar``) changes its change time: its
    files are read again, and a new one loses the target's inherited entry."""
    grant = grant_target_access(workdir, TARGET)
    late = workdir / "sub" / "late.txt"
    late.write_text("staged during the job")
    os.utime(workdir / "sub", ns=(0, 0))
    reclaim(grant)
    assert not any(str(TARGET.uid) in line for line in getfacl(late))


def test_reclaim_of_a_work_directory_swapped_for_a_symlink_is_a_sandbox_error(workdir):
    grant = grant_target_access(workdir, TARGET)
    moved = workdir.parent / "moved"
    workdir.rename(moved)
    workdir.symlink_to(moved)
    with pytest.raises(SandboxError, match="Not a directory|symbolic links"):
        reclaim(grant)
    assert any(str(TARGET.uid) in line for line in getfacl(moved))  # nothing followed


# -- the proxy handover directory ----------------------------------------------------------

def handover_proxy(workdir: Path) -> Path:
    return workdir / ".pilotid-proxy-54321-0123456789abcdef" / "x509up"


def test_handover_directory_is_open_to_the_target_alone_and_has_no_default_acl(workdir):
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    made = make_handover_directory(proxy, grant)
    acl = getfacl(proxy.parent)
    assert f"user:{TARGET.uid}:rwx" in acl
    assert not any(line.startswith("default:") for line in acl), acl
    assert {line for line in acl if line.startswith(("group::", "other::"))} == \
        {"group::---", "other::---"}
    assert proxy.parent.stat().st_uid == ME
    assert (made.device, made.inode) == (proxy.parent.stat().st_dev, proxy.parent.stat().st_ino)


def test_file_made_in_the_handover_directory_under_umask_077_is_0600_without_acl(workdir):
    """What the wrapper relies on to store the proxy copy without a chmod."""
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    make_handover_directory(proxy, grant)
    old = os.umask(0o077)
    try:
        proxy.write_text("PEM")
    finally:
        os.umask(old)
    assert stat.S_IMODE(proxy.stat().st_mode) == 0o600
    assert getfacl(proxy) == ("user::rw-", "group::---", "other::---")
    beside = workdir / "x509up-beside"  # the same in the work directory inherits its ACL
    os.umask(0o077)
    try:
        beside.write_text("PEM")
    finally:
        os.umask(old)
    assert any(line.startswith(f"user:{ME}:") for line in getfacl(beside))


def test_world_mode_has_no_handover_directory(workdir):
    """Every account may create in a directory the pilot opens without ACLs: the wrapper
    keeps the proxy in a directory of its own instead (pilotid.payloads.targetdir)."""
    grant = grant_target_access(workdir, TARGET, "world")
    proxy = handover_proxy(workdir)
    with pytest.raises(ValueError, match="world mode"):
        make_handover_directory(proxy, grant)
    assert not proxy.parent.exists()


def test_handover_directory_without_a_grant_is_the_pilots_alone(workdir):
    proxy = handover_proxy(workdir)
    make_handover_directory(proxy, None)
    assert stat.S_IMODE(proxy.parent.stat().st_mode) == 0o700
    assert getfacl(proxy.parent) == ("user::rwx", "group::---", "other::---")


def test_existing_handover_directory_is_a_workdir_error(workdir):
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    proxy.parent.mkdir()
    with pytest.raises(WorkdirError, match="handover directory"):
        make_handover_directory(proxy, grant)


def test_handover_directory_outside_the_work_directory_is_refused(workdir):
    grant = grant_target_access(workdir, TARGET)
    with pytest.raises(ValueError, match="directly in the work directory"):
        make_handover_directory(workdir / "sub" / "handover" / "x509up", grant)
    assert not (workdir / "sub" / "handover").exists()


def test_remove_takes_the_proxy_and_the_directory(workdir):
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    made = make_handover_directory(proxy, grant)
    proxy.write_text("PEM")
    made.remove()
    assert not proxy.parent.exists()
    made.remove()  # gone already: nothing to do


def test_remove_keeps_a_directory_holding_more_and_reclaim_strips_the_target(workdir):
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    made = make_handover_directory(proxy, grant)
    proxy.write_text("PEM")
    (proxy.parent / "more").write_text("left by the payload")
    made.remove()
    assert not proxy.exists() and (proxy.parent / "more").exists()
    reclaim(grant)
    assert not any(str(TARGET.uid) in line for line in getfacl(proxy.parent))


def test_remove_leaves_a_directory_swapped_for_a_symlink_alone(workdir, area):
    """The work directory is the target's to write in: it may put a link to a directory
    of the pilot's in place of the handover directory; nothing there is removed."""
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    made = make_handover_directory(proxy, grant)
    elsewhere = area / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x509up").write_text("the pilot's")
    proxy.parent.rename(workdir / "moved")
    proxy.parent.symlink_to(elsewhere)
    made.remove()
    assert (elsewhere / "x509up").read_text() == "the pilot's"


def test_without_a_work_root_no_parent_is_changed_and_the_error_says_so(area):
    """The issue's pilot home: no ``--x`` on it unless the queue declares a work root."""
    home = area / "pilot-home"
    home.mkdir(mode=0o700)
    work = home / "work"
    work.mkdir(mode=0o700)
    before = getfacl(home)
    with pytest.raises(WorkRootUnreachableError, match="traversable|reachable") as caught:
        grant_target_access(work, TARGET)
    assert caught.value.code == 66 and f"chmod o+x {home}" in str(caught.value)
    assert getfacl(home) == before


def test_nothing_above_the_work_root_is_changed(area):
    home = area / "pilot-home"
    home.mkdir(mode=0o700)
    root = home / "jobs"
    root.mkdir(mode=0o700)
    work = root / "work"
    work.mkdir(mode=0o700)
    before = getfacl(home)
    with pytest.raises(WorkRootUnreachableError):
        grant_target_access(work, TARGET, work_root=root)
    assert getfacl(home) == before and not has_entry(root, f"user:{TARGET.uid}:--x")
    home.chmod(0o711)  # the site makes the work root reachable
    grant = grant_target_access(work, TARGET, work_root=root)
    assert [p.path for p in grant.parents] == [root]
    reclaim(grant)


def test_a_work_directory_outside_the_work_root_is_refused(area):
    root = area / "jobs"
    root.mkdir(mode=0o700)
    work = area / "work"
    work.mkdir(mode=0o700)
    with pytest.raises(WorkdirError, match="outside the queue's work_root"):
        grant_target_access(work, TARGET, work_root=root)


def test_remove_finds_the_directory_the_payload_moved(workdir, caplog):
    """Moved (here into a subdirectory), the handover directory still loses the copy and
    goes; the move is logged with its new name (issue 13, item 6)."""
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    made = make_handover_directory(proxy, grant)
    proxy.write_text("PEM")
    (workdir / "sub").mkdir(exist_ok=True)
    moved = workdir / "sub" / "kept"
    proxy.parent.rename(moved)
    made.remove()
    assert not moved.exists()
    assert "moved the proxy handover directory" in caplog.text and str(moved) in caplog.text


def test_remove_takes_the_hard_links_the_payload_made_to_the_copy(workdir, caplog):
    """A hard link to the user's proxy copy anywhere in the work directory goes with the
    copy, and is reported (issue 13, item 6: no copy outlives the job)."""
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    made = make_handover_directory(proxy, grant)
    proxy.write_text("PEM")
    (workdir / "sub").mkdir(exist_ok=True)
    os.link(proxy, workdir / "sub" / "kept.pem")
    os.link(proxy, workdir / "top.pem")
    made.remove()
    assert not (workdir / "sub" / "kept.pem").exists() and not (workdir / "top.pem").exists()
    assert caplog.text.count("a hard link the payload made") == 2
