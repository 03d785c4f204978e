"""Who may queue work for after the job with ``at`` or ``cron``: the allow and deny files
(``pilotid.identity.scheduling``), read from a directory of the test's."""

from __future__ import annotations

import pytest

from pilotid.identity import scheduling
from pilotid.identity.scheduling import AT, CRON, scheduler_access


@pytest.fixture
def node(tmp_path, monkeypatch):
    """An empty /etc and a root where ``at``, ``atd`` and ``crontab`` are installed."""
    etc, root = tmp_path / "etc", tmp_path / "root"
    etc.mkdir()
    for program in ("usr/bin/at", "usr/sbin/atd", "usr/bin/crontab"):
        (root / program).parent.mkdir(parents=True, exist_ok=True)
        (root / program).touch()
    monkeypatch.setattr(scheduling, "ETC", etc)
    monkeypatch.setattr(scheduling, "ROOT", root)
    return etc, root


def rules(etc, **files):
    for name, text in files.items():
        (etc / name.replace("_", ".")).write_text(text)


@pytest.mark.parametrize("files, allowed", [
    ({}, False),                                          # at without rules: root only
    ({"at_deny": ""}, True),                              # an empty deny file denies nobody
    ({"at_deny": "bob\nalice\n"}, False),
    ({"at_deny": "bob\n"}, True),
    ({"at_allow": "alice\n"}, True),
    ({"at_allow": "bob\n", "at_deny": ""}, False),        # the allow file wins
    ({"at_allow": "", "at_deny": ""}, False),
])
def test_at_follows_its_allow_then_deny_file(node, files, allowed):
    etc, _ = node
    rules(etc, **files)
    assert scheduler_access(AT, "alice").allowed is allowed


@pytest.mark.parametrize("files, allowed", [
    ({}, True),                                           # Debian's cron without rules: all
    ({"cron_deny": "alice\n"}, False),
    ({"cron_allow": "root\n"}, False),
    ({"cron_allow": "root\n  alice  \n"}, True),
])
def test_cron_follows_its_allow_then_deny_file(node, files, allowed):
    etc, _ = node
    rules(etc, **files)
    assert scheduler_access(CRON, "alice").allowed is allowed


def test_a_name_is_a_whole_line_not_a_part_of_one(node):
    etc, _ = node
    rules(etc, at_deny="alice2\nmalice\n")
    assert scheduler_access(AT, "alice").allowed is True


def test_a_rule_file_that_cannot_be_read_leaves_the_answer_open(node):
    etc, _ = node
    (etc / "at.deny").mkdir()  # unreadable as a file, whoever reads it (root too)
    access = scheduler_access(AT, "alice")
    assert access.allowed is None and "cannot be read" in access.why


def test_a_scheduler_not_installed_has_no_answer(node):
    _, root = node
    (root / "usr/bin/crontab").unlink()
    assert scheduler_access(CRON, "alice") is None


def test_the_daemon_found_is_named(node):
    access = scheduler_access(AT, "alice")
    assert access.daemon == "/usr/sbin/atd"
    assert scheduler_access(CRON, "alice").daemon is None
