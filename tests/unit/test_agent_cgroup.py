"""Finding the cgroup v2 hierarchy and a process's group (``pilotid.agent.cgroup``).

The kernel's files are faked here (a mountinfo of each kind of node);
``tests/unit/test_agent.py`` (root moves) and ``tests/system/test_run_agent.py`` (the pilot
may not) move real processes.
"""

from __future__ import annotations

import pytest

from pilotid.agent import cgroup

HYBRID = """\
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
UNIFIED = "30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
LEGACY = "42 31 0:39 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
#: A container's view: the hierarchy mounted from a group of the host's, not its root.
NOT_ROOT = "50 40 0:26 /slot1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"


@pytest.mark.parametrize("mountinfo, found", [
    (HYBRID, "/sys/fs/cgroup/unified"), (UNIFIED, "/sys/fs/cgroup"), (LEGACY, None),
    (NOT_ROOT, None)], ids=["hybrid", "unified", "legacy", "not-its-root"])
def test_the_unified_hierarchy_is_found_where_it_is_mounted(tmp_path, monkeypatch,
                                                             mountinfo, found):
    (tmp_path / "mountinfo").write_text(mountinfo)
    monkeypatch.setattr(cgroup, "MOUNTINFO", str(tmp_path / "mountinfo"))
    assert cgroup.unified_mount() == found


def test_a_process_that_is_gone_has_no_group():
    assert cgroup.cgroup_of("0") is None


def test_a_group_outside_this_namespace_is_not_joined_and_said(monkeypatch, caplog):
    groups = {"self": "/agent", "42": "/../slot1"}
    monkeypatch.setattr(cgroup, "cgroup_of", groups.get)
    monkeypatch.setattr(cgroup, "unified_mount", lambda: "/nonexistent/cgroup")
    cgroup.join_cgroup_of(42)
    [record] = caplog.records
    assert "stays in the agent's control group /agent, not its client's /../slot1" \
        in record.getMessage()


def test_a_client_in_the_agents_group_needs_no_move(monkeypatch, caplog):
    monkeypatch.setattr(cgroup, "cgroup_of", lambda process: "/slot")
    monkeypatch.setattr(cgroup, "unified_mount", lambda: "/nonexistent/cgroup")
    cgroup.join_cgroup_of(42)
    assert caplog.records == []
