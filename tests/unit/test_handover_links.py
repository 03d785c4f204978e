"""The hard links a payload made to its proxy copy, removed with the copy: on the bounded
descriptor walk, never through a name the payload can swap (``HandoverDirectory.remove``).

The target is a made-up uid, as in test_sandbox.py.
"""

from __future__ import annotations

import os
from pathlib import Path

from pilotid.workdir import grant_target_access, make_handover_directory, reclaim
from tests.unit.test_deep_tree import TARGET, few_descriptors, level_name, make_chain, peak_bytes
from tests.unit.test_sandbox import handover_proxy


def bottom(top: Path, depth: int, length: int = 250) -> int:
    """A descriptor of the deepest directory of ``make_chain(top, depth, length)``."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    for index in range(depth):
        child = os.open(level_name(index, length), os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    return fd


def link_at_bottom(proxy: Path, top: Path, depth: int, length: int = 250) -> int:
    """Hard-link ``proxy`` as ``kept.pem`` at the bottom of the chain; that directory open."""
    fd = bottom(top, depth, length)
    os.link(proxy, "kept.pem", dst_dir_fd=fd)
    return fd


def test_a_hard_link_below_a_tree_deeper_than_path_max_and_the_open_file_limit_goes(area):
    """120 levels of 250-byte names (30 kB of path, 7 times PATH_MAX; more levels than the
    descriptors left): the link at the bottom goes, reported."""
    work = area / "work"
    make_chain(work, 120)
    grant = grant_target_access(work, TARGET, work_root=area)
    proxy = handover_proxy(work)
    made = make_handover_directory(proxy, grant)
    proxy.write_text("PEM")
    deepest = link_at_bottom(proxy, work, 120)
    try:
        with few_descriptors():
            made.remove()
        assert not os.path.lexists(f"/proc/self/fd/{deepest}/kept.pem")
    finally:
        os.close(deepest)
    reclaim(grant)


def test_memory_does_not_grow_with_depth_times_name_length(area):
    """Depth 400, the link at the bottom: 250-byte names against 20-byte ones (as the grant
    and the reclaim, test_deep_tree.py)."""
    peaks = {}
    for length in (20, 250):
        work = area / f"work-{length}"
        make_chain(work, 400, length)
        grant = grant_target_access(work, TARGET, work_root=area)
        proxy = handover_proxy(work)
        made = make_handover_directory(proxy, grant)
        proxy.write_text("PEM")
        deepest = link_at_bottom(proxy, work, 400, length)
        try:
            peaks[length] = peak_bytes(made.remove)
            assert not os.path.lexists(f"/proc/self/fd/{deepest}/kept.pem")
        finally:
            os.close(deepest)
        reclaim(grant)
    assert peaks[250] < 1.5 * peaks[20] + 256 * 1024, peaks


def test_a_directory_swapped_for_a_symlink_after_the_link_is_found_is_not_followed(
        area, monkeypatch):
    """The payload swaps ``sub`` for a symlink to a directory of the pilot's outside the
    work directory right after the walk found its link ``sub/kept.pem`` (the race, made
    deterministic): the pilot's own ``kept.pem`` there stays, the payload's link goes."""
    workdir = area / "work"
    (workdir / "sub").mkdir(mode=0o700, parents=True)
    grant = grant_target_access(workdir, TARGET)
    proxy = handover_proxy(workdir)
    made = make_handover_directory(proxy, grant)
    proxy.write_text("PEM")
    os.link(proxy, workdir / "sub" / "kept.pem")
    copy = os.stat(proxy)
    outside = area / "pilots"
    outside.mkdir(mode=0o700)
    (outside / "kept.pem").write_text("the pilot's own")
    real_lstat = os.lstat
    swapped = []

    def racing_lstat(*args, **kwargs):
        found = real_lstat(*args, **kwargs)
        if not swapped and (found.st_dev, found.st_ino) == (copy.st_dev, copy.st_ino):
            swapped.append(True)
            os.rename(workdir / "sub", workdir / "sub-real")
            os.symlink(outside, workdir / "sub")
        return found

    monkeypatch.setattr(os, "lstat", racing_lstat)
    made.remove()
    monkeypatch.undo()
    assert swapped
    assert (outside / "kept.pem").read_text() == "the pilot's own"
    assert not (workdir / "sub-real" / "kept.pem").exists()
    reclaim(grant)


def test_a_hard_link_outside_the_work_directory_is_reported_not_removed(area, caplog):
    """A link the walk cannot find (here beside the work directory) is counted and
    reported; nothing outside the work directory is touched."""
    work = area / "work"
    work.mkdir(mode=0o700)
    grant = grant_target_access(work, TARGET, work_root=area)
    proxy = handover_proxy(work)
    made = make_handover_directory(proxy, grant)
    proxy.write_text("PEM")
    os.link(proxy, area / "beside.pem")
    made.remove()
    assert (area / "beside.pem").exists()
    assert "1 hard links to the payload's proxy copy were not found in the work directory" \
        in caplog.text
    reclaim(grant)
