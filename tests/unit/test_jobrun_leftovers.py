"""``JobRun.wrapper_leftovers``: the egg cache the marker names, only where the wrapper made it."""

from __future__ import annotations

import os

from pilotid.launcher.jobrun import JobRun
from pilotid.payloads.job import JobSpec
from pilotid.payloads.wrapper import EGG_CACHE_PREFIX
from pilotid.values import WrapperMarker

DIGITS = "0123456789abcdef" * 2


def test_the_egg_cache_a_killed_wrapper_named_is_left_to_remove(tmp_path):
    egg = tmp_path / f"{EGG_CACHE_PREFIX}{DIGITS}"
    egg.mkdir()
    run = JobRun(JobSpec(panda_id=7, transformation="runAthena"), tmp_path)
    run.marker = WrapperMarker(os.getuid(), egg_cache=DIGITS)
    assert run.wrapper_leftovers(tmp_path) == [egg]


def test_an_egg_cache_the_wrapper_could_not_make_is_never_removed(tmp_path):
    """``egg=`` comes before the mkdir: with ``error=egg-cache`` what is at that name (an
    existing directory made the mkdir fail) is not the wrapper's."""
    (tmp_path / f"{EGG_CACHE_PREFIX}{DIGITS}").mkdir()
    run = JobRun(JobSpec(panda_id=7, transformation="runAthena"), tmp_path)
    run.marker = WrapperMarker(os.getuid(), error="egg-cache", egg_cache=DIGITS)
    assert run.wrapper_leftovers(tmp_path) == []
