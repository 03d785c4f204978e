"""How the grant walks a big work directory: GNU ``find`` alongside, or the grant alone.

A tree of more than ``_FIND_AFTER`` entries is listed by ``find`` in a process of its own
while the grant opens and changes what it lists; whatever ``find`` does (missing, failing
half-way, listing nonsense), the result must be the one of the walk the grant does alone.
The target is a made-up uid, as in test_sandbox.py.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from pilotid.identity.accounts import Account
from pilotid.workdir import SandboxGrant, builder, grant_target_access, reclaim

TARGET = Account("pilotid-unit-target", 54321, 54321)
#: A target in the pilot's own group: the group bits decide for it, not the others' bits.
GROUPMATE = Account("pilotid-unit-groupmate", 54322, os.getegid())

needs_find = pytest.mark.skipif(builder._gnu_find() is None, reason="no GNU find here")


def make_tree(top: Path) -> Path:
    """A work directory with a bit of everything the walk must tell apart."""
    top.mkdir(mode=0o700)
    top.chmod(0o700)
    modes = (0o644, 0o600, 0o755, 0o700, 0o640, 0o604, 0o000, 0o711, 0o4755, 0o444, 0o744,
             0o754, 0o705)
    names = ["a", "a b", "ab", "-rf", "new\nline", "caf\udce9"]  # the last one is not UTF-8
    for depth, name in enumerate(names):
        directory = top / name / "deeper" / "and deeper"[: depth + 3]
        directory.mkdir(parents=True)
        for index, mode in enumerate(modes):
            for where in (top / name, directory):
                path = where / f"f{index}"
                path.write_text("x")
                path.chmod(mode)
        (directory / "link-out").symlink_to(top.parent)
        os.mkfifo(directory / "fifo")
    subprocess.run(["setfacl", "-m", "u:12345:r", str(top / "a" / "f1")], check=True)
    subprocess.run(["setfacl", "-m", f"u:{TARGET.uid}:r", str(top / "ab" / "f1")], check=True)
    subprocess.run(["setfacl", "-d", "-m", "u:12345:rx", str(top / "a b")], check=True)
    (top / "a b").chmod(0o750)
    (top / "link-to-parent").symlink_to(top.parent)
    return top


def snapshot(top: Path) -> Dict[str, Tuple[int, str]]:
    """Mode and ACL of every object under (and including) ``top``, and of its parent."""
    found = {}
    for root, dirs, files in os.walk(top):
        for name in [".", *dirs, *files]:
            path = Path(root) / name if name != "." else Path(root)
            if not path.is_symlink():
                acl = subprocess.run(["getfacl", "-cpn", str(path)], capture_output=True,
                                     text=True, errors="surrogateescape", check=True).stdout
                found[str(path.relative_to(top))] = (stat.S_IMODE(path.lstat().st_mode), acl)
    found[".."] = (stat.S_IMODE(top.parent.stat().st_mode),
                   subprocess.run(["getfacl", "-cpn", str(top.parent)], capture_output=True,
                                  text=True, check=True).stdout)
    return found


def changes(grant: SandboxGrant) -> List[tuple]:
    return sorted((c.path, c.mode, c.access_acl, c.default_acl) for c in grant.changes)


def grant_alone(top: Path, mode: str, monkeypatch,
                target: Account = TARGET) -> SandboxGrant:
    """The grant walking the tree alone (no ``find``)."""
    with monkeypatch.context() as patch:
        patch.setattr(builder, "_gnu_find", lambda: None)
        patch.setattr(builder, "_FIND_AFTER", 0)
        return grant_target_access(top, target, mode)


def fake_find(monkeypatch, listing: bytes, status: int = 0) -> None:
    """Replace find by a program that prints ``listing`` and exits with ``status``."""
    script = f"import sys; sys.stdout.buffer.write({listing!r}); sys.exit({status})"
    monkeypatch.setattr(builder, "_FIND_AFTER", 0)
    monkeypatch.setattr(builder._Builder, "_find_argv",
                        lambda self: [sys.executable, "-c", script])
    monkeypatch.setattr(builder, "_gnu_find", lambda: sys.executable)


@needs_find
@pytest.mark.parametrize("mode", ["acl", "world"])
@pytest.mark.parametrize("target", [TARGET, GROUPMATE], ids=["other", "groupmate"])
def test_find_alongside_gives_the_grant_of_the_walk_alone(area, monkeypatch, mode, target):
    alone = make_tree(area / "alone")
    with_find = make_tree(area / "with-find")
    expected = grant_alone(alone, mode, monkeypatch, target)
    walked: List[bool] = []
    real = builder._Builder._walk_with_find

    def spied(self, top):
        walked.append(real(self, top))
        return walked[-1]

    monkeypatch.setattr(builder._Builder, "_walk_with_find", spied)
    monkeypatch.setattr(builder, "_FIND_AFTER", 0)
    grant = grant_target_access(with_find, target, mode)
    assert walked == [True]
    assert changes(grant) == changes(expected)
    assert snapshot(with_find) == snapshot(alone)
    assert len({(c.device, c.inode) for c in grant.changes}) == len(grant.changes)
    reclaim(grant)
    reclaim(expected)
    assert snapshot(with_find) == snapshot(alone)


@needs_find
def test_find_taking_over_half_way_through_the_walk_changes_nothing_twice(area, monkeypatch):
    alone = make_tree(area / "alone")
    with_find = make_tree(area / "with-find")
    expected = grant_alone(alone, "acl", monkeypatch)
    monkeypatch.setattr(builder, "_FIND_AFTER", 20)
    grant = grant_target_access(with_find, TARGET)
    assert changes(grant) == changes(expected)
    assert snapshot(with_find) == snapshot(alone)


def test_find_failing_half_way_leaves_the_rest_to_the_walk(area, monkeypatch):
    alone = make_tree(area / "alone")
    top = make_tree(area / "work")
    expected = grant_alone(alone, "acl", monkeypatch)
    fake_find(monkeypatch, b"d./a\0f./a/f1\0f./a/f6\0d./a/deeper\0", status=1)
    grant = grant_target_access(top, TARGET)
    assert changes(grant) == changes(expected)
    assert snapshot(top) == snapshot(alone)
    reclaim(grant)
    reclaim(expected)
    assert snapshot(top) == snapshot(alone)


def test_find_output_cut_short_is_not_taken_for_a_whole_walk(area, monkeypatch):
    """No end mark (``e``): find died or was reaped by someone else; its status proves
    nothing then."""
    alone = make_tree(area / "alone")
    top = make_tree(area / "work")
    expected = grant_alone(alone, "acl", monkeypatch)
    fake_find(monkeypatch, b"d./a\0f./a/f1\0")
    assert changes(grant_target_access(top, TARGET)) == changes(expected)


def test_a_tampered_find_listing_never_reaches_outside_the_work_directory(area, monkeypatch):
    top = make_tree(area / "work")
    outside = area / "outside"
    outside.mkdir(mode=0o700)
    (outside / "secret").write_text("secret")
    (outside / "secret").chmod(0o600)
    (top / "a" / "escape").symlink_to(outside)
    before = snapshot(outside)
    before_parent = snapshot(top)[".."]
    fake_find(monkeypatch, b"d./..\0f./../outside/secret\0d./link-to-parent\0"
                           b"f./link-to-parent/outside/secret\0d./a\0d./a/escape\0"
                           b"f./a/escape/secret\0d./.\0nonsense\0e\0")
    grant = grant_target_access(top, TARGET)
    assert snapshot(outside) == before
    assert snapshot(top)[".."] == before_parent
    assert {c.path for c in grant.changes} >= {".", "a"}
    assert not any(c.path.startswith(("..", "link")) for c in grant.changes)


def test_a_small_work_directory_starts_no_process(area, monkeypatch):
    top = make_tree(area / "work")

    def refuse(*args, **kwargs):
        raise AssertionError("a process was started for a small work directory")

    monkeypatch.setattr(builder.subprocess, "Popen", refuse)
    monkeypatch.setattr(builder.subprocess, "run", refuse)
    grant_target_access(top, TARGET)


def test_a_find_that_cannot_start_leaves_the_walk_to_the_grant(area, monkeypatch):
    alone = make_tree(area / "alone")
    top = make_tree(area / "work")
    expected = grant_alone(alone, "acl", monkeypatch)
    monkeypatch.setattr(builder, "_FIND_AFTER", 0)
    monkeypatch.setattr(builder, "_gnu_find", lambda: str(area / "no-such-find"))
    assert changes(grant_target_access(top, TARGET)) == changes(expected)
