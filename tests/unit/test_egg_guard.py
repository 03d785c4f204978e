"""``tests.egg_guard``: the suite's guard names the test that left an egg cache behind."""

from __future__ import annotations

import os

from tests.egg_guard import EggGuard


def test_an_egg_cache_a_test_left_is_named_with_the_test(tmp_path):
    guard = EggGuard(tmp_path, {os.geteuid()})
    before = guard.names()
    (tmp_path / "pilotid-egg-1").mkdir()
    (tmp_path / "not-an-egg").mkdir()
    guard.note(before, "test_leaves_one")
    assert guard.left(grace=0) == {str(tmp_path / "pilotid-egg-1"): "test_leaves_one"}


def test_an_egg_cache_gone_by_the_end_of_the_run_is_not_counted(tmp_path):
    guard = EggGuard(tmp_path, {os.geteuid()})
    before = guard.names()
    (tmp_path / "pilotid-egg-2").mkdir()
    guard.note(before, "test_whose_job_ended_later")
    (tmp_path / "pilotid-egg-2").rmdir()
    assert guard.left(grace=0) == {}


def test_egg_caches_of_other_accounts_and_older_ones_are_not_counted(tmp_path):
    (tmp_path / "pilotid-egg-old").mkdir()
    guard = EggGuard(tmp_path, {os.geteuid() + 1})
    before = guard.names()
    (tmp_path / "pilotid-egg-3").mkdir()
    guard.note(before, "test_of_another_account")
    assert guard.left(grace=0) == {}
