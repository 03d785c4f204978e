"""Grant and reclaim on a tree of any depth (issue 13, item 3).

A chain of directories deeper than the open-file limit, with 250-byte names holding
newlines and bytes that are not UTF-8: the walks must hold a bounded number of descriptors
and memory that does not grow with depth times name length, and the parents' entries must
go even when the reclaim's walk fails.  The target is a made-up uid, as in test_sandbox.py.
"""

from __future__ import annotations

import errno
import os
import resource
import struct
import tracemalloc
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List

import pytest

from pilotid.errors import SandboxError
from pilotid.identity.accounts import Account
from pilotid.workdir import builder, grant_target_access, reclaim, walk
from pilotid.workdir.reclaim import _Reclaimer

TARGET = Account("pilotid-unit-target", 54321, 54321)
ACCESS = "system.posix_acl_access"
DEFAULT = "system.posix_acl_default"


def level_name(index: int, length: int) -> bytes:
    """A ``length``-byte name; every third holds a newline, every third a byte not UTF-8."""
    tail = (b"\n", b"\xff", b"-")[index % 3] + str(index).encode()
    return b"d" * (length - len(tail)) + tail


def make_chain(top: Path, depth: int, length: int = 250) -> None:
    """``top`` (0700) holding a chain of ``depth`` 0700 directories, each with a 0600 file."""
    top.mkdir(mode=0o700)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for index in range(depth):
            name = level_name(index, length)
            os.mkdir(name, 0o700, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
            os.close(os.open(b"f", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    finally:
        os.close(fd)


def user_entries(blob: bytes) -> List[int]:
    """The uids named in a POSIX ACL extended attribute."""
    return [ident for tag, _, ident in struct.iter_unpack("<HHI", blob[4:]) if tag == 0x02]


def named_users(top: Path) -> Iterator[tuple]:
    """(path, attribute, uid) of every named user entry on the objects under ``top``."""
    for root, _, files, rootfd in os.fwalk(os.fsencode(top)):
        for name in [None, *files]:
            path = f"/proc/self/fd/{rootfd}" + ("" if name is None else "/" + os.fsdecode(name))
            for attribute in (ACCESS, DEFAULT):
                try:  # /proc/self/fd/<n> itself is followed: the directory, not the link
                    blob = os.getxattr(path, attribute, follow_symlinks=name is None)
                except OSError:
                    continue
                for uid in user_entries(blob):
                    yield root, name, attribute, uid


@contextmanager
def few_descriptors(spare: int = 24) -> Iterator[None]:
    """Lower this process's open-file limit to what it has open now plus ``spare``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + spare, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def home(area):
    """A 0700 directory of the pilot's (the pilot's home): the grant opens it with ``x``."""
    path = area / "home"
    path.mkdir(mode=0o700)
    return path


@pytest.mark.parametrize("find", [False, True], ids=["alone", "find-alongside"])
def test_grant_opens_every_level_of_a_tree_deeper_than_the_open_file_limit(home, monkeypatch,
                                                                           find):
    top = home / "work"
    make_chain(top, 120)
    if find:
        monkeypatch.setattr(builder, "_FIND_AFTER", 0)
    with few_descriptors():
        grant = grant_target_access(top, TARGET, work_root=top.parent)
    # every directory (the work directory and its 120) and every 0600 file changed
    assert len(grant.changes) == 1 + 2 * 120
    with_target = {(root, name, attr) for root, name, attr, uid in named_users(top)
                   if uid == TARGET.uid}
    assert len(with_target) == 2 * 121 + 120
    reclaim(grant)


def test_reclaim_gives_back_a_tree_deeper_than_the_open_file_limit(home):
    top = home / "work"
    make_chain(top, 120)
    grant = grant_target_access(top, TARGET, work_root=top.parent)
    with few_descriptors():
        reclaim(grant)
    assert [entry for entry in named_users(home) if entry[3] == TARGET.uid] == []


def test_reclaim_takes_the_parents_entries_back_when_its_walk_fails(home, monkeypatch):
    top = home / "work"
    make_chain(top, 3)
    grant = grant_target_access(top, TARGET, work_root=top.parent)
    assert grant.parents

    def failing(self):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(_Reclaimer, "walk", failing)
    with pytest.raises(SandboxError, match="Too many open files"):
        reclaim(grant)
    for parent in grant.parents:
        try:
            blob = os.getxattr(parent.path, ACCESS)
        except OSError:
            continue
        assert TARGET.uid not in user_entries(blob)


def peak_bytes(action) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("walk", ["grant", "reclaim"])
def test_walk_memory_does_not_grow_with_depth_times_name_length(area, walk):
    """Depth 400: 250-byte names against 20-byte ones (100 kB against 8 kB of names in
    the chain; held per level as paths, 20 MB against 1.6 MB).  The grant keeps one
    ``PathChange`` per object, its path shortened: a longer name costs once, not per level;
    the walk keeps up to ``_KEPT_NAMES`` characters of names (64 k)."""
    peaks = {}
    for length in (20, 250):
        top = area / f"work-{length}"
        make_chain(top, 400, length)
        if walk == "grant":
            peaks[length] = peak_bytes(
                lambda: reclaim(grant_target_access(top, TARGET, work_root=area)))
        else:
            grant = grant_target_access(top, TARGET, work_root=top.parent)
            peaks[length] = peak_bytes(lambda: reclaim(grant))
    assert peaks[250] < 1.5 * peaks[20] + 256 * 1024, peaks


def test_walk_lists_a_level_again_when_it_keeps_no_names(area, monkeypatch):
    """With no names kept below the kept levels, each level is listed again on the way
    back and the walk goes on after the subdirectory it came from: nothing is missed."""
    monkeypatch.setattr(walk, "_KEPT_NAMES", 0)
    top = area / "work"
    make_chain(top, 30, 40)
    for root, dirs, _, rootfd in os.fwalk(os.fsencode(top)):
        for name in (b"a-leaf", b"z-leaf"):
            os.mkdir(name, 0o700, dir_fd=rootfd)
    grant = grant_target_access(top, TARGET, work_root=top.parent)
    assert len(grant.changes) == 1 + 30 + 30 + 2 * 31  # the chain, its files, the leaves
    reclaim(grant)
    assert list(named_users(top)) == []


def test_reclaim_never_follows_dotdot_out_of_a_directory_moved_meanwhile(area, monkeypatch):
    """A directory moved out of the work directory while the reclaim is below it: the way
    back up through ``..`` would lead outside; the branch is stopped and reported."""
    top = area / "work"
    make_chain(top, 20, 40)
    grant = grant_target_access(top, TARGET, work_root=top.parent)
    outside = area / "outside"
    outside.mkdir(mode=0o700)
    os.setxattr(outside, ACCESS, os.getxattr(top, ACCESS))  # as if granted: must stay
    real = _Reclaimer._scan
    levels = []

    def moving(self, relpath, dirfd):
        levels.append(relpath)
        if len(levels) == 16:  # below level 15: move level 10 out of the work directory
            path = os.path.join(top, *(os.fsdecode(level_name(i, 40)) for i in range(11)))
            os.rename(path, outside / "moved")
        return real(self, relpath, dirfd)

    monkeypatch.setattr(_Reclaimer, "_scan", moving)
    with pytest.raises(SandboxError, match="moved while the reclaim walked it"):
        reclaim(grant)
    assert TARGET.uid in user_entries(os.getxattr(outside, ACCESS))
    assert [entry for entry in named_users(top) if entry[3] == TARGET.uid] == []
